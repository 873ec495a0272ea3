"""The TFMA config built from YAML: slices, per-class metrics and the blessing rules."""
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma

from pipeline import config
from pipeline.pipeline import eval_config

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**thresholds):
    cfg = config.load(ROOT / "configs/penguin.yaml").cfg
    evaluation = cfg.evaluation.model_copy(update={"thresholds": {k: config.ThresholdConfig(**v) for k, v in thresholds.items()}})
    return cfg.model_copy(update={"evaluation": evaluation})


def _metric(eval_cfg, class_name):
    return next(m for spec in eval_cfg.metrics_specs for m in spec.metrics if m.class_name == class_name)


def test_accuracy_floor_and_allowed_drop():
    result = eval_config(_cfg(sparse_categorical_accuracy={"lower_bound": 0.85, "max_decrease": 0.05}))
    threshold = _metric(result, "SparseCategoricalAccuracy").threshold
    assert threshold.value_threshold.lower_bound.value == 0.85
    assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(-0.05)


def test_loss_ceiling_is_lower_is_better():
    result = eval_config(_cfg(sparse_categorical_crossentropy={"upper_bound": 0.3, "max_decrease": 0.1}))
    threshold = _metric(result, "SparseCategoricalCrossentropy").threshold
    assert threshold.value_threshold.upper_bound.value == 0.3
    assert threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(0.1)
    assert not _metric(result, "SparseCategoricalAccuracy").HasField("threshold")


def test_slices_label_and_per_class_metrics():
    result = eval_config(_cfg())
    assert [list(s.feature_keys) for s in result.slicing_specs] == [[], ["island"], ["sex"]]
    spec = result.model_specs[0]
    assert (spec.signature_name, spec.label_key, list(spec.preprocessing_function_names)) == (
        "classification", "species_xf", ["transform_features"])
    binarized = next(s for s in result.metrics_specs if s.HasField("binarize"))
    assert list(binarized.binarize.class_ids.values) == [0, 1, 2]


def test_unknown_threshold_metric_is_a_config_error(tmp_path):
    text = (ROOT / "configs/penguin.yaml").read_text().replace("sparse_categorical_accuracy: {", "auc: {")
    path = tmp_path / "configs" / "penguin.yaml"
    path.parent.mkdir()
    path.write_text(text.replace("data/penguins", str(ROOT / "data/penguins")).replace(
        "configs/schemas/penguin.pbtxt", str(ROOT / "configs/schemas/penguin.pbtxt")))
    with pytest.raises(config.ConfigError, match=r"evaluation\.thresholds: .*unknown metrics \['auc'\]"):
        config.load(path)


def _task_cfg(label, thresholds):
    cfg = config.load(ROOT / "configs/penguin.yaml").cfg
    raw = cfg.model_dump(exclude={"task"})
    raw.update(label=label, evaluation={"thresholds": thresholds})
    return config.PipelineConfig.model_validate(raw)


def test_binary_reads_the_positive_class_score_of_the_classify_signature():
    result = eval_config(_task_cfg({"name": "species", "classes": ["Adelie", "Gentoo"]},
                                   {"auc": {"lower_bound": 0.9, "max_decrease": 0.02}}))
    spec = result.model_specs[0]
    assert (spec.signature_name, spec.prediction_key, spec.label_key) == ("classification", "scores", "species_xf")
    binarized = next(s for s in result.metrics_specs if s.HasField("binarize"))
    assert list(binarized.binarize.class_ids.values) == [1]
    names = {m.class_name for m in binarized.metrics}
    assert {"AUC", "AUCPrecisionRecall", "BinaryAccuracy", "Precision", "Recall"} <= names
    threshold = _metric(result, "AUC").threshold
    assert threshold.value_threshold.lower_bound.value == 0.9
    assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER


def test_regression_reads_the_regress_signature_and_lower_errors_are_better():
    result = eval_config(_task_cfg({"name": "body_mass_g_target", "type": "numeric"},
                                   {"root_mean_squared_error": {"upper_bound": 500, "max_decrease": 10}}))
    spec = result.model_specs[0]
    assert (spec.signature_name, spec.prediction_key) == ("regression", "outputs")
    assert not any(s.HasField("binarize") for s in result.metrics_specs)
    names = {m.class_name for s in result.metrics_specs for m in s.metrics}
    assert {"MeanSquaredError", "RootMeanSquaredError", "MeanAbsoluteError", "ExampleCount"} <= names
    threshold = _metric(result, "RootMeanSquaredError").threshold
    assert threshold.value_threshold.upper_bound.value == 500
    assert threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(10)
