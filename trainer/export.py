"""Exports the trained model as a SavedModel whose signatures are the serving contract.

Every name below comes from `trainer.contract`, which the model server, TF Serving, the TFMA Evaluator
config, the client and the tests read too. Which signatures exist follows the task:

- `SERVING_SIGNATURE` (always): one `[None]` tensor per configured raw feature — float32 for numeric
  features (whatever the schema's dtype; NaN means missing), string for categorical ones — so JSON
  clients never need to know the schema. Classification (multiclass and binary alike) outputs
  `SCORES` float32 [N, K], `CLASSES` string [N, K] and `PREDICTED_CLASS` string [N] (binary: K = 2,
  negative class first); regression outputs `REGRESS_OUTPUTS` float32 [N] in the label's units.
- `CLASSIFY_SIGNATURE` (classification): `CLASSIFY_INPUTS` = serialized tf.Example [None] -> `CLASSES`,
  `SCORES`; method_name `CLASSIFY_METHOD`, which TF Serving's Classify API insists on.
- `REGRESS_SIGNATURE` (regression): `REGRESS_INPUTS` = serialized tf.Example [None] ->
  `REGRESS_OUTPUTS` float32 [N]; method_name `REGRESS_METHOD` for TF Serving's Regress API.
- `TRANSFORM_SIGNATURE` (always): `TRANSFORM_INPUTS` = serialized tf.Example [None] -> every
  transformed feature, including the label's when the examples carry it, for TFMA and skew checks.

One type contract across signatures: a numeric column may arrive in a tf.Example as an int64_list or
a float_list (TF Serving's REST `examples` turn `4200` into one and `4200.0` into the other), and
every tf.Example signature reads either, then converts to the schema's dtype exactly as
`serving_default` converts its float32 inputs — so the metadata's DT_FLOAT is the truth for every
entry point. Examples may omit any configured feature: it is then missing, exactly like NaN or "" in
`serving_default` (imputed, or the missing category).

Warm-up records (`contract.WARMUP_FILE`) exercise every signature TF Serving can be asked for.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from trainer import contract, examples, warmup
from trainer.trainer_config import TrainerConfig


class ServingModule(tf.Module):
    """Holds the Keras model and the TFT layer so both are tracked and saved with the signatures."""

    def __init__(self, model, tf_transform_output: tft.TFTransformOutput, config: TrainerConfig):
        super().__init__(name="serving_module")
        self.model = model
        self.tft_layer = tf_transform_output.transform_features_layer()
        self._raw_spec = tf_transform_output.raw_feature_spec()
        self._config = config
        self._model_keys = [spec.transformed_name for spec in config.features] + [
            contract.transformed_name(name) for name in config.cross_names]
        self._class_names = tf.constant(list(config.label.classes) or [""])
        _check_supported_specs(self._raw_spec, config.feature_names)

    def predict_raw(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """serving_default: JSON-friendly [None] tensors -> the task's outputs."""
        outputs = self._outputs({name: self._raw_column(name, value) for name, value in inputs.items()})
        if self._config.is_regression:
            return {contract.REGRESS_OUTPUTS: outputs}
        return {
            contract.SCORES: outputs,
            contract.CLASSES: self._classes_per_row(outputs),
            contract.PREDICTED_CLASS: tf.gather(self._class_names, tf.argmax(outputs, axis=1)),
        }

    def classify_examples(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        """classification: serialized tf.Examples (label not needed) -> classes, scores."""
        scores = self._outputs(self._parse(serialized, with_label=False))
        return {contract.CLASSES: self._classes_per_row(scores), contract.SCORES: scores}

    def regress_examples(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        """regression: serialized tf.Examples (label not needed) -> outputs [N] in the label's units."""
        return {contract.REGRESS_OUTPUTS: self._outputs(self._parse(serialized, with_label=False))}

    def transform_examples(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        """transform_features: serialized tf.Examples -> transformed features (label when present)."""
        return dict(self.tft_layer(self._parse(serialized, with_label=True)))

    def _outputs(self, raw: Mapping[str, Any]) -> tf.Tensor:
        """Classification: float32 [N, K] scores (binary: [1 - p, p]); regression: float32 [N]."""
        transformed = self.tft_layer(raw)
        model_inputs = {key: transformed[key] for key in self._model_keys}
        output = tf.cast(self.model(model_inputs, training=False), tf.float32)
        if self._config.is_regression:
            return tf.reshape(output, [-1])
        if self._config.is_binary:
            positive = tf.reshape(output, [-1, 1])
            return tf.concat([1.0 - positive, positive], axis=1)
        return output

    def _classes_per_row(self, scores: tf.Tensor) -> tf.Tensor:
        """TF Serving's classify layout: the class names repeated on every row, aligned with scores."""
        return tf.tile(self._class_names[tf.newaxis, :], [tf.shape(scores)[0], 1])

    def _parse(self, serialized: tf.Tensor, with_label: bool) -> dict[str, Any]:
        """Raw columns of the configured features (and the label when asked for) from tf.Examples.

        Only configured columns are parsed, so examples need not carry unused schema columns; the TFT
        layer supplies placeholders for raw inputs it is not given. Numeric columns are read whether
        sent as int64 or float (`examples.numeric_columns`), string ones by `tf.io.parse_example`.
        """
        names = list(self._config.feature_names)
        if with_label and self._config.label.name in self._raw_spec:
            names.append(self._config.label.name)
        numeric = [name for name in names if self._raw_spec[name].dtype != tf.string]
        strings = {name: _optional(self._raw_spec[name]) for name in names if name not in numeric}
        raw = dict(tf.io.parse_example(serialized, strings)) if strings else {}
        for name, values in examples.numeric_columns(serialized, numeric).items():
            raw[name] = self._raw_column(name, values)
        return raw

    def _raw_column(self, name: str, value: tf.Tensor) -> Any:
        """A [None] serving input shaped and typed as the transform graph expects for column `name`."""
        spec = self._raw_spec[name]
        present = tf.ones_like(value, dtype=tf.bool)
        if value.dtype.is_floating:
            present = tf.logical_not(tf.math.is_nan(value))
            if spec.dtype.is_integer:  # NaN has no integer form: 0 stands in, as in a parse default
                value = tf.where(present, tf.round(value), tf.zeros_like(value))
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

    The default is what `serving_default` sends for a missing value: "" for strings (the missing
    category); numeric columns are not parsed here (see `examples.numeric_columns`).
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
    """Concrete functions for the task's exported signatures, keyed by signature name."""
    if config.is_regression:
        examples_signature = (contract.REGRESS_SIGNATURE, module.regress_examples, contract.REGRESS_INPUTS)
    else:
        examples_signature = (contract.CLASSIFY_SIGNATURE, module.classify_examples, contract.CLASSIFY_INPUTS)
    name, function, input_key = examples_signature
    return {
        contract.SERVING_SIGNATURE: tf.function(module.predict_raw).get_concrete_function(
            serving_input_signature(config)
        ),
        name: tf.function(function).get_concrete_function(tf.TensorSpec([None], tf.string, name=input_key)),
        contract.TRANSFORM_SIGNATURE: tf.function(module.transform_examples).get_concrete_function(
            tf.TensorSpec([None], tf.string, name=contract.TRANSFORM_INPUTS)
        ),
    }


def method_names(config: TrainerConfig) -> dict[str, str]:
    """TF Serving method names of the task's tf.Example signatures (the others stay Predict)."""
    if config.is_regression:
        return {contract.REGRESS_SIGNATURE: contract.REGRESS_METHOD}
    return {contract.CLASSIFY_SIGNATURE: contract.CLASSIFY_METHOD}


def export_serving_model(
    model, tf_transform_output: tft.TFTransformOutput, config: TrainerConfig, export_dir: str
) -> str:
    """Saves model + transform graph with the contract's signatures and warm-up data; returns export_dir."""
    module = ServingModule(model, tf_transform_output, config)
    tf.saved_model.save(module, export_dir, signatures=make_signatures(module, config))
    for signature_name, method_name in method_names(config).items():
        set_signature_method_name(export_dir, signature_name, method_name)
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
