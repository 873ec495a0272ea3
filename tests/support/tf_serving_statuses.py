"""The gRPC status codes TF Serving answers a request to the fixture model with: a test oracle.

Written from TF Serving's source, stage by stage, because the stage that fails first decides the code:
the request's ModelSpec (server_core.cc ServableRequestFromModelSpec: no name or an unknown label is
INVALID_ARGUMENT, an unknown model or version NOT_FOUND), then the signature (predict_util.cc: a missing
one is FAILED_PRECONDITION; classifier.cc / regressor.cc: INVALID_ARGUMENT), then everything about the
inputs, INVALID_ARGUMENT (get_model_metadata_impl.cc and get_model_status_impl.cc check their own
fields first). Whether TensorFlow can parse a TensorProto is asked of TensorFlow itself (the ParseTensor
op runs the Tensor::FromProto TF Serving calls), for tensors small enough to allocate.

Each function returns the set of codes TF Serving could answer with: one code where its answer is
determined, {OK, INVALID_ARGUMENT} where only running the model would tell.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import grpc

from tests.support.grpc_request_strategies import (
    EXAMPLE_KINDS, FEATURE_DTYPES, MODEL_NAME, PREDICT_OUTPUTS, SIGNATURE_NAMES,
)
from trainer import contract

OK, INVALID_ARGUMENT = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND, FAILED_PRECONDITION = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION
RUN_DECIDES = frozenset({OK, INVALID_ARGUMENT})
_LARGEST_TENSOR_TO_PARSE = 2**22  # elements; beyond this the oracle does not allocate the tensor
_MAX_RANK = 254  # TensorShape::MaxDimensions()


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """What the server serves: the fixture model, its versions and labels, its batching limit."""

    versions: frozenset[int]
    labels: Mapping[str, int]
    max_batch_size: int


def expected_statuses(method: str, request: Any, served: ServedModel) -> frozenset[grpc.StatusCode]:
    return _BY_METHOD[method](request, served)


def _spec_failure(request: Any, served: ServedModel) -> grpc.StatusCode | None:
    if not request.HasField("model_spec") or not request.model_spec.name:
        return INVALID_ARGUMENT
    spec = request.model_spec
    choice = spec.WhichOneof("version_choice")
    version = None
    if choice == "version":
        version = spec.version.value
    elif choice == "version_label":
        version = served.labels.get(spec.version_label) if spec.name == MODEL_NAME else None
        if version is None:
            return INVALID_ARGUMENT
    if spec.name != MODEL_NAME or (version is not None and version not in served.versions):
        return NOT_FOUND
    return None


def _predict(request: Any, served: ServedModel) -> frozenset[grpc.StatusCode]:
    if failure := _spec_failure(request, served):
        return frozenset({failure})
    signature = request.model_spec.signature_name or contract.SERVING_SIGNATURE
    if signature not in SIGNATURE_NAMES:
        return frozenset({FAILED_PRECONDITION})
    if signature != contract.SERVING_SIGNATURE:  # serialized tf.Examples: parsing them is part of the model
        return RUN_DECIDES
    accepted = _serving_default_accepts(request, served)
    return RUN_DECIDES if accepted is None else frozenset({OK if accepted else INVALID_ARGUMENT})


def _serving_default_accepts(request: Any, served: ServedModel) -> bool | None:
    """True/False when the model certainly answers/fails; None when it is not certain."""
    if set(request.inputs) != set(FEATURE_DTYPES):
        return False
    filter_ok = set(request.output_filter) <= set(PREDICT_OUTPUTS) and \
        len(set(request.output_filter)) == len(request.output_filter)
    checks = [filter_ok]
    rows = set()
    for name, proto in request.inputs.items():
        parsed = tensorflow_parses(proto) if proto.dtype == FEATURE_DTYPES[name] else False
        checks.append(parsed)
        if parsed:
            dims = [dim.size for dim in proto.tensor_shape.dim]
            checks.append(len(dims) == 1)
            rows.add(dims[0] if dims else None)
    if False in checks or len(rows) > 1:
        return False
    if None in checks:
        return None
    batch = rows.pop()
    if batch > served.max_batch_size:
        return False  # batching: "Task size ... is larger than maximum input batch size"
    return None if batch == 0 else True


class TooLargeToParse(Exception):
    """The oracle will not allocate this tensor to find out whether TensorFlow parses it."""


def tensorflow_tensor(proto: Any):
    """What Tensor::FromProto makes of `proto`: an eager tensor, or None when TensorFlow rejects it."""
    import tensorflow as tf

    dims = [dim.size for dim in proto.tensor_shape.dim]
    shape_is_invalid = len(dims) > _MAX_RANK or any(d < 0 for d in dims)
    if not shape_is_invalid and math.prod(dims) > _LARGEST_TENSOR_TO_PARSE:
        raise TooLargeToParse(dims)
    try:
        return tf.raw_ops.ParseTensor(serialized=proto.SerializeToString(), out_type=tf.as_dtype(proto.dtype))
    except (tf.errors.InvalidArgumentError, TypeError):
        return None


def tensorflow_parses(proto: Any) -> bool | None:
    """Whether Tensor::FromProto accepts `proto` (None: too large to find out by allocating it)."""
    try:
        return tensorflow_tensor(proto) is not None
    except TooLargeToParse:
        return None


def _examples(request: Any, served: ServedModel, signature: str) -> frozenset[grpc.StatusCode]:
    """Classify (signature "classification") and Regress ("regression"): classifier.cc, regressor.cc."""
    if failure := _spec_failure(request, served):
        return frozenset({failure})
    if (request.model_spec.signature_name or contract.SERVING_SIGNATURE) != signature:
        return frozenset({INVALID_ARGUMENT})  # every other signature fails the signature checks
    kind = request.input.WhichOneof("kind")
    if kind is None:
        return frozenset({INVALID_ARGUMENT})
    if kind == "example_list":
        context, items = None, request.input.example_list.examples
    else:
        with_context = request.input.example_list_with_context
        context, items = with_context.context, with_context.examples
    if not items or len(items) > served.max_batch_size:
        return frozenset({INVALID_ARGUMENT})
    parts = ([context] if context is not None else []) + list(items)
    return frozenset({OK}) if all(example_is_well_formed(e) for e in parts) else RUN_DECIDES


def example_is_well_formed(example: Any) -> bool:
    """Every model feature it has holds one value of the kind the model parses (others are ignored), and
    it carries no unknown fields: protobuf keeps those (in map entries too) when TF Serving re-serializes
    the example, and TensorFlow's fast Example parser fails on them."""
    serialized = example.SerializeToString()  # first: reading the feature map drops its entries' unknown fields
    canonical = type(example)()
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind is not None:
            getattr(canonical.features.feature[name], kind).value.extend(getattr(feature, kind).value)
        else:
            canonical.features.feature[name].SetInParent()
        expected_kind = EXAMPLE_KINDS.get(name)
        if expected_kind is not None and (kind != expected_kind or len(getattr(feature, kind).value) != 1):
            return False
    return len(canonical.SerializeToString()) == len(serialized)


def _metadata(request: Any, served: ServedModel) -> frozenset[grpc.StatusCode]:
    if not request.HasField("model_spec") or not request.metadata_field:
        return frozenset({INVALID_ARGUMENT})
    if any(field != "signature_def" for field in request.metadata_field):
        return frozenset({INVALID_ARGUMENT})
    return frozenset({_spec_failure(request, served) or OK})


def _status(request: Any, served: ServedModel) -> frozenset[grpc.StatusCode]:
    if not request.HasField("model_spec"):
        return frozenset({INVALID_ARGUMENT})
    spec = request.model_spec  # a version label is ignored here
    known = spec.name == MODEL_NAME and (not spec.HasField("version") or spec.version.value in served.versions)
    return frozenset({OK if known else NOT_FOUND})


def _reload(request: Any, served: ServedModel) -> frozenset[grpc.StatusCode]:
    if request.config.WhichOneof("config") != "model_config_list":
        return frozenset({INVALID_ARGUMENT})
    return frozenset({OK, INVALID_ARGUMENT, FAILED_PRECONDITION})


_BY_METHOD = {
    "Predict": _predict,
    "Classify": lambda request, served: _examples(request, served, contract.CLASSIFY_SIGNATURE),
    "Regress": lambda request, served: _examples(request, served, contract.REGRESS_SIGNATURE),
    "GetModelMetadata": _metadata,
    "GetModelStatus": _status,
    "HandleReloadConfigRequest": _reload,
    "MultiInference": lambda request, served: frozenset({grpc.StatusCode.UNIMPLEMENTED}),
}
