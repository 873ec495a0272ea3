"""The Keras classifier: a pure function of the feature spec, vocabulary sizes and hyper-parameters.

It consumes what `preprocessing_fn` emits — one float32 value per row for numeric features, one int64
vocabulary id per row for categorical ones, keyed `<name>_xf` — so it is testable on in-memory tensors
without TFX. Keras 3 is imported as `keras`, never through `tf.keras`: importing tensorflow_transform
sets TF_USE_LEGACY_KERAS, after which `tf.keras` may resolve to Keras 2.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras

from trainer.trainer_config import FeatureSpec, ModelHparams

ACCURACY_METRIC = "sparse_categorical_accuracy"
#: The softmax layer; its bias is what a test sets to make a model's predictions recognisable.
OUTPUT_LAYER = "probabilities"


def categorical_depth(spec: FeatureSpec, vocabulary_sizes: Mapping[str, int]) -> int:
    """Number of distinct ids a categorical feature can take: vocabulary entries plus OOV buckets."""
    if spec.name not in vocabulary_sizes:
        raise KeyError(f"no vocabulary size for categorical feature {spec.name!r}; got {sorted(vocabulary_sizes)}")
    return int(vocabulary_sizes[spec.name]) + spec.oov_buckets


def _numeric_column(spec: FeatureSpec) -> tuple[keras.Input, Any]:
    model_input = keras.Input(shape=(), dtype="float32", name=spec.transformed_name)
    return model_input, keras.layers.Reshape((1,), name=f"{spec.name}_column")(model_input)


def _categorical_column(spec: FeatureSpec, depth: int, seed: int) -> tuple[keras.Input, Any]:
    """One-hot for small vocabularies, a learned embedding when `embedding_dim` is configured."""
    name = spec.name
    model_input = keras.Input(shape=(), dtype="int64", name=spec.transformed_name)
    if spec.embedding_dim:
        embedding = keras.layers.Embedding(
            depth,
            spec.embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
            name=f"{name}_embedding",
        )
        return model_input, embedding(model_input)
    one_hot = keras.layers.CategoryEncoding(num_tokens=depth, output_mode="one_hot", name=f"{name}_one_hot")
    return model_input, one_hot(model_input)


def build_model(
    features: Sequence[FeatureSpec],
    vocabulary_sizes: Mapping[str, int],
    hparams: ModelHparams,
    num_classes: int,
) -> keras.Model:
    """A compiled functional DNN classifier over the transformed features.

    Args:
      features: the config's features (`TrainerConfig.features`), in model input order.
      vocabulary_sizes: vocabulary entries per categorical feature name, OOV buckets excluded
        (`TFTransformOutput.vocabulary_size_by_name`).
      hparams: the config's `model` section (hidden_units, dropout, learning_rate, seed are read).
      num_classes: width of the softmax.

    Seeds are passed to each initializer and dropout layer instead of seeding Keras globally, so
    building a model has no side effect on other code in the process.
    """
    seed = hparams.seed
    inputs, columns = [], []
    for index, spec in enumerate(features):
        if spec.is_numeric:
            model_input, column = _numeric_column(spec)
        else:
            model_input, column = _categorical_column(spec, categorical_depth(spec, vocabulary_sizes), seed + index)
        inputs.append(model_input)
        columns.append(column)
    hidden = keras.layers.Concatenate(name="features")(columns) if len(columns) > 1 else columns[0]
    for layer_index, units in enumerate(hparams.hidden_units):
        hidden = keras.layers.Dense(
            int(units),
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 100 + layer_index),
            name=f"hidden_{layer_index}",
        )(hidden)
        if hparams.dropout:
            hidden = keras.layers.Dropout(hparams.dropout, seed=seed + 200 + layer_index)(hidden)
    probabilities = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 300),
        name=OUTPUT_LAYER,
    )(hidden)
    model = keras.Model(inputs={i.name: i for i in inputs}, outputs=probabilities, name="classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hparams.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name=ACCURACY_METRIC)],
    )
    return model
