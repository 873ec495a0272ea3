"""The harness of the gRPC fuzz tests: send a request, check its answer, and run Hypothesis for a time.

`Caller` sends serialized requests through a raw unary call (bytes in, bytes out) and checks every
answer: the status TF Serving answers that request with (tests/support/tf_serving_statuses.py), or INTERNAL for
a message that does not parse (what gRPC's C++ deserializer answers for TF Serving); nothing logged with
an exception meanwhile. Hypothesis has no time limit, so `run_for` runs it in rounds sized to the rate
measured so far; `spend_budget` adds the memory checks. `FuzzReport` counts what was sent.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import resource
import time

import grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.grpc_request_strategies import MODEL_NAME
from tests.support.tf_serving_statuses import ServedModel, expected_statuses

CALL_TIMEOUT_SECONDS = 10.0
MAX_GROWTH_BYTES = 1 << 30
PREDICTION_SERVICE, MODEL_SERVICE = "/tensorflow.serving.PredictionService/", "/tensorflow.serving.ModelService/"
METHOD_PATHS = {
    "Predict": PREDICTION_SERVICE + "Predict",
    "Classify": PREDICTION_SERVICE + "Classify",
    "Regress": PREDICTION_SERVICE + "Regress",
    "GetModelMetadata": PREDICTION_SERVICE + "GetModelMetadata",
    "MultiInference": PREDICTION_SERVICE + "MultiInference",
    "GetModelStatus": MODEL_SERVICE + "GetModelStatus",
    "HandleReloadConfigRequest": MODEL_SERVICE + "HandleReloadConfigRequest",
}


@dataclasses.dataclass
class FuzzReport:
    """What the benchmark script prints: calls sent, their statuses, property failures, time spent."""

    budget_seconds: float
    calls: int = 0
    failures: int = 0
    seconds: float = 0.0
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def as_json(self) -> dict:
        return {"budget_seconds": self.budget_seconds, "calls": self.calls, "failures": self.failures,
                "seconds": round(self.seconds, 2), "statuses": dict(self.statuses.most_common())}


class ExceptionRecords(logging.Handler):
    """Collects log records that carry an exception (grpc's "Exception calling application", ...)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


class Caller:
    """Sends serialized requests over one channel and checks each answer against TF Serving's."""

    def __init__(self, channel, server, base_path: str, report: FuzzReport, exceptions: ExceptionRecords):
        self._calls = {method: channel.unary_unary(path, request_serializer=None, response_deserializer=None)
                       for method, path in METHOD_PATHS.items()}
        self.channel = channel
        self.server = server
        self.base_path = base_path
        self.report = report
        self._exceptions = exceptions

    def served(self) -> ServedModel:
        return ServedModel(versions=frozenset({1}), labels=self.server.registry.labels(MODEL_NAME),
                           max_batch_size=self.server.batching.max_batch_size)

    def check(self, method: str, payload: bytes) -> None:
        """Sends `payload` to `method` and asserts the property for it."""
        request = parsed_request(method, payload)
        if request is None:
            expected = frozenset({grpc.StatusCode.INTERNAL})  # grpc's "failed to parse" (TF Serving: C++ gRPC)
        elif method == "HandleReloadConfigRequest" and not reload_keeps_the_model(request, self.base_path):
            return  # would replace the served model: legal, but every later answer would differ
        else:
            expected = expected_statuses(method, request, self.served())
        code, details = self.send(method, payload)
        logged = [record.getMessage() for record in self._exceptions.records]
        self._exceptions.records.clear()
        if code not in expected or logged:
            self.report.failures += 1
        sent = f"{method} bytes {payload[:3000]!r}"
        if request is not None:
            sent += f"\nparsed: {str(request)[:3000]!r}"
        answers = sorted(c.name for c in expected)
        assert code in expected, f"{sent}\nanswered {code.name} ({details!r}); TF Serving: {answers}"
        assert not logged, f"{sent}\nlogged an exception: {logged}"

    def send(self, method: str, payload: bytes) -> tuple[grpc.StatusCode, str]:
        self.report.calls += 1
        try:
            self._calls[method](payload, timeout=CALL_TIMEOUT_SECONDS)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
        self.report.statuses[code.name] += 1
        return code, details


def parsed_request(method: str, payload: bytes):
    """The request as TF Serving's C++ gRPC parses it, or None where that fails: also where python
    protobuf stops at a stray end-group tag and returns what it read so far (with a RuntimeWarning)."""
    message = _request_class(method)()
    try:
        consumed = message.ParseFromString(payload)
    except Exception:  # noqa: BLE001 - DecodeError, or RuntimeError from some protobuf backends
        return None
    return message if consumed == len(payload) else None


def _request_class(method: str):
    from serving import protos

    apis = protos.load()
    return {
        "Predict": apis.predict_pb2.PredictRequest,
        "Classify": apis.classification_pb2.ClassificationRequest,
        "Regress": apis.regression_pb2.RegressionRequest,
        "GetModelMetadata": apis.get_model_metadata_pb2.GetModelMetadataRequest,
        "MultiInference": apis.inference_pb2.MultiInferenceRequest,
        "GetModelStatus": apis.get_model_status_pb2.GetModelStatusRequest,
        "HandleReloadConfigRequest": apis.model_management_pb2.ReloadConfigRequest,
    }[method]


def reload_keeps_the_model(request, base_path: str) -> bool:
    """The config is rejected, or it lists only the served model, unchanged but for its labels."""
    from serving import errors, model_config

    try:
        configs = model_config.model_configs(request.config)
    except errors.ServingError:
        return True
    return [(c.name, c.base_path, c.version_policy) for c in configs] == [
        (MODEL_NAME, base_path, model_config.VersionPolicy())]


# --- running Hypothesis for a time budget ---------------------------------------------------------------

def run_for(seconds: float, strategy: st.SearchStrategy, check) -> None:
    """Calls `check` on examples of `strategy` until `seconds` pass.

    Hypothesis has no time limit, so it runs in rounds of `max_examples` sized from the rate measured so
    far (rounds of at most 5 s); examples drawn after the deadline are not checked.
    """
    deadline = time.monotonic() + seconds
    rate = 20.0  # examples per second until measured
    while (remaining := deadline - time.monotonic()) > 0:
        checked = 0

        @settings(database=None, deadline=None, max_examples=max(5, int(min(remaining, 5.0) * rate)),
                  phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck), print_blob=True)
        @given(strategy)
        def fuzz_round(case):
            nonlocal checked
            if time.monotonic() < deadline:
                checked += 1
                check(case)

        started = time.monotonic()
        fuzz_round()
        rate = max(checked / max(time.monotonic() - started, 1e-3), 1.0)


def spend_budget(report: FuzzReport, seconds: float, strategy: st.SearchStrategy, check) -> None:
    """Runs one fuzzer for `seconds`, checking memory after every example and the peak at the end."""
    started, peak_before, resident_before = time.monotonic(), peak_rss_bytes(), _resident_bytes()

    def check_and_measure(case) -> None:
        check(case)
        growth = _resident_bytes() - resident_before
        assert growth < MAX_GROWTH_BYTES, f"resident memory grew by {growth / 2**20:.0f} MiB"

    try:
        run_for(seconds, strategy, check_and_measure)
    finally:
        report.seconds += time.monotonic() - started
    growth = peak_rss_bytes() - peak_before
    assert growth < MAX_GROWTH_BYTES, f"peak memory grew by {growth / 2**20:.0f} MiB while fuzzing"


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
