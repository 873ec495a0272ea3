"""`tfxpipe monitor`: live traffic vs the training data, on its own (for cron and alerting).

The same comparison the DataValidationGate makes with `validation.serving_logs`, outside a run: the
request logs' statistics against the train split of the latest *validated* statistics in a work
directory's metadata store (what AcceptValidatedData published: the data the served model was trained
on), with the curated or generated schema of that store and the thresholds of `validation.serving_skew`.
"""
from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path
from typing import Optional

from ml_metadata.proto import metadata_store_pb2

from components import validation_report
from pipeline.config import ConfigError, LoadedConfig
from pipeline.run_outcome import OUTPUT_EVENTS, artifact_span, open_store



@dataclasses.dataclass(frozen=True)
class SkewCheck:
    """What monitor found: failures (`findings`) and every measured distance, with what was compared."""

    findings: list[dict]
    distances: list[dict]
    training_statistics: str
    training_span: int
    logs: str
    report: str

    @property
    def skewed(self) -> bool:
        return bool(self.findings)


def latest_output(metadata_path: Path, node_suffix: str, key: str) -> Optional[metadata_store_pb2.Artifact]:
    """The newest live artifact a node (whose id ends with `node_suffix`) published under `key`."""
    store = open_store(metadata_path)
    contexts = [c for c in store.get_contexts_by_type("node") if c.name.endswith(node_suffix)]
    executions = [e.id for c in contexts for e in store.get_executions_by_context(c.id)]
    events = [e for e in store.get_events_by_execution_ids(executions)
              if e.type in OUTPUT_EVENTS and e.path.steps and e.path.steps[0].key == key]
    artifacts = [a for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))
                 if a.state == metadata_store_pb2.Artifact.LIVE]
    return max(artifacts, key=lambda a: a.id, default=None)


def _only_file(directory: str, pattern: str) -> str:
    found = sorted(glob.glob(os.path.join(directory, pattern)))
    if not found:
        raise ConfigError(f"no {pattern} in {directory}: the metadata store points at missing files")
    return found[0]


def check(loaded: LoadedConfig, metadata_path: Path, logs: str) -> SkewCheck:
    """Compare the requests logged under `logs` with the latest validated training statistics.

    Raises ConfigError when there is nothing to compare with (no thresholds, no validated run, no logs).
    """
    thresholds = loaded.cfg.validation.serving_skew
    if not thresholds:
        raise ConfigError("validation.serving_skew is empty: name the features to watch and their largest "
                          "allowed distance (e.g. serving_skew: {island: 0.25, body_mass_g: 0.2})")
    validated = latest_output(metadata_path, "AcceptValidatedData", "validated_statistics") \
        if metadata_path.exists() else None
    schema = latest_output(metadata_path, "SchemaGen", "schema") if validated else None
    if validated is None or schema is None:
        raise ConfigError(f"no validated training data in {metadata_path}: run `tfxpipe run` first")
    import tensorflow_data_validation as tfdv  # after the cheap checks: importing it takes seconds

    from components import serving_skew
    from components.data_validation_gate import compare

    serving = serving_skew.logged_statistics(logs, thresholds)
    if serving is None:
        raise ConfigError(f"--logs {logs}: no request logged there yet (no PredictionLog records)")
    training = tfdv.load_stats_binary(_only_file(os.path.join(validated.uri, "Split-train"), "FeatureStats.pb"))
    found = compare(training, serving, tfdv.load_schema_text(_only_file(schema.uri, "*.pbtxt")), thresholds, "skew")
    span = artifact_span(validated) or 0
    title = f"serving skew (requests logged in {logs} vs validated training data, span {span})"
    return SkewCheck(
        findings=validation_report.findings(serving_skew.CHECK, "train", found),
        distances=validation_report.distances(serving_skew.CHECK, "train", found, training_span=span),
        training_statistics=validated.uri, training_span=span, logs=logs,
        report=validation_report.render({title: found}))
