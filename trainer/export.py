"""Exports the trained model as a SavedModel whose signatures are the serving contract.

Every name below comes from `trainer.contract`, which the model server, TF Serving, the TFMA Evaluator
config, the client and the tests read too:

- `SERVING_SIGNATURE`: one `[None]` tensor per configured raw feature — float32 for numeric features
  (whatever the schema's dtype; NaN means missing for columns the schema allows to be missing),
  string for categorical ones — so JSON clients never need to know the schema. Outputs `SCORES`
  float32 [N, K], `CLASSES` string [N, K] and `PREDICTED_CLASS` string [N].
- `CLASSIFY_SIGNATURE`: `CLASSIFY_INPUTS` = serialized tf.Example [None] -> `CLASSES`, `SCORES`; its
  method_name is rewritten to `CLASSIFY_METHOD`, which TF Serving's Classify API insists on.
- `TRANSFORM_SIGNATURE`: `TRANSFORM_INPUTS` = serialized tf.Example [None] -> every transformed
  feature, including the label's when the examples carry it, for TFMA and skew checks.

Examples may omit any configured feature: it is then missing, exactly like NaN or "" in
`serving_default` (imputed, or the missing category), so both entry points agree on what "missing" is.

Warm-up requests for `SERVING_SIGNATURE` are written to `contract.WARMUP_FILE`.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from trainer import contract, warmup
from trainer.trainer_config import TrainerConfig


class ServingModule(tf.Module):
    """Holds the Keras model and the TFT layer so both are tracked and saved with the signatures."""

    def __init__(self, model, tf_transform_output: tft.TFTransformOutput, config: TrainerConfig):
        super().__init__(name="serving_module")
        self.model = model
        self.tft_layer = tf_transform_output.transform_features_layer()
        self._raw_spec = tf_transform_output.raw_feature_spec()
        self._config = config
        self._model_keys = [spec.transformed_name for spec in config.features]
        self._class_names = tf.constant(list(config.label.classes))
        _check_supported_specs(self._raw_spec, config.feature_names)

    def predict_raw(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """serving_default: JSON-friendly [None] tensors -> scores, classes, predicted_class."""
        raw = {name: self._raw_column(name, value) for name, value in inputs.items()}
        scores = self._scores(raw)
        return {
            contract.SCORES: scores,
            contract.CLASSES: self._classes_per_row(scores),
            contract.PREDICTED_CLASS: tf.gather(self._class_names, tf.argmax(scores, axis=1)),
        }

    def classify_examples(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        """classification: serialized tf.Examples (label not needed) -> classes, scores."""
        raw = tf.io.parse_example(serialized, self._parse_spec(with_label=False))
        scores = self._scores(raw)
        return {contract.CLASSES: self._classes_per_row(scores), contract.SCORES: scores}

    def transform_examples(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        """transform_features: serialized tf.Examples -> transformed features (label when present)."""
        raw = tf.io.parse_example(serialized, self._parse_spec(with_label=True))
        return dict(self.tft_layer(raw))

    def _scores(self, raw: Mapping[str, Any]) -> tf.Tensor:
        transformed = self.tft_layer(raw)
        model_inputs = {key: transformed[key] for key in self._model_keys}
        return tf.cast(self.model(model_inputs, training=False), tf.float32)

    def _classes_per_row(self, scores: tf.Tensor) -> tf.Tensor:
        """TF Serving's classify layout: the class names repeated on every row, aligned with scores."""
        return tf.tile(self._class_names[tf.newaxis, :], [tf.shape(scores)[0], 1])

    def _parse_spec(self, with_label: bool) -> dict[str, Any]:
        """Raw spec of the configured features, plus the label when asked for, each made optional.

        Only configured columns are parsed, so examples need not carry unused schema columns; the TFT
        layer supplies placeholders for raw inputs it is not given.
        """
        spec = {name: _optional(self._raw_spec[name]) for name in self._config.feature_names}
        label = self._config.label.name
        if with_label and label in self._raw_spec:
            spec[label] = _optional(self._raw_spec[label])
        return spec

    def _raw_column(self, name: str, value: tf.Tensor) -> Any:
        """A [None] serving input shaped and typed as the transform graph expects for column `name`."""
        spec = self._raw_spec[name]
        present = tf.ones_like(value, dtype=tf.bool)
        if value.dtype.is_floating:
            present = tf.logical_not(tf.math.is_nan(value))
            if spec.dtype.is_integer:
                value = tf.round(value)
        elif value.dtype == tf.string and spec.dtype != tf.string:
            value = tf.strings.to_number(value, out_type=tf.float64)
        value = tf.cast(value, spec.dtype)
        if isinstance(spec, tf.io.VarLenFeature):
            return _varlen_column(value, present)
        return tf.reshape(value, [-1] + list(spec.shape))


def _varlen_column(value: tf.Tensor, present: tf.Tensor) -> tf.SparseTensor:
    """SparseTensor [N, 1] holding the present values.

    Indices are built explicitly: `tf.sparse.from_dense` would drop legitimate zeros and empty
    strings, turning real values into missing ones.
    """
    rows = tf.where(present)  # [n_present, 1] int64
    indices = tf.concat([rows, tf.zeros_like(rows)], axis=1)
    dense_shape = tf.stack([tf.shape(value, out_type=tf.int64)[0], tf.constant(1, tf.int64)])
    return tf.SparseTensor(indices, tf.boolean_mask(value, present), dense_shape)


def _optional(spec: Any) -> Any:
    """A parse spec that accepts examples lacking the column.

    The default is what `serving_default` sends for a missing value where one exists: "" for strings
    (the missing category), NaN for floats; integers have no such value and get 0.
    """
    if isinstance(spec, tf.io.FixedLenFeature) and spec.default_value is None:
        fill = "" if spec.dtype == tf.string else float("nan") if spec.dtype.is_floating else 0
        size = 1
        for dim in spec.shape:
            size *= int(dim)
        default = [fill] * size if spec.shape else fill
        return tf.io.FixedLenFeature(spec.shape, spec.dtype, default_value=default)
    return spec


def _check_supported_specs(raw_spec: Mapping[str, Any], names: list[str]) -> None:
    """Fail at export, not at serving time, when a feature cannot be fed one value per row."""
    for name in names:
        spec = raw_spec.get(name)
        if spec is None:
            raise ValueError(f"feature {name!r} is not in the transform graph's raw schema")
        if isinstance(spec, tf.io.VarLenFeature):
            continue
        if not isinstance(spec, tf.io.FixedLenFeature) or list(spec.shape) not in ([], [1]):
            raise ValueError(f"feature {name!r}: serving supports one value per row, schema spec is {spec}")


def serving_input_signature(config: TrainerConfig) -> dict[str, tf.TensorSpec]:
    """serving_default inputs: float32 for every numeric feature, string for every categorical one."""
    return {
        spec.name: tf.TensorSpec([None], tf.float32 if spec.is_numeric else tf.string, name=spec.name)
        for spec in config.features
    }


def make_signatures(module: ServingModule, config: TrainerConfig) -> dict[str, Any]:
    """Concrete functions for the three exported signatures, keyed by signature name."""
    return {
        contract.SERVING_SIGNATURE: tf.function(module.predict_raw).get_concrete_function(
            serving_input_signature(config)
        ),
        contract.CLASSIFY_SIGNATURE: tf.function(module.classify_examples).get_concrete_function(
            tf.TensorSpec([None], tf.string, name=contract.CLASSIFY_INPUTS)
        ),
        contract.TRANSFORM_SIGNATURE: tf.function(module.transform_examples).get_concrete_function(
            tf.TensorSpec([None], tf.string, name=contract.TRANSFORM_INPUTS)
        ),
    }


def export_serving_model(
    model, tf_transform_output: tft.TFTransformOutput, config: TrainerConfig, export_dir: str
) -> str:
    """Saves model + transform graph with the contract's signatures and warm-up data; returns export_dir."""
    module = ServingModule(model, tf_transform_output, config)
    tf.saved_model.save(module, export_dir, signatures=make_signatures(module, config))
    set_signature_method_name(export_dir, contract.CLASSIFY_SIGNATURE, contract.CLASSIFY_METHOD)
    warmup.write_warmup_requests(export_dir, config, tf_transform_output)
    return export_dir


def set_signature_method_name(export_dir: str, signature_name: str, method_name: str) -> None:
    """Rewrites one signature's method_name in saved_model.pb.

    TF2 `tf.saved_model.save` marks every signature as a Predict one; TF Serving's Classify API
    rejects signatures whose method_name is not `tensorflow/serving/classify`. The fingerprint is
    recomputed afterwards so it still describes the file on disk.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if signature_name not in meta_graph.signature_def:
            raise KeyError(f"signature {signature_name!r} not in {path}")
        meta_graph.signature_def[signature_name].method_name = method_name
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved_model.SerializeToString())
    _rewrite_fingerprint(export_dir)


def _rewrite_fingerprint(export_dir: str) -> None:
    try:
        from tensorflow.python.saved_model import fingerprinting_utils
    except ImportError:  # private module; an older/newer TF without it simply keeps its fingerprint
        return
    fingerprinting_utils.write_fingerprint(export_dir)
