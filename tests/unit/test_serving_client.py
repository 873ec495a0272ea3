"""serving.client over injected transports (no server, no network), import hygiene, and the CLI's flags."""
import json
import math
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from serving import client as client_lib
from serving.cli import predict, serve

METADATA = {
    "model_spec": {"name": "penguin", "version": "3", "signature_name": ""},
    "metadata": {"signature_def": {"signature_def": {"serving_default": {
        "inputs": {"mass": {"dtype": "DT_FLOAT"}, "island": {"dtype": "DT_STRING"}, "count": {"dtype": "DT_INT64"}},
        "outputs": {}, "method_name": "tensorflow/serving/predict"}}}},
}
STATUS = {"model_version_status": [{"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
PREDICTION = {"classes": ["Adelie", "Gentoo"], "scores": [0.25, 0.75], "predicted_class": "Gentoo"}


class FakeServer:
    """An httpx transport answering like TF Serving; `fail_first` answers 503 that many times first."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first
        self.requests = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_first:
            self.fail_first -= 1
            return httpx.Response(503, json={"error": "loading"})
        path = request.url.path
        if not path.startswith("/v1/models/penguin"):
            return httpx.Response(404, json={"error": "Servable not found for request: Latest(other)"})
        if path.endswith("/metadata"):
            return httpx.Response(200, json=METADATA)
        if path.endswith(":predict"):
            rows = json.loads(request.content)["instances"]
            return httpx.Response(200, json={"predictions": [PREDICTION] * len(rows)})
        return httpx.Response(200, json=STATUS)


def _client(server: FakeServer, **options) -> client_lib.RestClient:
    retry = client_lib.RetryPolicy(attempts=3, initial_backoff=0.001)
    return client_lib.RestClient("http://serving:8501", "penguin", transport=httpx.MockTransport(server),
                                 retry=retry, **options)


def test_rest_predict_coerces_raw_features_and_names_classes():
    server = FakeServer()
    with _client(server) as client:
        predictions = client.predict([{"mass": "3750", "island": "Dream", "count": 2},
                                      {"mass": None, "island": None, "count": "3"}])
    body = json.loads(server.requests[-1].content.decode().replace("NaN", "null"))
    assert body["signature_name"] == "serving_default"
    assert body["instances"][0] == {"count": 2, "island": "Dream", "mass": 3750.0}
    assert body["instances"][1]["island"] == "" and body["instances"][1]["mass"] is None  # NaN on the wire
    assert predictions[0].predicted_class == "Gentoo"
    assert predictions[1].class_scores == {"Adelie": 0.25, "Gentoo": 0.75}


def test_rest_versions_and_labels_are_in_the_path():
    server = FakeServer()
    with _client(server, label="stable") as client:
        client.predict([{"mass": 1, "island": "a", "count": 1}])
    assert server.requests[-1].url.path == "/v1/models/penguin/labels/stable:predict"


def test_rest_retries_unavailable_then_succeeds():
    server = FakeServer(fail_first=2)
    with _client(server) as client:
        assert client.model_status() == STATUS
    assert len(server.requests) == 3


def test_rest_gives_up_after_the_retries():
    with _client(FakeServer(fail_first=10)) as client:
        with pytest.raises(client_lib.ServerUnavailableError):
            client.metadata()


def test_rest_server_errors_keep_the_server_message():
    with client_lib.RestClient("http://serving:8501", "other", transport=httpx.MockTransport(FakeServer())) as client:
        with pytest.raises(client_lib.ServingClientError) as caught:
            client.metadata()
    assert caught.value.code == "NOT_FOUND" and caught.value.http_status == 404
    assert caught.value.message == "Servable not found for request: Latest(other)"


def test_connection_refused_is_a_clear_unavailable_error():
    def refuse(request):
        raise httpx.ConnectError("Connection refused", request=request)

    client = client_lib.RestClient("http://serving:8501", "penguin", transport=httpx.MockTransport(refuse),
                                   retry=client_lib.RetryPolicy(attempts=2, initial_backoff=0.001))
    with pytest.raises(client_lib.ServerUnavailableError, match="cannot reach the model server at http://serving:8501"):
        client.metadata()


@pytest.mark.parametrize("rows, message", [
    ([{"mass": 1.0}], "row 0: missing feature(s) island"),
    ([{"mass": 1.0, "island": "a", "wings": 2}], "row 0: unknown feature(s) wings"),
    ([{"mass": "heavy", "island": "a"}], "row 0: feature mass='heavy' is not a valid float"),
])
def test_coerce_rows_errors_name_row_and_feature(rows, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        client_lib.coerce_rows(rows, {"mass": "DT_FLOAT", "island": "DT_STRING"})


def test_coerce_rows_missing_numbers_become_nan():
    columns = client_lib.coerce_rows([{"mass": None}, {"mass": ""}], {"mass": "DT_FLOAT"})
    assert all(math.isnan(v) for v in columns["mass"])


def test_read_rows_reports_bad_lines():
    assert client_lib.read_rows(['{"a": 1}', "", '{"a": 2}']) == [{"a": 1}, {"a": 2}]
    with pytest.raises(ValueError, match="line 2: not JSON"):
        client_lib.read_rows(['{"a": 1}', "{oops"])


def test_client_and_cli_never_import_tensorflow():
    code = (
        "import sys\n"
        "import serving.client, serving.cli\n"
        "from serving.client import GrpcClient\n"
        "GrpcClient('127.0.0.1:1', 'm').close()\n"
        "from serving import protos, tensors\n"
        "p = tensors.fill_proto(protos.load().tensor_pb2.TensorProto(), [1.0, 2.0])\n"
        "assert 'tensorflow.python' not in sys.modules, 'TensorFlow runtime imported'\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow package imported'\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout


@pytest.mark.slow
def test_tensorflow_still_imports_after_the_protos_were_loaded_without_it():
    code = (
        "from serving import protos\n"
        "apis = protos.load()\n"
        "import numpy as np, tensorflow as tf\n"
        "request = apis.predict_pb2.PredictRequest()\n"
        "request.inputs['x'].CopyFrom(tf.make_tensor_proto(np.ones(2, np.float32)))\n"
        "assert tf.make_ndarray(request.inputs['x']).tolist() == [1.0, 1.0]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


# --- CLI flags ---------------------------------------------------------------------------------------

def test_serve_flag_defaults_are_server_options_defaults():
    from serving.options import ServerOptions

    options = ServerOptions()
    flags = {param.name: param.default for param in serve.params if param.name != "help"}
    assert len(flags) >= 20
    assert {name: getattr(options, name) for name in flags} == flags


def test_serve_rejects_unknown_flags_and_names_supported_ones():
    result = CliRunner().invoke(serve, ["--modle_name=penguin"])
    assert result.exit_code == 2
    assert "unknown flag --modle_name" in result.output and "--model_name" in result.output


def test_serve_names_tf_serving_flags_it_does_not_implement():
    result = CliRunner().invoke(serve, ["--ssl_config_file=ssl.config"])
    assert result.exit_code == 2
    assert "--ssl_config_file is a tensorflow_model_server flag that tfxpipe serve does not implement" in result.output


@pytest.mark.parametrize("flags", [
    ["--enable_batching=false", "--batching_parameters_file=b.config"],
    ["--batching_parameters_file", "b.config"],
])
def test_serve_checks_flags_like_tensorflow_model_server(flags):
    result = CliRunner().invoke(serve, ["--model_base_path=/models/m", *flags])
    assert result.exit_code == 1
    assert "batching_parameters_file is set without setting server_options.enable_batching to true" in result.output


@pytest.mark.parametrize("flag", ["--enable_batching", "--enable_batching=true", "--enable_batching=1"])
def test_serve_accepts_tf_serving_boolean_spellings(flag, tmp_path):
    missing = tmp_path / "missing.config"
    result = CliRunner().invoke(serve, ["--model_base_path=/models/m", flag, f"--batching_parameters_file={missing}"])
    assert result.exit_code == 1 and "missing.config" in result.output  # got past flag checks to reading the file


def test_grpc_channel_arguments_override_tf_serving_defaults_with_ints_where_they_parse():
    from serving.server import GRPC_MAX_MESSAGE_BYTES, grpc_server_arguments

    assert grpc_server_arguments("")["grpc.max_receive_message_length"] == GRPC_MAX_MESSAGE_BYTES
    arguments = grpc_server_arguments("grpc.max_receive_message_length=4194304, grpc.primary_user_agent=tfxpipe,"
                                      "grpc.big=99999999999")
    assert arguments["grpc.max_receive_message_length"] == 4194304
    assert arguments["grpc.primary_user_agent"] == "tfxpipe" and arguments["grpc.big"] == "99999999999"


def test_malformed_grpc_channel_arguments_fail_before_serving():
    result = CliRunner().invoke(serve, ["--model_base_path=/models/m", "--grpc_channel_arguments=grpc.max_receive"])
    assert result.exit_code == 1
    assert "--grpc_channel_arguments: 'grpc.max_receive' is not key=value" in result.output


def test_serve_without_model_is_an_error():
    result = CliRunner().invoke(serve, [])
    assert result.exit_code == 1
    assert "Both server_options.model_base_path and server_options.model_config_file are empty!" in result.output


@pytest.mark.parametrize("args, message", [
    (["--model", "m"], "give exactly one of --json or --file"),
    (["--model", "m", "--json", "{oops"], "--json is not valid JSON"),
    (["--model", "m", "--json", "[]"], "--json must be an object of features"),
    (["--model", "m", "--json", "{}", "--rest", "http://x", "--grpc", "x:1"], "give --rest or --grpc, not both"),
])
def test_predict_usage_errors(args, message):
    result = CliRunner().invoke(predict, args)
    assert result.exit_code == 2 and message in result.output


def test_predict_when_server_is_down(monkeypatch):
    result = CliRunner().invoke(predict, ["--model", "m", "--rest", "http://127.0.0.1:9", "--json", "{}", "--retries", "1",
                                          "--timeout", "2"])
    assert result.exit_code == 1
    assert "cannot reach the model server at http://127.0.0.1:9" in result.output


def test_grpc_client_reports_an_unreachable_server_after_retrying():
    retry = client_lib.RetryPolicy(attempts=2, initial_backoff=0.001)
    with client_lib.GrpcClient("127.0.0.1:1", "penguin", timeout=5, retry=retry) as client:
        with pytest.raises(client_lib.ServerUnavailableError, match="cannot reach the model server at 127.0.0.1:1"):
            client.metadata()
