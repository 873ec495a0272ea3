"""TF Serving API conformance: plain HTTP requests from TF Serving's REST docs and the official gRPC stubs.

By default the suite starts `serving.server.ModelServer` in-process on loopback ports with a fixture
model that has the pipeline's signature contract. Point it at a real tensorflow/serving instead with

    TFSERVING_REST_URL=http://localhost:8501 TFSERVING_GRPC_TARGET=localhost:8500 \
    TFSERVING_MODEL_NAME=penguin python -m pytest -m conformance tests/integration

(the model there must be one our pipeline exported). Tests that need the local server (body limits,
config reloads) are skipped against a real one; tests for the side (REST or gRPC) not configured skip.
"""
from __future__ import annotations

import base64
import json
import os

import pytest

from tests.support.serving_fixtures import (
    EXAMPLE_ROW, FEATURE_NAMES, NUMERIC_FEATURES, PENGUIN_ROW, ModelStore, start_server,
)

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

REAL_REST = os.environ.get("TFSERVING_REST_URL")
REAL_GRPC = os.environ.get("TFSERVING_GRPC_TARGET")
AGAINST_REAL = bool(REAL_REST or REAL_GRPC)
local_only = pytest.mark.skipif(AGAINST_REAL, reason="exercises the local server's own settings")


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """(rest_url | None, grpc_target | None, model_name, version)."""
    if AGAINST_REAL:
        import httpx

        name = os.environ.get("TFSERVING_MODEL_NAME", "penguin")
        version = None
        if REAL_REST:
            status = httpx.get(f"{REAL_REST.rstrip('/')}/v1/models/{name}", timeout=10).json()
            version = max(int(s["version"]) for s in status["model_version_status"] if s["state"] == "AVAILABLE")
        yield (REAL_REST.rstrip("/") if REAL_REST else None, REAL_GRPC, name, version)
        return
    root = tmp_path_factory.mktemp("conformance")
    store = ModelStore()
    base = root / "models" / "penguin"
    base.mkdir(parents=True)
    store.push(base, 3)
    server = start_server(model_name="penguin", model_base_path=str(base), enable_batching=True,
                          rest_api_max_body_bytes=64 * 1024)
    yield (f"http://127.0.0.1:{server.rest_port}", f"127.0.0.1:{server.grpc_port}", "penguin", 3)
    server.stop()


@pytest.fixture(scope="module")
def rest(target):
    import httpx

    url, _, name, version = target
    if url is None:
        pytest.skip("no REST endpoint configured")
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client, name, version


@pytest.fixture(scope="module")
def stubs(target):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    _, grpc_target, name, version = target
    if grpc_target is None:
        pytest.skip("no gRPC endpoint configured")
    channel = grpc.insecure_channel(grpc_target)
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel), name, version)
    channel.close()


def _post(client, path, body):
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, content=content, headers={"Content-Type": "application/json"})


# --- REST: status and metadata ------------------------------------------------------------------------

def test_rest_model_status_lists_available_version(rest):
    client, name, version = rest
    response = client.get(f"/v1/models/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    statuses = response.json()["model_version_status"]
    assert {"version": str(version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}} in statuses


def test_rest_status_of_one_version(rest):
    client, name, version = rest
    body = client.get(f"/v1/models/{name}/versions/{version}").json()
    assert [s["version"] for s in body["model_version_status"]] == [str(version)]


@pytest.mark.parametrize("path, message", [
    ("/v1/models/no_such_model", "Could not find any versions of model no_such_model"),
    ("/v1/models/{name}/versions/987654", "Could not find version 987654 of model {name}"),
])
def test_rest_status_not_found(rest, path, message):
    client, name, _ = rest
    response = client.get(path.format(name=name))
    assert response.status_code == 404
    assert response.json() == {"error": message.format(name=name)}


def test_rest_metadata_describes_the_signature_contract(rest):
    client, name, version = rest
    body = client.get(f"/v1/models/{name}/metadata").json()
    assert body["model_spec"]["name"] == name
    assert body["model_spec"]["version"] == str(version)
    signatures = body["metadata"]["signature_def"]["signature_def"]
    serving_default = signatures["serving_default"]
    assert set(serving_default["inputs"]) == set(FEATURE_NAMES)
    assert serving_default["inputs"]["bill_length_mm"]["dtype"] == "DT_FLOAT"
    assert serving_default["inputs"]["island"]["dtype"] == "DT_STRING"
    assert serving_default["inputs"]["island"]["tensor_shape"]["dim"][0]["size"] == "-1"
    assert set(serving_default["outputs"]) == {"scores", "classes", "predicted_class"}
    assert serving_default["method_name"] == "tensorflow/serving/predict"
    assert signatures["classification"]["method_name"] == "tensorflow/serving/classify"
    assert set(signatures["transform_features"]["inputs"]) == {"examples"}


# --- REST: predict ------------------------------------------------------------------------------------

def test_rest_predict_row_format(rest):
    client, name, _ = rest
    response = _post(client, f"/v1/models/{name}:predict", {"instances": [PENGUIN_ROW, PENGUIN_ROW]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    first = predictions[0]
    assert set(first) == {"scores", "classes", "predicted_class"}
    assert len(first["scores"]) == 3 and abs(sum(first["scores"]) - 1) < 1e-4
    assert first["predicted_class"] in first["classes"]
    assert predictions[0] == predictions[1]


def test_rest_predict_columnar_format_with_version_and_signature(rest):
    client, name, version = rest
    body = {"signature_name": "serving_default", "inputs": {k: [v, v] for k, v in PENGUIN_ROW.items()}}
    response = _post(client, f"/v1/models/{name}/versions/{version}:predict", body)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert len(outputs["scores"]) == 2 and len(outputs["scores"][0]) == 3
    assert outputs["classes"][0] == outputs["classes"][1]
    assert len(outputs["predicted_class"]) == 2


def test_rest_row_and_columnar_agree(rest):
    client, name, _ = rest
    rows = _post(client, f"/v1/models/{name}:predict", {"instances": [PENGUIN_ROW]}).json()["predictions"][0]
    columns = _post(client, f"/v1/models/{name}:predict", {"inputs": {k: [v] for k, v in PENGUIN_ROW.items()}}).json()["outputs"]
    assert rows["scores"] == columns["scores"][0]
    assert rows["predicted_class"] == columns["predicted_class"][0]


def test_rest_predict_accepts_nan_for_missing_numbers(rest):
    client, name, _ = rest
    row = dict(PENGUIN_ROW, bill_length_mm=float("nan"))
    response = _post(client, f"/v1/models/{name}:predict", json.dumps({"instances": [row]}, allow_nan=True))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path, status, message", [
    ("/v1/models/no_such_model:predict", 404, "Servable not found for request: Latest(no_such_model)"),
    ("/v1/models/{name}/versions/987654:predict", 404, "Servable not found for request: Specific({name}, 987654)"),
    ("/v1/models/{name}/labels/no_such_label:predict", 400, "Unrecognized servable version label: no_such_label"),
])
def test_rest_predict_unknown_model_version_or_label(rest, path, status, message):
    client, name, _ = rest
    response = _post(client, path.format(name=name), {"instances": [PENGUIN_ROW]})
    assert response.status_code == status
    assert response.json() == {"error": message.format(name=name)}


@pytest.mark.parametrize("body, fragment", [
    ("{not json", "JSON Parse error"),
    ("", "JSON Parse error: The document is empty"),
    ("[1, 2]", "Is not object"),
    ({"instances": [dict(PENGUIN_ROW, island=3)]},
     "Failed to process element: 0 key: island of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: 3 Type: Number is not of expected type: string"),
    ({"instances": [dict(PENGUIN_ROW, bill_length_mm="long")]}, "is not of expected type: float"),
    ({"instances": [dict(PENGUIN_ROW, wings=2.0)]}, "does not have named input: wings"),
    ({"instances": [{k: v for k, v in PENGUIN_ROW.items() if k != "sex"}]},
     "keys must be equal to: bill_depth_mm,bill_length_mm,body_mass_g,flipper_length_mm,island,sex"),
    ({"instances": [PENGUIN_ROW], "inputs": {}}, "expecting only one of 'inputs' or 'instances' keys to exist"),
    ({"instances": []}, "No values in 'instances' array"),
    ({"instances": [1.0, 2.0]}, "instances is a plain list, but expecting list of objects"),
    ({"rows": [PENGUIN_ROW]}, "Missing 'inputs' or 'instances' key"),
    ({"inputs": {k: [v] for k, v in PENGUIN_ROW.items() if k != "sex"}}, "Missing named input: sex in 'inputs' object."),
    ({"instances": [PENGUIN_ROW, dict(PENGUIN_ROW, bill_length_mm=[39.1])]}, "Expecting shape [] but got: [1]"),
    ({"instances": [dict(PENGUIN_ROW, bill_length_mm=[39.1, 40.0])]}, ""),  # rank 2 for a [-1] input
    ({"signature_name": 7, "instances": [PENGUIN_ROW]}, "'signature_name' key must be a string value."),
    ({"signature_name": "nope", "instances": [PENGUIN_ROW]}, 'Serving signature name: "nope" not found in signature def'),
])
def test_rest_predict_bad_requests_are_400_with_tf_serving_messages(rest, body, fragment):
    client, name, _ = rest
    response = _post(client, f"/v1/models/{name}:predict", body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_rest_malformed_path(rest):
    client, name, _ = rest
    response = _post(client, f"/v1/models/{name}:explode", {"instances": [PENGUIN_ROW]})
    assert response.status_code == 400
    assert response.json() == {"error": f"Malformed request: POST /v1/models/{name}:explode"}


def test_rest_paths_are_case_insensitive(rest):
    client, name, _ = rest
    assert _post(client, f"/V1/MODELS/{name}:PREDICT", {"instances": [PENGUIN_ROW]}).status_code == 200


@local_only
def test_rest_oversized_body_is_rejected(rest):
    client, name, _ = rest
    rows = [PENGUIN_ROW] * 2000  # > the 64 KiB limit the local server is started with
    response = _post(client, f"/v1/models/{name}:predict", {"instances": rows})
    assert response.status_code == 413
    assert "exceeds the server's limit" in response.json()["error"]


# --- REST: classify / regress -------------------------------------------------------------------------

def test_rest_classify_on_the_example_signature(rest):
    client, name, _ = rest
    body = {"signature_name": "classification", "examples": [EXAMPLE_ROW, EXAMPLE_ROW]}
    response = _post(client, f"/v1/models/{name}:classify", body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 2
    labels = [label for label, _ in results[0]]
    assert len(labels) == 3 and all(isinstance(score, float) for _, score in results[0])


def test_rest_classify_context_and_b64_match_plain_examples(rest):
    client, name, _ = rest
    plain = _post(client, f"/v1/models/{name}:classify",
                  {"signature_name": "classification", "examples": [EXAMPLE_ROW]}).json()["results"]
    context = {k: v for k, v in EXAMPLE_ROW.items() if k in NUMERIC_FEATURES}
    example = {"island": {"b64": base64.b64encode(EXAMPLE_ROW["island"].encode()).decode()}, "sex": EXAMPLE_ROW["sex"]}
    merged = _post(client, f"/v1/models/{name}:classify",
                   {"signature_name": "classification", "context": context, "examples": [example]}).json()
    assert merged["results"] == plain


@pytest.mark.parametrize("signature, message", [
    (None, "Expected one input Tensor."),
    ("classification", "Expected one output Tensor."),
    ("no_such_signature", "No signature was found with the name: no_such_signature"),
])
def test_rest_regress_without_a_regression_signature_fails_like_tf_serving(rest, signature, message):
    client, name, _ = rest
    body = {"examples": [EXAMPLE_ROW]}
    if signature:
        body["signature_name"] = signature
    response = _post(client, f"/v1/models/{name}:regress", body)
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_rest_classify_needs_examples(rest):
    client, name, _ = rest
    response = _post(client, f"/v1/models/{name}:classify", {"signature_name": "classification"})  # no examples
    assert response.status_code == 400
    assert "key 'examples' is expected and was not found" in response.json()["error"]


# --- gRPC ---------------------------------------------------------------------------------------------

def _predict_request(name, rows, signature="serving_default", version=None):
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for feature in FEATURE_NAMES:
        dtype = np.float32 if feature in NUMERIC_FEATURES else object
        request.inputs[feature].CopyFrom(tf.make_tensor_proto(np.array([r[feature] for r in rows], dtype=dtype)))
    return request


def _classification_request(name, rows, signature="classification"):
    from tensorflow_serving.apis import classification_pb2

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for row in rows:
        example = request.input.example_list.examples.add()
        for key, value in row.items():
            feature = example.features.feature[key]
            if isinstance(value, str):
                feature.bytes_list.value.append(value.encode())
            elif isinstance(value, int):
                feature.int64_list.value.append(value)
            else:
                feature.float_list.value.append(value)
    return request


def test_grpc_predict(stubs):
    import tensorflow as tf

    prediction, _, name, version = stubs
    response = prediction.Predict(_predict_request(name, [PENGUIN_ROW] * 3), timeout=30)
    assert response.model_spec.name == name
    assert response.model_spec.version.value == version
    assert response.model_spec.signature_name == "serving_default"
    scores = tf.make_ndarray(response.outputs["scores"])
    assert scores.shape == (3, 3)
    assert len(response.outputs["scores"].float_val) == 9  # typed fields, as TF Serving answers
    assert tf.make_ndarray(response.outputs["classes"]).shape == (3, 3)
    assert tf.make_ndarray(response.outputs["predicted_class"]).shape == (3,)


def test_grpc_predict_matches_rest(stubs, rest):
    import tensorflow as tf

    prediction, _, name, _ = stubs
    client, _, _ = rest
    grpc_scores = tf.make_ndarray(prediction.Predict(_predict_request(name, [PENGUIN_ROW]), timeout=30).outputs["scores"])
    rest_scores = _post(client, f"/v1/models/{name}:predict", {"instances": [PENGUIN_ROW]}).json()["predictions"][0]["scores"]
    assert grpc_scores[0].tolist() == pytest.approx(rest_scores, rel=1e-6)


def _grpc_error(call, request):
    import grpc

    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value.code(), caught.value.details()


def test_grpc_errors_use_tf_serving_codes(stubs):
    import grpc
    import numpy as np
    import tensorflow as tf

    prediction, _, name, _ = stubs
    code, details = _grpc_error(prediction.Predict, _predict_request("no_such_model", [PENGUIN_ROW]))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(no_such_model)")

    code, details = _grpc_error(prediction.Predict, _predict_request(name, [PENGUIN_ROW], version=987654))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, 987654)")

    code, details = _grpc_error(prediction.Predict, _predict_request(name, [PENGUIN_ROW], signature="nope"))
    assert (code, details) == (grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.')

    request = _predict_request(name, [PENGUIN_ROW])
    request.inputs["wings"].CopyFrom(tf.make_tensor_proto(np.array([2.0], np.float32)))
    code, details = _grpc_error(prediction.Predict, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("input size does not match signature: 7!=6")

    request = _predict_request(name, [PENGUIN_ROW])
    request.inputs["island"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
    code, details = _grpc_error(prediction.Predict, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_classify_and_regress(stubs):
    import grpc

    prediction, _, name, version = stubs
    response = prediction.Classify(_classification_request(name, [EXAMPLE_ROW] * 2), timeout=30)
    assert response.model_spec.version.value == version
    assert len(response.result.classifications) == 2
    classes = response.result.classifications[0].classes
    assert len(classes) == 3 and sum(c.score for c in classes) == pytest.approx(1, abs=1e-4)
    assert all(c.label for c in classes)

    code, details = _grpc_error(prediction.Regress, _classification_request(name, [EXAMPLE_ROW], signature=""))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "Expected one input Tensor.")


def test_grpc_metadata_and_status(stubs):
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

    prediction, models, name, version = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = name
    response = prediction.GetModelMetadata(request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    assert set(signature_map.signature_def["serving_default"].inputs) == set(FEATURE_NAMES)
    assert response.model_spec.version.value == version

    bad = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["everything"])
    bad.model_spec.name = name
    assert _grpc_error(prediction.GetModelMetadata, bad) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Metadata field everything is not supported")

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = name
    statuses = models.GetModelStatus(status_request, timeout=30).model_version_status
    available = [s for s in statuses if s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE]
    assert [s.version for s in available] == [version]

    status_request.model_spec.name = "no_such_model"
    assert _grpc_error(models.GetModelStatus, status_request) == (
        grpc.StatusCode.NOT_FOUND, "Could not find any versions of model no_such_model")


@local_only
def test_prometheus_endpoint_is_absent_without_monitoring_config(rest):
    client, _, _ = rest
    assert client.get("/monitoring/prometheus/metrics").status_code == 404


def test_grpc_predict_output_filter(stubs):
    import grpc

    prediction, _, name, _ = stubs
    request = _predict_request(name, [PENGUIN_ROW])
    request.output_filter.append("scores")
    response = prediction.Predict(request, timeout=30)
    assert list(response.outputs) == ["scores"]
    request.output_filter.append("wings")
    code, details = _grpc_error(prediction.Predict, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("output tensor alias not found in signature: wings")
