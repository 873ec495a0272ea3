"""Fuzzes the gRPC request decoding of one in-process server (batching on, as deployed) for a bounded time.

Three fuzzers share the budget (`TFXPIPE_FUZZ_SECONDS`, default 20 s): Hypothesis-built hostile request
messages for every PredictionService and ModelService method; mutated bytes of valid requests; and
TensorProtos decoded by the server's serving.tensors and by TensorFlow itself, which must agree. The
property for every call (tests/support/grpc_fuzz_harness.py): it ends within a per-call timeout with the status
TF Serving answers that request with (tests/support/tf_serving_statuses.py), INTERNAL if it does not parse, as
gRPC's C++ deserializer answers for TF Serving; nothing logs an exception; memory never grows by a huge
allocation. A valid predict answers over gRPC and REST after each fuzzer.

What the fuzzers found is kept at the end as explicit regression cases. With `TFXPIPE_FUZZ_REPORT=<path>`
the counts (calls, statuses, failures, seconds) are written there as JSON.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import strategies as st

from serving import tensors
from tests.support import grpc_request_strategies as requests
from tests.support.grpc_fuzz_harness import MAX_GROWTH_BYTES, Caller, ExceptionRecords, FuzzReport, peak_rss_bytes, \
    spend_budget
from tests.support.serving_fixtures import (
    EXAMPLE_ROW, PENGUIN_ROW, ModelStore, assert_alive, example_bytes, hostile_predict_requests, predict_request,
    start_server,
)
from tests.support.tf_serving_statuses import TooLargeToParse, tensorflow_tensor

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Unexpected end-group tag:RuntimeWarning")]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
BATCHING_CONFIG = PROJECT_ROOT / "configs" / "serving" / "batching.config"
DEFAULT_FUZZ_SECONDS = 20.0


@pytest.fixture(scope="module")
def base_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_grpc")
    base = root / "models" / requests.MODEL_NAME
    base.mkdir(parents=True)
    ModelStore().push(base, 1, include_regression=True)
    return base


@pytest.fixture(scope="module")
def server(base_path):
    server = start_server(model_name=requests.MODEL_NAME, model_base_path=str(base_path), enable_model_warmup=False,
                          enable_batching=True, batching_parameters_file=str(BATCHING_CONFIG))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(server):
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def fuzz_report():
    report = FuzzReport(budget_seconds=float(os.environ.get("TFXPIPE_FUZZ_SECONDS", DEFAULT_FUZZ_SECONDS)))
    yield report
    if path := os.environ.get("TFXPIPE_FUZZ_REPORT"):
        Path(path).write_text(json.dumps(report.as_json(), indent=1) + "\n")


@pytest.fixture(scope="module")
def caller(server, base_path, fuzz_report):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    exceptions = ExceptionRecords()
    logging.getLogger().addHandler(exceptions)
    yield Caller(channel, server, str(base_path), fuzz_report, exceptions)
    logging.getLogger().removeHandler(exceptions)
    channel.close()


@pytest.fixture
def budget(fuzz_report):
    """Runs a fuzzer for its share of the time budget."""
    def spend(share: float, strategy: st.SearchStrategy, check) -> None:
        spend_budget(fuzz_report, fuzz_report.budget_seconds * share, strategy, check)

    return spend


# --- the fuzzers ----------------------------------------------------------------------------------------

def _structured_requests(base_path: str) -> st.SearchStrategy:
    def of(method: str, strategy: st.SearchStrategy) -> st.SearchStrategy:
        return strategy.map(lambda request: (method, request))

    return st.one_of(
        of("Predict", requests.predict_requests()),
        of("Predict", requests.predict_requests()),
        of("Classify", requests.classification_requests()),
        of("Regress", requests.regression_requests()),
        of("GetModelMetadata", requests.metadata_requests()),
        of("GetModelStatus", requests.status_requests()),
        of("HandleReloadConfigRequest", requests.reload_config_requests(base_path)),
    )


def test_structured_requests_get_tf_serving_statuses(caller, http, budget):
    budget(0.5, _structured_requests(caller.base_path),
           lambda case: caller.check(case[0], case[1].SerializeToString()))
    assert_alive(http, caller.channel)


def valid_requests(base_path: str) -> list[tuple[str, bytes]]:
    """One valid request per method (several for Predict), serialized: the seeds bytes are mutated from."""
    from serving import protos

    apis = protos.load()
    predict = predict_request([PENGUIN_ROW], model_name=requests.MODEL_NAME)
    spec = apis.model_pb2.ModelSpec(name=requests.MODEL_NAME)
    example = apis.example_pb2.Example.FromString(example_bytes(EXAMPLE_ROW))
    examples = apis.input_pb2.Input(example_list=apis.input_pb2.ExampleList(examples=[example, example]))
    with_context = apis.input_pb2.Input(example_list_with_context=apis.input_pb2.ExampleListWithContext(
        examples=[example], context=example))
    config = apis.model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=requests.MODEL_NAME, base_path=base_path, model_platform="tensorflow")
    seeds = [("Predict", predict)] + [("Predict", request) for _, request in hostile_predict_requests()] + [
        ("Classify", apis.classification_pb2.ClassificationRequest(
            model_spec=apis.model_pb2.ModelSpec(name=requests.MODEL_NAME, signature_name="classification"),
            input=examples)),
        ("Regress", apis.regression_pb2.RegressionRequest(
            model_spec=apis.model_pb2.ModelSpec(name=requests.MODEL_NAME, signature_name="regression"),
            input=with_context)),
        ("GetModelMetadata", apis.get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=spec, metadata_field=["signature_def"])),
        ("GetModelStatus", apis.get_model_status_pb2.GetModelStatusRequest(model_spec=spec)),
        ("HandleReloadConfigRequest", apis.model_management_pb2.ReloadConfigRequest(config=config)),
        ("MultiInference", apis.inference_pb2.MultiInferenceRequest(
            tasks=[apis.inference_pb2.InferenceTask(model_spec=spec, method_name="tensorflow/serving/classify")],
            input=examples)),
    ]
    return [(method, request.SerializeToString()) for method, request in seeds]


def test_mutated_request_bytes_get_tf_serving_statuses(caller, http, budget):
    seeds = valid_requests(caller.base_path)
    for method, payload in seeds:  # unmutated, every seed gets its expected answer too
        caller.check(method, payload)
    mutated = st.sampled_from(seeds).flatmap(
        lambda seed: requests.mutated_bytes(seed[1]).map(lambda payload: (seed[0], payload)))
    budget(0.3, mutated, lambda case: caller.check(*case))
    assert_alive(http, caller.channel)


def _numpy_can_hold(shape: list[int], itemsize: int) -> bool:
    """numpy has at most 32 dimensions and sizes its arrays (zero dimensions aside) in int64 bytes."""
    return len(shape) <= 32 and math.prod(d for d in shape if d) * itemsize < 2**63


def check_decoding_matches_tensorflow(proto) -> None:
    """serving.tensors decodes `proto` into what TensorFlow's Tensor::FromProto makes of it, or both reject it."""
    try:
        ours = tensors.to_ndarray(proto)
    except ValueError as exc:
        ours = exc
    try:
        dtype = tensors.numpy_dtype(proto.dtype)
    except ValueError:
        assert isinstance(ours, ValueError), "a dtype the server does not serve was decoded"
        return
    shape = [dim.size for dim in proto.tensor_shape.dim]
    try:
        theirs = tensorflow_tensor(proto)
    except TooLargeToParse:  # TensorFlow would try to allocate it; the server refuses beyond its limit
        assert isinstance(ours, ValueError) or math.prod(shape) * dtype.itemsize <= tensors.MAX_TENSOR_BYTES
        return
    if theirs is None or not _numpy_can_hold(shape, dtype.itemsize):
        assert isinstance(ours, ValueError), f"decoded {ours!r}; TensorFlow rejects {proto}"
        return
    assert not isinstance(ours, ValueError), f"{ours}; TensorFlow decodes {proto}"
    expected = np.asarray(theirs.numpy(), dtype=dtype)  # a scalar string comes back as bytes
    assert (ours.shape, ours.dtype) == (expected.shape, expected.dtype)
    if dtype == object:
        assert ours.ravel().tolist() == expected.ravel().tolist()  # flat: [2**31, 0] would be 2**31 empty lists
    else:  # bit for bit, NaN payloads included
        assert ours.tobytes() == expected.tobytes(), (ours, expected)


def test_tensor_decoding_matches_tensorflow(budget):
    budget(0.2, requests.tensor_protos(), check_decoding_matches_tensorflow)


# --- what the fuzzers found, kept as explicit cases -----------------------------------------------------

def _served_request(method: str):
    """A request to bend into a regression case: Predict for one penguin, Classify/Regress with no input."""
    from serving import protos

    if method == "Predict":
        return predict_request([PENGUIN_ROW], model_name=requests.MODEL_NAME)
    apis = protos.load()
    if method == "Classify":
        return apis.classification_pb2.ClassificationRequest(
            model_spec=apis.model_pb2.ModelSpec(name=requests.MODEL_NAME, signature_name="classification"))
    return apis.regression_pb2.RegressionRequest(
        model_spec=apis.model_pb2.ModelSpec(name=requests.MODEL_NAME, signature_name="regression"))


def _unknown_model(request):
    request.model_spec.name = " "


def _unknown_model_and_unparseable_island(request):
    _unknown_model(request)
    request.inputs["island"].dtype = 0  # DT_INVALID


def _missing_signature_and_unparseable_island(request):
    request.model_spec.signature_name = "nope"
    request.inputs["island"].dtype = 0


def _empty_version_label(request):
    request.model_spec.version_label = ""


def _values_beyond_the_shape(request):
    request.inputs["bill_length_mm"].float_val.extend([1.0] * 10)


def _empty_tensors_with_stray_values(request):
    for proto in request.inputs.values():
        proto.tensor_shape.dim[0].size = 0
    request.inputs["bill_length_mm"].tensor_content = b"\x00" * 3


def _island_in_malformed_tensor_content(request):
    request.inputs["island"].ClearField("string_val")
    request.inputs["island"].tensor_content = b"\x07Biscoe"


def _huge_broadcast_string(request):  # 100 bytes asking for 2**28 - 1 strings (~12 GB once TF copies them)
    request.inputs["island"].tensor_shape.dim[0].size = 2**28 - 1


def _many_unknown_broadcast_inputs(request):  # 64 MiB each once decoded: decoding before the name check costs GBs
    for index in range(40):
        proto = request.inputs[f"unknown_{index}"]
        proto.dtype = requests.DT_FLOAT
        proto.tensor_shape.dim.add(size=2**24)


@pytest.mark.parametrize("method, bend, expected", [
    pytest.param("Classify", _unknown_model, grpc.StatusCode.NOT_FOUND, id="classify-unknown-model-before-empty-input"),
    pytest.param("Regress", _unknown_model, grpc.StatusCode.NOT_FOUND, id="regress-unknown-model-before-empty-input"),
    pytest.param("Predict", _unknown_model_and_unparseable_island, grpc.StatusCode.NOT_FOUND,
                 id="predict-unknown-model-before-tensor-parsing"),
    pytest.param("Predict", _missing_signature_and_unparseable_island, grpc.StatusCode.FAILED_PRECONDITION,
                 id="predict-missing-signature-before-tensor-parsing"),
    pytest.param("Predict", _empty_version_label, grpc.StatusCode.INVALID_ARGUMENT, id="predict-empty-version-label"),
    pytest.param("Predict", _values_beyond_the_shape, grpc.StatusCode.OK, id="predict-values-beyond-the-shape-ignored"),
    pytest.param("Predict", _empty_tensors_with_stray_values, grpc.StatusCode.OK,
                 id="predict-empty-tensors-read-no-values"),
    pytest.param("Predict", _island_in_malformed_tensor_content, grpc.StatusCode.INVALID_ARGUMENT,
                 id="predict-strings-in-malformed-tensor-content"),
    pytest.param("Predict", _huge_broadcast_string, grpc.StatusCode.INVALID_ARGUMENT,
                 id="predict-huge-broadcast-refused-before-allocation"),
    pytest.param("Predict", _many_unknown_broadcast_inputs, grpc.StatusCode.INVALID_ARGUMENT,
                 id="predict-unknown-inputs-refused-before-decoding"),
])
def test_what_the_fuzzers_found(caller, method, bend, expected):
    request = _served_request(method)
    bend(request)
    _assert_answer(caller, method, request.SerializeToString(), expected)


def test_bytes_after_an_end_group_tag_do_not_parse(caller):
    """Python protobuf stops at the stray tag and returns what it read; TF Serving's C++ gRPC fails (INTERNAL)."""
    _assert_answer(caller, "Predict", _served_request("Predict").SerializeToString() + b"\x0c\x1a\x01x",
                   grpc.StatusCode.INTERNAL)


def _assert_answer(caller, method: str, payload: bytes, expected: grpc.StatusCode) -> None:
    peak_before = peak_rss_bytes()
    code, details = caller.send(method, payload)
    assert code == expected, details
    assert peak_rss_bytes() - peak_before < MAX_GROWTH_BYTES
    caller.check(method, payload)  # and the fuzzers' property holds for it


def _tensor(dtype: int, dims: list[int], **fields):
    from serving import protos

    proto = protos.load().tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto


DECODING_REGRESSIONS = {
    "empty tensor with values": lambda: _tensor(1, [0, 3], float_val=[1.0, 2.0]),
    "empty tensor with tensor_content": lambda: _tensor(3, [0], tensor_content=b"\x01"),
    "more float values than the shape": lambda: _tensor(1, [2], float_val=[1.0, 2.0, 3.0]),
    "more strings than the shape": lambda: _tensor(7, [1], string_val=[b"a", b"b"]),
    "strings in tensor_content": lambda: _tensor(7, [2], tensor_content=b"\x01\x02abc", string_val=[b"ignored"]),
    "strings in malformed tensor_content": lambda: _tensor(7, [2], tensor_content=b"\xff\xff"),
    "bool tensor_content other than 0 and 1": lambda: _tensor(10, [2], tensor_content=b"\x02\x00"),
}


@pytest.mark.parametrize("name", sorted(DECODING_REGRESSIONS))
def test_decoding_that_the_fuzzer_found_to_differ(name):
    check_decoding_matches_tensorflow(DECODING_REGRESSIONS[name]())
