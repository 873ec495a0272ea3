"""trainer.examples: numeric columns of tf.Examples read alike whether sent as int64 or float."""
from __future__ import annotations

import math

import pytest
import tensorflow as tf

from trainer.examples import numeric_columns


def _example(**features) -> bytes:
    feature = {}
    for name, value in features.items():
        if isinstance(value, bytes):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        elif isinstance(value, int):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_int64_and_float_lists_give_the_same_numbers():
    serialized = tf.constant([
        _example(body_mass_g=4200, bill=39.5, island=b"Dream"),
        _example(body_mass_g=4200.0, bill=40),
        _example(island=b"Biscoe"),  # both numbers missing
        b"",  # an empty Example
    ])
    columns = numeric_columns(serialized, ["body_mass_g", "bill"])
    assert columns["body_mass_g"].dtype == tf.float64
    mass, bill = columns["body_mass_g"].numpy().tolist(), columns["bill"].numpy().tolist()
    assert mass[:2] == [4200.0, 4200.0] and bill[:2] == [39.5, 40.0]
    assert all(math.isnan(v) for v in mass[2:] + bill[2:])


def test_large_int64_stays_exact():
    value = 2**53 - 1
    assert numeric_columns(tf.constant([_example(id=value)]), ["id"])["id"].numpy()[0] == value


def test_numbers_sent_as_text_are_parsed_and_other_text_is_an_error():
    """An integer-coded categorical column is a string in serving_default's metadata: "2" must work."""
    assert numeric_columns(tf.constant([_example(sex=b"2")]), ["sex"])["sex"].numpy().tolist() == [2.0]
    with pytest.raises(tf.errors.InvalidArgumentError):
        numeric_columns(tf.constant([_example(body_mass_g=b"heavy")]), ["body_mass_g"])


def test_works_inside_a_traced_signature_with_unknown_batch():
    fn = tf.function(lambda s: numeric_columns(s, ["x"])["x"],
                     input_signature=[tf.TensorSpec([None], tf.string)])
    assert fn(tf.constant([_example(x=3), _example(x=2.5)])).numpy().tolist() == [3.0, 2.5]


def test_concatenated_examples_merge_as_parse_example_does():
    """TF Serving sends Classify/Regress context + example as one concatenated serialized Example."""
    context, example = _example(bill=39.5, body_mass_g=4000), _example(body_mass_g=4200.0, island=b"Dream")
    serialized = tf.constant([context + example, example + context, _example(bill=1.0) + b""])
    columns = numeric_columns(serialized, ["body_mass_g", "bill"])
    assert columns["body_mass_g"].numpy().tolist()[:2] == [4200.0, 4000.0], "the later value wins"
    assert columns["bill"].numpy().tolist() == [39.5, 39.5, 1.0]
    merged = tf.io.parse_example(serialized[:1], {"bill": tf.io.FixedLenFeature([], tf.float32)})
    assert merged["bill"].numpy()[0] == pytest.approx(columns["bill"].numpy()[0])
