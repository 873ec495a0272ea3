"""Numeric columns of serialized tf.Examples, read whether they were sent as int64 or float.

`tf.io.parse_example` insists that a feature's list type match the parse spec: a column the schema
calls INT fails with "Data types don't match" when a client sends `4200.0` (TF Serving's REST
`examples` turn that into a float_list), and a FLOAT column fails on `4200`. Clients cannot be
expected to know the schema — the model's metadata shows them DT_STRING `inputs` — so the tf.Example
signatures read numbers through this module instead: the Example proto is decoded with
`tf.io.decode_proto` (a core op, so TF Serving runs it too), and each column's first value is taken
from whichever of float_list or int64_list carries it. A bytes_list is parsed as a number too: an
integer-coded categorical column (INT in the schema) is a string in `serving_default`'s metadata, so
a client following that metadata sends "2"; text that is not a number is an InvalidArgument error.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

#: Descriptors of tf.Example's messages, linked into TensorFlow (and TF Serving) themselves.
_DESCRIPTORS = "local://"


def numeric_columns(serialized: tf.Tensor, names: Sequence[str]) -> dict[str, tf.Tensor]:
    """float64 [N] per name: the column's first value as a number, NaN where an example lacks it.

    float64 keeps every int64 up to 2**53 exact; callers cast to the schema's dtype.
    """
    if not names:
        return {}
    serialized = tf.reshape(serialized, [-1])
    rows = tf.shape(serialized)[0]
    # A serialized Example may be several concatenated ones (TF Serving sends context + example that way;
    # parsing merges them, later values winning). Example's only field, `features` (field 1), is wire-
    # compatible with Features' repeated field 1, so decoding the bytes as a Features yields one Features
    # payload per concatenated part, instead of the single (last) one a decode as Example would keep.
    _, parts = _decode(serialized, "tensorflow.Features", "feature", tf.string)  # [N, P]
    parts = tf.pad(parts, [[0, 0], [0, 1]])  # an empty part, so every row has one even without features
    _, entries = _decode(tf.reshape(parts, [-1]), "tensorflow.Features", "feature", tf.string)  # [N*P, E]
    entries = tf.reshape(entries, [rows, -1])  # every part's entries, in wire order
    entries = tf.pad(entries, [[0, 0], [0, 1]])
    _, (keys, values) = tf.io.decode_proto(entries, "tensorflow.Features.FeatureEntry", ["key", "value"],
                                           [tf.string, tf.string], descriptor_source=_DESCRIPTORS)
    keys, values = _first(keys, ""), _first(values, "")  # [N, E']
    return {name: _number(name, _feature_of(name, keys, values)) for name in names}


def _feature_of(name: str, keys: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """string [N]: the serialized Feature stored under `name` in each example ("" when absent).

    The last entry with the name wins, as when protobuf merges concatenated messages.
    """
    match = tf.reverse(tf.equal(keys, name), axis=[1])
    index = tf.shape(keys)[1] - 1 - tf.argmax(tf.cast(match, tf.int32), axis=1, output_type=tf.int32)
    value = tf.gather(values, index, batch_dims=1)
    return tf.where(tf.reduce_any(match, axis=1), value, "")


def _number(name: str, feature: tf.Tensor) -> tf.Tensor:
    """float64 [N]: first float, int64 or numeric-text value of each serialized Feature; NaN if none."""
    sizes, (text, floats, ints) = tf.io.decode_proto(
        feature, "tensorflow.Feature", ["bytes_list", "float_list", "int64_list"],
        [tf.string, tf.string, tf.string], descriptor_source=_DESCRIPTORS)
    float_count, float_values = _decode(_first(floats, ""), "tensorflow.FloatList", "value", tf.float32)
    int_count, int_values = _decode(_first(ints, ""), "tensorflow.Int64List", "value", tf.int64)
    text_count, text_values = _decode(_first(text, ""), "tensorflow.BytesList", "value", tf.string)
    number_text = tf.where(text_count[:, 0] > 0, _first(text_values, ""), "nan")
    from_text = tf.strings.to_number(number_text, out_type=tf.float64, name=f"{_op_name(name)}_as_number")
    from_int = tf.where(int_count[:, 0] > 0, tf.cast(_first(int_values, 0), tf.float64), from_text)
    return tf.where(float_count[:, 0] > 0, tf.cast(_first(float_values, 0), tf.float64), from_int)


def _op_name(name: str) -> str:
    """A feature name made safe for a TensorFlow op name (errors then name the feature)."""
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name).lstrip("_-.") or "feature"


def _decode(values: tf.Tensor, message: str, field: str, dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor]:
    """(sizes [N, 1], values [N, max_count]) of one field of each serialized `message`."""
    sizes, (decoded,) = tf.io.decode_proto(values, message, [field], [dtype], descriptor_source=_DESCRIPTORS)
    return sizes, decoded


def _first(values: tf.Tensor, fill) -> tf.Tensor:
    """The first entry along the last axis, `fill` where that axis is empty."""
    padding = [[0, 0]] * (values.shape.rank - 1) + [[0, 1]]
    return tf.pad(values, padding, constant_values=fill)[..., 0]
