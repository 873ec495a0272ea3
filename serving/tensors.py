"""numpy <-> `tensorflow.TensorProto` without TensorFlow.

`tf.make_tensor_proto` / `tf.make_ndarray` need the TensorFlow runtime; the client must not, and the
server's hot path is faster without their generality. Decoding accepts what TensorFlow's
Tensor::FromProto accepts, and reads it the same way: values come either from `tensor_content` (raw
little-endian bytes; for strings, varint lengths then the bytes) or from the typed `*_val` field, whose
last value repeats to fill the shape (up to MAX_BROADCAST_BYTES), whose extra values are ignored, and
which means zeros when empty; an empty tensor reads no values at all.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

# tensorflow/core/framework/types.proto
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 1, 2, 3, 4, 5, 6, 7
DT_INT64, DT_BOOL, DT_UINT16, DT_HALF, DT_UINT32, DT_UINT64 = 9, 10, 17, 19, 22, 23

_NUMPY_BY_DTYPE = {
    DT_FLOAT: np.dtype(np.float32),
    DT_DOUBLE: np.dtype(np.float64),
    DT_INT32: np.dtype(np.int32),
    DT_UINT8: np.dtype(np.uint8),
    DT_INT16: np.dtype(np.int16),
    DT_INT8: np.dtype(np.int8),
    DT_INT64: np.dtype(np.int64),
    DT_BOOL: np.dtype(np.bool_),
    DT_UINT16: np.dtype(np.uint16),
    DT_HALF: np.dtype(np.float16),
    DT_UINT32: np.dtype(np.uint32),
    DT_UINT64: np.dtype(np.uint64),
    DT_STRING: np.dtype(object),
}
# A decoded request tensor may not be larger than the largest gRPC message.
MAX_TENSOR_BYTES = 2**31 - 1
# Nor may it be grown beyond this from fewer values than its shape holds (the last one repeated, or zeros):
# a request of a few bytes could otherwise make the server allocate gigabytes, several times over once
# TensorFlow copies it (TF Serving would allocate them).
MAX_BROADCAST_BYTES = 64 * 2**20
_DTYPE_BY_NUMPY = {v: k for k, v in _NUMPY_BY_DTYPE.items() if k != DT_STRING}

_VAL_FIELD = {
    DT_FLOAT: "float_val",
    DT_DOUBLE: "double_val",
    DT_INT32: "int_val",
    DT_UINT8: "int_val",
    DT_INT16: "int_val",
    DT_INT8: "int_val",
    DT_UINT16: "int_val",
    DT_INT64: "int64_val",
    DT_BOOL: "bool_val",
    DT_HALF: "half_val",
    DT_UINT32: "uint32_val",
    DT_UINT64: "uint64_val",
    DT_STRING: "string_val",
}

# DataTypeString() spellings, used in TF Serving's error messages.
DTYPE_NAMES = {
    DT_FLOAT: "float", DT_DOUBLE: "double", DT_INT32: "int32", DT_UINT8: "uint8", DT_INT16: "int16",
    DT_INT8: "int8", DT_STRING: "string", DT_INT64: "int64", DT_BOOL: "bool", DT_UINT16: "uint16",
    DT_HALF: "half", DT_UINT32: "uint32", DT_UINT64: "uint64",
}


def numpy_dtype(dtype_enum: int) -> np.dtype:
    try:
        return _NUMPY_BY_DTYPE[dtype_enum]
    except KeyError:
        raise ValueError(f"unsupported tensor dtype enum {dtype_enum}") from None


def dtype_enum(array: np.ndarray) -> int:
    """The DataType enum for a numpy array; str/bytes/object arrays are DT_STRING."""
    kind = array.dtype.kind
    if kind in "OSU":
        return DT_STRING
    try:
        return _DTYPE_BY_NUMPY[array.dtype]
    except KeyError:
        raise ValueError(f"unsupported numpy dtype {array.dtype}") from None


def dtype_name(dtype_enum_value: int) -> str:
    return DTYPE_NAMES.get(dtype_enum_value, f"dtype_{dtype_enum_value}")


def shape_of(proto: Any) -> list[int]:
    return [dim.size for dim in proto.tensor_shape.dim]


def to_ndarray(proto: Any) -> np.ndarray:
    """TensorProto -> numpy (strings as an object array of bytes); ValueError where TensorFlow fails."""
    shape = shape_of(proto)
    count = math.prod(shape)
    dtype = numpy_dtype(proto.dtype)
    if any(size < 0 for size in shape):
        raise ValueError(f"tensor shape {shape} has a negative dimension")
    if count * dtype.itemsize > MAX_TENSOR_BYTES:  # checked before anything is allocated
        raise ValueError(f"tensor shape {shape} of {count} elements exceeds the {MAX_TENSOR_BYTES}-byte limit")
    if count == 0:
        return np.empty(shape, dtype=dtype)
    if proto.dtype == DT_STRING:
        values = _decode_string_list(proto.tensor_content, count) if proto.tensor_content else proto.string_val
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return _fill(array, count, shape, b"")
    if proto.tensor_content:
        array = np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)
        if proto.dtype == DT_BOOL and array.view(np.uint8).max() > 1:
            raise ValueError("bool tensor_content holds bytes other than 0 and 1")
        return array.reshape(shape)
    field = getattr(proto, _VAL_FIELD[proto.dtype])
    if proto.dtype == DT_HALF:
        array = np.array(field, dtype=np.uint16).view(np.float16)
    else:
        array = np.array(field, dtype=dtype)
    return _fill(array, count, shape, 0)


def _fill(values: np.ndarray, count: int, shape: list[int], zero) -> np.ndarray:
    """`values` made `count` long as TensorFlow does: the first `count`, zeros, or the last value repeated."""
    if values.size >= count:
        return values[:count].reshape(shape)
    if count * values.dtype.itemsize > MAX_BROADCAST_BYTES:
        raise ValueError(f"tensor shape {shape} holds {count} elements but only {values.size} values were sent; "
                         f"repeating the last would exceed {MAX_BROADCAST_BYTES} bytes")
    if values.size == 0:
        out = np.empty(count, dtype=values.dtype) if values.dtype == object else np.zeros(count, values.dtype)
        if values.dtype == object:
            out[:] = [zero] * count
        return out.reshape(shape)
    out = np.empty(count, dtype=values.dtype)
    out[: values.size] = values
    out[values.size:] = values[-1]
    return out.reshape(shape)


def _decode_string_list(content: bytes, count: int) -> list[bytes]:
    """A DT_STRING tensor_content (port::DecodeStringList): `count` varint32 lengths, then exactly their bytes.

    Each length takes at least one byte, so a huge `count` fails as soon as the content runs out.
    """
    sizes, pos = [], 0
    for _ in range(count):
        size = shift = 0
        while True:
            if pos == len(content) or shift > 28:
                raise ValueError("string tensor_content is truncated or holds a malformed length")
            byte = content[pos]
            pos += 1
            size = (size | (byte & 0x7F) << shift) & 0xFFFFFFFF
            if byte < 0x80:
                break
            shift += 7
        sizes.append(size)
    if sum(sizes) != len(content) - pos:
        raise ValueError(f"string tensor_content holds {len(content) - pos} bytes for strings of {sum(sizes)}")
    values = []
    for size in sizes:
        values.append(content[pos:pos + size])
        pos += size
    return values


def fill_proto(proto: Any, value: Any, *, as_content: bool = False, dtype: int | None = None) -> Any:
    """Fills `proto` (a TensorProto) from a numpy array or nested list and returns it.

    TF Serving answers with typed `*_val` fields (many clients read `float_val` directly), so that is
    the default; `as_content=True` writes packed `tensor_content` as `tf.make_tensor_proto` does.
    """
    array = _as_array(value, dtype)
    code = dtype_enum(array) if dtype is None else dtype
    proto.dtype = code
    for size in array.shape:
        proto.tensor_shape.dim.add().size = int(size)
    if code == DT_STRING:
        proto.string_val.extend(_as_bytes(v) for v in array.ravel().tolist())
    elif as_content:
        proto.tensor_content = np.ascontiguousarray(array, dtype=numpy_dtype(code).newbyteorder("<")).tobytes()
    elif code == DT_HALF:
        proto.half_val.extend(array.astype(np.float16).view(np.uint16).ravel().tolist())
    else:
        getattr(proto, _VAL_FIELD[code]).extend(array.ravel().tolist())
    return proto


def _as_array(value: Any, dtype: int | None) -> np.ndarray:
    if dtype is not None and dtype != DT_STRING:
        return np.asarray(value, dtype=numpy_dtype(dtype))
    array = np.asarray(value)
    if array.dtype.kind in "SU":
        return array.astype(object)
    if dtype == DT_STRING and array.dtype != object:
        return array.astype(object)
    return array


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")
