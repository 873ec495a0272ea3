"""TFX's Evaluator, plus a record of why a model was refused and a size floor for per-slice gates.

Stock Evaluator blesses a model when TFMA's validation passes, and records only blessed = 0/1. This
component runs the stock executor unchanged, then reads TFMA's ValidationResult and metrics and records
every failed check (slice, metric, value, bound or baseline value and allowed change, example count) on
the ModelBlessing artifact as `failed_checks` (see components.blessing_record), so the run summary and
`tfxpipe report` can say why, from ML Metadata.

Per-slice gates take `min_examples`: a slice with fewer eval examples is reported, not gated. TFMA 0.46
has no per-threshold minimum slice size (its `options.min_slice_size` drops small slices' metrics and
then fails every threshold on them as "Metric not found"), and which slices are small is known only
after evaluation. So TFMA checks every slice of a gated feature with its own per-slice thresholds, and
this executor blesses the model when the only failures TFMA found are on slices below `min_examples`
(writing the BLESSED file and property as the stock executor would). Each such failure stays in
`failed_checks` with gating = false. Outputs and their types are the stock ones, so Pusher, the
latest-blessed-model resolver and Kubeflow work unchanged.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

import tensorflow_model_analysis as tfma
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils

from components.blessing_record import BLESSED_PROPERTY, FAILED_CHECKS_PROPERTY, FailedCheck, dumps

#: Execution property: JSON list of {"slice": [feature, ...], "metric": name, "min_examples": n}.
SLICE_MIN_EXAMPLES_KEY = "slice_min_examples"
_BASELINE, _CANDIDATE, _DIFF = "baseline", "candidate", "diff"


def _slice_name(slice_key: Any) -> str:
    return tfma.slicer.stringify_slice_key(slice_key) or "Overall"


def _sub_key(metric_key: Any) -> str:
    """'' for a plain metric; the sub-key (e.g. class_id 1 of a binary model's binarized metrics) otherwise."""
    return str(metric_key.sub_key).strip() if metric_key.HasField("sub_key") else ""


def metric_values(metrics: list[Any]) -> dict[tuple[str, str, str, str], float]:
    """(slice name, metric name, sub-key, candidate|baseline|diff) → value."""
    values = {}
    for metrics_for_slice in metrics:
        name = _slice_name(tfma.slicer.deserialize_slice_key(metrics_for_slice.slice_key))
        for kv in metrics_for_slice.metric_keys_and_values:
            if not kv.value.HasField("double_value"):
                continue
            role = _DIFF if kv.key.is_diff else _BASELINE if kv.key.model_name == tfma.BASELINE_KEY else _CANDIDATE
            values[(name, kv.key.name, _sub_key(kv.key), role)] = kv.value.double_value.value
    return values


def _check(failure: Any, slice_name: str, columns: list[str], values: dict, rules: list[dict]) -> FailedCheck:
    metric, sub_key = failure.metric_key.name, _sub_key(failure.metric_key)
    examples = values.get((slice_name, "example_count", "", _CANDIDATE))
    examples = None if examples is None else int(examples)
    rule = next((r for r in rules if sorted(r["slice"]) == columns and r["metric"] == metric), None)
    min_examples = rule["min_examples"] if rule else None
    gating = min_examples is None or examples is None or examples >= min_examples
    common = dict(slice=slice_name, metric=metric, examples=examples, gating=gating, min_examples=min_examples,
                  message=failure.message.strip())
    threshold = failure.metric_threshold
    if threshold.HasField("change_threshold"):
        return FailedCheck(value=values.get((slice_name, metric, sub_key, _CANDIDATE)),
                           baseline_value=values.get((slice_name, metric, sub_key, _BASELINE)),
                           max_decrease=round(abs(threshold.change_threshold.absolute.value), 9), **common)
    bounds = threshold.value_threshold
    value = failure.metric_value.double_value.value if failure.metric_value.HasField("double_value") else None
    return FailedCheck(value=value,
                       lower_bound=bounds.lower_bound.value if bounds.HasField("lower_bound") else None,
                       upper_bound=bounds.upper_bound.value if bounds.HasField("upper_bound") else None, **common)


def failed_checks(validation: Any, metrics: list[Any], rules: list[dict]) -> list[FailedCheck]:
    """Every check in TFMA's ValidationResult that failed, gating ones first, then by slice and metric."""
    values = metric_values(metrics)
    checks = []
    for per_slice in validation.metric_validations_per_slice:
        slice_key = tfma.slicer.deserialize_slice_key(per_slice.slice_key)
        columns = sorted(column for column, _ in slice_key)
        checks += [_check(f, _slice_name(slice_key), columns, values, rules) for f in per_slice.failures]
    for spec in validation.missing_slices:
        checks.append(FailedCheck(slice=",".join(spec.feature_keys) or "Overall", metric="", value=None, examples=0,
                                  gating=True, message="no eval example falls in this slice"))
    return sorted(checks, key=lambda c: (not c.gating, c.slice != "Overall", c.slice, c.metric))


def only_small_slices_failed(validation: Any, checks: list[FailedCheck]) -> bool:
    """True when TFMA's verdict is 'not ok' solely because of failures on slices below min_examples."""
    incomplete = validation.missing_slices or validation.missing_cross_slices or validation.missing_thresholds
    return bool(checks) and not incomplete and not any(c.gating for c in checks)


class Executor(evaluator_executor.Executor):
    """The stock Evaluator executor, then: record failed checks; small slices do not refuse a model."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        blessing = artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY])
        if not blessing.has_custom_property(BLESSED_PROPERTY):
            return  # no thresholds configured: the stock executor validated nothing
        evaluation_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
        validation = tfma.load_validation_result(evaluation_uri)
        rules = json.loads(exec_properties.get(SLICE_MIN_EXAMPLES_KEY) or "[]")
        checks = failed_checks(validation, list(tfma.load_metrics(evaluation_uri)), rules)
        blessing.set_string_custom_property(FAILED_CHECKS_PROPERTY, dumps(checks))
        if not validation.validation_ok and only_small_slices_failed(validation, checks):
            logging.info("Blessing the model: its %d failed checks are all on slices below min_examples.", len(checks))
            not_blessed = os.path.join(blessing.uri, constants.NOT_BLESSED_FILE_NAME)
            if fileio.exists(not_blessed):
                fileio.remove(not_blessed)
            io_utils.write_string_file(os.path.join(blessing.uri, constants.BLESSED_FILE_NAME), "")
            blessing.set_int_custom_property(BLESSED_PROPERTY, constants.BLESSED_VALUE)


class ExplainedEvaluatorSpec(standard_component_specs.EvaluatorSpec):
    PARAMETERS = {**standard_component_specs.EvaluatorSpec.PARAMETERS,
                  SLICE_MIN_EXAMPLES_KEY: ExecutionParameter(type=str, optional=True)}


class Evaluator(base_beam_component.BaseBeamComponent):
    """Evaluator (same id, inputs and outputs as TFX's) whose blessing records its failed checks."""

    SPEC_CLASS = ExplainedEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel, baseline_model: types.BaseChannel,
                 eval_config: tfma.EvalConfig, slice_min_examples: Optional[list[dict]] = None):
        super().__init__(spec=ExplainedEvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model, eval_config=eval_config,
            slice_min_examples=json.dumps(slice_min_examples or [], sort_keys=True),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
