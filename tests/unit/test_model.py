"""build_model on in-memory tensors: shapes, compile contract, and that it learns a separable task."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from tests.support.trainer_configs import trainer_config_dict
from trainer import trainer_config
from trainer.model import ACCURACY_METRIC, build_model, categorical_depth

CONFIG = trainer_config.parse(trainer_config_dict(
    features=[
        {"name": "size", "type": "numeric"},
        {"name": "colour", "type": "categorical", "oov_buckets": 1},
        {"name": "shape", "type": "categorical", "oov_buckets": 2, "embedding_dim": 3},
    ],
    label={"name": "kind", "classes": ["a", "b", "c"]},
    hidden_units=[8], dropout=0.1, learning_rate=0.05, seed=7,
), "test")
FEATURES = CONFIG.features
VOCABULARY_SIZES = {"colour": 3, "shape": 4}
HPARAMS = CONFIG.model


def _separable_batch(rows: int = 96, seed: int = 0):
    """Class = colour id (0..2); size shifts with the class; shape is noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, rows)
    batch = {
        "size_xf": (labels - 1.0 + rng.normal(0, 0.3, rows)).astype(np.float32),
        "colour_xf": labels.astype(np.int64),
        "shape_xf": rng.integers(0, 6, rows).astype(np.int64),
    }
    return batch, labels.astype(np.int64)


def test_outputs_class_probabilities_per_row():
    model = build_model(FEATURES, VOCABULARY_SIZES, HPARAMS, num_classes=3)
    batch, _ = _separable_batch(rows=5)
    probabilities = np.asarray(model(batch, training=False))
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_inputs_are_the_transformed_keys_with_their_dtypes():
    model = build_model(FEATURES, VOCABULARY_SIZES, HPARAMS, num_classes=3)
    dtypes = {i.name: str(i.dtype) for i in model.inputs}
    assert dtypes == {"size_xf": "float32", "colour_xf": "int64", "shape_xf": "int64"}
    assert model.get_layer("shape_embedding").output_dim == 3
    assert model.get_layer("colour_one_hot").num_tokens == 4


def test_training_lowers_loss_and_reports_accuracy_metric():
    model = build_model(FEATURES, VOCABULARY_SIZES, HPARAMS, num_classes=3)
    batch, labels = _separable_batch()
    history = model.fit(batch, labels, batch_size=32, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    assert ACCURACY_METRIC in history.history
    assert history.history[ACCURACY_METRIC][-1] > 0.8


def test_same_seed_builds_the_same_weights():
    first = build_model(FEATURES, VOCABULARY_SIZES, HPARAMS, num_classes=3)
    second = build_model(FEATURES, VOCABULARY_SIZES, HPARAMS, num_classes=3)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_categorical_depth_counts_oov_buckets_and_names_missing_sizes():
    assert categorical_depth(FEATURES[2], VOCABULARY_SIZES) == 6
    with pytest.raises(KeyError, match="colour"):
        categorical_depth(FEATURES[1], {})


def _binary_batch(rows: int = 128, seed: int = 1):
    """Positive iff size > 0."""
    rng = np.random.default_rng(seed)
    size = rng.normal(0, 1, rows).astype(np.float32)
    batch = {"size_xf": size, "colour_xf": rng.integers(0, 3, rows), "shape_xf": rng.integers(0, 6, rows)}
    return batch, (size > 0).astype(np.int64)


def test_binary_head_is_one_sigmoid_unit_with_auc_metrics():
    model = build_model(FEATURES, VOCABULARY_SIZES, HPARAMS, num_classes=2, task="binary")
    batch, labels = _binary_batch()
    probabilities = np.asarray(model(batch, training=False))
    assert probabilities.shape == (128, 1) and ((probabilities > 0) & (probabilities < 1)).all()
    history = model.fit(batch, labels, batch_size=32, epochs=10, verbose=0)
    assert {"binary_accuracy", "auc", "auc_precision_recall"} <= set(history.history)
    assert history.history["auc"][-1] > 0.9


def test_regression_head_predicts_in_label_units_when_normalised():
    rng = np.random.default_rng(2)
    batch, _ = _binary_batch(rows=256)
    target = (150.0 + 70.0 * batch["size_xf"]).astype(np.float32)  # the label's units: mean 150, std 70
    model = build_model(FEATURES, VOCABULARY_SIZES, HPARAMS, num_classes=0, task="regression",
                        label_moments=(150.0, 70.0))
    before = np.asarray(model(batch, training=False))[:, 0]
    assert abs(before.mean() - 150.0) < 70.0, "an untrained normalised head starts near the label's mean"
    history = model.fit(batch, target, batch_size=32, epochs=30, verbose=0)
    assert {"mean_squared_error", "root_mean_squared_error", "mean_absolute_error"} <= set(history.history)
    assert history.history["root_mean_squared_error"][-1] < 0.5 * history.history["root_mean_squared_error"][0]
    assert model.get_layer("label_units").scale == pytest.approx(70.0)
    del rng


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        build_model(FEATURES, VOCABULARY_SIZES, HPARAMS, num_classes=3, task="ranking")


MIXED_HPARAMS = dataclasses.replace(HPARAMS, mixed_precision=True)


@pytest.mark.parametrize("task", ["multiclass", "binary", "regression"])
def test_mixed_precision_computes_in_float16_but_keeps_float32_variables_and_outputs(task):
    model = build_model(FEATURES, VOCABULARY_SIZES, MIXED_HPARAMS, num_classes=3, task=task,
                        label_moments=(0.0, 1.0) if task == "regression" else None)
    hidden = model.get_layer("hidden_0")
    assert (hidden.compute_dtype, hidden.variable_dtype) == ("float16", "float32")
    assert model.get_layer("shape_embedding").compute_dtype == "float16"
    assert {v.dtype for v in model.weights} == {"float32"}, "variables stay float32 (the optimizer updates them)"
    batch, _ = _separable_batch(rows=4)
    assert keras.backend.standardize_dtype(model(batch, training=False).dtype) == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_mixed_precision_model_learns_and_leaves_the_default_policy_alone():
    model = build_model(FEATURES, VOCABULARY_SIZES, MIXED_HPARAMS, num_classes=3)
    batch, labels = _separable_batch()
    history = model.fit(batch, labels, batch_size=32, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    assert history.history[ACCURACY_METRIC][-1] > 0.8
    assert keras.config.dtype_policy().name == "float32", "the policy is per layer, never global"
    plain = build_model(FEATURES, VOCABULARY_SIZES, HPARAMS, num_classes=3)
    assert plain.get_layer("hidden_0").compute_dtype == "float32"
    assert not isinstance(plain.optimizer, keras.optimizers.LossScaleOptimizer)
