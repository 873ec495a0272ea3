"""DataValidationGate: stop the run before training when the data is not fit to train on.

Stock ExampleValidator records schema anomalies but never fails a run, and it has no notion of drift
(this data vs the last data that passed) or skew (train split vs eval split). This component adds
both, merges them with ExampleValidator's findings into one readable report, and raises when anything
is wrong, so Transform, Trainer and Pusher never run on bad data. When the data passes, it publishes
its statistics as `validated_statistics`; the next run resolves the latest of those as its drift
baseline, so a rejected data set can never become the reference.
"""
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


class DataValidationError(RuntimeError):
    """Raised with the full readable report when the data must not be trained on."""


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
    """Keep drift/skew reasons only: schema findings are ExampleValidator's to report."""
    kept = anomalies_pb2.Anomalies()
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
) -> Dict[str, Optional[anomalies_pb2.Anomalies]]:
    """Every check's findings, keyed by a human title, in the order a reader should see them."""
    splits = artifact_utils.decode_split_names(statistics.split_names)
    sections = {f"schema ({split} split)": _schema_anomalies(anomalies, split) for split in splits}
    train = _split_statistics(statistics, _TRAIN)
    if drift and baseline_statistics is None:
        sections["drift: no validated data to compare with yet (first run)"] = None
    if drift and baseline_statistics is not None:
        baseline = _split_statistics(baseline_statistics, _TRAIN)
        sections["drift (train split vs last validated data)"] = compare(train, baseline, schema, drift, "drift")
    if skew and _EVAL in splits:
        evaluation = _split_statistics(statistics, _EVAL)
        sections["skew (train vs eval split)"] = compare(train, evaluation, schema, skew, "skew")
    return sections


@component
def DataValidationGate(  # pylint: disable=invalid-name
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    validated_statistics: OutputArtifact[standard_artifacts.ExampleStatistics],
    baseline_statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
    drift_thresholds: Parameter[str] = "{}",
    skew_thresholds: Parameter[str] = "{}",
    fail_on_anomalies: Parameter[bool] = True,
) -> None:
    """Validate, write `data_validation_report.txt`, and raise DataValidationError on any finding."""
    schema_proto = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
    sections = check_data(statistics, schema_proto, anomalies, baseline_statistics,
                          json.loads(drift_thresholds), json.loads(skew_thresholds))
    report = validation_report.render(sections)
    if fail_on_anomalies and any(validation_report.has_anomalies(a) for a in sections.values()):
        io_utils.write_string_file(os.path.join(validated_statistics.uri, REPORT_FILE), report)
        raise DataValidationError(f"Data validation failed; the run stops before Transform and Trainer.\n{report}")
    io_utils.copy_dir(statistics.uri, validated_statistics.uri)
    validated_statistics.split_names = statistics.split_names
    io_utils.write_string_file(os.path.join(validated_statistics.uri, REPORT_FILE), report)
