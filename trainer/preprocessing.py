"""`preprocessing_fn` for TFX Transform: a function of the feature spec in `custom_config`.

Raw columns arrive as SparseTensors of dense shape [batch, <=1] when the schema says a column may be
missing (CSV cells left empty), or as dense [batch, 1] / [batch] tensors otherwise; every helper here
accepts both. Every output is one value per row ([batch]), so the model sees scalars per feature.

- numeric: missing -> training mean, then z-score with the training mean and standard deviation
  (so a missing value becomes exactly 0.0); float32.
- categorical: missing or empty -> `features.MISSING_CATEGORY`, then a vocabulary (top_k, oov_buckets)
  written under the feature's own name so Trainer can read its size back; int64 ids.
- label, per task: multiclass, the id of the value in `label.classes` (-1 when unknown), with plain
  TF ops (a vocabulary would order classes by frequency, and ids would change whenever the data
  does); binary, 1 for `label.positive_class` and 0 for any other value (-1 when missing);
  regression, the value as float32 in the label's own units (NaN when missing) — normalisation, when
  configured, is the model's business so that TFMA compares predictions and labels in those units.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft

from trainer import features, trainer_config

TensorLike = Any  # tf.Tensor | tf.SparseTensor | tf.RaggedTensor


def preprocessing_fn(inputs: Mapping[str, TensorLike], custom_config: Optional[Mapping[str, Any]] = None):
    """Transforms raw features and the label as configured; outputs `<name>_xf` keys.

    The label is transformed only when present in `inputs`, so the same graph serves unlabeled data.
    """
    config = trainer_config.parse(custom_config, "preprocessing_fn")
    outputs = {}
    for spec in config.features:
        if spec.is_numeric:
            outputs[spec.transformed_name] = impute_and_scale(inputs[spec.name])
        else:
            outputs[spec.transformed_name] = categorical_ids(
                inputs[spec.name], spec.name, top_k=spec.top_k, oov_buckets=spec.oov_buckets
            )
    if config.label.name in inputs:
        outputs[config.label.transformed_name] = transform_label(inputs[config.label.name], config)
    return outputs


def transform_label(x: TensorLike, config: trainer_config.TrainerConfig) -> tf.Tensor:
    """The label as the task's loss expects it (see the module docstring)."""
    if config.is_regression:
        return to_dense_column(tf.cast(x, tf.float32), default_value=float("nan"))
    if config.is_binary:
        return binary_label_ids(x, config.label.positive_class)
    return label_ids(x, list(config.label.classes))


def to_dense_column(x: TensorLike, default_value) -> tf.Tensor:
    """One value per row as a [batch] tensor; rows without a value get `default_value`.

    A varlen SparseTensor's dense shape may be [batch, 0] when no row of the batch has a value, so
    the shape is forced to [batch, 1] before densifying (the classic TFX `_fill_in_missing`).
    """
    if isinstance(x, tf.RaggedTensor):
        x = x.to_sparse()
    if isinstance(x, tf.SparseTensor):
        column = tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], tf.constant(1, tf.int64)]))
        default = tf.cast(default_value, x.dtype)
        return tf.squeeze(tf.sparse.to_dense(column, default_value=default), axis=1)
    if x.shape.rank == 2:
        return x[:, 0]
    return x


def impute_and_scale(x: TensorLike) -> tf.Tensor:
    """Missing -> training mean, then (x - mean) / std over the training values present.

    Statistics come from present values only: imputing first would shrink the variance by the share
    of missing cells. A constant column (std 0) is only centred.
    """
    values = tf.cast(x, tf.float32)  # keeps a SparseTensor sparse: analyzers see present values only
    mean = tft.mean(values)
    std = tf.sqrt(tft.var(values))
    imputed = to_dense_column(values, default_value=mean)
    centred = imputed - mean
    return tf.where(std > 0.0, centred / tf.where(std > 0.0, std, 1.0), centred)


def _as_category_strings(x: TensorLike) -> TensorLike:
    """Integer-coded categories become strings so every vocabulary (and serving input) is text."""
    if x.dtype == tf.string:
        return x
    if isinstance(x, tf.SparseTensor):
        return tf.SparseTensor(x.indices, tf.strings.as_string(x.values), x.dense_shape)
    return tf.strings.as_string(x)


def fill_missing_category(x: TensorLike) -> tf.Tensor:
    """[batch] strings with absent and empty values replaced by `features.MISSING_CATEGORY`."""
    dense = to_dense_column(_as_category_strings(x), default_value=features.MISSING_CATEGORY)
    return tf.where(tf.equal(dense, ""), features.MISSING_CATEGORY, dense)


def categorical_ids(x: TensorLike, name: str, top_k: Optional[int], oov_buckets: int) -> tf.Tensor:
    """Vocabulary ids in [0, vocabulary_size + oov_buckets); unseen values hash into the OOV buckets."""
    return tft.compute_and_apply_vocabulary(
        fill_missing_category(x),
        top_k=top_k,
        num_oov_buckets=oov_buckets,
        vocab_filename=features.vocabulary_file_name(name),
    )


def label_ids(x: TensorLike, classes: list[str]) -> tf.Tensor:
    """int64 [batch]: position of each label in `classes`, -1 for a missing or unknown label."""
    labels = to_dense_column(_as_category_strings(x), default_value="")
    matches = tf.equal(tf.expand_dims(labels, 1), tf.constant(classes, dtype=tf.string)[tf.newaxis, :])
    ids = tf.argmax(tf.cast(matches, tf.int64), axis=1, output_type=tf.int64)
    return tf.where(tf.reduce_any(matches, axis=1), ids, tf.constant(-1, tf.int64))


def binary_label_ids(x: TensorLike, positive_class: str) -> tf.Tensor:
    """int64 [batch]: 1 for `positive_class`, 0 for any other value, -1 for a missing label."""
    labels = to_dense_column(_as_category_strings(x), default_value="")
    ids = tf.cast(tf.equal(labels, positive_class), tf.int64)
    return tf.where(tf.equal(labels, ""), tf.constant(-1, tf.int64), ids)
