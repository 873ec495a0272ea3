"""Why a model was (not) blessed: the failed checks the Evaluator records, and how the summary says them.

The TFMA results here are built by hand, in the shape TFMA 0.46 writes them (per-slice failures with
the metric key, value and threshold; metrics per slice and model, with diff keys for change thresholds).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tensorflow_model_analysis.proto import metrics_for_slice_pb2, validation_result_pb2
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as stock_executor
from tfx.types import standard_artifacts

from components import blessing_record, explained_evaluator
from pipeline import blessing

ROOT = Path(__file__).resolve().parents[2]
ACCURACY = "sparse_categorical_accuracy"
CYLINDER_RULE = {"slice": ["cylinders"], "metric": ACCURACY, "min_examples": 30}


def _slice_key(slice_key):
    return tfma.slicer.serialize_slice_key(slice_key)


def _metrics(slice_key, **values):
    """MetricsForSlice: keyword `name` for the candidate, `name__baseline`, `name__diff`."""
    result = metrics_for_slice_pb2.MetricsForSlice(slice_key=_slice_key(slice_key))
    for label, value in values.items():
        name, _, role = label.partition("__")
        kv = result.metric_keys_and_values.add()
        kv.key.name = name
        kv.key.model_name = {"baseline": "baseline"}.get(role, "candidate")
        kv.key.is_diff = role == "diff"
        kv.value.double_value.value = value
    return result


def _bound_failure(per_slice, value, lower_bound):
    failure = per_slice.failures.add()
    failure.metric_key.name = ACCURACY
    failure.metric_value.double_value.value = value
    failure.metric_threshold.value_threshold.lower_bound.value = lower_bound


def _cars_validation(*, worse_than_baseline=False):
    """The issue's cars run: overall fine, cylinders:4 (37 examples) and cylinders:5 (one example) below 0.6."""
    validation = validation_result_pb2.ValidationResult(validation_ok=False)
    for slice_key, value in (((("cylinders", 4),), 0.57), ((("cylinders", 5),), 0.0)):
        per_slice = validation.metric_validations_per_slice.add(slice_key=_slice_key(slice_key))
        _bound_failure(per_slice, value, 0.6)
    if worse_than_baseline:
        per_slice = validation.metric_validations_per_slice.add(slice_key=_slice_key(()))
        failure = per_slice.failures.add()
        failure.metric_key.name, failure.metric_key.is_diff = ACCURACY, True
        failure.metric_value.double_value.value = -0.2
        failure.metric_threshold.change_threshold.absolute.value = -0.0500000001
        failure.metric_threshold.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
    metrics = [
        _metrics((), example_count=80, sparse_categorical_accuracy=0.76, sparse_categorical_accuracy__baseline=0.96,
                 sparse_categorical_accuracy__diff=-0.2),
        _metrics((("cylinders", 4),), example_count=37, sparse_categorical_accuracy=0.57),
        _metrics((("cylinders", 5),), example_count=1, sparse_categorical_accuracy=0.0),
    ]
    return validation, metrics


def test_slices_below_min_examples_are_reported_not_gating():
    validation, metrics = _cars_validation()
    rule = {**CYLINDER_RULE, "min_examples": 38}
    checks = explained_evaluator.failed_checks(validation, metrics, [rule])
    assert [(c.slice, c.value, c.lower_bound, c.examples, c.gating) for c in checks] == [
        ("cylinders:4", 0.57, 0.6, 37, False), ("cylinders:5", 0.0, 0.6, 1, False)]
    assert explained_evaluator.only_small_slices_failed(validation, checks)


def test_a_slice_with_enough_examples_gates():
    validation, metrics = _cars_validation()
    checks = explained_evaluator.failed_checks(validation, metrics, [CYLINDER_RULE])
    assert [(c.slice, c.gating, c.min_examples) for c in checks] == [("cylinders:4", True, 30), ("cylinders:5", False, 30)]
    assert not explained_evaluator.only_small_slices_failed(validation, checks)


def test_change_check_records_candidate_and_baseline_and_overall_always_gates():
    validation, metrics = _cars_validation(worse_than_baseline=True)
    checks = explained_evaluator.failed_checks(validation, metrics, [{**CYLINDER_RULE, "min_examples": 100}])
    overall = checks[0]
    assert (overall.slice, overall.gating, overall.is_change) == ("Overall", True, True)
    assert (overall.value, overall.baseline_value, overall.max_decrease, overall.examples) == (0.76, 0.96, 0.05, 80)
    assert not explained_evaluator.only_small_slices_failed(validation, checks)


def test_binary_checks_read_the_positive_class_metric_and_the_unbinarized_example_count():
    """Binary metrics carry sub-key class_id 1 (binarized); example_count has no sub-key (a spec of its own)."""
    validation = validation_result_pb2.ValidationResult(validation_ok=False)
    failure = validation.metric_validations_per_slice.add(slice_key=_slice_key(())).failures.add()
    failure.metric_key.name, failure.metric_key.is_diff = "precision", True
    failure.metric_key.sub_key.class_id.value = 1
    failure.metric_threshold.change_threshold.absolute.value = -0.0200000001
    count_failure = validation.metric_validations_per_slice[0].failures.add()
    count_failure.metric_key.name = "example_count"
    count_failure.metric_value.double_value.value = 57
    count_failure.metric_threshold.value_threshold.lower_bound.value = 100
    metrics = _metrics((), example_count=57)
    for model, value in (("candidate", 0.81), ("baseline", 0.9)):
        kv = metrics.metric_keys_and_values.add()
        kv.key.name, kv.key.model_name = "precision", model
        kv.key.sub_key.class_id.value = 1
        kv.value.double_value.value = value
    checks = explained_evaluator.failed_checks(validation, [metrics], [])
    assert [(c.metric, c.value, c.baseline_value, c.lower_bound, c.examples) for c in checks] == [
        ("example_count", 57, None, 100, 57), ("precision", 0.81, 0.9, None, 57)]
    assert "example_count 57, bound >= 100 (57 examples)" in blessing.describe(checks[0])


def test_missing_slices_gate():
    validation = validation_result_pb2.ValidationResult(validation_ok=False)
    validation.missing_slices.add(feature_keys=["cylinders"])
    [check] = explained_evaluator.failed_checks(validation, [], [CYLINDER_RULE])
    assert check.gating and check.slice == "cylinders" and "no eval example" in check.message
    assert not explained_evaluator.only_small_slices_failed(validation, [check])


@pytest.fixture
def stock_refuses(monkeypatch, tmp_path):
    """The stock executor's verdict for the cars run (not blessed), then our executor on top of it."""
    def run(validation, metrics, rules):
        def stock_do(self, input_dict, output_dict, exec_properties):
            blessing_artifact = output_dict["blessing"][0]
            (Path(blessing_artifact.uri) / constants.NOT_BLESSED_FILE_NAME).write_text("")
            blessing_artifact.set_int_custom_property("blessed", 0)

        monkeypatch.setattr(stock_executor.Executor, "Do", stock_do)
        monkeypatch.setattr(tfma, "load_validation_result", lambda uri: validation)
        monkeypatch.setattr(tfma, "load_metrics", lambda uri: iter(metrics))
        artifact = standard_artifacts.ModelBlessing()
        artifact.uri = str(tmp_path)
        evaluation = standard_artifacts.ModelEvaluation()
        evaluation.uri = str(tmp_path / "evaluation")
        explained_evaluator.Executor().Do({}, {"blessing": [artifact], "evaluation": [evaluation]},
                                          {explained_evaluator.SLICE_MIN_EXAMPLES_KEY: json.dumps(rules)})
        return artifact
    return run


def test_executor_blesses_when_only_small_slices_failed(stock_refuses, tmp_path):
    artifact = stock_refuses(*_cars_validation(), [{**CYLINDER_RULE, "min_examples": 38}])
    assert artifact.get_int_custom_property("blessed") == 1
    assert (tmp_path / constants.BLESSED_FILE_NAME).exists()
    assert not (tmp_path / constants.NOT_BLESSED_FILE_NAME).exists()
    recorded = blessing_record.loads(artifact.get_string_custom_property("failed_checks"))
    assert [(c.slice, c.gating) for c in recorded] == [("cylinders:4", False), ("cylinders:5", False)]


def test_executor_keeps_the_refusal_when_a_gating_check_failed(stock_refuses, tmp_path):
    artifact = stock_refuses(*_cars_validation(), [CYLINDER_RULE])
    assert artifact.get_int_custom_property("blessed") == 0
    assert (tmp_path / constants.NOT_BLESSED_FILE_NAME).exists()
    assert not (tmp_path / constants.BLESSED_FILE_NAME).exists()
    assert len(blessing_record.loads(artifact.get_string_custom_property("failed_checks"))) == 2


def test_property_names_are_tfx_evaluators():
    assert blessing_record.BLESSED_PROPERTY == constants.ARTIFACT_PROPERTY_BLESSED_KEY
    assert blessing_record.BASELINE_MODEL_ID_PROPERTY == constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY
    assert blessing_record.BASELINE_MODEL_URI_PROPERTY == constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY


def _mlmd_blessing(checks, *, blessed, baseline=None):
    artifact = metadata_store_pb2.Artifact()
    artifact.custom_properties["blessed"].int_value = int(blessed)
    artifact.custom_properties["failed_checks"].string_value = blessing_record.dumps(checks)
    if baseline:
        artifact.custom_properties["baseline_model_id"].int_value = 7
        artifact.custom_properties["baseline_model"].string_value = baseline
    return artifact


def test_summary_names_slice_metric_value_bound_and_examples():
    validation, metrics = _cars_validation()
    checks = explained_evaluator.failed_checks(validation, metrics, [CYLINDER_RULE])
    decision = blessing.read_decision(_mlmd_blessing(checks, blessed=False))
    lines = blessing.summary_lines(decision)
    assert lines[0] == "Model blessed: no - 1 failed check (not pushed):"
    assert "  FAILED    cylinders:4: sparse_categorical_accuracy 0.57, bound >= 0.6 (37 examples; gates from 30)" in lines
    assert "  reported  cylinders:5: sparse_categorical_accuracy 0, bound >= 0.6 (1 example; gates from 30)" in lines
    assert lines[-1].startswith("No blessed baseline yet")


def test_summary_shows_both_values_when_the_change_threshold_decided():
    validation, metrics = _cars_validation(worse_than_baseline=True)
    checks = explained_evaluator.failed_checks(validation, metrics, [{**CYLINDER_RULE, "min_examples": 100}])
    decision = blessing.read_decision(_mlmd_blessing(checks, blessed=False, baseline="/models/3"))
    lines = blessing.summary_lines(decision)
    assert lines[1] == ("  FAILED    Overall: sparse_categorical_accuracy 0.76 vs baseline 0.96 (change -0.2; "
                        "allowed to worsen by at most 0.05) (80 examples)")
    assert lines[-1] == "Compared with the last blessed model: /models/3"


def test_no_decision_without_a_verdict_and_blessed_summary():
    assert blessing.read_decision(metadata_store_pb2.Artifact()) is None
    assert blessing.summary_lines(blessing.read_decision(_mlmd_blessing([], blessed=True)))[0] == "Model blessed: yes"


def test_reading_the_decision_imports_no_tensorflow():
    code = ("import sys; import pipeline.blessing\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
