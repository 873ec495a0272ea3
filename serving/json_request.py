"""TF Serving's REST request JSON -> numpy arrays and tf.Examples, following tensorflow_serving/util/json_tensor.cc.

Predict: `instances` (row format: a list with one value per input, or one object per row keyed by input
name) or `inputs` (columnar: one value, or an object keyed by input name), decoded against the
signature's input specs; `{"b64": ...}` for binary strings; `NaN`/`Infinity` accepted; a number a
float/double input (or float feature) cannot hold without loss is refused, as by IsLosslessDecimal.
Classify/regress: `examples` (+ optional `context`) as tf.Example-like objects, returned serialized.
Errors carry TF Serving's message texts. The response direction is `serving.json_response`.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
import sys
from typing import Any, Mapping

import numpy as np

from serving import errors, tensors
from serving.servable import TensorSpec

try:  # orjson is in the lock file; the stdlib parser remains the reference (it also accepts NaN).
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

#: The request formats; a predict response is written in the format of its request.
ROW, COLUMNAR = "row", "columnar"
_MAX_DEBUG_BYTES = 256
_INT_RANGES = {
    tensors.DT_INT8: (-(2**31), 2**31 - 1), tensors.DT_INT16: (-(2**31), 2**31 - 1),
    tensors.DT_INT32: (-(2**31), 2**31 - 1), tensors.DT_UINT8: (-(2**31), 2**31 - 1),
    tensors.DT_INT64: (-(2**63), 2**63 - 1), tensors.DT_UINT32: (0, 2**32 - 1), tensors.DT_UINT64: (0, 2**64 - 1),
}
_FLOAT_TYPES = (tensors.DT_FLOAT, tensors.DT_DOUBLE, tensors.DT_HALF)
# IsLosslessDecimal: (largest integer the type holds exactly, largest finite value) per decimal type.
_LOSSLESS_LIMITS = {tensors.DT_FLOAT: (2**24 - 1, float(np.finfo(np.float32).max)),
                    tensors.DT_DOUBLE: (2**53 - 1, sys.float_info.max)}
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


# --- parsing --------------------------------------------------------------------------------------------

def parse_document(body: bytes) -> dict:
    if not body:
        raise errors.invalid_argument("JSON Parse error: The document is empty")
    doc = None
    if _orjson is not None:
        try:
            doc = _orjson.loads(body)
        except _orjson.JSONDecodeError:
            doc = None
    if doc is None:
        doc = _parse_with_stdlib(body)
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    return doc


def _parse_with_stdlib(body: bytes) -> Any:
    """json.loads for what orjson refuses (NaN, Infinity, ...), reading the document as rapidjson does.

    Strict UTF-8; integers past 64 bits become doubles; numbers too big for a double and unpaired
    surrogate escapes (`\\ud800`) are parse errors: Python would accept them and then fail (500) wherever
    they are converted or encoded.
    """
    try:
        doc = json.loads(body.decode("utf-8"), parse_int=_json_integer, parse_float=_json_decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        message = getattr(exc, "msg", str(exc))
        offset = getattr(exc, "pos", getattr(exc, "start", 0))
        raise errors.invalid_argument(f"JSON Parse error: {message} at offset: {offset}") from None
    except RecursionError:  # orjson stops at depth 1024; the stdlib parser would recurse until it crashes
        raise errors.invalid_argument("JSON Parse error: The document is nested too deeply") from None
    if _SURROGATE_ESCAPE.search(body) and _has_unpaired_surrogate(doc):
        raise errors.invalid_argument("JSON Parse error: The surrogate pair in string is invalid.")
    return doc


def _json_integer(text: str) -> int | float:
    if len(text) <= 20:  # int64 and uint64 fit in 20 characters; int() refuses very long digit strings
        value = int(text)
        if -(2**63) <= value < 2**64:
            return value
    return _json_decimal(text)


def _json_decimal(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # an overflowing literal; `Infinity` itself comes through parse_constant
        raise errors.invalid_argument("JSON Parse error: Number too big to be stored in double.")
    return value


def _has_unpaired_surrogate(doc: Any) -> bool:
    """Whether any string (key or value) holds a surrogate: json.loads has joined every valid pair."""
    pending = [doc]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                return True
        elif isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def signature_name(doc: dict) -> str:
    value = doc.get("signature_name", "")
    if not isinstance(value, str):
        raise errors.invalid_argument(
            f"JSON Value: {debug_string(doc)} not formatted correctly. 'signature_name' key must be a string value."
        )
    return value


def predict_inputs(doc: dict, specs: Mapping[str, TensorSpec]) -> tuple[str, dict[str, np.ndarray]]:
    """(format, inputs) from a predict request whose signature inputs are `specs`."""
    if not specs:
        raise errors.invalid_argument("Failed to get input map for signature")
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise format_error(doc, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ")
    if has_instances:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise format_error(doc, "Expecting 'instances' to be an list/array")
        if not instances:
            raise format_error(doc, "No values in 'instances' array")
        return ROW, _from_instances(instances, specs)
    if has_inputs:
        return COLUMNAR, _from_inputs(doc["inputs"], specs)
    raise errors.invalid_argument("Missing 'inputs' or 'instances' key")


def _from_instances(instances: list, specs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray]:
    names = sorted(specs)
    objects = _is_object(instances[0])
    if not objects and len(specs) > 1:
        raise errors.invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors required as per tensorinfo_map"
        )
    columns: dict[str, list] = {name: [] for name in names}
    shapes: dict[str, tuple] = {}
    for index, element in enumerate(instances):
        if objects:
            if not _is_object(element):
                raise errors.invalid_argument(f"Expecting object but got list at item {index} of input list")
            for key, value in element.items():
                try:
                    _add_instance_item(key, value, specs, columns, shapes)
                except errors.ServingError as exc:
                    raise errors.invalid_argument(
                        f"Failed to process element: {index} key: {key} of 'instances' list. Error: {exc.status_string()}"
                    ) from None
            if len(element) != len(names) or any(name not in element for name in names):
                raise errors.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: {debug_string(element)} "
                    f"keys must be equal to: {','.join(names)}"
                )
        else:
            if _is_object(element):
                raise errors.invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            try:
                _add_instance_item(names[0], element, specs, columns, shapes)
            except errors.ServingError as exc:
                raise errors.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. Error: {exc.status_string()}"
                ) from None
    count = len(instances)
    return {name: _to_array(columns[name], specs[name].dtype, (count, *shapes[name])) for name in names if name in shapes}


def _add_instance_item(name: str, value: Any, specs: Mapping[str, TensorSpec], columns: dict, shapes: dict) -> None:
    spec = specs.get(name)
    if spec is None:
        raise errors.invalid_argument(f"JSON object: does not have named input: {name}")
    values = columns[name]
    before = len(values)
    shape = _dense_shape(value)
    _fill(value, 0, shape, spec.dtype, values)
    size = len(values) - before
    known = shapes.get(name)
    if known is None:
        shapes[name] = shape
    elif _count(known) != size:
        raise errors.invalid_argument(f"Expecting tensor size: {_count(known)} but got: {size}")
    elif known != shape:
        raise errors.invalid_argument(f"Expecting shape {_shape_text(known)} but got: {_shape_text(shape)}")


def _from_inputs(value: Any, specs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_b64(value):
        if len(specs) > 1:
            raise errors.invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as per tensorinfo_map"
            )
        (name, spec), = specs.items()
        return {name: _tensor(value, spec.dtype)}
    out = {}
    for name in sorted(specs):
        if name not in value:
            raise errors.invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        out[name] = _tensor(value[name], specs[name].dtype)
    return out


def _tensor(value: Any, dtype: int) -> np.ndarray:
    shape = _dense_shape(value)
    values: list = []
    _fill(value, 0, shape, dtype, values)
    return _to_array(values, dtype, shape)


def _dense_shape(value: Any) -> tuple:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _fill(value: Any, level: int, shape: tuple, dtype: int, out: list) -> None:
    """FillTensorProto: leaves must sit exactly at depth len(shape), lists must match the shape."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise errors.invalid_argument(
                f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {rank}"
            )
        out.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise errors.invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise errors.invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: {shape[level]}"
        )
    if level == rank - 1:
        for item in value:
            if isinstance(item, list):
                raise errors.invalid_argument(f"Encountered list at unexpected level: {level + 1} expected < {rank}")
            out.append(_scalar(item, dtype))
        return
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _scalar(value: Any, dtype: int) -> Any:
    kind = type(value)
    if dtype == tensors.DT_STRING:
        if kind is str:
            return value.encode("utf-8")
        if kind is dict:
            return decode_b64(value)
        raise type_error(value, dtype)
    if kind is dict:
        raise type_error(value, dtype)
    if dtype in _FLOAT_TYPES:
        if kind is not float and kind is not int:
            raise type_error(value, dtype)
        if dtype in _LOSSLESS_LIMITS and not _is_lossless_decimal(value, dtype):
            raise lossy_decimal_error(value, dtype)
        return value
    if dtype == tensors.DT_BOOL:
        if kind is bool:
            return value
        raise type_error(value, dtype)
    bounds = _INT_RANGES.get(dtype)
    if bounds is None:
        raise errors.ServingError(
            errors.Code.UNIMPLEMENTED,
            f"Conversion of JSON Value: {debug_string(value)} to type: {tensors.dtype_name(dtype)}",
        )
    if kind is int and bounds[0] <= value <= bounds[1]:
        return value
    raise type_error(value, dtype)


def _to_array(values: list, dtype: int, shape: tuple) -> np.ndarray:
    if dtype == tensors.DT_STRING:
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        array = np.array(values, dtype=tensors.numpy_dtype(dtype))
    return array if len(shape) == 1 else array.reshape(shape)


def decode_b64(value: Any) -> bytes:
    if not _is_b64(value):
        raise errors.invalid_argument(f"JSON Value: {debug_string(value)} not formatted correctly for base64 data")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_argument("Unable to base64 decode") from None


# --- classify / regress ---------------------------------------------------------------------------------

def serialized_examples(doc: dict) -> np.ndarray:
    """`examples` (+ `context`) -> serialized tf.Examples, the context's bytes first (TF Serving's merge)."""
    from serving import protos

    example_cls = protos.load().example_pb2.Example
    context = b""
    if "context" in doc:
        context = _example(doc["context"], example_cls).SerializeToString()
    if "examples" not in doc:
        raise format_error(doc, "When method is classify, key 'examples' is expected and was not found")
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise format_error(doc, "'examples' value is an empty array")
    array = np.empty(len(examples), dtype=object)
    array[:] = [context + _example(item, example_cls).SerializeToString() for item in examples]
    return array


def _example(value: Any, example_cls: Any) -> Any:
    if not isinstance(value, dict):
        raise errors.invalid_argument(f"Example must be JSON object but got JSON {json_type(value)}")
    example = example_cls()
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(name, item, feature)
    return example


def _add_feature_value(name: str, value: Any, feature: Any) -> None:
    kind = type(value)
    if value is None or kind is list:
        raise errors.invalid_argument(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
    if kind is dict:
        if not _is_b64(value):
            raise errors.invalid_argument(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
        _feature_list(name, feature, "bytes_list").append(decode_b64(value))
    elif kind is bool:
        _feature_list(name, feature, "int64_list").append(1 if value else 0)
    elif kind is str:
        _feature_list(name, feature, "bytes_list").append(value.encode("utf-8"))
    elif kind is float:
        if not _is_lossless_decimal(value, tensors.DT_FLOAT):
            raise lossy_decimal_error(value, tensors.DT_FLOAT)
        _feature_list(name, feature, "float_list").append(value)
    else:
        if value >= 2**63:
            raise errors.invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        _feature_list(name, feature, "int64_list").append(value)


def _feature_list(name: str, feature: Any, wanted: str) -> Any:
    current = feature.WhichOneof("kind")
    if current not in (None, wanted):
        kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}[current]
        raise errors.invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")
    return getattr(feature, wanted).value


# --- helpers --------------------------------------------------------------------------------------------

def _is_b64(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_object(value: Any) -> bool:
    return type(value) is dict and not _is_b64(value)


def _is_lossless_decimal(value: int | float, dtype: int) -> bool:
    """TF Serving's IsLosslessDecimal: a JSON number the decimal type holds without rounding or overflow."""
    max_integer, max_value = _LOSSLESS_LIMITS[dtype]
    if type(value) is int:
        return abs(value) <= max_integer
    return not math.isfinite(value) or abs(value) <= max_value


def _count(shape: tuple) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _shape_text(shape: tuple) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def debug_string(value: Any) -> str:
    """The value as compact JSON, cut at 256 bytes like TF Serving's JsonValueToDebugString."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    return text[:_MAX_DEBUG_BYTES]


def type_error(value: Any, dtype: int) -> errors.ServingError:
    return errors.invalid_argument(
        f"JSON Value: {debug_string(value)} Type: {json_type(value)} is not of expected type: {tensors.dtype_name(dtype)}"
    )


def lossy_decimal_error(value: Any, dtype: int) -> errors.ServingError:
    return errors.invalid_argument(
        f"Cannot convert JSON value: {debug_string(value)} to {tensors.dtype_name(dtype)} without loss of precision."
    )


def format_error(value: Any, message: str) -> errors.ServingError:
    return errors.invalid_argument(f"JSON Value: {debug_string(value)} {message}")
