"""What REST and gRPC share: resolve the model, check the request, run it (batched or not), check results.

Everything here works on numpy arrays and tf.Example bytes; `rest.py` and `grpc_service.py` only
translate their wire formats to and from these calls.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from serving import errors
from serving.batching import DynamicBatcher, batch_rows
from serving.model_registry import ModelRegistry
from serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, Servable, Signature


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


class InferenceService:
    def __init__(self, registry: ModelRegistry, batcher: DynamicBatcher | None = None,
                 model_threads: int = 4, check_method_name: bool = False):
        self.registry = registry
        self.batcher = batcher
        self.check_method_name = check_method_name
        self._executor = concurrent.futures.ThreadPoolExecutor(model_threads, thread_name_prefix="model")

    def resolve(self, request: ModelRequest) -> Servable:
        return self.registry.resolve(request.name, request.version, request.label)

    # Each API comes twice: `async` for the event loop (REST), `*_blocking` for gRPC worker threads.
    # `servable` is for callers that resolved the model spec before decoding the inputs: TF Serving
    # reports a bad spec (NOT_FOUND, ...) ahead of anything wrong with the inputs.

    async def predict(self, request: ModelRequest, inputs: Mapping[str, np.ndarray],
                      output_filter: Sequence[str] = (), servable: Servable | None = None) -> Result:
        servable, signature = self._plan_predict(request, inputs, output_filter, servable)
        outputs = await self._run(servable, signature, inputs, tuple(output_filter))
        return Result(servable, signature.name, outputs)

    def predict_blocking(self, request: ModelRequest, inputs: Mapping[str, np.ndarray],
                         output_filter: Sequence[str] = (), servable: Servable | None = None) -> Result:
        servable, signature = self._plan_predict(request, inputs, output_filter, servable)
        outputs = self._run_blocking(servable, signature, inputs, tuple(output_filter))
        return Result(servable, signature.name, outputs)

    async def classify(self, request: ModelRequest, examples: np.ndarray) -> tuple[Result, np.ndarray | None, np.ndarray | None]:
        """Runs a classification signature; returns (result, classes [N,K] or None, scores [N,K] or None)."""
        servable, signature = self._plan_examples(request, CLASSIFY_METHOD)
        return _classified(servable, signature, await self._run(servable, signature, {"inputs": examples}, ()), examples)

    def classify_blocking(self, request: ModelRequest, examples: np.ndarray, servable: Servable | None = None):
        servable, signature = self._plan_examples(request, CLASSIFY_METHOD, servable)
        return _classified(servable, signature, self._run_blocking(servable, signature, {"inputs": examples}, ()), examples)

    async def regress(self, request: ModelRequest, examples: np.ndarray) -> tuple[Result, np.ndarray]:
        servable, signature = self._plan_examples(request, REGRESS_METHOD)
        return _regressed(servable, signature, await self._run(servable, signature, {"inputs": examples}, ()), examples)

    def regress_blocking(self, request: ModelRequest, examples: np.ndarray,
                         servable: Servable | None = None) -> tuple[Result, np.ndarray]:
        servable, signature = self._plan_examples(request, REGRESS_METHOD, servable)
        return _regressed(servable, signature, self._run_blocking(servable, signature, {"inputs": examples}, ()), examples)

    def _plan_predict(self, request, inputs, output_filter, servable):
        servable = servable or self.resolve(request)
        signature = servable.predict_signature(request.signature_name)
        servable.check_predict_inputs(signature, inputs, output_filter)
        return servable, signature

    def _plan_examples(self, request: ModelRequest, method: str, servable: Servable | None = None):
        servable = servable or self.resolve(request)
        return servable, servable.example_signature(request.signature_name, method, self.check_method_name)

    def _batched(self, signature: Signature, inputs: Mapping[str, np.ndarray]) -> bool:
        return self.batcher is not None and signature.batchable and batch_rows(inputs) > 0

    async def _run(self, servable: Servable, signature: Signature, inputs: Mapping[str, np.ndarray],
                   output_filter: tuple[str, ...]) -> Mapping[str, np.ndarray]:
        if self._batched(signature, inputs):
            return await self.batcher.run(servable, signature.name, inputs, output_filter)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, servable.run, signature.name, inputs, output_filter)

    def _run_blocking(self, servable: Servable, signature: Signature, inputs: Mapping[str, np.ndarray],
                      output_filter: tuple[str, ...]) -> Mapping[str, np.ndarray]:
        if self._batched(signature, inputs):
            return self.batcher.run_blocking(servable, signature.name, inputs, output_filter)
        return servable.run(signature.name, inputs, output_filter)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self._executor.shutdown(wait=True)


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


def _classified(servable: Servable, signature: Signature, outputs: Mapping[str, np.ndarray], examples: np.ndarray):
    classes, scores = outputs.get("classes"), outputs.get("scores")
    _check_classification(classes, scores, len(examples))
    return Result(servable, signature.name, outputs), classes, scores


def _regressed(servable: Servable, signature: Signature, outputs: Mapping[str, np.ndarray], examples: np.ndarray):
    return Result(servable, signature.name, outputs), _check_regression(outputs["outputs"], len(examples))


def _check_classification(classes: np.ndarray | None, scores: np.ndarray | None, num_examples: int) -> None:
    for name, tensor, dtype_ok, dtype_name in (
        ("classes", classes, lambda t: t.dtype == object, "DT_STRING"),
        ("scores", scores, lambda t: t.dtype == np.float32, "DT_FLOAT"),
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
