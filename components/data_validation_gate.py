"""DataValidationGate and AcceptValidatedData: stop the run before training when the data is not fit.

Stock ExampleValidator records schema anomalies but never fails a run, and it has no notion of drift
(this data vs the last data that passed) or skew (train split vs eval split). `DataValidationGate`
adds both, merges them with ExampleValidator's findings, and *always succeeds*: it records its verdict
(`passed`/`rejected`), the findings (check, split, feature, kind, distance and threshold) and the
readable report as custom properties of its `verdict` artifact, so the outcome is in ML Metadata
whatever it is. With spans, the verdict also names the span validated and the last validated span its
drift was measured against, and records the distance of every configured feature (`distances`), not only
the failures. With `serving_logs`, live traffic (request logs, see `components.serving_skew`) is compared
with the train split too, gating only with `fail_on_serving_skew`. `AcceptValidatedData` then acts on the verdict: it publishes the statistics of data
that passed as `validated_statistics` (the next run's drift baseline), or raises, which stops the run
before Transform. Transform depends on it by ordering only.

Why not `tfx.dsl.Cond` on the verdict, or a failing gate? (TFX 1.16 sources)
- A failed execution publishes no output artifacts (launcher.py removes its output dirs and
  `publish_failed_execution` records only `ExecutorOutput.execution_result`), so a gate that raises
  leaves no verdict artifact; an `execution_result` on the execution would hold the findings only as
  opaque protos beside an error code, and not on an artifact.
- `Cond` works in LocalDagRunner/BeamDagRunner (the predicate filters input resolution, the node is
  skipped with no execution recorded) and compiles for KubeflowV2 (a CEL `trigger_policy`), but the
  predicate's channel becomes a *visible input* of every conditioned node (node_inputs_compiler
  `_compile_conditionals`), so it joins their cache key. The gate re-runs on every run, since its drift
  baseline is the previous run's validated statistics, so Transform and Trainer would never be cached.
- Here the gate's artifact is always published; only `validated_statistics` depends on passing, so
  the `latest_validated_statistics_resolver` (a LatestArtifactStrategy, as the Kubeflow compiler
  requires) can never resolve rejected statistics; and the cache keys of Transform onwards are unchanged.
  Caveat, Kubeflow only: TFX's KubeflowV2 compiler turns that resolver into a query by type and state
  (`schema_title="tfx.ExampleStatistics" AND state=LIVE`, step_builder.py), dropping the producer
  filter, so in-cluster the baseline is the latest statistics of any producer (a compiler limitation).
"""
import dataclasses
import json
import os
from typing import Dict, Optional

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components import validation_report

REPORT_FILE = "data_validation_report.txt"
_TRAIN, _EVAL = "train", "eval"


class DataValidationVerdict(types.Artifact):
    """The gate's decision; its custom properties are named in `components.validation_report`."""

    TYPE_NAME = "tfxpipe.DataValidationVerdict"


class DataRejected(RuntimeError):
    """Raised by AcceptValidatedData to stop the run; the reasons are in the verdict artifact."""


@dataclasses.dataclass(frozen=True)
class Section:
    """One check's findings (None: skipped, the title says why)."""

    title: str
    check: str
    split: Optional[str]
    anomalies: Optional[anomalies_pb2.Anomalies]
    #: What was compared with what (e.g. span and baseline_span), recorded with each distance.
    context: Dict[str, object] = dataclasses.field(default_factory=dict)


def artifact_span(artifact: types.Artifact) -> int:
    """The span an artifact holds data of. TFX 1.16's ExampleGen records it as a custom property, which
    StatisticsGen does not copy (it copies the unset type property), so the gate passes it on itself."""
    if artifact.has_custom_property(validation_report.SPAN_PROPERTY):
        return artifact.get_int_custom_property(validation_report.SPAN_PROPERTY)
    return artifact.span or 0


def _split_statistics(artifact: types.Artifact, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    return stats_artifact_utils.load_statistics(artifact, split).proto()


def _schema_anomalies(anomalies: types.Artifact, split: str) -> anomalies_pb2.Anomalies:
    path = os.path.join(artifact_utils.get_split_uri([anomalies], split), "SchemaDiff.pb")
    return anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))


def _with_comparators(schema: schema_pb2.Schema, thresholds: dict[str, float], kind: str) -> schema_pb2.Schema:
    """A copy of `schema` with drift or skew comparators: L-infinity for strings, JS divergence otherwise."""
    result = schema_pb2.Schema()
    result.CopyFrom(schema)
    for name, threshold in thresholds.items():
        feature = tfdv.get_feature(result, name)
        comparator = getattr(feature, f"{kind}_comparator")
        if feature.type == schema_pb2.BYTES:
            comparator.infinity_norm.threshold = threshold
        else:
            comparator.jensen_shannon_divergence.threshold = threshold
    return result


def _only_comparator_findings(anomalies: anomalies_pb2.Anomalies) -> anomalies_pb2.Anomalies:
    """Keep drift/skew reasons (and the measured distances) only: schema findings are ExampleValidator's."""
    kept = anomalies_pb2.Anomalies()
    kept.drift_skew_info.extend(anomalies.drift_skew_info)
    for feature, info in anomalies.anomaly_info.items():
        reasons = [r for r in info.reason if anomalies_pb2.AnomalyInfo.Type.Name(r.type).startswith("COMPARATOR_")]
        if reasons:
            kept.anomaly_info[feature].reason.extend(reasons)
            kept.anomaly_info[feature].severity = info.severity
    return kept


def compare(
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
    reference: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    thresholds: Dict[str, float],
    kind: str,
) -> anomalies_pb2.Anomalies:
    """Drift (`reference` is the last validated data) or skew (`reference` is the eval split) findings:
    the features whose distance from `reference` exceeds their threshold, and nothing else."""
    reference_argument = {"drift": "previous_statistics", "skew": "serving_statistics"}[kind]
    found = tfdv.validate_statistics(statistics, _with_comparators(schema, thresholds, kind),
                                     **{reference_argument: reference})
    return _only_comparator_findings(found)


def check_data(
    statistics: types.Artifact,
    schema: schema_pb2.Schema,
    anomalies: types.Artifact,
    baseline_statistics: Optional[types.Artifact],
    drift: Dict[str, float],
    skew: Dict[str, float],
    span: Optional[int] = None,
) -> list[Section]:
    """Every check's findings, in the order a reader should see them; `span` is the data's (ExampleGen's)."""
    splits = artifact_utils.decode_split_names(statistics.split_names)
    sections = [Section(f"schema ({split} split)", "schema", split, _schema_anomalies(anomalies, split))
                for split in splits]
    train = _split_statistics(statistics, _TRAIN)
    if drift and baseline_statistics is None:
        sections.append(Section("drift: no validated data to compare with yet (first run)", "drift", _TRAIN, None))
    if drift and baseline_statistics is not None:
        baseline = _split_statistics(baseline_statistics, _TRAIN)
        spans = {"span": artifact_span(statistics) if span is None else span,
                 "baseline_span": artifact_span(baseline_statistics)}
        compared = f": span {spans['span']} vs span {spans['baseline_span']}" if any(spans.values()) else ""
        sections.append(Section(f"drift (train split vs last validated data{compared})", "drift", _TRAIN,
                                compare(train, baseline, schema, drift, "drift"), spans))
    if skew and _EVAL in splits:
        evaluation = _split_statistics(statistics, _EVAL)
        sections.append(Section("skew (train vs eval split)", "skew", _TRAIN,
                                compare(train, evaluation, schema, skew, "skew")))
    return sections


def serving_skew_section(statistics: types.Artifact, schema: schema_pb2.Schema, logs: str,
                         thresholds: Dict[str, float]) -> Section:
    """Live traffic (the PredictionLogs under `logs`) vs this data's train split."""
    from components import serving_skew

    title = f"serving skew (train split vs requests logged in {logs})"
    serving = serving_skew.logged_statistics(logs, thresholds)
    if serving is None:
        return Section(f"{title}: no request logged yet", serving_skew.CHECK, _TRAIN, None)
    found = compare(_split_statistics(statistics, _TRAIN), serving, schema, thresholds, "skew")
    return Section(title, serving_skew.CHECK, _TRAIN, found, {"serving_logs": logs})


def record_verdict(verdict: types.Artifact, sections: list[Section], fail_on_anomalies: bool,
                   fail_on_serving_skew: bool = False) -> str:
    """Set the verdict, findings and report on `verdict` (and write the report beside it); returns the verdict.

    Serving-skew findings reject the data only with `fail_on_serving_skew`, the others with `fail_on_anomalies`.
    """
    report = validation_report.render({s.title: s.anomalies for s in sections})
    findings = [row for s in sections for row in validation_report.findings(s.check, s.split, s.anomalies)]
    distances = [row for s in sections for row in validation_report.distances(s.check, s.split, s.anomalies, **s.context)]
    gating = [f for f in findings
              if (fail_on_serving_skew if f["check"] == validation_report.SERVING_SKEW_CHECK else fail_on_anomalies)]
    decision = validation_report.REJECTED if gating else validation_report.PASSED
    verdict.set_string_custom_property(validation_report.VERDICT_PROPERTY, decision)
    verdict.set_string_custom_property(validation_report.FINDINGS_PROPERTY, json.dumps(findings))
    verdict.set_string_custom_property(validation_report.DISTANCES_PROPERTY, json.dumps(distances))
    verdict.set_string_custom_property(validation_report.REPORT_PROPERTY, report)
    io_utils.write_string_file(os.path.join(verdict.uri, REPORT_FILE), report)
    return decision


@component
def DataValidationGate(  # pylint: disable=invalid-name
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    verdict: OutputArtifact[DataValidationVerdict],
    baseline_statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
    examples: InputArtifact[standard_artifacts.Examples] = None,
    drift_thresholds: Parameter[str] = "{}",
    skew_thresholds: Parameter[str] = "{}",
    fail_on_anomalies: Parameter[bool] = True,
    serving_logs: Parameter[str] = "",
    serving_skew_thresholds: Parameter[str] = "{}",
    fail_on_serving_skew: Parameter[bool] = False,
) -> None:
    """Validate and record the verdict; never raises for bad data (AcceptValidatedData acts on it)."""
    schema_proto = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
    span = artifact_span(examples if examples is not None else statistics)
    sections = check_data(statistics, schema_proto, anomalies, baseline_statistics,
                          json.loads(drift_thresholds), json.loads(skew_thresholds), span)
    if serving_logs and json.loads(serving_skew_thresholds):
        sections.append(serving_skew_section(statistics, schema_proto, serving_logs, json.loads(serving_skew_thresholds)))
    verdict.set_int_custom_property(validation_report.SPAN_PROPERTY, span)
    if baseline_statistics is not None:
        verdict.set_int_custom_property(validation_report.BASELINE_SPAN_PROPERTY, artifact_span(baseline_statistics))
    record_verdict(verdict, sections, fail_on_anomalies, fail_on_serving_skew)


@component
def AcceptValidatedData(  # pylint: disable=invalid-name
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    verdict: InputArtifact[DataValidationVerdict],
    validated_statistics: OutputArtifact[standard_artifacts.ExampleStatistics],
    baseline_statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
) -> None:
    """Publish the statistics of data that passed as the next drift baseline; stop the run otherwise.

    The published artifact also lists every span accepted so far (the baseline's list plus this span),
    which is how a window (components.examples_window) keeps rejected spans out."""
    if verdict.get_string_custom_property(validation_report.VERDICT_PROPERTY) != validation_report.PASSED:
        raise DataRejected("DataValidationGate rejected the data (its verdict artifact records why); "
                           "the run stops before Transform and Trainer.")
    io_utils.copy_dir(statistics.uri, validated_statistics.uri)
    validated_statistics.split_names = statistics.split_names
    # the next run's drift section names the span it compares with
    span = verdict.get_int_custom_property(validation_report.SPAN_PROPERTY)
    validated_statistics.set_int_custom_property(validation_report.SPAN_PROPERTY, span)
    previous = (baseline_statistics.get_string_custom_property(validation_report.VALIDATED_SPANS_PROPERTY)
                if baseline_statistics is not None else None)
    validated_statistics.set_string_custom_property(
        validation_report.VALIDATED_SPANS_PROPERTY, json.dumps(validation_report.validated_spans(previous, span)))
