"""The Keras model: a pure function of the feature spec, vocabulary sizes, hyper-parameters and task.

One DNN body for every task; the head, loss and Keras metrics follow the task: multiclass, a softmax
over the classes with sparse categorical cross-entropy; binary, one sigmoid unit (the positive class's
probability) with binary cross-entropy, accuracy, ROC AUC and PR AUC; regression, one linear unit with
mean squared error, RMSE and MAE — followed, when the label is normalised, by a fixed rescaling that
turns the unit's z-score back into the label's units, so the trained model (and every signature
exported from it) predicts in those units.

With `model.mixed_precision` the layers between the inputs and the head (embeddings, the
concatenation, the hidden layers) take Keras's `mixed_float16` policy — float16 compute, float32
variables — and the optimizer scales the loss against float16 underflow; the head and the rescaling
keep `float32`, so the model's outputs (and every exported signature's) stay float32. The policy is
set per layer, never globally, so building a model has no side effect on other models in the process.

It consumes what `preprocessing_fn` emits — one float32 value per row for numeric features, one int64
vocabulary id per row for categorical ones, keyed `<name>_xf` — so it is testable on in-memory tensors
without TFX. Keras 3 is imported as `keras`, never through `tf.keras`: importing tensorflow_transform
sets TF_USE_LEGACY_KERAS, after which `tf.keras` may resolve to Keras 2.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import keras

from trainer import contract
from trainer.trainer_config import (BINARY, MULTICLASS, REGRESSION, FeatureSpec, ModelHparams, TrainerConfig,
                                    cross_name)

ACCURACY_METRIC = "sparse_categorical_accuracy"
#: The classification output layer (softmax, or the binary sigmoid); its bias is what a test sets to
#: make a model's predictions recognisable.
OUTPUT_LAYER = "probabilities"
#: The regression output layer (linear, in z-score units when the label is normalised).
REGRESSION_LAYER = "value"
#: Keras's dtype policy for `model.mixed_precision`: float16 compute, float32 variables.
MIXED_PRECISION_POLICY = "mixed_float16"
#: Keras metric names per task (the same names TFMA reports for the matching TFMA metrics).
TASK_METRICS = {
    MULTICLASS: (ACCURACY_METRIC,),
    BINARY: ("binary_accuracy", "auc", "auc_precision_recall"),
    REGRESSION: ("mean_squared_error", "root_mean_squared_error", "mean_absolute_error"),
}


def categorical_depth(spec: FeatureSpec, vocabulary_sizes: Mapping[str, int]) -> int:
    """Number of distinct ids a feature can take: buckets (hashed or quantile), else vocabulary
    entries plus OOV buckets."""
    if spec.hash_buckets or spec.bucketize:
        return int(spec.hash_buckets or spec.bucketize)
    if spec.name not in vocabulary_sizes:
        raise KeyError(f"no vocabulary size for categorical feature {spec.name!r}; got {sorted(vocabulary_sizes)}")
    return int(vocabulary_sizes[spec.name]) + spec.oov_buckets


def _numeric_column(spec: FeatureSpec) -> tuple[keras.Input, Any]:
    model_input = keras.Input(shape=(), dtype="float32", name=spec.transformed_name)
    return model_input, keras.layers.Reshape((1,), name=f"{spec.name}_column")(model_input)


def body_dtype(hparams: ModelHparams) -> Optional[str]:
    """Dtype policy of the layers below the head: mixed_float16 when configured, else Keras's default."""
    return MIXED_PRECISION_POLICY if hparams.mixed_precision else None


def _text_column(spec: FeatureSpec, depth: int, seed: int, dtype: Optional[str]) -> tuple[keras.Input, Any]:
    """Token ids [N, max_tokens] (-1 pads) -> bag of words, or the mean of the tokens' embeddings."""
    model_input = keras.Input(shape=(spec.max_tokens,), dtype="int64", name=spec.transformed_name)
    shifted = keras.layers.Lambda(lambda ids: ids + 1, name=f"{spec.name}_pad_is_0")(model_input)
    if spec.embedding_dim:
        embedded = keras.layers.Embedding(
            depth + 1, spec.embedding_dim, mask_zero=True,
            embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
            name=f"{spec.name}_embedding", dtype=dtype)(shifted)
        return model_input, keras.layers.GlobalAveragePooling1D(name=f"{spec.name}_mean", dtype=dtype)(embedded)
    return model_input, keras.layers.CategoryEncoding(
        num_tokens=depth + 1, output_mode="multi_hot", name=f"{spec.name}_bag_of_words")(shifted)


def _categorical_column(spec: FeatureSpec, depth: int, seed: int, dtype: Optional[str]) -> tuple[keras.Input, Any]:
    """One-hot for small vocabularies, a learned embedding when `embedding_dim` is configured."""
    name = spec.name
    model_input = keras.Input(shape=(), dtype="int64", name=contract.transformed_name(name))
    if spec.embedding_dim:
        embedding = keras.layers.Embedding(
            depth,
            spec.embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
            name=f"{name}_embedding",
            dtype=dtype,
        )
        return model_input, embedding(model_input)
    one_hot = keras.layers.CategoryEncoding(num_tokens=depth, output_mode="one_hot", name=f"{name}_one_hot")
    return model_input, one_hot(model_input)


def build_model(
    features: Sequence[FeatureSpec],
    vocabulary_sizes: Mapping[str, int],
    hparams: ModelHparams,
    num_classes: int,
    task: str = MULTICLASS,
    label_moments: Optional[tuple[float, float]] = None,
    crosses: Sequence[Sequence[str]] = (),
    cross_hash_buckets: int = 0,
) -> keras.Model:
    """A compiled functional DNN over the transformed features, with the task's head.

    Args:
      features: the config's features (`TrainerConfig.features`), in model input order.
      vocabulary_sizes: vocabulary entries per categorical feature name, OOV buckets excluded
        (`TFTransformOutput.vocabulary_size_by_name`).
      hparams: the config's `model` section (hidden_units, dropout, learning_rate, seed and
        mixed_precision are read; learning-rate scaling is the caller's, see `trainer.task`).
      num_classes: width of the softmax (multiclass); ignored by the binary and regression heads.
      task: `trainer_config.TASKS`; the default keeps multiclass callers unchanged.
      label_moments: (mean, std) of the regression label when it is normalised, else None.
      crosses, cross_hash_buckets: the config's feature crosses and their bucket count (one-hot).

    Outputs: multiclass [N, K] probabilities, binary [N, 1] positive-class probability, regression
    [N, 1] value. Seeds are passed to each initializer and dropout layer instead of seeding Keras
    globally, so building a model has no side effect on other code in the process.
    """
    seed, dtype = hparams.seed, body_dtype(hparams)
    inputs, columns = [], []
    for index, spec in enumerate(features):
        if spec.is_text:
            model_input, column = _text_column(spec, categorical_depth(spec, vocabulary_sizes), seed + index, dtype)
        elif spec.is_id:
            model_input, column = _categorical_column(spec, categorical_depth(spec, vocabulary_sizes), seed + index,
                                                      dtype)
        else:
            model_input, column = _numeric_column(spec)
        inputs.append(model_input)
        columns.append(column)
    for cross in crosses:
        one_hot = keras.layers.CategoryEncoding(num_tokens=cross_hash_buckets, output_mode="one_hot",
                                                name=f"{cross_name(cross)}_one_hot")
        model_input = keras.Input(shape=(), dtype="int64", name=contract.transformed_name(cross_name(cross)))
        inputs.append(model_input)
        columns.append(one_hot(model_input))
    hidden = keras.layers.Concatenate(name="features", dtype=dtype)(columns) if len(columns) > 1 else columns[0]
    for layer_index, units in enumerate(hparams.hidden_units):
        hidden = keras.layers.Dense(
            int(units),
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 100 + layer_index),
            name=f"hidden_{layer_index}",
            dtype=dtype,
        )(hidden)
        if hparams.dropout:
            hidden = keras.layers.Dropout(hparams.dropout, seed=seed + 200 + layer_index, dtype=dtype)(hidden)
    output, loss, metrics = _head(hidden, task, num_classes, label_moments, seed)
    model = keras.Model(inputs={i.name: i for i in inputs}, outputs=output, name=task)
    model.compile(optimizer=_optimizer(hparams), loss=loss, metrics=metrics)
    return model


def _optimizer(hparams: ModelHparams) -> keras.optimizers.Optimizer:
    """Adam; under mixed precision wrapped in dynamic loss scaling, so small float16 gradients do not
    underflow to zero."""
    adam = keras.optimizers.Adam(learning_rate=hparams.learning_rate)
    return keras.optimizers.LossScaleOptimizer(adam) if hparams.mixed_precision else adam


def build_configured_model(
    config: TrainerConfig, vocabulary_sizes: Mapping[str, int], label_moments: Optional[tuple[float, float]]
) -> keras.Model:
    """`build_model` for a whole TrainerConfig (task, hyper-parameters, crosses): what `run_fn` trains
    and every Tuner trial builds, so both build the same model."""
    return build_model(config.features, vocabulary_sizes, config.model, config.num_classes, task=config.task,
                       label_moments=label_moments, crosses=config.crosses,
                       cross_hash_buckets=config.cross_hash_buckets)


def _head(hidden: Any, task: str, num_classes: int, label_moments: Optional[tuple[float, float]], seed: int):
    """(output tensor, loss, metrics) of the task's head on top of the last hidden layer."""
    initializer = keras.initializers.GlorotUniform(seed=seed + 300)
    # float32 whatever the body's policy: softmax/sigmoid and the loss are numerically fragile in float16,
    # and the exported signatures promise float32 outputs.
    if task == MULTICLASS:
        output = keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=initializer,
                                    name=OUTPUT_LAYER, dtype="float32")(hidden)
        return output, keras.losses.SparseCategoricalCrossentropy(), [
            keras.metrics.SparseCategoricalAccuracy(name=ACCURACY_METRIC)]
    if task == BINARY:
        output = keras.layers.Dense(1, activation="sigmoid", kernel_initializer=initializer, name=OUTPUT_LAYER,
                                    dtype="float32")(hidden)
        return output, keras.losses.BinaryCrossentropy(), [
            keras.metrics.BinaryAccuracy(name="binary_accuracy"),
            keras.metrics.AUC(name="auc"),
            keras.metrics.AUC(curve="PR", name="auc_precision_recall"),
        ]
    if task != REGRESSION:
        raise ValueError(f"unknown task {task!r}; expected one of {list(TASK_METRICS)}")
    output = keras.layers.Dense(1, kernel_initializer=initializer, name=REGRESSION_LAYER, dtype="float32")(hidden)
    if label_moments is not None:
        mean, std = label_moments
        output = keras.layers.Rescaling(scale=float(std), offset=float(mean), name="label_units",
                                        dtype="float32")(output)
    return output, keras.losses.MeanSquaredError(), [
        keras.metrics.MeanSquaredError(name="mean_squared_error"),
        keras.metrics.RootMeanSquaredError(name="root_mean_squared_error"),
        keras.metrics.MeanAbsoluteError(name="mean_absolute_error"),
    ]
