"""TF Serving's gRPC services on the generated `tensorflow_serving.apis` servicer bases.

PredictionService: Predict, Classify, Regress, GetModelMetadata (MultiInference is UNIMPLEMENTED).
ModelService: GetModelStatus, HandleReloadConfigRequest. Failures abort with TF Serving's status code
and message.

The servicers are synchronous and run on grpc's worker threads (`--grpc_max_threads`), waiting on the
shared batcher: measured in benchmarks/serving.py, this serves about twice the requests per second of a
grpc.aio server sharing the REST server's event loop.

`add_servicers` registers them as the generated `add_*_to_server` functions do, but a request must parse
completely, as in TF Serving's C++ gRPC (INTERNAL otherwise): python protobuf stops at a stray end-group
tag and returns the fields read so far, which would serve a request TF Serving rejects.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import grpc

from serving import api_protos, errors, protos, tensors
from serving.inference import InferenceService, ModelRequest, serialized_examples
from serving.metrics import ServingMetrics
from serving.request_log import RequestLogger
from trainer.contract import SIGNATURE_DEF_METADATA_FIELD


def model_request(spec: Any) -> ModelRequest:
    choice = spec.WhichOneof("version_choice")
    return ModelRequest(
        name=spec.name,
        version=spec.version.value if choice == "version" else None,
        label=spec.version_label if choice == "version_label" else None,
        signature_name=spec.signature_name,
    )


def _abort(context: grpc.ServicerContext, error: errors.ServingError):
    context.abort(grpc.StatusCode[error.code.name], error.message)


def build_prediction_servicer(service: InferenceService, metrics: ServingMetrics,
                              request_logger: RequestLogger | None = None):
    """The PredictionService; successful Predict/Classify/Regress calls go to `request_logger` (if any)."""
    apis = protos.load()
    base = apis.prediction_service_pb2_grpc.PredictionServiceServicer

    def logged(request, response):
        if request_logger is not None:
            request_logger.log(request.model_spec.name, lambda: api_protos.prediction_log(request, response))
        return response

    class PredictionServicer(base):
        def Predict(self, request, context):
            return _handle(context, metrics, request.model_spec.name, "predict", self._predict, request)

        def _predict(self, request):
            def decode(signature):  # TF Serving's order: model spec, signature, input names, then tensors
                signature.check_input_names(request.inputs)
                try:
                    return {alias: tensors.to_ndarray(proto) for alias, proto in request.inputs.items()}
                except ValueError as exc:
                    raise errors.invalid_argument(f"tensor parsing error: {exc}") from None

            call = service.predict(model_request(request.model_spec), decode, tuple(request.output_filter))
            return logged(request, api_protos.predict_response(call.result()))

        def Classify(self, request, context):
            return _handle(context, metrics, request.model_spec.name, "classify", self._classify, request)

        def _classify(self, request):
            call = service.classify(model_request(request.model_spec), lambda: serialized_examples(request.input))
            return logged(request, api_protos.classification_response(*call.result()))

        def Regress(self, request, context):
            return _handle(context, metrics, request.model_spec.name, "regress", self._regress, request)

        def _regress(self, request):
            call = service.regress(model_request(request.model_spec), lambda: serialized_examples(request.input))
            return logged(request, api_protos.regression_response(*call.result()))

        def GetModelMetadata(self, request, context):
            return _handle(context, metrics, request.model_spec.name, "metadata", self._metadata, request)

        def _metadata(self, request):
            if not request.HasField("model_spec"):
                raise errors.invalid_argument("Missing ModelSpec")
            if not request.metadata_field:
                raise errors.invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != SIGNATURE_DEF_METADATA_FIELD:
                    raise errors.invalid_argument(f"Metadata field {field} is not supported")
            return service.metadata(model_request(request.model_spec))

        def MultiInference(self, request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not supported by this server")

    return PredictionServicer()


def build_model_servicer(service: InferenceService, metrics: ServingMetrics,
                         apply_config: Callable[[Any], None]):
    apis = protos.load()
    base = apis.model_service_pb2_grpc.ModelServiceServicer

    class ModelServicer(base):
        def GetModelStatus(self, request, context):
            return _handle(context, metrics, request.model_spec.name, "status", self._status, request)

        def _status(self, request):
            if not request.HasField("model_spec"):
                raise errors.invalid_argument("Missing ModelSpec")
            wanted = model_request(request.model_spec)
            return service.status(wanted.name, wanted.version)

        def HandleReloadConfigRequest(self, request, context):
            response = apis.model_management_pb2.ReloadConfigResponse()
            try:
                apply_config(request.config)
            except errors.ServingError as exc:
                response.status.error_code = int(exc.code)
                response.status.error_message = exc.message
                _abort(context, exc)
            return response

    return ModelServicer()


def add_servicers(server: grpc.Server, prediction_servicer: Any, model_servicer: Any) -> None:
    """Registers both services on `server`, parsing each request completely (see the module docstring)."""
    apis = protos.load()
    services = {
        "tensorflow.serving.PredictionService": (prediction_servicer, {
            "Predict": (apis.predict_pb2.PredictRequest, apis.predict_pb2.PredictResponse),
            "Classify": (apis.classification_pb2.ClassificationRequest, apis.classification_pb2.ClassificationResponse),
            "Regress": (apis.regression_pb2.RegressionRequest, apis.regression_pb2.RegressionResponse),
            "GetModelMetadata": (apis.get_model_metadata_pb2.GetModelMetadataRequest,
                                 apis.get_model_metadata_pb2.GetModelMetadataResponse),
            "MultiInference": (apis.inference_pb2.MultiInferenceRequest, apis.inference_pb2.MultiInferenceResponse),
        }),
        "tensorflow.serving.ModelService": (model_servicer, {
            "GetModelStatus": (apis.get_model_status_pb2.GetModelStatusRequest,
                               apis.get_model_status_pb2.GetModelStatusResponse),
            "HandleReloadConfigRequest": (apis.model_management_pb2.ReloadConfigRequest,
                                          apis.model_management_pb2.ReloadConfigResponse),
        }),
    }
    logging.getLogger("grpc._common").addFilter(_UNPARSEABLE_REQUEST_LOG)  # the same filter is added once
    for service_name, (servicer, methods) in services.items():
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(getattr(servicer, name),
                                                      request_deserializer=_complete_parser(request),
                                                      response_serializer=response.SerializeToString)
            for name, (request, response) in methods.items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, handlers),))


class UnparseableRequestLog(logging.Filter):
    """grpc logs a full traceback at ERROR for every request whose bytes do not parse, so a client
    sending garbage could flood the server's log. Such a request is the client's fault and is already
    answered INTERNAL (as TF Serving's C++ gRPC answers it): keep one WARNING line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage() == "Exception deserializing message!":
            record.msg, record.args = "gRPC request did not parse (answered INTERNAL): %s", (record.exc_info[1],)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_UNPARSEABLE_REQUEST_LOG = UnparseableRequestLog()


def _complete_parser(message_class: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        message = message_class()
        if message.ParseFromString(data) != len(data):
            raise ValueError(f"{message_class.DESCRIPTOR.full_name}: bytes left after an end-group tag")
        return message

    return parse


def _handle(context, metrics: ServingMetrics, model_name: str, api: str, call, request):
    started = time.perf_counter()
    try:
        response = call(request)
    except errors.ServingError as exc:
        metrics.record(model_name, api, "GRPC", exc.code.name, None)
        _abort(context, exc)
        raise  # context.abort raises; this line keeps type checkers honest
    metrics.record(model_name, api, "GRPC", "OK", time.perf_counter() - started)
    return response

