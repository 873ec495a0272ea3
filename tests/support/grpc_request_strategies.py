"""Hypothesis strategies for TF Serving gRPC requests to the fixture model, most of them hostile.

Structured strategies build each request message the way a client could, then bend it: model specs
with path tricks, unicode, empty names, negative or huge versions and unknown labels; TensorProtos of
every DataType (and invalid enum values) whose shapes are negative, zero, huge, of unknown rank or
deeper than TensorFlow allows and whose values do not fill them; tf.Examples whose features have the
wrong kind or count. Well-formed parts are drawn often enough that requests also reach the model.

`mutated_bytes` works below the message level, on the serialized bytes of a valid request: fields
dropped, repeated or altered anywhere in it (tests/support/protobuf_wire_mutations.py), or raw bit flips,
truncations, insertions, deletions and repeats.
"""
from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.support.protobuf_wire_mutations import encode_varint, wire_mutation
from tests.support.serving_fixtures import CATEGORICAL_FEATURES, FEATURE_NAMES, INTEGER_FEATURES, NUMERIC_FEATURES
from trainer import contract

MODEL_NAME = "penguin"
SIGNATURE_NAMES = (contract.SERVING_SIGNATURE, contract.CLASSIFY_SIGNATURE, contract.REGRESS_SIGNATURE,
                   contract.TRANSFORM_SIGNATURE)
PREDICT_OUTPUTS = (contract.SCORES, contract.CLASSES, contract.PREDICTED_CLASS)
DT_FLOAT, DT_STRING = 1, 7
FEATURE_DTYPES = {name: DT_FLOAT for name in NUMERIC_FEATURES} | {name: DT_STRING for name in CATEGORICAL_FEATURES}
EXAMPLE_KINDS = {name: "int64_list" if name in INTEGER_FEATURES else "float_list" for name in NUMERIC_FEATURES} | {
    name: "bytes_list" for name in CATEGORICAL_FEATURES}

_HOSTILE_NAMES = ("", " ", "../penguin", "penguin/../penguin", "%2e%2e%2fpenguin", "/etc/passwd", "penguin\x00",
                  "Penguin", "penguin ", "ペンギン", "\u202epenguin", "x" * 2000)
_HOSTILE_VERSIONS = (0, -1, 2, 2**31, 2**63 - 1, -(2**63))
_LABELS = ("", "stable", "canary", "../stable", "stable\x00")
_HOSTILE_DIMS = (-1, -(2**63), 2**20, 2**31, 2**40, 2**62, 2**63 - 1)
# All of types.proto's DataType values (refs included) and enum values no TensorFlow knows.
_DTYPES = tuple(range(0, 31)) + (101, 102, 107, 109, 119, 130) + (-1, 99, 1000, 2**31 - 1)
_SERVED_DTYPES = (1, 2, 3, 4, 5, 6, 7, 9, 10, 17, 19, 22, 23)  # those serving.tensors decodes
_VALUE_ELEMENTS = {
    "float_val": st.floats(width=32),
    "double_val": st.floats(),
    "int_val": st.integers(-(2**31), 2**31 - 1),
    "int64_val": st.integers(-(2**63), 2**63 - 1),
    "uint32_val": st.integers(0, 2**32 - 1),
    "uint64_val": st.integers(0, 2**64 - 1),
    "bool_val": st.booleans(),
    "half_val": st.integers(-(2**31), 2**31 - 1),
    "string_val": st.binary(max_size=12),
    "scomplex_val": st.floats(width=32),
    "dcomplex_val": st.floats(),
}


def _apis():
    from serving import protos

    return protos.load()


def _one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in `n` draws; shrinks to False."""
    return st.integers(0, n - 1).map(lambda value: value == n - 1)


# --- model specs ------------------------------------------------------------------------------------------

def model_names() -> st.SearchStrategy[str]:
    return st.one_of(st.just(MODEL_NAME), st.sampled_from(_HOSTILE_NAMES), st.text(max_size=12))


def signature_names(usual: str = "") -> st.SearchStrategy[str]:
    hostile = st.one_of(st.sampled_from(SIGNATURE_NAMES + ("predict", "../serving_default", "serving_default\x00")),
                        st.text(max_size=12))
    return st.one_of(st.just(usual), hostile)


@st.composite
def model_specs(draw, signature: str = "") -> Any | None:
    """A ModelSpec (None: the request has none), well-formed about half the time."""
    if draw(_one_in(12)):
        return None
    spec = _apis().model_pb2.ModelSpec(signature_name=draw(signature_names(signature)))
    if not draw(st.booleans()):
        spec.name = MODEL_NAME
        if draw(st.booleans()):
            spec.version.value = 1
        return spec
    spec.name = draw(model_names())
    choice = draw(st.sampled_from(("latest", "version", "label")))
    if choice == "version":
        spec.version.value = draw(st.one_of(st.just(1), st.sampled_from(_HOSTILE_VERSIONS),
                                            st.integers(-(2**63), 2**63 - 1)))
    elif choice == "label":
        spec.version_label = draw(st.one_of(st.sampled_from(_LABELS), st.text(max_size=8)))
    return spec


def _with_spec(request: Any, spec: Any | None) -> Any:
    if spec is not None:
        request.model_spec.CopyFrom(spec)
    return request


# --- tensors ----------------------------------------------------------------------------------------------

@st.composite
def tensor_shapes(draw) -> tuple[list[int], bool]:
    """(dims, unknown_rank): mostly small dims, sometimes hostile ones or more than TensorFlow's 254."""
    dim = st.one_of(st.integers(0, 4), st.sampled_from(_HOSTILE_DIMS))
    if draw(_one_in(10)):  # deeper than numpy (32) or TensorFlow (254) allow
        return [draw(st.integers(0, 2))] * draw(st.sampled_from((33, 255))), False
    return draw(st.lists(dim, max_size=3)), draw(_one_in(8))


@st.composite
def tensor_protos(draw) -> Any:
    """A TensorProto of any dtype whose values or tensor_content may not match its shape."""
    dtype = draw(st.one_of(st.sampled_from(_SERVED_DTYPES), st.sampled_from(_DTYPES)))
    proto = _apis().tensor_pb2.TensorProto(dtype=dtype)
    dims, proto.tensor_shape.unknown_rank = draw(tensor_shapes())
    for size in dims:
        proto.tensor_shape.dim.add(size=size, name=draw(st.sampled_from(("", "batch", "\x00"))))
    if draw(st.booleans()):
        proto.tensor_content = draw(st.binary(max_size=64))
    for field in draw(st.lists(st.sampled_from(sorted(_VALUE_ELEMENTS)), max_size=2, unique=True)):
        getattr(proto, field).extend(draw(st.lists(_VALUE_ELEMENTS[field], max_size=10)))
    return proto


def encode_string_list(values: list[bytes]) -> bytes:
    """TensorFlow's tensor_content for DT_STRING (port::EncodeStringList): varint lengths, then the bytes."""
    return b"".join(encode_varint(len(value)) for value in values) + b"".join(values)


@st.composite
def feature_tensor(draw, name: str, rows: int) -> Any:
    """A well-formed `serving_default` input: the feature's dtype, shape [rows], values in one of the
    ways clients send them (one per row, one broadcast value, none for zeros, packed tensor_content)."""
    proto = _apis().tensor_pb2.TensorProto(dtype=FEATURE_DTYPES[name])
    proto.tensor_shape.dim.add(size=rows)
    numeric = name in NUMERIC_FEATURES
    values = draw(st.lists(st.floats(width=32) if numeric else st.binary(max_size=12), min_size=rows, max_size=rows))
    layout = draw(st.sampled_from(("values", "broadcast", "content", "zeros")))
    if layout == "content" and numeric:
        import numpy as np

        proto.tensor_content = np.asarray(values, dtype="<f4").tobytes()
    elif layout == "content":
        proto.tensor_content = encode_string_list(values)
    elif layout != "zeros":
        field = proto.float_val if numeric else proto.string_val
        field.extend(values[:1] if layout == "broadcast" else values)
    return proto


# --- Predict ----------------------------------------------------------------------------------------------

def _input_names() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(FEATURE_NAMES), st.sampled_from((contract.CLASSIFY_INPUTS, contract.TRANSFORM_INPUTS, "../island", "")),
                     st.text(max_size=8))


@st.composite
def predict_requests(draw) -> Any:
    """The six features for a few rows, then up to three inputs replaced, dropped or added."""
    request = _with_spec(_apis().predict_pb2.PredictRequest(), draw(model_specs()))
    rows = draw(st.integers(0, 4))
    inputs = {name: draw(feature_tensor(name, rows)) for name in FEATURE_NAMES}
    for _ in range(draw(st.integers(0, 3))):
        edit, name = draw(st.sampled_from(("replace", "drop", "add"))), draw(_input_names())
        if edit == "drop":
            inputs.pop(name, None)
        else:
            inputs[name] = draw(tensor_protos())
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    output = st.one_of(st.sampled_from(PREDICT_OUTPUTS + (contract.REGRESS_OUTPUTS, "")), st.text(max_size=6))
    request.output_filter.extend(draw(st.lists(output, max_size=3)))
    return request


# --- Classify / Regress -----------------------------------------------------------------------------------

_FEATURE_VALUES = {
    "float_list": st.floats(width=32),
    "int64_list": st.integers(-(2**63), 2**63 - 1),
    "bytes_list": st.binary(max_size=12),
}


@st.composite
def examples(draw) -> Any:
    """A tf.Example with some of the model's features (one value of the right kind), maybe bent:
    a feature of the wrong kind, with no or several values, with no kind at all, or unknown."""
    example = _apis().example_pb2.Example()
    for name in draw(st.lists(st.sampled_from(FEATURE_NAMES), unique=True)):
        kind = EXAMPLE_KINDS[name]
        getattr(example.features.feature[name], kind).value.append(draw(_FEATURE_VALUES[kind]))
    for _ in range(draw(st.integers(0, 2))):
        feature = example.features.feature[draw(_input_names())]
        feature.Clear()
        kind = draw(st.sampled_from(sorted(_FEATURE_VALUES) + ["none"]))
        if kind != "none":
            values = draw(st.lists(_FEATURE_VALUES[kind], max_size=3))
            getattr(feature, kind).value.extend(values)
            getattr(feature, kind).SetInParent()
    return example


@st.composite
def model_inputs(draw) -> Any:
    """An Input with an example_list, an example_list_with_context, or nothing."""
    model_input = _apis().input_pb2.Input()
    kind = draw(st.sampled_from(("example_list", "example_list_with_context", "none")))
    items = draw(st.lists(examples(), max_size=4))
    if kind == "example_list":
        model_input.example_list.examples.extend(items)
        model_input.example_list.SetInParent()
    elif kind == "example_list_with_context":
        model_input.example_list_with_context.examples.extend(items)
        model_input.example_list_with_context.context.CopyFrom(draw(examples()))
    return model_input


@st.composite
def classification_requests(draw) -> Any:
    request = _with_spec(_apis().classification_pb2.ClassificationRequest(), draw(model_specs(contract.CLASSIFY_SIGNATURE)))
    request.input.CopyFrom(draw(model_inputs()))
    return request


@st.composite
def regression_requests(draw) -> Any:
    request = _with_spec(_apis().regression_pb2.RegressionRequest(), draw(model_specs(contract.REGRESS_SIGNATURE)))
    request.input.CopyFrom(draw(model_inputs()))
    return request


# --- metadata, status, config -----------------------------------------------------------------------------

@st.composite
def metadata_requests(draw) -> Any:
    request = _with_spec(_apis().get_model_metadata_pb2.GetModelMetadataRequest(), draw(model_specs()))
    field = st.one_of(st.just("signature_def"), st.sampled_from(("", "signature_defs", "SIGNATURE_DEF", "../x")),
                      st.text(max_size=8))
    request.metadata_field.extend(draw(st.lists(field, max_size=3)))
    return request


@st.composite
def status_requests(draw) -> Any:
    return _with_spec(_apis().get_model_status_pb2.GetModelStatusRequest(), draw(model_specs()))


@st.composite
def reload_config_requests(draw, base_path: str) -> Any:
    """No config, a custom config, or the served model's entry (with labels) among invalid entries:
    relative or empty paths, other platforms, empty or repeated names. The test still checks that a
    config could not replace the served model before sending it."""
    apis = _apis()
    request = apis.model_management_pb2.ReloadConfigRequest()
    kind = draw(st.sampled_from(("model_config_list", "custom_model_config", "none")))
    if kind == "custom_model_config":
        request.config.custom_model_config.type_url = draw(st.text(max_size=20))
        request.config.custom_model_config.value = draw(st.binary(max_size=20))
    if kind != "model_config_list":
        return request
    served = apis.model_server_config_pb2.ModelConfig(name=MODEL_NAME, base_path=base_path, model_platform="tensorflow")
    for label, version in draw(st.dictionaries(st.one_of(st.sampled_from(_LABELS), st.text(max_size=6)),
                                               st.sampled_from((1, 2, 0, -1)), max_size=2)).items():
        served.version_labels[label] = version
    invalid = st.builds(apis.model_server_config_pb2.ModelConfig, name=st.sampled_from(("", MODEL_NAME, "other")),
                        base_path=st.sampled_from(("", "relative/path", "../" + MODEL_NAME)),
                        model_platform=st.sampled_from(("tensorflow", "", "pytorch")))
    entries = draw(st.permutations([served] + draw(st.lists(invalid, max_size=2))))
    request.config.model_config_list.config.extend(entries)
    request.config.model_config_list.SetInParent()
    return request


# --- bytes ------------------------------------------------------------------------------------------------

_RAW_EDITS = st.tuples(st.sampled_from(("flip", "truncate", "insert", "delete", "overwrite", "repeat")),
                       st.integers(0, 2**16), st.binary(min_size=1, max_size=8))


@st.composite
def mutated_bytes(draw, seed: bytes) -> bytes:
    """`seed` after one to three edits: of its fields, keeping the wire format valid (so that it mostly
    still parses), or of its raw bytes (so that it mostly does not)."""
    edits = draw(st.integers(1, 3))
    if draw(st.booleans()):
        for _ in range(edits):
            seed = draw(wire_mutation(seed))
        return seed
    data = bytearray(seed)
    for kind, where, payload in draw(st.lists(_RAW_EDITS, min_size=edits, max_size=edits)):
        at = where % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << (payload[0] % 8)
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = payload
        elif kind == "delete":
            del data[at:at + payload[0] % 16 + 1]
        elif kind == "overwrite":
            data[at:at + len(payload)] = payload
        elif kind == "repeat":
            data[at:at] = data[at:at + payload[0] % 32 + 1]
    return bytes(data)
