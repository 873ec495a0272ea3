"""One run, as a self-contained HTML page: what the data looked like, what was anomalous or drifted,
how the model trained and did against the one serving, and why it was (not) pushed.

Everything comes from the work directory's ML Metadata store and the artifacts it points at (statistics,
schema, the trainer's summary, TFMA's metrics), so `--workdir` alone is enough and a rejected or failed
run gets a report too. The page is rendered by Jinja2 with matplotlib's SVG charts inlined: no script,
stylesheet or font is fetched, so it opens anywhere, offline. No TensorFlow, TFX or TFMA is imported.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Optional

from ml_metadata.metadata_store import metadata_store

from pipeline import run_outcome, statistics, tfma_results
from pipeline.blessing import describe
from pipeline.config import THRESHOLD_METRICS
from pipeline.run_outcome import ComponentRun, RunResult

#: The Trainer writes it into its `model_run` output (trainer.task.SUMMARY_FILE; trainer/ is not imported
#: here: it imports TensorFlow).
TRAINING_SUMMARY_FILE = "training_summary.json"
_METRIC_NAMES = {metric.tfma_class: name for name, metric in THRESHOLD_METRICS.items()}


@dataclasses.dataclass(frozen=True)
class FeatureView:
    summary: statistics.FeatureSummary
    chart: str
    #: This split's drift or skew measurement of the feature (a `distances` row), if one was made.
    distance: Optional[dict] = None
    baseline: Optional[statistics.FeatureSummary] = None


@dataclasses.dataclass(frozen=True)
class SplitView:
    split: str
    examples: int
    features: list[FeatureView]


@dataclasses.dataclass(frozen=True)
class ThresholdRow:
    slice: str
    metric: str
    rule: str
    value: str
    #: pass, FAIL, reported (failed on a slice too small to gate), or "not applied" (no baseline yet).
    status: str


@dataclasses.dataclass
class RunReport:
    """What the page shows; built by `build()`, rendered by `render()`."""

    pipeline: str
    result: RunResult
    decision: str
    statistics: list[SplitView] = dataclasses.field(default_factory=list)
    schema_source: str = ""
    schema_rows: list[dict] = dataclasses.field(default_factory=list)
    training: Optional[dict] = None
    training_chart: str = ""
    evaluation: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)
    thresholds: list[ThresholdRow] = dataclasses.field(default_factory=list)
    #: The last model pushed by any run in the store (what serves now): (version, path), or None.
    serving: Optional[tuple[str, str]] = None

    @property
    def metric_columns(self) -> list[str]:
        """The Overall slice's metrics, per-class ones left out (they have a table of their own)."""
        return [name for name in self.evaluation.get(tfma_results.OVERALL, {}) if "/class_" not in name]

    @property
    def has_baseline(self) -> bool:
        """Whether the Evaluator scored a baseline model too (its column is shown only then)."""
        return any(tfma_results.BASELINE in models for values in self.evaluation.values() for models in values.values())

    @property
    def pushed_version(self) -> Optional[str]:
        return Path(self.result.pushed_path).name if self.result.pushed_path else None


def _inputs(store: metadata_store.MetadataStore, component: Optional[ComponentRun]) -> dict[str, list]:
    if component is None or component.execution is None:
        return {}
    return run_outcome.execution_artifacts(store, component.execution.id, run_outcome.INPUT_EVENTS)


def _component(result: RunResult, suffix: str) -> Optional[ComponentRun]:
    return next((c for c in result.components if c.node_id.endswith(suffix)), None)


def _statistics(store: metadata_store.MetadataStore, result: RunResult) -> list[SplitView]:
    """Each split's features with a chart; the train split's overlaid with the last validated data's."""
    from pipeline.report_charts import distribution_svg

    generator = result.component("StatisticsGen")
    if generator is None or not generator.outputs.get("statistics"):
        return []
    artifact = generator.outputs["statistics"][0]
    baseline_artifacts = _inputs(store, result.component(run_outcome.GATE_NODE)).get("baseline_statistics") or []
    distances = result.data_validation.distances if result.data_validation else []
    views = []
    for split in statistics.split_names(artifact):
        dataset = statistics.read_split(artifact, split)
        baseline = statistics.summarize(statistics.read_split(baseline_artifacts[0], split)) \
            if baseline_artifacts and split == "train" else {}
        measured = {row["feature"]: row for row in distances if row.get("split") == split}
        features = []
        for name, summary in statistics.summarize(dataset).items():
            previous = baseline.get(name)
            previous = previous if previous is not None and previous.kind == summary.kind else None  # type changed
            features.append(FeatureView(summary, distribution_svg(summary, previous, measured.get(name)),
                                        measured.get(name), previous))
        views.append(SplitView(split, dataset.num_examples if dataset else 0, features))
    return views


def _schema(result: RunResult) -> tuple[str, list[dict]]:
    """Where the schema came from (curated file or inferred) and its rows."""
    component = _component(result, "SchemaGen")
    if component is None or not component.outputs.get("schema"):
        return "", []
    schema = statistics.read_schema(component.outputs["schema"][0])
    source = run_outcome.execution_property(component.execution, "schema_file")
    described = f"curated: {source}" if source else "inferred by SchemaGen from this run's statistics"
    return described, statistics.schema_rows(schema) if schema else []


def _training(result: RunResult) -> Optional[dict]:
    trainer = result.component("Trainer")
    if trainer is None or not trainer.outputs.get("model_run"):
        return None
    path = os.path.join(trainer.outputs["model_run"][0].uri, TRAINING_SUMMARY_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _number(value: Any) -> Optional[float]:
    """A threshold bound as the execution property's JSON has it (a number, or {"value": n})."""
    if isinstance(value, dict):
        value = value.get("value")
    return None if value is None else float(value)


def _slices(slicing_specs: list[dict], evaluated: list[str]) -> list[str]:
    """The evaluated slices a PerSliceMetricThreshold's slicing specs match ({} is Overall only)."""
    names = []
    for spec in slicing_specs:
        keys = spec.get("feature_keys") or []
        names += [tfma_results.OVERALL] if not keys else \
            [s for s in evaluated if s != tfma_results.OVERALL and s.split(":", 1)[0] == "_X_".join(keys)]
    return names


def _gates(eval_config: dict) -> list[tuple[str, list[dict], dict]]:
    """(metric name, slicing specs, threshold) for each per-slice threshold in the Evaluator's config."""
    gates = []
    for spec in eval_config.get("metrics_specs", []):
        for metric in spec.get("metrics", []):
            name = _METRIC_NAMES.get(metric.get("class_name"), metric.get("class_name", ""))
            gates += [(name, gate.get("slicing_specs", []), gate.get("threshold", {}))
                      for gate in metric.get("per_slice_thresholds", [])]
    return gates


def threshold_rows(eval_config: dict, evaluation: dict[str, dict[str, dict[str, float]]],
                   result: RunResult) -> list[ThresholdRow]:
    """Every configured threshold on every slice it applies to, with the value and pass or fail.

    Pass/fail is the Evaluator's own (the failed checks it recorded on the blessing), not recomputed.
    """
    decision = result.blessing
    failed = {(c.slice, c.metric, c.is_change): c for c in (decision.failed_checks if decision else [])}
    rows = []
    for metric, slicing_specs, threshold in _gates(eval_config):
        for slice_name in _slices(slicing_specs, list(evaluation)):
            values = evaluation.get(slice_name, {}).get(metric, {})
            candidate = values.get(tfma_results.CANDIDATE)
            value_threshold, change = threshold.get("value_threshold"), threshold.get("change_threshold")
            if value_threshold:
                lower, upper = _number(value_threshold.get("lower_bound")), _number(value_threshold.get("upper_bound"))
                rule = " and ".join(part for part in (f"≥ {lower:g}" if lower is not None else "",
                                                      f"≤ {upper:g}" if upper is not None else "") if part)
                rows.append(ThresholdRow(slice_name, metric, rule, _format(candidate),
                                         _status(failed.get((slice_name, metric, False)))))
            if change:
                allowed = round(abs(_number(change.get("absolute")) or 0.0), 6)
                baseline = values.get(tfma_results.BASELINE)
                shown = f"{_format(candidate)} vs {_format(baseline)}" if baseline is not None else _format(candidate)
                status = _status(failed.get((slice_name, metric, True))) if decision and decision.has_baseline \
                    else "not applied"
                rows.append(ThresholdRow(slice_name, metric, f"worse than the baseline by ≤ {allowed:g}", shown, status))
    return rows


def _status(check) -> str:
    if check is None:
        return "pass"
    return "FAIL" if check.gating else "reported"


def _format(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def last_push(store: metadata_store.MetadataStore) -> Optional[tuple[str, str]]:
    """(version, path) of the newest model any run in the store pushed."""
    pushed = run_outcome.pushed_models(store)
    if not pushed:
        return None
    latest = pushed[-1].custom_properties
    return latest["pushed_version"].string_value, latest["pushed_destination"].string_value


def decision_sentence(result: RunResult, serving: Optional[tuple[str, str]]) -> str:
    """Why the run pushed or did not push a model, in one sentence."""
    kept = f"; version {serving[0]} keeps serving" if serving else "; no model has been pushed yet"
    validation = result.data_validation
    if validation is not None and validation.rejected:
        checks = sorted({f"{f['check']} ({f['feature']})" for f in validation.findings})
        return (f"Nothing was pushed: the data validation gate rejected the data ({len(validation.findings)} "
                f"finding{'s' * (len(validation.findings) != 1)}: {', '.join(checks)}), so no model was trained{kept}.")
    if result.pushed_path:
        baseline = " and was compared with the last blessed model" if result.blessing and result.blessing.has_baseline \
            else " on absolute bounds (no blessed baseline yet)"
        return f"Pushed version {Path(result.pushed_path).name} to {result.pushed_path}: the model passed every gating threshold{baseline}."
    if result.blessing is not None and not result.blessing.blessed:
        refusals = result.blessing.refusals
        reason = "; ".join(describe(c) for c in refusals) if refusals else "its failed checks were not recorded"
        return f"Nothing was pushed: the model was not blessed ({reason}){kept}."
    if result.infra_validation is not None and not result.infra_validation.blessed:
        return f"Nothing was pushed: the model server refused the model ({result.infra_validation.reason}){kept}."
    failed = [c.node_id for c in result.components if c.state in run_outcome.UNSUCCESSFUL_STATES]
    if failed:
        return f"Nothing was pushed: {', '.join(failed)} did not complete{kept}."
    return f"Nothing was pushed: the run did not reach the Pusher{kept}."


def _pipeline_name(store: metadata_store.MetadataStore) -> str:
    contexts = store.get_contexts_by_type("pipeline")
    return contexts[0].name if contexts else ""


def build(metadata_path: Path, run_id: Optional[str] = None, result: Optional[RunResult] = None) -> RunReport:
    """The report of `run_id` (default: the latest run) in the store at `metadata_path`.

    `result` is the run's outcome when the caller already has it (`tfxpipe run`: it carries the error).
    Raises run_outcome.UnknownRun for a run id the store does not hold.
    """
    from pipeline.report_charts import training_svg

    store = run_outcome.open_store(metadata_path)
    if result is None:
        result = run_outcome.read_run(store, run_outcome.find_run(store, run_id))
    serving = last_push(store)
    report = RunReport(pipeline=_pipeline_name(store), result=result, decision=decision_sentence(result, serving),
                       serving=serving, statistics=_statistics(store, result))
    report.schema_source, report.schema_rows = _schema(result)
    report.training = _training(result)
    if report.training and report.training.get("history"):
        report.training_chart = training_svg(report.training["history"])
    evaluator = result.component("Evaluator")
    if evaluator and evaluator.outputs.get("evaluation"):
        report.evaluation = tfma_results.metrics_by_model(evaluator.outputs["evaluation"][0].uri)
        eval_config = json.loads(run_outcome.execution_property(evaluator.execution, "eval_config") or "{}")
        report.thresholds = threshold_rows(eval_config, report.evaluation, result)
    return report


def render(report: RunReport) -> str:
    """The page: one HTML document with its CSS and SVG inline."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("pipeline", "templates"),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                                     lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    environment.filters["number"] = _format
    return environment.get_template("report.html.j2").render(report=report, result=report.result,
                                                              OVERALL=tfma_results.OVERALL)


def write(metadata_path: Path, output: Path, run_id: Optional[str] = None, result: Optional[RunResult] = None) -> Path:
    """Build and render the report and write it to `output` (its directory is created); returns the path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(build(metadata_path, run_id, result)), encoding="utf-8")
    return output
