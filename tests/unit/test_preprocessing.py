"""preprocessing_fn on a tiny dataset, analysed and applied by a real (in-memory) Beam run.

The dataset mixes a varlen numeric column with a missing cell, an int64 column read as dense [batch, 1],
a varlen categorical with a missing cell, and a label with an unknown class; a second dataset, transformed
with the analysed graph, carries a category never seen in training.
"""
from __future__ import annotations

import functools
import json
import math

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from tests.support.trainer_configs import trainer_config_dict
from trainer import features
from trainer.preprocessing import preprocessing_fn

CONFIG = trainer_config_dict(
    features=[
        {"name": "length", "type": "numeric"},
        {"name": "count", "type": "numeric"},
        {"name": "colour", "type": "categorical", "oov_buckets": 2},
    ],
    label={"name": "kind", "classes": ["A", "B", "C"]},
)

RAW_FEATURE_SPEC = {
    "length": tf.io.VarLenFeature(tf.float32),
    "count": tf.io.FixedLenFeature([1], tf.int64),
    "colour": tf.io.VarLenFeature(tf.string),
    "kind": tf.io.FixedLenFeature([1], tf.string),
}

TRAIN_ROWS = [
    {"length": [1.0], "count": [10], "colour": ["red"], "kind": ["A"]},
    {"length": [3.0], "count": [20], "colour": ["red"], "kind": ["B"]},
    {"length": [], "count": [30], "colour": [], "kind": ["C"]},
    {"length": [5.0], "count": [40], "colour": ["blue"], "kind": ["Z"]},
]
UNSEEN_ROWS = [
    {"length": [3.0], "count": [24], "colour": ["purple"], "kind": ["C"]},
    {"length": [], "count": [26], "colour": ["blue"], "kind": ["A"]},
]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """(train outputs, unseen outputs, TFTransformOutput) from one Beam run."""
    workdir = tmp_path_factory.mktemp("tft")
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_FEATURE_SPEC))
    fn = functools.partial(preprocessing_fn, custom_config=CONFIG)
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(workdir / "tmp")):
        train = pipeline | "Train" >> beam.Create(TRAIN_ROWS)
        unseen = pipeline | "Unseen" >> beam.Create(UNSEEN_ROWS)
        (train_out, _), transform_fn = (train, metadata) | tft_beam.AnalyzeAndTransformDataset(
            fn, output_record_batches=False
        )
        unseen_out, _ = ((unseen, metadata), transform_fn) | tft_beam.TransformDataset(output_record_batches=False)
        _ = transform_fn | tft_beam.WriteTransformFn(str(workdir / "transform"))
        # Rows are written as JSON lines because Beam runs transforms on pickled copies of closures.
        _ = train_out | "DumpTrain" >> _dump(workdir / "train")
        _ = unseen_out | "DumpUnseen" >> _dump(workdir / "unseen")
    return _load(workdir / "train"), _load(workdir / "unseen"), tft.TFTransformOutput(str(workdir / "transform"))


def _dump(prefix):
    to_json = beam.Map(lambda row: json.dumps({k: np.asarray(v).tolist() for k, v in row.items()}))
    return to_json | beam.io.WriteToText(str(prefix), shard_name_template="")


def _load(path):
    """Rows in input order: the test datasets' rows all have distinct `count_xf` values."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(rows, key=lambda row: (row["count_xf"], row["kind_xf"]))


def _column(rows, key):
    return np.array([row[key] for row in rows])


def test_outputs_are_transformed_keys(transformed):
    train, _, _ = transformed
    assert set(train[0]) == {"length_xf", "count_xf", "colour_xf", "kind_xf"}


def test_outputs_are_one_value_per_row_with_model_friendly_dtypes(transformed):
    _, _, tft_output = transformed
    spec = tft_output.transformed_feature_spec()
    assert spec["length_xf"] == tf.io.FixedLenFeature([], tf.float32)
    assert spec["count_xf"] == tf.io.FixedLenFeature([], tf.float32)
    assert spec["colour_xf"] == tf.io.FixedLenFeature([], tf.int64)
    assert spec["kind_xf"] == tf.io.FixedLenFeature([], tf.int64)


def test_numeric_missing_is_imputed_with_mean_then_z_scored(transformed):
    train, _, _ = transformed
    std = math.sqrt(8.0 / 3.0)  # population std of the present values 1, 3, 5 (mean 3)
    np.testing.assert_allclose(_column(train, "length_xf"), [-2 / std, 0.0, 0.0, 2 / std], rtol=1e-5)


def test_int_numeric_column_is_z_scored_as_float(transformed):
    train, _, _ = transformed
    std = math.sqrt(125.0)  # values 10, 20, 30, 40: mean 25, variance 125
    np.testing.assert_allclose(_column(train, "count_xf"), [-15 / std, -5 / std, 5 / std, 15 / std], rtol=1e-5)


def test_categorical_uses_named_vocabulary_with_missing_placeholder(transformed):
    train, _, tft_output = transformed
    vocabulary = [v.decode() for v in tft_output.vocabulary_by_name(features.vocabulary_file_name("colour"))]
    assert sorted(vocabulary) == sorted(["red", "blue", features.MISSING_CATEGORY])
    assert vocabulary[0] == "red"  # the most frequent value comes first
    ids = _column(train, "colour_xf")
    expected = [vocabulary.index(v) for v in ["red", "red", features.MISSING_CATEGORY, "blue"]]
    np.testing.assert_array_equal(ids, expected)


def test_unseen_category_lands_in_an_oov_bucket(transformed):
    _, unseen, tft_output = transformed
    size = tft_output.vocabulary_size_by_name("colour")
    purple, blue = _column(unseen, "colour_xf")
    assert size <= purple < size + 2  # two OOV buckets configured
    assert blue < size
    np.testing.assert_allclose(_column(unseen, "length_xf"), [0.0, 0.0], atol=1e-6)


def test_label_ids_follow_configured_class_order(transformed):
    train, unseen, _ = transformed
    np.testing.assert_array_equal(_column(train, "kind_xf"), [0, 1, 2, -1])
    np.testing.assert_array_equal(_column(unseen, "kind_xf"), [2, 0])


def test_missing_custom_config_is_a_clear_error():
    with pytest.raises(ValueError, match="custom_config"):
        preprocessing_fn({}, None)


def _label_config(label):
    from trainer import trainer_config

    return trainer_config.parse(trainer_config_dict(features=[{"name": "length", "type": "numeric"}], label=label), "t")


def _with_missing_second_row(values, dtype):
    """A varlen column of three rows whose second row has no value (an empty CSV cell)."""
    return tf.SparseTensor(indices=[[0, 0], [2, 0]], values=tf.constant(values, dtype), dense_shape=[3, 1])


def test_binary_label_is_one_for_the_positive_class_and_minus_one_when_missing():
    from trainer.preprocessing import transform_label

    config = _label_config({"name": "diagnosis", "classes": ["malignant", "benign"], "positive_class": "malignant"})
    ids = transform_label(_with_missing_second_row(["malignant", "benign"], tf.string), config)
    assert ids.dtype == tf.int64 and ids.numpy().tolist() == [1, -1, 0]
    zero_one = _label_config({"name": "churned", "positive_class": "1"})
    assert transform_label(tf.constant([[1], [0]], tf.int64), zero_one).numpy().tolist() == [1, 0]


def test_regression_label_is_float_in_its_own_units_and_nan_when_missing():
    from trainer.preprocessing import transform_label

    config = _label_config({"name": "progression", "type": "numeric", "normalize": True})
    values = transform_label(_with_missing_second_row([151, 75], tf.int64), config).numpy()
    assert values.dtype == np.float32
    assert values[0] == 151.0 and math.isnan(values[1]) and values[2] == 75.0
