"""Each feature transform of issue 10 on tiny data, analysed and applied by a real (in-memory) Beam run:
numeric log / normalize none / bucketize, categorical hash_buckets, text, crosses; then the model
builder on the same kinds of inputs, and class weights."""
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
from trainer import features, trainer_config
from trainer.preprocessing import preprocessing_fn

CONFIG = trainer_config_dict(
    features=[
        {"name": "row", "type": "numeric", "normalize": "none"},  # passes through: finds each row again
        {"name": "amount", "type": "numeric", "log": True},
        {"name": "income", "type": "numeric", "normalize": "none"},
        {"name": "age", "type": "numeric", "bucketize": 3},
        {"name": "user_id", "type": "categorical", "hash_buckets": 8},
        {"name": "colour", "type": "categorical"},
        {"name": "review", "type": "text", "top_k": 3, "max_tokens": 4, "embedding_dim": 2},
    ],
    label={"name": "churned", "classes": ["no", "yes"], "class_weights": "auto"},
    crosses=[["colour", "age"]],
    cross_hash_buckets=16,
)

RAW_FEATURE_SPEC = {
    "row": tf.io.FixedLenFeature([1], tf.float32),
    "amount": tf.io.VarLenFeature(tf.float32),
    "income": tf.io.VarLenFeature(tf.float32),
    "age": tf.io.FixedLenFeature([1], tf.int64),
    "user_id": tf.io.VarLenFeature(tf.string),
    "colour": tf.io.FixedLenFeature([1], tf.string),
    "review": tf.io.VarLenFeature(tf.string),
    "churned": tf.io.FixedLenFeature([1], tf.string),
}

ROWS = [  # row i has age 20 + 10 i
    {"row": [0.0], "amount": [0.0], "income": [10.0], "age": [20], "user_id": [b"u1"], "colour": [b"red"],
     "review": [b"Great product, great price!"], "churned": [b"no"]},
    {"row": [1.0], "amount": [math.e - 1], "income": [], "age": [30], "user_id": [b"u2"], "colour": [b"blue"],
     "review": [b"great"], "churned": [b"no"]},
    {"row": [2.0], "amount": [], "income": [30.0], "age": [40], "user_id": [], "colour": [b"red"],
     "review": [], "churned": [b"no"]},
    {"row": [3.0], "amount": [-5.0], "income": [20.0], "age": [50], "user_id": [b"u1"], "colour": [b"red"],
     "review": [b"awful price"], "churned": [b"yes"]},
    {"row": [4.0], "amount": [math.e ** 2 - 1], "income": [40.0], "age": [60], "user_id": [b"u3"], "colour": [b"blue"],
     "review": [b"meh"], "churned": [b"no"]},
    {"row": [5.0], "amount": [3.0], "income": [25.0], "age": [70], "user_id": [b"u4"], "colour": [b"red"],
     "review": [b"one two three four five six"], "churned": [b"no"]},
]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """(transformed rows by raw age, TFTransformOutput) from one Beam run over ROWS."""
    workdir = tmp_path_factory.mktemp("tft")
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_FEATURE_SPEC))
    fn = functools.partial(preprocessing_fn, custom_config=CONFIG)
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(workdir / "tmp")):
        rows = pipeline | beam.Create(ROWS)
        (out, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(fn, output_record_batches=False)
        _ = transform_fn | tft_beam.WriteTransformFn(str(workdir / "transform"))
        to_json = beam.Map(lambda row: json.dumps({k: np.asarray(v).tolist() for k, v in row.items()}))
        _ = out | to_json | beam.io.WriteToText(str(workdir / "out"), shard_name_template="")
    out_rows = [json.loads(line) for line in (workdir / "out").read_text().splitlines()]
    tft_output = tft.TFTransformOutput(str(workdir / "transform"))
    return {20 + 10 * round(row["row_xf"]): row for row in out_rows}, tft_output


def test_log_then_zscore(transformed):
    rows, _ = transformed
    logs = np.log1p(np.maximum([0.0, math.e - 1, -5.0, math.e ** 2 - 1, 3.0], 0.0))
    mean, std = logs.mean(), logs.std()
    assert rows[30]["amount_xf"] == pytest.approx((1.0 - mean) / std, rel=1e-4)
    assert rows[50]["amount_xf"] == pytest.approx((0.0 - mean) / std, rel=1e-4), "negatives clip to log1p(0)"
    assert rows[40]["amount_xf"] == pytest.approx(0.0, abs=1e-6), "missing -> the mean -> 0"


def test_normalize_none_imputes_the_mean_without_scaling(transformed):
    rows, _ = transformed
    assert rows[20]["income_xf"] == pytest.approx(10.0)
    assert rows[30]["income_xf"] == pytest.approx(np.mean([10.0, 30.0, 20.0, 40.0, 25.0]))


def test_bucketize_gives_quantile_ids(transformed):
    rows, tft_output = transformed
    ids = [rows[age]["age_xf"] for age in (20, 30, 40, 50, 60, 70)]
    assert ids == sorted(ids) and set(ids) == {0, 1, 2}
    assert tft_output.transformed_feature_spec()["age_xf"] == tf.io.FixedLenFeature([], tf.int64)


def test_hash_buckets_need_no_vocabulary_and_missing_is_a_value(transformed):
    rows, _ = transformed
    assert rows[20]["user_id_xf"] == rows[50]["user_id_xf"]  # same id, same bucket
    expected = tf.strings.to_hash_bucket_fast([b"u2", features.MISSING_CATEGORY.encode()], 8).numpy().tolist()
    assert [rows[30]["user_id_xf"], rows[40]["user_id_xf"]] == expected
    assert all(0 <= row["user_id_xf"] < 8 for row in rows.values())


def test_text_is_tokenised_vocabulary_limited_and_padded(transformed):
    rows, tft_output = transformed
    vocabulary = [v.decode() for v in tft_output.vocabulary_by_name("review")]
    assert vocabulary[:2] == ["great", "price"]  # most frequent first, case and punctuation folded
    assert tft_output.transformed_feature_spec()["review_xf"] == tf.io.FixedLenFeature([4], tf.int64)
    _assert_ids(rows[20]["review_xf"], ["great", "product", "great", "price"], vocabulary)
    assert rows[30]["review_xf"] == [0, -1, -1, -1]
    assert rows[40]["review_xf"] == [-1, -1, -1, -1], "missing text is an empty document"
    assert len(rows[70]["review_xf"]) == 4 and -1 not in rows[70]["review_xf"], "truncated to max_tokens"
    _assert_ids(rows[70]["review_xf"], ["one", "two", "three", "four"], vocabulary)
    assert sum(v >= 3 for v in rows[70]["review_xf"]) >= 3, "tokens beyond top_k land in the OOV bucket"


def _assert_ids(ids, tokens, vocabulary):
    """Each id is its token's place among the top_k (3) tokens, or an OOV id (>= 3)."""
    expected_known = [vocabulary.index(t) if t in vocabulary[:3] else None for t in tokens]
    for token_id, known in zip(ids, expected_known):
        assert token_id == known if known is not None else token_id >= 3


def test_cross_hashes_category_and_bucket(transformed):
    rows, _ = transformed
    key = "colour_X_age_xf"
    assert all(0 <= row[key] < 16 for row in rows.values())
    same_colour_same_bucket = [r for r in rows.values() if r["colour_xf"] == rows[20]["colour_xf"]
                               and r["age_xf"] == rows[20]["age_xf"]]
    assert {r[key] for r in same_colour_same_bucket} == {rows[20][key]}


def test_model_reads_every_kind_of_transformed_input_and_trains():
    from trainer.model import build_model

    config = trainer_config.parse(CONFIG, "test")
    model = build_model(config.features, {"colour": 2, "review": 3}, config.model, config.num_classes,
                        task=config.task, crosses=config.crosses, cross_hash_buckets=config.cross_hash_buckets)
    rng = np.random.default_rng(0)
    rows = 64
    labels = rng.integers(0, 2, rows)
    batch = {
        "row_xf": rng.normal(size=rows).astype(np.float32),
        "amount_xf": rng.normal(size=rows).astype(np.float32), "income_xf": rng.normal(size=rows).astype(np.float32),
        "age_xf": rng.integers(0, 3, rows), "user_id_xf": rng.integers(0, 8, rows), "colour_xf": labels,
        "review_xf": np.where(rng.random((rows, 4)) < 0.3, -1, rng.integers(0, 4, (rows, 4))),
        "colour_X_age_xf": rng.integers(0, 16, rows),
    }
    assert {i.name for i in model.inputs} == set(batch)
    assert model.get_layer("review_embedding").output_dim == 2
    history = model.fit(batch, labels, epochs=15, batch_size=16, verbose=0)
    assert history.history["binary_accuracy"][-1] > 0.9


def test_bag_of_words_when_no_embedding_dim():
    from trainer.model import build_model

    spec = trainer_config.parse(trainer_config_dict(
        features=[{"name": "review", "type": "text", "max_tokens": 3}], label={"name": "y", "classes": ["a", "b"]}),
        "test")
    model = build_model(spec.features, {"review": 5}, spec.model, 2, task="binary")
    assert model.get_layer("review_bag_of_words").num_tokens == 5 + 1 + 1  # vocabulary + OOV + padding
    assert np.asarray(model({"review_xf": np.array([[0, 4, -1]])})).shape == (1, 1)


def test_class_weights_auto_and_explicit():
    from trainer.task import class_weights

    labels = tf.data.Dataset.from_tensor_slices(({"x": np.zeros(8, np.float32)}, np.array([0, 0, 0, 0, 0, 0, 1, 1])))
    config = trainer_config.parse(CONFIG, "test")
    assert class_weights(config, labels.batch(3)) == pytest.approx({0: 8 / (2 * 6), 1: 8 / (2 * 2)})
    explicit = trainer_config.parse(trainer_config_dict(
        features=[{"name": "x", "type": "numeric"}],
        label={"name": "y", "classes": ["no", "yes"], "class_weights": {"yes": 5}}), "test")
    assert class_weights(explicit, labels.batch(3)) == {0: 1.0, 1: 5.0}
