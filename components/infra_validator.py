"""InfraValidator without Docker: the candidate must load and answer in a real `tfxpipe serve` first.

TFX's InfraValidator needs a local Docker engine (its Kubernetes mode only ever ran under the removed
KFP v1 runner, tfx#2912). This component starts the model server our pipeline image already ships —
`tfxpipe serve`, the same console-script code path, as a subprocess of the executor, so it runs
unchanged in a Kubeflow pod — on a copy of the candidate in TF Serving's `<name>/<version>/` layout and
on free loopback ports. It then:

1. waits until the version is AVAILABLE on the REST status endpoint; the server replays the model's
   warm-up records while loading and refuses the version when one fails, exactly as TF Serving does;
2. sends the same warm-up requests (`trainer.contract.WARMUP_FILE`) over REST and over gRPC with
   `serving.client`, and checks the answers: one per row, finite scores in [0, 1] over exactly the
   configured classes (classification) or finite values (regression), REST and gRPC agreeing;
3. optionally checks the p99 latency of those requests against `serving.latency_budget_ms`;
4. stops the server (SIGTERM, then SIGKILL after a grace period).

The outcome is TFX's `InfraBlessing`, marked as the stock InfraValidator marks it (custom property
`blessed` 1/0 and an empty INFRA_BLESSED / INFRA_NOT_BLESSED file), so TFX's Pusher `CheckBlessing`
and any tool reading MLMD understand it; `reason` and `latency_p99_ms` say why and how fast.

(No `from __future__ import annotations` here: TFX's @component reads the annotations as types.)
"""
import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterator, Optional, Sequence

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from components.blessing_record import BLESSED_PROPERTY, INFRA_LATENCY_PROPERTY, INFRA_REASON_PROPERTY
from trainer import contract

#: TFX's InfraValidator markers (tfx/components/infra_validator/executor.py), read by Pusher and tools.
BLESSED_KEY = BLESSED_PROPERTY
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
REASON_KEY = INFRA_REASON_PROPERTY
LATENCY_KEY = INFRA_LATENCY_PROPERTY
LOG_FILE = "model_server.log"
#: Each warm-up request is sent this many times per protocol for the latency figure.
LATENCY_ROUNDS = 20
_STOP_GRACE_SECONDS = 30


class InfraValidationFailed(Exception):
    """The candidate did not load or answered wrongly; the message is the recorded reason."""


@dataclasses.dataclass(frozen=True)
class InfraCheck:
    """What infra validation found: blessed or the reason not, requests sent, p99 latency."""

    blessed: bool
    reason: str
    requests: int = 0
    latency_p99_ms: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Expectations:
    """What a correct answer looks like: the task and, for classifiers, the class names in order."""

    task: str
    classes: tuple[str, ...]

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"


def serve_command(base_path: str, model_name: str, grpc_port: int, rest_port: int) -> list[str]:
    """`tfxpipe serve` with this interpreter: the console script's entry point, no PATH lookup."""
    return [sys.executable, "-c", "from pipeline.cli import entrypoint; entrypoint()", "serve",
            f"--port={grpc_port}", f"--rest_api_port={rest_port}", "--host=127.0.0.1",
            f"--model_name={model_name}", f"--model_base_path={base_path}", "--file_system_poll_wait_seconds=0"]


def _tail(path: str, chars: int = 2000) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except OSError:
        return ""


def wait_until_available(process: subprocess.Popen, rest_port: int, model_name: str, log_path: str,
                         timeout: float) -> None:
    """Polls the REST status endpoint until the version is AVAILABLE; raises with the reason if not."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InfraValidationFailed(
                f"the model server exited (status {process.returncode}) before serving the model:\n{_tail(log_path)}")
        try:
            response = httpx.get(f"http://127.0.0.1:{rest_port}/v1/models/{model_name}", timeout=5)
        except httpx.TransportError:
            time.sleep(0.25)
            continue
        states = response.json().get("model_version_status", []) if response.status_code == 200 else []
        if any(s.get("state") == "AVAILABLE" for s in states):
            return
        failed = [s for s in states if s.get("state") == "END"]
        if failed:
            raise InfraValidationFailed(f"the model failed to load: {failed[0].get('status')}")
        time.sleep(0.25)
    raise InfraValidationFailed(f"the model was not AVAILABLE within {timeout:.0f}s:\n{_tail(log_path)}")


@contextlib.contextmanager
def running_server(model_dir: str, model_name: str, work_dir: str, timeout: float) -> Iterator[tuple[int, int]]:
    """Serves a copy of `model_dir` as version 1 of `model_name`; yields (gRPC port, REST port), then stops."""
    import portpicker

    base_path = os.path.join(work_dir, "models", model_name)
    io_utils.copy_dir(model_dir, os.path.join(base_path, "1"))
    grpc_port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    log_path = os.path.join(work_dir, LOG_FILE)
    # The server imports this project's packages: installed (the image), or from this checkout.
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    python_path = os.pathsep.join(p for p in (project, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", PYTHONPATH=python_path)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(serve_command(base_path, model_name, grpc_port, rest_port),
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_available(process, rest_port, model_name, log_path, timeout)
        yield grpc_port, rest_port
    finally:
        process.terminate()
        try:
            process.wait(timeout=_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _example_dict(example: Any) -> dict[str, Any]:
    """A tf.Example as the clients' example dicts (one value -> scalar, several -> list)."""
    row = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = [_plain(v) for v in getattr(feature, kind).value] if kind else []
        row[name] = values[0] if len(values) == 1 else values
    return row


def warmup_requests(model_dir: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(api, signature, rows or examples) of each warm-up record: api is predict, classify or regress."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(model_dir, contract.WARMUP_FILE)
    if not tf.io.gfile.exists(path):
        return []
    requests = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            columns = {name: tf.make_ndarray(proto).reshape(-1) for name, proto in request.inputs.items()}
            rows = len(next(iter(columns.values()))) if columns else 0
            requests.append(("predict", request.model_spec.signature_name or contract.SERVING_SIGNATURE,
                             [{name: _plain(values[i]) for name, values in columns.items()} for i in range(rows)]))
        elif kind in ("classify_log", "regress_log"):
            request = getattr(log, kind).request
            requests.append((kind.split("_")[0], request.model_spec.signature_name,
                             [_example_dict(e) for e in request.input.example_list.examples]))
    return requests


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_scores(scores: Any, classes: Sequence[str], where: str) -> list[float]:
    if not isinstance(scores, list) or len(scores) != len(classes):
        raise InfraValidationFailed(f"{where}: expected {len(classes)} scores, got {scores!r}")
    if not all(_finite(s) and -1e-6 <= s <= 1 + 1e-6 for s in scores):
        raise InfraValidationFailed(f"{where}: scores must be finite probabilities, got {scores!r}")
    return [float(s) for s in scores]


def check_answer(api: str, answer: list, rows: int, expect: Expectations, where: str) -> list:
    """The answer's numbers (scores per row, or values), after checking shapes, classes and finiteness."""
    from serving.client import Prediction

    if len(answer) != rows:
        raise InfraValidationFailed(f"{where}: {rows} rows sent, {len(answer)} answers")
    numbers = []
    for index, item in enumerate(answer):
        at = f"{where} row {index}"
        if api == "predict" and not expect.is_regression:
            outputs = item.outputs if isinstance(item, Prediction) else {}
            if [str(c) for c in outputs.get(contract.CLASSES, [])] != list(expect.classes):
                raise InfraValidationFailed(f"{at}: classes {outputs.get(contract.CLASSES)!r}, expected {list(expect.classes)}")
            if outputs.get(contract.PREDICTED_CLASS) not in expect.classes:
                raise InfraValidationFailed(f"{at}: unknown predicted class {outputs.get(contract.PREDICTED_CLASS)!r}")
            numbers.append(_check_scores(outputs.get(contract.SCORES), expect.classes, at))
        elif api == "predict" or api == "regress":
            value = item.value if isinstance(item, Prediction) else item
            if not _finite(value):
                raise InfraValidationFailed(f"{at}: expected a finite value, got {value!r}")
            numbers.append(float(value))
        else:  # classify: {class: score}
            if sorted(item) != sorted(expect.classes):
                raise InfraValidationFailed(f"{at}: classes {sorted(item)}, expected {sorted(expect.classes)}")
            numbers.append(_check_scores([item[c] for c in expect.classes], expect.classes, at))
    return numbers


def _agree(first: list, second: list, where: str) -> None:
    import numpy as np

    if not np.allclose(np.asarray(first, dtype=float), np.asarray(second, dtype=float), rtol=1e-4, atol=1e-5):
        raise InfraValidationFailed(f"{where}: REST and gRPC answers differ: {first!r} vs {second!r}")


def query(clients: dict[str, Any], requests: list, expect: Expectations) -> list[float]:
    """Sends every warm-up request over each protocol, checks the answers; returns latencies (ms)."""
    from serving.client import ServingClientError

    latencies = []
    for api, signature, rows in requests:
        answers = {}
        for protocol, connection in clients.items():
            where = f"{api} ({signature}) over {protocol}"
            for round_index in range(LATENCY_ROUNDS):
                started = time.perf_counter()
                try:
                    answer = getattr(connection, api)(rows, signature_name=signature)
                except ServingClientError as exc:
                    raise InfraValidationFailed(f"{where}: {exc}") from None
                latencies.append((time.perf_counter() - started) * 1000.0)
                if round_index == 0:
                    answers[protocol] = check_answer(api, answer, len(rows), expect, where)
        _agree(answers["REST"], answers["gRPC"], f"{api} ({signature})")
    return latencies


def validate_model(model_dir: str, model_name: str, expect: Expectations, latency_budget_ms: Optional[float] = None,
                   load_timeout_seconds: float = 300.0, work_dir: Optional[str] = None) -> InfraCheck:
    """Serves `model_dir` in `tfxpipe serve`, replays its warm-up requests over REST and gRPC, checks."""
    import numpy as np

    from serving import client

    requests = warmup_requests(model_dir)
    with contextlib.ExitStack() as stack:
        work_dir = work_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="infra-validation-"))
        try:
            with running_server(model_dir, model_name, work_dir, load_timeout_seconds) as (grpc_port, rest_port):
                clients = {
                    "REST": stack.enter_context(client.RestClient(f"http://127.0.0.1:{rest_port}", model_name, timeout=30)),
                    "gRPC": stack.enter_context(client.GrpcClient(f"127.0.0.1:{grpc_port}", model_name, timeout=30)),
                }
                latencies = query(clients, requests, expect)
        except InfraValidationFailed as exc:
            return InfraCheck(False, str(exc))
    p99 = float(np.percentile(latencies, 99)) if latencies else None
    if latency_budget_ms and p99 is not None and p99 > latency_budget_ms:
        return InfraCheck(False, f"p99 latency {p99:.1f} ms exceeds serving.latency_budget_ms {latency_budget_ms:g}",
                          len(latencies), p99)
    reason = "" if requests else "the model has no warm-up requests: checked that it loads only"
    return InfraCheck(True, reason, len(latencies), p99)


def record(blessing: Any, check: InfraCheck) -> None:
    """Marks the InfraBlessing as TFX's InfraValidator does, plus why and how fast."""
    io_utils.write_string_file(os.path.join(blessing.uri, BLESSED_FILE if check.blessed else NOT_BLESSED_FILE), "")
    blessing.set_int_custom_property(BLESSED_KEY, 1 if check.blessed else 0)
    blessing.set_string_custom_property(REASON_KEY, check.reason)
    if check.latency_p99_ms is not None:
        blessing.set_float_custom_property(LATENCY_KEY, check.latency_p99_ms)


@component
def InfraValidator(  # pylint: disable=invalid-name
    model: InputArtifact[standard_artifacts.Model],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    model_name: Parameter[str],
    task: Parameter[str],
    classes: Parameter[str] = "[]",
    latency_budget_ms: Parameter[float] = 0.0,
    load_timeout_seconds: Parameter[float] = 300.0,
) -> None:
    """Serve the candidate in `tfxpipe serve`, query it with its warm-up requests, bless it or not."""
    from absl import logging

    model_dir = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
    with tempfile.TemporaryDirectory(prefix="infra-validation-") as work_dir:
        check = validate_model(model_dir, model_name, Expectations(task, tuple(json.loads(classes))),
                               latency_budget_ms or None, load_timeout_seconds, work_dir)
        if os.path.exists(os.path.join(work_dir, LOG_FILE)):
            io_utils.copy_file(os.path.join(work_dir, LOG_FILE), os.path.join(blessing.uri, LOG_FILE), overwrite=True)
    record(blessing, check)
    logging.info("Infra validation: %s%s", "passed" if check.blessed else "FAILED", f" ({check.reason})" if check.reason else "")
