"""The TFMA config built from YAML: slices, per-class metrics and the blessing rules."""
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
import yaml

from pipeline import config
from pipeline.pipeline import eval_config, slice_min_examples

ROOT = Path(__file__).resolve().parents[2]


def _cfg(slice_thresholds=(), **thresholds):
    cfg = config.load(ROOT / "configs/penguin.yaml").cfg
    evaluation = config.EvaluationConfig(
        slices=cfg.evaluation.slices, thresholds=thresholds or {"sparse_categorical_accuracy": {"lower_bound": 0.5}},
        slice_thresholds=list(slice_thresholds))
    return cfg.model_copy(update={"evaluation": evaluation})


def _metric(eval_cfg, class_name):
    return next(m for spec in eval_cfg.metrics_specs for m in spec.metrics if m.class_name == class_name)


def _gates(eval_cfg, class_name):
    """(feature keys of the slicing spec, threshold) for each gate TFMA will check on this metric."""
    return [(list(spec.feature_keys), gate.threshold)
            for gate in _metric(eval_cfg, class_name).per_slice_thresholds for spec in gate.slicing_specs]


def test_accuracy_floor_and_allowed_drop_gate_the_overall_slice_only():
    result = eval_config(_cfg(sparse_categorical_accuracy={"lower_bound": 0.85, "max_decrease": 0.05}))
    assert not _metric(result, "SparseCategoricalAccuracy").HasField("threshold"), "a plain threshold gates every slice"
    [(feature_keys, threshold)] = _gates(result, "SparseCategoricalAccuracy")
    assert feature_keys == [], "the empty SlicingSpec: the overall slice"
    assert threshold.value_threshold.lower_bound.value == 0.85
    assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(-0.05)


def test_loss_ceiling_is_lower_is_better():
    result = eval_config(_cfg(sparse_categorical_crossentropy={"upper_bound": 0.3, "max_decrease": 0.1}))
    [(feature_keys, threshold)] = _gates(result, "SparseCategoricalCrossentropy")
    assert feature_keys == []
    assert threshold.value_threshold.upper_bound.value == 0.3
    assert threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(0.1)
    assert not _metric(result, "SparseCategoricalAccuracy").HasField("threshold")
    assert not _gates(result, "SparseCategoricalAccuracy")


def test_slice_threshold_gates_every_slice_of_its_feature_and_is_sliced_by():
    rule = config.SliceThresholdConfig(slice=["body_mass_g"], metric="sparse_categorical_accuracy",
                                       lower_bound=0.6, min_examples=30)
    cfg = _cfg([rule], sparse_categorical_accuracy={"lower_bound": 0.85})
    result = eval_config(cfg)
    gates = _gates(result, "SparseCategoricalAccuracy")
    assert [keys for keys, _ in gates] == [[], ["body_mass_g"]]
    assert gates[1][1].value_threshold.lower_bound.value == 0.6
    assert not gates[1][1].HasField("change_threshold")
    assert [list(s.feature_keys) for s in result.slicing_specs] == [[], ["island"], ["sex"], ["body_mass_g"]]
    assert slice_min_examples(cfg.evaluation) == [
        {"slice": ["body_mass_g"], "metric": "sparse_categorical_accuracy", "min_examples": 30}]


def test_slices_label_and_per_class_metrics():
    result = eval_config(_cfg())
    assert [list(s.feature_keys) for s in result.slicing_specs] == [[], ["island"], ["sex"]]
    spec = result.model_specs[0]
    assert (spec.signature_name, spec.label_key, list(spec.preprocessing_function_names)) == (
        "classification", "species_xf", ["transform_features"])
    binarized = next(s for s in result.metrics_specs if s.HasField("binarize"))
    assert list(binarized.binarize.class_ids.values) == [0, 1, 2]


def _load_with(tmp_path, change):
    raw = yaml.safe_load((ROOT / "configs/penguin.yaml").read_text())
    raw["data"]["path"] = str(ROOT / "data/penguins")
    raw["validation"]["schema_path"] = str(ROOT / "configs/schemas/penguin.pbtxt")
    change(raw["evaluation"])
    path = tmp_path / "configs" / "penguin.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return config.load(path)


def test_unknown_threshold_metric_is_a_config_error(tmp_path):
    def rename(evaluation):
        evaluation["thresholds"] = {"auc": evaluation["thresholds"]["sparse_categorical_accuracy"]}
    with pytest.raises(config.ConfigError, match=r"evaluation\.thresholds: .*unknown metrics \['auc'\]"):
        _load_with(tmp_path, rename)


_RULE = {"slice": ["island"], "metric": "sparse_categorical_accuracy", "lower_bound": 0.6, "min_examples": 30}


@pytest.mark.parametrize("change, message", [
    (lambda e: e.update(slice_thresholds=[{**_RULE, "metric": "accuracy_score"}]),
     r"evaluation\.slice_thresholds\.0\.metric: .*unknown metric 'accuracy_score'"),
    (lambda e: e.update(slice_thresholds=[{**_RULE, "metric": "auc"}]),
     r"evaluation\.slice_thresholds: unknown metrics \['auc'\] for task multiclass"),
    (lambda e: e.update(slice_thresholds=[{k: v for k, v in _RULE.items() if k != "min_examples"}]),
     r"evaluation\.slice_thresholds\.0\.min_examples: required key is missing"),
    (lambda e: e.update(slice_thresholds=[{**_RULE, "slice": ["colour"]}]),
     r"evaluation\.slice_thresholds names unknown features \['colour'\]"),
    (lambda e: e.update(slice_thresholds=[_RULE, {**_RULE, "lower_bound": 0.7}]),
     r"more than one rule for \[\"\['island'\] sparse_categorical_accuracy\"\]"),
    (lambda e: e.update(thresholds={"sparse_categorical_accuracy": {}}),
     r"needs lower_bound, upper_bound or max_decrease"),
    (lambda e: e.update(thresholds={"sparse_categorical_accuracy": {"lower_bound": 0.9, "upper_bound": 0.8}}),
     r"lower_bound 0\.9 is above upper_bound 0\.8"),
    (lambda e: e.update(thresholds={"sparse_categorical_accuracy": {"max_decrease": 0.05}}),
     r"max_decrease alone never blesses it"),
])
def test_evaluation_mistakes_are_config_errors(tmp_path, change, message):
    with pytest.raises(config.ConfigError, match=message):
        _load_with(tmp_path, change)


def test_slice_threshold_alone_can_bless(tmp_path):
    loaded = _load_with(tmp_path, lambda e: e.update(thresholds={}, slice_thresholds=[_RULE]))
    assert loaded.cfg.evaluation.sliced_by() == [["island"], ["sex"]], "a slice already listed is not added twice"


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
    [([], threshold)] = _gates(result, "AUC")
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
    [([], threshold)] = _gates(result, "RootMeanSquaredError")
    assert threshold.value_threshold.upper_bound.value == 500
    assert threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(10)


_BINARY_LABEL = {"name": "species", "classes": ["Adelie", "Gentoo"]}


def test_binary_precision_recall_on_the_positive_class_and_example_count_on_its_own():
    result = eval_config(_task_cfg(_BINARY_LABEL, {
        "precision": {"lower_bound": 0.8, "max_decrease": 0.02}, "recall": {"lower_bound": 0.7},
        "calibration": {"lower_bound": 0.9, "upper_bound": 1.1}, "example_count": {"lower_bound": 50}}))
    plain, binarized = result.metrics_specs
    assert [m.class_name for m in plain.metrics] == ["ExampleCount"] and not plain.HasField("binarize")
    [([], count)] = _gates(result, "ExampleCount")
    assert count.value_threshold.lower_bound.value == 50 and not count.HasField("change_threshold")
    names = [m.class_name for m in binarized.metrics]
    assert len(names) == len(set(names)), "each metric once per spec"
    assert {"Precision", "Recall", "Calibration", "AUC"} <= set(names) and "ExampleCount" not in names
    [([], precision)] = _gates(result, "Precision")
    assert precision.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    [([], calibration)] = _gates(result, "Calibration")
    assert (calibration.value_threshold.lower_bound.value, calibration.value_threshold.upper_bound.value) == (0.9, 1.1)


def test_regression_calibration_and_example_count_share_the_task_spec():
    result = eval_config(_task_cfg({"name": "body_mass_g_target", "type": "numeric"},
                                   {"calibration": {"lower_bound": 0.95, "upper_bound": 1.05},
                                    "root_mean_squared_error": {"upper_bound": 500}}))
    [spec] = result.metrics_specs
    names = [m.class_name for m in spec.metrics]
    assert {"Calibration", "ExampleCount", "RootMeanSquaredError"} <= set(names) and len(names) == len(set(names))


def test_every_task_computes_each_of_its_metrics_once():
    for label in (_BINARY_LABEL, {"name": "body_mass_g_target", "type": "numeric"},
                  {"name": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"]}):
        cfg = _task_cfg(label, {"example_count": {"lower_bound": 1}})
        specs = eval_config(cfg).metrics_specs
        for spec in specs:
            names = [m.class_name for m in spec.metrics]
            assert len(names) == len(set(names)), (cfg.task, names)
        computed = {m.class_name for spec in specs for m in spec.metrics}
        assert {config.THRESHOLD_METRICS[m].tfma_class for m in config.task_metrics(cfg.task)} <= computed


@pytest.mark.parametrize("label, thresholds, message", [
    (_BINARY_LABEL, {"calibration": {"lower_bound": 0.9, "max_decrease": 0.1}},
     r"evaluation\.thresholds\.calibration: max_decrease does not apply to calibration: .* best at 1\.0"),
    (_BINARY_LABEL, {"auc": {"lower_bound": 0.7}, "example_count": {"upper_bound": 1000}},
     r"evaluation\.thresholds\.example_count: upper_bound does not apply to example_count: .*only a floor"),
    (_BINARY_LABEL, {"auc": {"lower_bound": 0.7}, "example_count": {"lower_bound": 5, "max_decrease": 1}},
     r"max_decrease does not apply to example_count"),
    ({"name": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"]}, {"precision": {"lower_bound": 0.7}},
     r"unknown metrics \['precision'\] for task multiclass; choose from \[.*'example_count'\]"),
    ({"name": "body_mass_g_target", "type": "numeric"}, {"recall": {"lower_bound": 0.7}},
     r"unknown metrics \['recall'\] for task regression; choose from \[.*'calibration'.*\]"),
])
def test_meaningless_threshold_rules_are_refused_at_load(label, thresholds, message):
    with pytest.raises(ValueError, match=message):
        _task_cfg(label, thresholds)


def test_slice_threshold_rules_are_checked_too():
    rule = {"slice": ["island"], "metric": "calibration", "max_decrease": 0.1, "min_examples": 10}
    cfg = config.load(ROOT / "configs/penguin.yaml").cfg
    raw = cfg.model_dump(exclude={"task"})
    raw.update(label=_BINARY_LABEL, evaluation={"thresholds": {"auc": {"lower_bound": 0.7}}, "slice_thresholds": [rule]})
    with pytest.raises(ValueError, match=r"evaluation\.slice_thresholds\.0: max_decrease does not apply to calibration"):
        config.PipelineConfig.model_validate(raw)
