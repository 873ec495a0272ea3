"""`preprocessing_fn` for TFX Transform: a function of the feature spec in `custom_config`.

Raw columns arrive as SparseTensors of dense shape [batch, <=1] when the schema says a column may be
missing (CSV cells left empty), or as dense [batch, 1] / [batch] tensors otherwise; every helper here
accepts both. Every output is one value per row ([batch]), so the model sees scalars per feature.

- numeric: `log` -> log(1 + max(x, 0)) first; missing -> training mean, then z-score with the
  training mean and standard deviation (so a missing value becomes exactly 0.0), or not
  (`normalize: none`); float32. `bucketize: N` instead gives the int64 id of the training quantile
  bucket (missing -> the mean's bucket).
- categorical: missing or empty -> `features.MISSING_CATEGORY`, then a vocabulary (top_k, oov_buckets)
  written under the feature's own name so Trainer can read its size back; int64 ids. With
  `hash_buckets: N`, the string's hash bucket instead (no vocabulary, no analyzer pass).
- text: lower-cased, split on anything but letters and digits, the first `max_tokens` tokens mapped
  through a vocabulary (top_k, oov_buckets) named after the feature; int64 [batch, max_tokens], -1
  where a document has fewer tokens (missing text has none).
- crosses: the members' category strings (bucket ids for bucketized numbers) joined and hashed into
  `cross_hash_buckets`; int64 ids keyed `<a>_X_<b>_xf`.
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

from trainer import contract, features, trainer_config

TensorLike = Any  # tf.Tensor | tf.SparseTensor | tf.RaggedTensor


def preprocessing_fn(inputs: Mapping[str, TensorLike], custom_config: Optional[Mapping[str, Any]] = None):
    """Transforms raw features and the label as configured; outputs `<name>_xf` keys.

    The label is transformed only when present in `inputs`, so the same graph serves unlabeled data.
    """
    config = trainer_config.parse_transform(custom_config, "preprocessing_fn")
    outputs = {spec.transformed_name: transform_feature(inputs[spec.name], spec) for spec in config.features}
    for cross in config.crosses:
        members = [_cross_member(inputs[name], config.feature(name), outputs) for name in cross]
        outputs[contract.transformed_name(trainer_config.cross_name(cross))] = hashed_cross(
            members, config.cross_hash_buckets)
    if config.label.name in inputs:
        outputs[config.label.transformed_name] = transform_label(inputs[config.label.name], config)
    return outputs


def transform_feature(x: TensorLike, spec: trainer_config.FeatureSpec) -> tf.Tensor:
    """One raw column -> what the model reads for it (see the module docstring)."""
    if spec.is_text:
        return text_token_ids(x, spec.name, spec.max_tokens, spec.top_k, spec.oov_buckets)
    if spec.is_numeric:
        values = log1p_nonnegative(x) if spec.log else x
        if spec.bucketize:
            return quantile_bucket_ids(values, spec.bucketize)
        return impute_and_scale(values) if spec.normalize == "zscore" else impute_mean(values)
    if spec.hash_buckets:
        return tf.strings.to_hash_bucket_fast(fill_missing_category(x), spec.hash_buckets)
    return categorical_ids(x, spec.name, top_k=spec.top_k, oov_buckets=spec.oov_buckets)


def transform_label(x: TensorLike, config: trainer_config.TransformConfig) -> tf.Tensor:
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


def _map_values(x: TensorLike, fn) -> TensorLike:
    """fn applied to the values of a dense or sparse tensor (a sparse one stays sparse)."""
    if isinstance(x, tf.RaggedTensor):
        x = x.to_sparse()
    if isinstance(x, tf.SparseTensor):
        return tf.SparseTensor(x.indices, fn(x.values), x.dense_shape)
    return fn(x)


def log1p_nonnegative(x: TensorLike) -> TensorLike:
    """log(1 + x) of float32 values, negatives clipped to 0 (a skewed amount has no negative part)."""
    return _map_values(x, lambda v: tf.math.log1p(tf.maximum(tf.cast(v, tf.float32), 0.0)))


def impute_mean(x: TensorLike) -> tf.Tensor:
    """float32 [batch]: missing -> training mean of the present values, no scaling."""
    values = tf.cast(x, tf.float32)
    return to_dense_column(values, default_value=tft.mean(values))


def quantile_bucket_ids(x: TensorLike, num_buckets: int) -> tf.Tensor:
    """int64 [batch] in [0, num_buckets): the training-quantile bucket; missing -> the mean's bucket."""
    return tf.cast(tft.bucketize(impute_mean(x), num_buckets), tf.int64)


def text_token_ids(x: TensorLike, name: str, max_tokens: int, top_k: Optional[int], oov_buckets: int) -> tf.Tensor:
    """int64 [batch, max_tokens]: vocabulary ids of the first tokens of each document, -1 after its end."""
    documents = to_dense_column(_as_category_strings(x), default_value="")
    words = tf.strings.regex_replace(tf.strings.lower(documents), r"[^\pL\pN]+", " ")
    tokens = tf.strings.split(tf.strings.strip(words))[:, :max_tokens]  # ragged [batch, <= max_tokens]
    ids = tft.compute_and_apply_vocabulary(
        tokens, top_k=top_k, num_oov_buckets=oov_buckets, vocab_filename=features.vocabulary_file_name(name))
    return ids.to_tensor(default_value=-1, shape=[None, max_tokens])


def _cross_member(x: TensorLike, spec: trainer_config.FeatureSpec, outputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """string [batch]: a cross member's value — its category, or its bucket id when bucketized."""
    if spec.bucketize:
        return tf.strings.as_string(outputs[spec.transformed_name])
    return fill_missing_category(x)


def hashed_cross(members: list[tf.Tensor], num_buckets: int) -> tf.Tensor:
    """int64 [batch]: the hash bucket of each row's joined member values."""
    return tf.strings.to_hash_bucket_fast(tf.strings.join(members, separator="\x1f"), num_buckets)
