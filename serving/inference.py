"""The one path from a decoded request to the model and back, shared by REST, gRPC and warm-up.

`InferenceService` resolves the model spec, makes TF Serving's checks in TF Serving's order and returns a
`ModelCall`; how the caller waits for the model is the only thing the protocols do differently: REST
awaits the call on the event loop, a gRPC worker thread (or warm-up) calls `result()`. Each API is
written once. Everything here works on numpy arrays and tf.Example bytes; `rest.py` and
`grpc_service.py` only translate their wire formats to and from these calls.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from serving import errors, status_json
from serving.batching import DynamicBatcher, batch_rows
from serving.call_placement import CallPlacement
from serving.model_registry import ModelRegistry
from serving.servable import Servable, Signature
from trainer import contract

#: Decodes a Predict request's tensors once the signature they are meant for is known.
InputDecoder = Callable[[Signature], Mapping[str, np.ndarray]]
#: Decodes a Classify/Regress request's examples (serialized tf.Examples), once the model spec resolved.
ExampleDecoder = Callable[[], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ModelRequest:
    """A ModelSpec: model name, optional version or label, optional signature name."""

    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""


@dataclasses.dataclass(frozen=True)
class Result:
    servable: Servable
    signature_name: str
    outputs: Mapping[str, np.ndarray]


class ModelCall:
    """A request that passed every check before the model runs; the model call has not started.

    `await call` runs it for the event loop: batched, or placed by `CallPlacement` (inline when the model
    is cheap, else on the model thread pool);
    `call.result()` runs it on the calling thread (batched calls wait for their batch). Both return
    what `finish` makes of the outputs, after the output checks of the request's API.
    """

    __slots__ = ("servable", "signature", "inputs", "output_filter", "_finish", "_batcher", "_placement")

    def __init__(self, servable: Servable, signature: Signature, inputs: Mapping[str, np.ndarray],
                 output_filter: tuple[str, ...], finish: Callable[["ModelCall", Mapping[str, np.ndarray]], Any],
                 batcher: DynamicBatcher | None = None, placement: CallPlacement | None = None):
        self.servable, self.signature, self.inputs, self.output_filter = servable, signature, inputs, output_filter
        self._finish = finish
        batched = batcher is not None and signature.batchable and batch_rows(inputs) > 0
        self._batcher = batcher if batched else None
        self._placement = placement

    def __await__(self):
        return self._run_on_loop().__await__()

    async def _run_on_loop(self) -> Any:
        if self._batcher is not None:
            outputs = await self._batcher.run(self.servable, self.signature.name, self.inputs, self.output_filter)
        elif self._placement is not None:
            outputs = await self._placement.run(self.servable, self.signature.name, self.inputs, self.output_filter)
        else:
            outputs = self.servable.run(self.signature.name, self.inputs, self.output_filter)
        return self._finish(self, outputs)

    def result(self) -> Any:
        if self._batcher is not None:
            outputs = self._batcher.run_blocking(self.servable, self.signature.name, self.inputs, self.output_filter)
        else:
            outputs = self.servable.run(self.signature.name, self.inputs, self.output_filter)
        return self._finish(self, outputs)


class InferenceService:
    """Predict, Classify, Regress, GetModelMetadata and GetModelStatus over the registry's models.

    The protocol handlers reach the models only through here. Decoders are callbacks so that a request's
    tensors are decoded after its model spec resolved (and, for Predict, its signature was found), the
    order in which TF Serving reports what is wrong with a request.
    """

    def __init__(self, registry: ModelRegistry, batcher: DynamicBatcher | None = None,
                 model_threads: int = 4, check_method_name: bool = False):
        self.registry = registry
        self.batcher = batcher
        self.check_method_name = check_method_name
        self._placement = CallPlacement(
            concurrent.futures.ThreadPoolExecutor(model_threads, thread_name_prefix="model"))

    def predict(self, request: ModelRequest, decode_inputs: InputDecoder, output_filter: Sequence[str] = (),
                json_api: bool = False) -> ModelCall:
        """Predict: the model spec, then the signature, then `decode_inputs(signature)`, then input checks.

        `json_api`: TF Serving's REST handler decodes the JSON against the model's SignatureDefs before
        Predict's own checks run, and words a missing signature differently (INVALID_ARGUMENT).
        """
        servable = self._resolve(request)
        if json_api:
            inputs = decode_inputs(servable.declared_signature(request.signature_name))
            signature = servable.predict_signature(request.signature_name)
        else:
            signature = servable.predict_signature(request.signature_name)
            inputs = decode_inputs(signature)
        return predict_call(servable, signature, inputs, tuple(output_filter), self.batcher, self._placement)

    def classify(self, request: ModelRequest, decode_examples: ExampleDecoder) -> ModelCall:
        """Classify; the call's result is (result, classes [N,K] or None, scores [N,K] or None)."""
        return self._example_call(request, contract.CLASSIFY_METHOD, decode_examples)

    def regress(self, request: ModelRequest, decode_examples: ExampleDecoder) -> ModelCall:
        """Regress; the call's result is (result, values [N])."""
        return self._example_call(request, contract.REGRESS_METHOD, decode_examples)

    def _example_call(self, request: ModelRequest, method: str, decode_examples: ExampleDecoder) -> ModelCall:
        servable = self._resolve(request)  # a bad model spec is reported before an empty input
        return example_call(servable, request.signature_name, method, decode_examples(), self.check_method_name,
                            self.batcher, self._placement)

    def metadata(self, request: ModelRequest) -> Any:
        """GetModelMetadataResponse (signature_def) of the version `request` designates."""
        return status_json.metadata_proto(self._resolve(request))

    def status(self, name: str, version: int | None = None) -> Any:
        """GetModelStatusResponse: one version of the model, or all it has had."""
        return status_json.status_proto(self.registry.status(name, version))

    def _resolve(self, request: ModelRequest) -> Servable:
        return self.registry.resolve(request.name, request.version, request.label)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self._placement.shutdown()


# --- the calls, on a servable already resolved (warm-up uses these directly) ----------------------------

def predict_call(servable: Servable, signature: Signature, inputs: Mapping[str, np.ndarray],
                 output_filter: tuple[str, ...], batcher: DynamicBatcher | None = None,
                 placement: CallPlacement | None = None) -> ModelCall:
    servable.check_predict_inputs(signature, inputs, output_filter)
    return ModelCall(servable, signature, inputs, output_filter, _predicted, batcher, placement)


def example_call(servable: Servable, signature_name: str, method: str, examples: np.ndarray,
                 check_method_name: bool, batcher: DynamicBatcher | None = None,
                 placement: CallPlacement | None = None) -> ModelCall:
    """Classify (method=CLASSIFY_METHOD) or Regress on serialized tf.Examples."""
    signature = servable.example_signature(signature_name, method, check_method_name)
    if method == contract.CLASSIFY_METHOD:
        inputs, finish = {contract.CLASSIFY_INPUTS: examples}, _classified
    else:
        inputs, finish = {contract.REGRESS_INPUTS: examples}, _regressed
    return ModelCall(servable, signature, inputs, (), finish, batcher, placement)


def serialized_examples(model_input: Any) -> np.ndarray:
    """Input (example_list or example_list_with_context) -> serialized tf.Examples, as TF Serving does.

    With a context, each example is the context's bytes followed by the example's: parsing the
    concatenation merges them, the example's features taking precedence.
    """
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        serialized = [example.SerializeToString() for example in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = model_input.example_list_with_context
        context = with_context.context.SerializeToString()
        serialized = [context + example.SerializeToString() for example in with_context.examples]
    else:
        serialized = []
    if not serialized:
        raise errors.invalid_argument("Input is empty.")
    array = np.empty(len(serialized), dtype=object)
    array[:] = serialized
    return array


def _predicted(call: ModelCall, outputs: Mapping[str, np.ndarray]) -> Result:
    return Result(call.servable, call.signature.name, outputs)


def _classified(call: ModelCall, outputs: Mapping[str, np.ndarray]):
    classes, scores = outputs.get(contract.CLASSES), outputs.get(contract.SCORES)
    _check_classification(classes, scores, len(call.inputs[contract.CLASSIFY_INPUTS]))
    return Result(call.servable, call.signature.name, outputs), classes, scores


def _regressed(call: ModelCall, outputs: Mapping[str, np.ndarray]):
    values = _check_regression(outputs[contract.REGRESS_OUTPUTS], len(call.inputs[contract.REGRESS_INPUTS]))
    return Result(call.servable, call.signature.name, outputs), values


def _check_classification(classes: np.ndarray | None, scores: np.ndarray | None, num_examples: int) -> None:
    for name, tensor, dtype_ok, dtype_name in (
        (contract.CLASSES, classes, lambda t: t.dtype == object, "DT_STRING"),
        (contract.SCORES, scores, lambda t: t.dtype == np.float32, "DT_FLOAT"),
    ):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise errors.invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {list(tensor.shape)}")
        if not dtype_ok(tensor):
            raise errors.invalid_argument(f"Expected {name} Tensor of {dtype_name}. Got: {tensor.dtype}")
        if tensor.shape[0] != num_examples:
            raise errors.invalid_argument(f"Expected {name} output batch size of {num_examples}. Got: {tensor.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise errors.invalid_argument(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}"
        )


def _check_regression(values: np.ndarray, num_examples: int) -> np.ndarray:
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise errors.invalid_argument(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {list(values.shape)}"
        )
    if values.shape[0] != num_examples:
        raise errors.invalid_argument(
            f"Input batch size did not match output batch size: {num_examples} vs. {values.shape[0]}"
        )
    if values.dtype != np.float32:
        raise errors.invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {values.dtype}")
    return values.reshape(-1)
