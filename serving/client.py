"""Clients for a TF-Serving-compatible server (`tfxpipe serve` or tensorflow/serving): REST and gRPC.

Both take raw feature rows (dicts of JSON values), fetch the signature's input types once from the
model's metadata, coerce each value (None -> NaN for numbers, "" for strings; numbers given as strings
are parsed) and return one `Prediction` per row, with class names attached to the scores (classifiers)
or the predicted value (regressors). Both also speak TF Serving's Classify and Regress APIs, which
take examples (dicts of feature values; ints and floats alike for numeric features) instead.

Failures raise `ServingClientError` (the server's status and message) or `ServerUnavailableError`
(nothing answers at the address, or UNAVAILABLE after the configured retries). Neither client imports
TensorFlow: REST needs httpx only; gRPC uses the official `tensorflow_serving.apis` stubs, loaded
without the TensorFlow runtime (see `serving.protos`). Pass `transport=` (an httpx transport) or
`channel=` (a grpc channel) to test without a network.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from trainer import contract

#: Raw feature rows go to the exported model's raw-feature signature unless told otherwise.
DEFAULT_SIGNATURE = contract.SERVING_SIGNATURE
_FLOAT_DTYPES = {"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"}
_INT_DTYPES = {"DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16", "DT_UINT32", "DT_UINT64"}


class ServingClientError(Exception):
    """The server answered with an error: `code` is the status name, `message` the server's text."""

    def __init__(self, code: str, message: str, http_status: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


class ServerUnavailableError(ServingClientError):
    """No server answered (refused, timed out, or UNAVAILABLE after every retry)."""

    def __init__(self, message: str):
        super().__init__("UNAVAILABLE", message)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One row's result: the raw outputs, plus class names paired with scores when the model has both."""

    outputs: Mapping[str, Any]

    @property
    def class_scores(self) -> dict[str, float]:
        classes, scores = self.outputs.get(contract.CLASSES), self.outputs.get(contract.SCORES)
        if not isinstance(classes, list) or not isinstance(scores, list) or len(classes) != len(scores):
            return {}
        return {str(name): float(score) for name, score in zip(classes, scores)}

    @property
    def predicted_class(self) -> str | None:
        predicted = self.outputs.get(contract.PREDICTED_CLASS)
        if predicted is not None:
            return str(predicted)
        scores = self.class_scores
        return max(scores, key=scores.get) if scores else None

    @property
    def value(self) -> float | None:
        """A regressor's predicted value (`contract.REGRESS_OUTPUTS`); None for classifiers."""
        value = self.outputs.get(contract.REGRESS_OUTPUTS)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        return None if value is None or isinstance(value, list) else float(value)

    def summary(self) -> str:
        """One line for people: the value, or the predicted class with every class's score."""
        if self.value is not None:
            return f"{self.value:.4g}"
        scores = ", ".join(f"{name} {score:.3f}" for name, score in self.class_scores.items())
        return f"{self.predicted_class}  ({scores})" if scores else str(self.predicted_class)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Retries on UNAVAILABLE (server starting, restarting or overloaded), with exponential backoff."""

    attempts: int = 3
    initial_backoff: float = 0.2
    max_backoff: float = 2.0

    def run(self, call: Callable[[], Any], is_unavailable: Callable[[Exception], bool]) -> Any:
        delay = self.initial_backoff
        for attempt in range(1, max(1, self.attempts) + 1):
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - classified by is_unavailable
                if attempt >= self.attempts or not is_unavailable(exc):
                    raise
            time.sleep(delay)
            delay = min(delay * 2, self.max_backoff)


def coerce_rows(rows: Sequence[Mapping[str, Any]], input_dtypes: Mapping[str, str]) -> dict[str, list]:
    """Rows of raw features -> one list per signature input, typed for the input's dtype.

    Raises ValueError naming the row and feature when a value cannot be converted or is missing.
    """
    columns: dict[str, list] = {name: [] for name in input_dtypes}
    for index, row in enumerate(rows):
        missing = [name for name in input_dtypes if name not in row]
        if missing:
            raise ValueError(f"row {index}: missing feature(s) {', '.join(sorted(missing))}")
        extra = sorted(set(row) - set(input_dtypes))
        if extra:
            raise ValueError(f"row {index}: unknown feature(s) {', '.join(extra)}; the model takes {', '.join(sorted(input_dtypes))}")
        for name, dtype in input_dtypes.items():
            columns[name].append(_coerce(row[name], dtype, index, name))
    return columns


def _coerce(value: Any, dtype: str, index: int, name: str) -> Any:
    try:
        if dtype in _FLOAT_DTYPES:
            return math.nan if value is None or value == "" else float(value)
        if dtype in _INT_DTYPES:
            return int(value)
        if dtype == "DT_BOOL":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        if dtype == "DT_STRING":
            return "" if value is None else value if isinstance(value, str) else str(value)
    except (TypeError, ValueError):
        raise ValueError(f"row {index}: feature {name}={value!r} is not a valid {dtype[3:].lower()}") from None
    raise ValueError(f"feature {name}: unsupported input dtype {dtype}")


class _ClientConnection:
    """A client is a context manager that closes its connection on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RestClient(_ClientConnection):
    """TF Serving REST API client (`/v1/models/<name>[/versions/<v>|/labels/<l>]:predict`)."""

    def __init__(self, base_url: str, model_name: str, version: int | None = None, label: str | None = None,
                 timeout: float = 10.0, retry: RetryPolicy = RetryPolicy(), transport: Any = None):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self._model_path = f"/v1/models/{model_name}"
        if version is not None:
            self._model_path += f"/versions/{version}"
        elif label:
            self._model_path += f"/labels/{label}"
        self._retry = retry
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self._dtypes: dict[str, dict[str, str]] = {}
        self._signatures: dict[str, Any] = {}

    def predict(self, rows: Sequence[Mapping[str, Any]], signature_name: str = DEFAULT_SIGNATURE) -> list[Prediction]:
        columns = coerce_rows(rows, self.input_dtypes(signature_name))
        instances = [{name: columns[name][i] for name in columns} for i in range(len(rows))]
        body = {"signature_name": signature_name, "instances": instances}
        answer = self._request("POST", f"{self._model_path}:predict", body)
        # TF Serving's row format drops the output's name when a signature has only one (regression).
        single = self._single_output(signature_name)
        return [Prediction(p if isinstance(p, dict) else {single: p}) for p in answer["predictions"]]

    def classify(self, examples: Sequence[Mapping[str, Any]],
                 signature_name: str = contract.CLASSIFY_SIGNATURE) -> list[dict[str, float]]:
        answer = self._request("POST", f"{self._model_path}:classify",
                               {"signature_name": signature_name, "examples": list(examples)})
        return [{str(label): float(score) for label, score in row} for row in answer["results"]]

    def regress(self, examples: Sequence[Mapping[str, Any]],
                signature_name: str = contract.REGRESS_SIGNATURE) -> list[float]:
        """TF Serving's Regress API: one value per example (dicts of feature values)."""
        answer = self._request("POST", f"{self._model_path}:regress",
                               {"signature_name": signature_name, "examples": list(examples)})
        return [float(value) for value in answer["results"]]

    def model_status(self) -> dict:
        return self._request("GET", self._model_path)

    def metadata(self) -> dict:
        return self._request("GET", f"{self._model_path}/metadata")

    def _single_output(self, signature_name: str) -> str:
        """The name of the signature's one output ("output" if it has several or none is known)."""
        signature = self._signatures.get(signature_name, {})
        outputs = list(signature.get("outputs", {}))
        return outputs[0] if len(outputs) == 1 else "output"

    def input_dtypes(self, signature_name: str = DEFAULT_SIGNATURE) -> dict[str, str]:
        if signature_name not in self._dtypes:
            signatures = self.metadata()["metadata"]["signature_def"]["signature_def"]
            self._signatures = signatures
            if signature_name not in signatures:
                raise ServingClientError("INVALID_ARGUMENT", f"model {self.model_name} has no signature {signature_name!r}; "
                                         f"it has {', '.join(sorted(signatures))}")
            inputs = signatures[signature_name]["inputs"]
            self._dtypes[signature_name] = {name: info["dtype"] for name, info in sorted(inputs.items())}
        return self._dtypes[signature_name]

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        def call():
            content = None if body is None else json.dumps(body, allow_nan=True)
            try:
                response = self._http.request(method, path, content=content,
                                              headers={"Content-Type": "application/json"})
            except httpx.TimeoutException:
                raise ServerUnavailableError(f"no answer from {self.base_url} within the timeout") from None
            except httpx.TransportError as exc:
                raise ServerUnavailableError(
                    f"cannot reach the model server at {self.base_url} ({exc}); is it running?"
                ) from None
            return _decode_rest(response)

        return self._retry.run(call, lambda exc: isinstance(exc, ServerUnavailableError))

    def close(self) -> None:
        self._http.close()



def _decode_rest(response: Any) -> Any:
    try:
        document = json.loads(response.content) if response.content else {}
    except ValueError:
        document = {"error": response.text}
    if response.status_code == 200:
        return document
    message = document.get("error", response.text) if isinstance(document, dict) else response.text
    code = _HTTP_CODES.get(response.status_code, "UNKNOWN")
    if response.status_code == 503:
        raise ServerUnavailableError(message)
    raise ServingClientError(code, message, http_status=response.status_code)


_HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ABORTED", 413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
               501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class GrpcClient(_ClientConnection):
    """TF Serving gRPC client on `tensorflow.serving.PredictionService` / `ModelService` stubs."""

    def __init__(self, target: str, model_name: str, version: int | None = None, label: str | None = None,
                 timeout: float = 10.0, retry: RetryPolicy = RetryPolicy(), channel: Any = None):
        import grpc

        from serving import protos

        self.target = target
        self.model_name = model_name
        self.version = version
        self.label = label
        self.timeout = timeout
        self._retry = retry
        self._apis = protos.load()
        self._channel = channel or grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", 2**31 - 1), ("grpc.max_send_message_length", 2**31 - 1)])
        self._prediction = self._apis.prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = self._apis.model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._dtypes: dict[str, dict[str, str]] = {}

    def predict(self, rows: Sequence[Mapping[str, Any]], signature_name: str = DEFAULT_SIGNATURE) -> list[Prediction]:
        from serving import tensors

        dtypes = self.input_dtypes(signature_name)
        columns = coerce_rows(rows, dtypes)
        request = self._apis.predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature_name)
        for name, values in columns.items():
            tensors.fill_proto(request.inputs[name], values, as_content=True,
                               dtype=self._apis.types_pb2.DataType.Value(dtypes[name]))
        response = self._call(self._prediction.Predict, request)
        arrays = {alias: tensors.to_ndarray(proto) for alias, proto in response.outputs.items()}
        return [Prediction({alias: _plain(value[i]) for alias, value in arrays.items()}) for i in range(len(rows))]

    def classify(self, examples: Sequence[Mapping[str, Any]],
                 signature_name: str = contract.CLASSIFY_SIGNATURE) -> list[dict[str, float]]:
        """TF Serving's Classify API: {class: score} per example (dicts of feature values)."""
        request = self._apis.classification_pb2.ClassificationRequest()
        self._fill_spec(request.model_spec, signature_name)
        fill_examples(request.input.example_list.examples, examples)
        response = self._call(self._prediction.Classify, request)
        return [{entry.label: entry.score for entry in row.classes} for row in response.result.classifications]

    def regress(self, examples: Sequence[Mapping[str, Any]],
                signature_name: str = contract.REGRESS_SIGNATURE) -> list[float]:
        """TF Serving's Regress API: one value per example (dicts of feature values)."""
        request = self._apis.regression_pb2.RegressionRequest()
        self._fill_spec(request.model_spec, signature_name)
        fill_examples(request.input.example_list.examples, examples)
        response = self._call(self._prediction.Regress, request)
        return [float(regression.value) for regression in response.result.regressions]

    def model_status(self) -> Any:
        request = self._apis.get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        if self.version is not None:
            request.model_spec.version.value = self.version
        return self._call(self._models.GetModelStatus, request)

    def metadata(self) -> Any:
        request = self._apis.get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec, "")
        return self._call(self._prediction.GetModelMetadata, request)

    def input_dtypes(self, signature_name: str = DEFAULT_SIGNATURE) -> dict[str, str]:
        if signature_name not in self._dtypes:
            signature_map = self._apis.get_model_metadata_pb2.SignatureDefMap()
            self.metadata().metadata["signature_def"].Unpack(signature_map)
            if signature_name not in signature_map.signature_def:
                raise ServingClientError("INVALID_ARGUMENT", f"model {self.model_name} has no signature {signature_name!r}; "
                                         f"it has {', '.join(sorted(signature_map.signature_def))}")
            inputs = signature_map.signature_def[signature_name].inputs
            names = self._apis.types_pb2.DataType.Name
            self._dtypes[signature_name] = {alias: names(info.dtype) for alias, info in sorted(inputs.items())}
        return self._dtypes[signature_name]

    def _fill_spec(self, spec: Any, signature_name: str) -> None:
        spec.name = self.model_name
        spec.signature_name = signature_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.label:
            spec.version_label = self.label

    def _call(self, method: Callable, request: Any) -> Any:
        import grpc

        def call():
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.UNAVAILABLE:
                    raise ServerUnavailableError(f"cannot reach the model server at {self.target} ({exc.details()})") from None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise ServingClientError("DEADLINE_EXCEEDED", f"no answer from {self.target} within {self.timeout}s") from None
                raise ServingClientError(code.name, exc.details() or "") from None

        return self._retry.run(call, lambda exc: isinstance(exc, ServerUnavailableError))

    def close(self) -> None:
        self._channel.close()



def fill_examples(target: Any, examples: Sequence[Mapping[str, Any]]) -> None:
    """Appends one tf.Example per dict to the repeated field `target`, typed as TF Serving's REST API
    types `examples`: int (and bool) -> int64_list, float -> float_list, str/bytes -> bytes_list;
    a list gives several values, None leaves the feature out (missing)."""
    for index, values in enumerate(examples):
        example = target.add()
        for name, value in values.items():
            items = value if isinstance(value, (list, tuple)) else [value]
            if value is None or not items:
                continue
            feature = example.features.feature[name]
            if all(isinstance(v, (bool, int)) for v in items):
                feature.int64_list.value.extend(int(v) for v in items)
            elif all(isinstance(v, (bool, int, float)) for v in items):
                feature.float_list.value.extend(float(v) for v in items)
            elif all(isinstance(v, (str, bytes)) for v in items):
                feature.bytes_list.value.extend(v.encode() if isinstance(v, str) else v for v in items)
            else:
                raise ValueError(f"example {index}: feature {name}={value!r} is not numbers or text")


def _plain(value: Any) -> Any:
    """numpy element/row -> JSON-friendly Python (bytes decoded as UTF-8)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def connect(model_name: str, rest: str | None = None, grpc_target: str | None = None, **options: Any):
    """A RestClient (`rest` URL) or GrpcClient (`grpc_target` host:port); exactly one must be given."""
    if bool(rest) == bool(grpc_target):
        raise ValueError("give exactly one of rest (a URL) or grpc_target (host:port)")
    if rest:
        return RestClient(rest, model_name, **options)
    return GrpcClient(grpc_target, model_name, **options)


def read_rows(lines: Iterable[str]) -> list[dict]:
    """JSON Lines (one object per line; blank lines skipped) -> rows; ValueError names the bad line."""
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"line {number}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise ValueError(f"line {number}: expected a JSON object of features")
        rows.append(row)
    return rows
