"""The Keras classifier: a pure function of the feature spec, vocabulary sizes and hyper-parameters.

It consumes what `preprocessing_fn` emits — one float32 value per row for numeric features, one int64
vocabulary id per row for categorical ones, keyed `<name>_xf` — so it is testable on in-memory tensors
without TFX. Keras 3 is imported as `keras`, never through `tf.keras`: importing tensorflow_transform
sets TF_USE_LEGACY_KERAS, after which `tf.keras` may resolve to Keras 2.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras

from trainer import features as feature_helpers

ACCURACY_METRIC = "sparse_categorical_accuracy"


def categorical_depth(spec: Mapping[str, Any], vocabulary_sizes: Mapping[str, int]) -> int:
    """Number of distinct ids a categorical feature can take: vocabulary entries plus OOV buckets."""
    name = spec["name"]
    if name not in vocabulary_sizes:
        raise KeyError(f"no vocabulary size for categorical feature {name!r}; got {sorted(vocabulary_sizes)}")
    return int(vocabulary_sizes[name]) + int(spec.get("oov_buckets") or 1)


def _numeric_column(name: str) -> tuple[keras.Input, Any]:
    model_input = keras.Input(shape=(), dtype="float32", name=feature_helpers.transformed_name(name))
    return model_input, keras.layers.Reshape((1,), name=f"{name}_column")(model_input)


def _categorical_column(spec: Mapping[str, Any], depth: int, seed: int) -> tuple[keras.Input, Any]:
    """One-hot for small vocabularies, a learned embedding when `embedding_dim` is configured."""
    name = spec["name"]
    model_input = keras.Input(shape=(), dtype="int64", name=feature_helpers.transformed_name(name))
    if spec.get("embedding_dim"):
        embedding = keras.layers.Embedding(
            depth,
            int(spec["embedding_dim"]),
            embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
            name=f"{name}_embedding",
        )
        return model_input, embedding(model_input)
    one_hot = keras.layers.CategoryEncoding(num_tokens=depth, output_mode="one_hot", name=f"{name}_one_hot")
    return model_input, one_hot(model_input)


def build_model(
    features: Sequence[Mapping[str, Any]],
    vocabulary_sizes: Mapping[str, int],
    hparams: Mapping[str, Any],
    num_classes: int,
) -> keras.Model:
    """A compiled functional DNN classifier over the transformed features.

    Args:
      features: the config's feature entries (`custom_config["features"]`), in model input order.
      vocabulary_sizes: vocabulary entries per categorical feature name, OOV buckets excluded
        (`TFTransformOutput.vocabulary_size_by_name`).
      hparams: the config's `model` section (hidden_units, dropout, learning_rate, seed).
      num_classes: width of the softmax.

    Seeds are passed to each initializer and dropout layer instead of seeding Keras globally, so
    building a model has no side effect on other code in the process.
    """
    seed = int(hparams.get("seed", 42))
    inputs, columns = [], []
    for index, spec in enumerate(features):
        if spec["type"] == feature_helpers.NUMERIC:
            model_input, column = _numeric_column(spec["name"])
        else:
            model_input, column = _categorical_column(spec, categorical_depth(spec, vocabulary_sizes), seed + index)
        inputs.append(model_input)
        columns.append(column)
    hidden = keras.layers.Concatenate(name="features")(columns) if len(columns) > 1 else columns[0]
    for layer_index, units in enumerate(hparams.get("hidden_units", [32, 16])):
        hidden = keras.layers.Dense(
            int(units),
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 100 + layer_index),
            name=f"hidden_{layer_index}",
        )(hidden)
        if hparams.get("dropout"):
            hidden = keras.layers.Dropout(float(hparams["dropout"]), seed=seed + 200 + layer_index)(hidden)
    probabilities = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 300),
        name="probabilities",
    )(hidden)
    model = keras.Model(inputs={i.name: i for i in inputs}, outputs=probabilities, name="classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(hparams.get("learning_rate", 0.01))),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name=ACCURACY_METRIC)],
    )
    return model
