"""TF Serving's gRPC services on the generated `tensorflow_serving.apis` servicer bases (grpc.aio).

PredictionService: Predict, Classify, Regress, GetModelMetadata (MultiInference is UNIMPLEMENTED).
ModelService: GetModelStatus, HandleReloadConfigRequest. Failures abort with TF Serving's status code
and message.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import grpc

from serving import errors, model_config, protos, status_json, tensors
from serving.inference import InferenceService, ModelRequest, serialized_examples
from serving.metrics import ServingMetrics
from serving.model_registry import ModelRegistry


def model_request(spec: Any) -> ModelRequest:
    choice = spec.WhichOneof("version_choice")
    return ModelRequest(
        name=spec.name,
        version=spec.version.value if choice == "version" else None,
        label=spec.version_label if choice == "version_label" else None,
        signature_name=spec.signature_name,
    )


def _fill_model_spec(target: Any, servable: Any, signature_name: str) -> None:
    target.name = servable.name
    target.version.value = servable.version
    target.signature_name = signature_name


async def _abort(context: grpc.aio.ServicerContext, error: errors.ServingError):
    await context.abort(grpc.StatusCode[error.code.name], error.message)


def build_prediction_servicer(service: InferenceService, metrics: ServingMetrics):
    apis = protos.load()
    base = apis.prediction_service_pb2_grpc.PredictionServiceServicer

    class PredictionServicer(base):
        async def Predict(self, request, context):
            return await _handle(context, metrics, request.model_spec.name, "predict", self._predict, request)

        async def _predict(self, request):
            spec = model_request(request.model_spec)
            try:
                inputs = {alias: tensors.to_ndarray(proto) for alias, proto in request.inputs.items()}
            except ValueError as exc:
                raise errors.invalid_argument(f"tensor parsing error: {exc}") from None
            result = await service.predict(spec, inputs, tuple(request.output_filter))
            response = apis.predict_pb2.PredictResponse()
            _fill_model_spec(response.model_spec, result.servable, result.signature_name)
            for alias, value in result.outputs.items():
                tensors.fill_proto(response.outputs[alias], value)
            return response

        async def Classify(self, request, context):
            return await _handle(context, metrics, request.model_spec.name, "classify", self._classify, request)

        async def _classify(self, request):
            spec = model_request(request.model_spec)
            result, classes, scores = await service.classify(spec, serialized_examples(request.input))
            response = apis.classification_pb2.ClassificationResponse()
            _fill_model_spec(response.model_spec, result.servable, result.signature_name)
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

        async def Regress(self, request, context):
            return await _handle(context, metrics, request.model_spec.name, "regress", self._regress, request)

        async def _regress(self, request):
            spec = model_request(request.model_spec)
            result, values = await service.regress(spec, serialized_examples(request.input))
            response = apis.regression_pb2.RegressionResponse()
            _fill_model_spec(response.model_spec, result.servable, result.signature_name)
            for value in values.tolist():
                response.result.regressions.add().value = value
            return response

        async def GetModelMetadata(self, request, context):
            return await _handle(context, metrics, request.model_spec.name, "metadata", self._metadata, request)

        async def _metadata(self, request):
            if not request.HasField("model_spec"):
                raise errors.invalid_argument("Missing ModelSpec")
            if not request.metadata_field:
                raise errors.invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != status_json.SIGNATURE_DEF_FIELD:
                    raise errors.invalid_argument(f"Metadata field {field} is not supported")
            spec = model_request(request.model_spec)
            return status_json.metadata_proto(service.registry.resolve(spec.name, spec.version, spec.label))

        async def MultiInference(self, request, context):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not supported by this server")

    return PredictionServicer()


def build_model_servicer(registry: ModelRegistry, metrics: ServingMetrics,
                         apply_config: Callable[[Any], None]):
    apis = protos.load()
    base = apis.model_service_pb2_grpc.ModelServiceServicer

    class ModelServicer(base):
        async def GetModelStatus(self, request, context):
            return await _handle(context, metrics, request.model_spec.name, "status", self._status, request)

        async def _status(self, request):
            if not request.HasField("model_spec"):
                raise errors.invalid_argument("Missing ModelSpec")
            spec = request.model_spec
            version = spec.version.value if spec.WhichOneof("version_choice") == "version" else None
            return status_json.status_proto(registry.status(spec.name, version))

        async def HandleReloadConfigRequest(self, request, context):
            response = apis.model_management_pb2.ReloadConfigResponse()
            try:
                await asyncio.get_running_loop().run_in_executor(None, apply_config, request.config)
            except errors.ServingError as exc:
                response.status.error_code = int(exc.code)
                response.status.error_message = exc.message
                await _abort(context, exc)
            return response

    return ModelServicer()


async def _handle(context, metrics: ServingMetrics, model_name: str, api: str, call, request):
    started = time.perf_counter()
    try:
        response = await call(request)
    except errors.ServingError as exc:
        metrics.record(model_name, api, "GRPC", exc.code.name, None)
        await _abort(context, exc)
        raise  # context.abort raises; this line keeps type checkers honest
    metrics.record(model_name, api, "GRPC", "OK", time.perf_counter() - started)
    return response


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def parse_reload_config(config: Any) -> list[model_config.ModelConfig]:
    return model_config.model_configs(config)
