"""One loaded SavedModel version: its signatures, input checks in TF Serving's words, and the model call.

`Servable.load` reads `saved_model.pb` itself (for the SignatureDefs TF Serving reports as metadata,
method names included) and loads the model with `tf.saved_model.load`. `run` is the only place the
model is called; it takes and returns numpy arrays keyed by signature alias.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from serving import errors, tensors
from trainer import contract


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    dtype: int  # DataType enum
    shape: tuple[int, ...] | None  # -1 for unknown dims; None for unknown rank

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(want in (-1, got) for want, got in zip(self.shape, shape))

    @property
    def batched(self) -> bool:
        return self.shape is not None and len(self.shape) >= 1 and self.shape[0] == -1


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]

    batchable: bool = dataclasses.field(init=False)

    def __post_init__(self):
        # Every input and output has a leading unknown (batch) dimension; asked on every request.
        specs = (*self.inputs.values(), *self.outputs.values())
        object.__setattr__(self, "batchable", all(spec.batched for spec in specs))

    def check_input_names(self, names: Collection[str]) -> None:
        """predict_util.cc's first checks, made before any tensor is decoded: one input per signature alias."""
        expected = self.inputs
        if len(names) != len(expected):
            _raise_size_mismatch(names, expected)
        for alias in names:
            if alias not in expected:
                raise errors.invalid_argument(
                    f"input tensor alias not found in signature: {alias}. Inputs expected to be in the set "
                    f"{{{','.join(sorted(expected))}}}."
                )


class Servable:
    """A model version ready to serve. Thread-safe: the model may be called from several threads."""

    def __init__(self, name: str, version: int, path: str, meta_graph: Any, loaded: Any):
        self.name = name
        self.version = version
        self.path = path
        self.meta_graph = meta_graph
        self._loaded = loaded
        self.signatures = {key: _signature(key, sig) for key, sig in meta_graph.signature_def.items()}
        self._functions = {key: loaded.signatures[key] for key in self.signatures if key in loaded.signatures}
        self._flat_orders = {key: _flat_order(function) for key, function in self._functions.items()}

    @classmethod
    def load(cls, name: str, version: int, path: str) -> "Servable":
        """Loads `path`; raises ServingError (NOT_FOUND, DATA_LOSS, ...) if it is not a usable SavedModel."""
        meta_graph = read_meta_graph(path)
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(path, tags=[contract.SERVING_TAG])
        except Exception as exc:  # noqa: BLE001 - any load failure becomes the version's error status
            raise errors.from_exception(exc) from exc
        return cls(name, version, path, meta_graph, loaded)

    # --- the model call -------------------------------------------------------------------------------

    def uses_flat_call(self, signature_name: str) -> bool:
        """Whether `run` calls this signature through ConcreteFunction's private flat call (see `_flat_order`)."""
        return self._flat_orders.get(signature_name) is not None

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Calls one signature on already validated inputs; returns the (filtered) outputs as numpy."""
        import tensorflow as tf

        function = self._functions[signature_name]
        order = self._flat_orders.get(signature_name)
        try:
            if order is not None and len(order) == len(inputs):
                outputs = function._call_flat([tf.constant(inputs[alias]) for alias in order], function.captured_inputs)
            else:
                outputs = function(**{alias: tf.constant(value) for alias, value in inputs.items()})
        except UnicodeDecodeError as exc:
            # TensorFlow raises this instead of the op's error when the message quotes binary input, e.g.
            # ParseExample's "Could not parse example input, value: '...'": the request's inputs were at fault.
            raise errors.invalid_argument(bytes(exc.object).decode("utf-8", "replace")) from exc
        except Exception as exc:  # noqa: BLE001 - TF raises many types; callers get a status
            error = errors.from_exception(exc)
            if error.code == errors.Code.DATA_LOSS:
                # A loaded model loses no data of its own while running: the request's serialized protos
                # were corrupt (decode_proto says DATA_LOSS where parse_example says INVALID_ARGUMENT).
                raise errors.invalid_argument(f"Could not parse example input: {error.message}") from exc
            raise error from exc
        wanted = output_filter or outputs.keys()
        return {alias: outputs[alias].numpy() for alias in wanted}

    # --- TF Serving's request checks ----------------------------------------------------------------

    def declared_signature(self, signature_name: str) -> Signature:
        """The SignatureDef TF Serving's REST API decodes a request's JSON against (GetInfoMap's message)."""
        name = signature_name or contract.DEFAULT_SIGNATURE
        signature = self.signatures.get(name)
        if signature is None:
            raise errors.invalid_argument(f'Serving signature name: "{name}" not found in signature def')
        return signature

    def predict_signature(self, signature_name: str) -> Signature:
        name = signature_name or contract.DEFAULT_SIGNATURE
        signature = self.signatures.get(name)
        if signature is None or name not in self._functions:
            raise errors.failed_precondition(f'Serving signature key "{name}" not found.')
        return signature

    def check_predict_inputs(self, signature: Signature, inputs: Mapping[str, np.ndarray],
                             output_filter: Sequence[str] = ()) -> None:
        """predict_util.cc checks, then dtype and shape checks the TF session would make."""
        signature.check_input_names(inputs)
        expected = signature.inputs
        for index, alias in enumerate(sorted(inputs)):
            spec, value = expected[alias], inputs[alias]
            given = tensors.dtype_enum(value)
            if given != spec.dtype:
                raise errors.invalid_argument(
                    f"Expects arg[{index}] to be {tensors.dtype_name(spec.dtype)} but {tensors.dtype_name(given)} is provided"
                )
            if not spec.accepts_shape(value.shape):
                raise errors.invalid_argument(
                    f"input tensor {alias}: shape {_shape_text(value.shape)} is not compatible with the "
                    f"signature's shape {_shape_text(spec.shape)}"
                )
        seen = set()
        for alias in output_filter:
            if alias not in signature.outputs:
                raise errors.invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(sorted(signature.outputs))}}}."
                )
            if alias in seen:
                raise errors.invalid_argument(f"duplicate output tensor alias: {alias}")
            seen.add(alias)

    def example_signature(self, signature_name: str, method: str, check_method_name: bool) -> Signature:
        """classifier.cc / regressor.cc signature checks for Classify (method=classify) and Regress."""
        name = signature_name or contract.DEFAULT_SIGNATURE
        signature = self.signatures.get(name)
        if signature is None or name not in self._functions:
            raise errors.invalid_argument(f"No signature was found with the name: {name}")
        kind = "classification" if method == contract.CLASSIFY_METHOD else "regression"
        if check_method_name and signature.method_name != method:
            raise errors.invalid_argument(
                f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
            )
        if len(signature.inputs) != 1:
            raise errors.invalid_argument("Expected one input Tensor.")
        if method == contract.CLASSIFY_METHOD:
            if len(signature.outputs) not in (1, 2):
                raise errors.invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
            if contract.CLASSIFY_INPUTS not in signature.inputs:
                raise errors.invalid_argument(f"No classification inputs found in SignatureDef: {_debug(signature)}")
            if contract.CLASSES not in signature.outputs and contract.SCORES not in signature.outputs:
                raise errors.invalid_argument(
                    'Expected classification signature outputs to contain at least one of "classes" or "scores". '
                    f"Signature was: {_debug(signature)}"
                )
        else:
            if len(signature.outputs) != 1:
                raise errors.invalid_argument("Expected one output Tensor.")
            if contract.REGRESS_INPUTS not in signature.inputs:
                raise errors.invalid_argument(f"No regression inputs found in SignatureDef: {_debug(signature)}")
            if contract.REGRESS_OUTPUTS not in signature.outputs:
                raise errors.invalid_argument(f"No regression outputs found in SignatureDef: {_debug(signature)}")
        return signature


def _flat_order(function: Any) -> list[str] | None:
    """Argument order for ConcreteFunction._call_flat (a private API), or None to use the public keyword call.

    The keyword call spends about as long binding and checking arguments in Python as the small model
    takes to run, holding the GIL the event loop needs. Inputs are validated before any call, so the
    flat call is used when (and only when) the function's placeholders provably match its parameters
    one to one, in order; anything unexpected falls back to the public API. A TensorFlow upgrade that
    changes these internals therefore costs speed, not correctness, and fails
    tests/integration/test_serving_private_apis.py, which requires the flat call for the served model.
    """
    try:
        names = list(function.function_type.parameters)
        placeholders = [tensor.name.split(":")[0] for tensor in function.inputs[: len(names)]]
        if names != placeholders or not callable(getattr(function, "_call_flat", None)):
            return None
        function.captured_inputs  # noqa: B018 - must exist for the flat call
    except Exception:  # noqa: BLE001 - a TF version without these internals
        return None
    return names


def read_meta_graph(path: str) -> Any:
    """The `serve` MetaGraphDef of the SavedModel at `path` (TF Serving's load errors if unusable)."""
    from serving import protos

    pb_path = os.path.join(path, "saved_model.pb")
    if not os.path.exists(pb_path):
        if os.path.exists(os.path.join(path, "saved_model.pbtxt")):
            raise errors.ServingError(errors.Code.UNIMPLEMENTED, f"text SavedModel {path}/saved_model.pbtxt is not supported")
        raise errors.not_found(
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}"
        )
    saved_model = protos.load().saved_model_pb2.SavedModel()
    try:
        with open(pb_path, "rb") as f:
            saved_model.ParseFromString(f.read())
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeError depending on backend
        raise errors.ServingError(errors.Code.DATA_LOSS, f"Could not parse SavedModel proto at {pb_path}") from None
    for meta_graph in saved_model.meta_graphs:
        if contract.SERVING_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise errors.not_found(f"Could not find meta graph def matching supplied tags: {{ serve }} in {path}")


def _signature(name: str, signature_def: Any) -> Signature:
    return Signature(
        name=name,
        method_name=signature_def.method_name,
        inputs={alias: _tensor_spec(info) for alias, info in signature_def.inputs.items()},
        outputs={alias: _tensor_spec(info) for alias, info in signature_def.outputs.items()},
    )


def _tensor_spec(info: Any) -> TensorSpec:
    shape = info.tensor_shape
    if shape.unknown_rank:
        return TensorSpec(info.dtype, None)
    return TensorSpec(info.dtype, tuple(int(dim.size) for dim in shape.dim))


def _raise_size_mismatch(inputs: Collection[str], expected: Mapping[str, Any]) -> None:
    sent, wanted = set(inputs), set(expected)
    raise errors.invalid_argument(
        f"input size does not match signature: {len(inputs)}!={len(expected)} "
        f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
        f"Sent extra: {{{','.join(sorted(sent - wanted))}}}. Missing but required: {{{','.join(sorted(wanted - sent))}}}."
    )


def _shape_text(shape: Sequence[int] | None) -> str:
    return "[?]" if shape is None else "[" + ",".join(str(int(d)) for d in shape) + "]"


def _debug(signature: Signature) -> str:
    return f"method_name: {signature.method_name} inputs: {sorted(signature.inputs)} outputs: {sorted(signature.outputs)}"

