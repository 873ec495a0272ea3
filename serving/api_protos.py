"""`InferenceService` results as TF Serving's API messages: the gRPC answers, and the request log's records.

gRPC answers with these responses; the request log writes them (and, for REST, the requests rebuilt as
the equivalent gRPC request) into `PredictionLog` records, so a logged REST call and a logged gRPC call
read the same.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from serving import protos, tensors
from serving.inference import ModelRequest, Result


def fill_response_spec(target: Any, result: Result) -> None:
    """The model spec TF Serving answers with: the version that ran, and the signature."""
    target.name = result.servable.name
    target.version.value = result.servable.version
    target.signature_name = result.signature_name


def fill_request_spec(target: Any, request: ModelRequest) -> None:
    """A ModelSpec as a client addressing `request` would have sent it."""
    target.name = request.name
    if request.version is not None:
        target.version.value = request.version
    elif request.label is not None:
        target.version_label = request.label
    target.signature_name = request.signature_name


def predict_response(result: Result) -> Any:
    response = protos.load().predict_pb2.PredictResponse()
    fill_response_spec(response.model_spec, result)
    for alias, value in result.outputs.items():
        tensors.fill_proto(response.outputs[alias], value)
    return response


def classification_response(result: Result, classes: np.ndarray | None, scores: np.ndarray | None) -> Any:
    response = protos.load().classification_pb2.ClassificationResponse()
    fill_response_spec(response.model_spec, result)
    reference = classes if classes is not None else scores
    for i in range(reference.shape[0]):
        row = response.result.classifications.add()
        for c in range(reference.shape[1]):
            entry = row.classes.add()
            if classes is not None:
                entry.label = _text(classes[i, c])
            if scores is not None:
                entry.score = float(scores[i, c])
    return response


def regression_response(result: Result, values: np.ndarray) -> Any:
    response = protos.load().regression_pb2.RegressionResponse()
    fill_response_spec(response.model_spec, result)
    for value in values.tolist():
        response.result.regressions.add().value = value
    return response


def predict_request(request: ModelRequest, inputs: Mapping[str, np.ndarray]) -> Any:
    """The PredictRequest equivalent to a decoded (e.g. REST JSON) request."""
    proto = protos.load().predict_pb2.PredictRequest()
    fill_request_spec(proto.model_spec, request)
    for alias, value in inputs.items():
        tensors.fill_proto(proto.inputs[alias], value)
    return proto


def example_request(request: ModelRequest, examples: np.ndarray, classify: bool) -> Any:
    """The ClassificationRequest (or RegressionRequest) carrying serialized tf.Examples as an example_list."""
    apis = protos.load()
    proto = apis.classification_pb2.ClassificationRequest() if classify else apis.regression_pb2.RegressionRequest()
    fill_request_spec(proto.model_spec, request)
    target = proto.input.example_list.examples
    for serialized in examples:
        target.add().ParseFromString(serialized)
    return proto


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


_LOG_FIELDS = {"PredictRequest": "predict_log", "ClassificationRequest": "classify_log",
               "RegressionRequest": "regress_log"}


def prediction_log(request: Any, response: Any) -> Any:
    """A PredictionLog of one call: its predict_log, classify_log or regress_log, by the request's type."""
    module = protos.load().prediction_log_pb2
    field = _LOG_FIELDS[request.DESCRIPTOR.name]
    record = module.PredictionLog()
    entry = getattr(record, field)
    entry.request.CopyFrom(request)
    entry.response.CopyFrom(response)
    return record
