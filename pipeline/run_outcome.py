"""Read what a local run did back from its ML Metadata store.

The metadata store is the record of a run: which components ran, were cached or failed and for how
long, and the artifacts they produced (the data validation report, TFMA metrics, the blessing, the
pushed model). `collect()` turns the latest pipeline run in the store into a `RunResult`.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.data_validation_gate import REPORT_FILE
from pipeline.blessing import BlessingDecision, read_decision
from pipeline.config import LoadedConfig

_STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}
_VALIDATION_FAILED = "Data validation failed"


@dataclasses.dataclass(frozen=True)
class ComponentRun:
    node_id: str
    state: str
    seconds: float
    outputs: dict[str, list[metadata_store_pb2.Artifact]]


@dataclasses.dataclass
class RunResult:
    """Everything `tfxpipe run` reports; `succeeded` is False when any component failed."""

    succeeded: bool
    components: list[ComponentRun]
    seconds: float
    validation_report: Optional[str] = None
    data_rejected: bool = False
    metrics: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    blessed: Optional[bool] = None
    #: Why the model was (not) blessed: failed checks and the baseline, as the Evaluator recorded them.
    blessing: Optional[BlessingDecision] = None
    pushed_path: Optional[str] = None
    error: Optional[str] = None
    log_file: Optional[Path] = None
    class_names: list[str] = dataclasses.field(default_factory=list)
    #: Executions an earlier, killed run left unfinished, closed before this run started.
    recovered: list[str] = dataclasses.field(default_factory=list)

    def component(self, node_id: str) -> Optional[ComponentRun]:
        return next((c for c in self.components if c.node_id == node_id), None)


def open_store(metadata_path: Path) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def latest_run_components(store: metadata_store.MetadataStore) -> list[ComponentRun]:
    """Executions of the most recent pipeline run, in execution order."""
    runs = store.get_contexts_by_type("pipeline_run")
    if not runs:
        return []
    latest = max(runs, key=lambda c: c.create_time_since_epoch)
    executions = sorted(store.get_executions_by_context(latest.id), key=lambda e: e.id)
    node_names = {}
    for context in store.get_contexts_by_type("node"):
        for execution in store.get_executions_by_context(context.id):
            node_names[execution.id] = context.name.split(".", 1)[-1]
    results = []
    for execution in executions:
        outputs: dict[str, list[metadata_store_pb2.Artifact]] = {}
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        for event in events:
            key = event.path.steps[0].key if event.path.steps else ""
            outputs.setdefault(key, []).append(artifacts[event.artifact_id])
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        node_id = node_names.get(execution.id, execution.type)
        state = _STATE_NAMES.get(execution.last_known_state, "unknown")
        if state == "failed" and node_id.endswith("_resolver"):
            state = "empty"  # nothing to resolve yet (first run): TFX records that as a failed resolution
        results.append(ComponentRun(node_id, state, seconds, outputs))
    return results


def _custom_int(artifact: metadata_store_pb2.Artifact, name: str) -> Optional[int]:
    value = artifact.custom_properties.get(name)
    return None if value is None else value.int_value


def _metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """Slice name → metric name → value, from TFMA's output (overall slice first)."""
    import tensorflow_model_analysis as tfma

    result: dict[str, dict[str, float]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        slice_key = tfma.slicer.deserialize_slice_key(metrics_for_slice.slice_key)
        name = tfma.slicer.stringify_slice_key(slice_key) or "Overall"
        values = result.setdefault(name, {})
        for kv in metrics_for_slice.metric_keys_and_values:
            if not kv.value.HasField("double_value") or kv.key.model_name == "baseline" or kv.key.is_diff:
                continue
            label = kv.key.name
            if kv.key.sub_key.HasField("class_id"):
                label += f"/class_{kv.key.sub_key.class_id.value}"
            values[label] = kv.value.double_value.value
    return dict(sorted(result.items(), key=lambda item: (item[0] != "Overall", item[0])))


def _read_outputs(result: RunResult) -> None:
    gate = result.component("DataValidationGate")
    if gate and gate.outputs.get("validated_statistics"):
        report = os.path.join(gate.outputs["validated_statistics"][0].uri, REPORT_FILE)
        if os.path.exists(report):
            result.validation_report = Path(report).read_text()
    evaluator = result.component("Evaluator")
    if evaluator:
        if evaluator.outputs.get("evaluation"):
            result.metrics = _metrics(evaluator.outputs["evaluation"][0].uri)
        if evaluator.outputs.get("blessing"):
            result.blessed = _custom_int(evaluator.outputs["blessing"][0], "blessed") == 1
            result.blessing = read_decision(evaluator.outputs["blessing"][0])
    pusher = result.component("Pusher")
    if pusher and pusher.outputs.get("pushed_model"):
        pushed = pusher.outputs["pushed_model"][0]
        if _custom_int(pushed, "pushed") == 1:
            result.pushed_path = pushed.custom_properties["pushed_destination"].string_value


def collect(loaded: LoadedConfig, metadata_path: Path, *, started: Optional[float] = None,
            error: Optional[BaseException] = None, log_file: Optional[Path] = None) -> RunResult:
    """Build the result of the run that just finished (or failed) from the metadata store.

    `started` is when the run began; without it (reporting an old run) the components' time is summed.
    """
    components = latest_run_components(open_store(metadata_path)) if metadata_path.exists() else []
    message = _describe_error(error) if error else None
    seconds = time.time() - started if started is not None else sum(c.seconds for c in components)
    result = RunResult(succeeded=error is None, components=components, seconds=seconds,
                       error=message, log_file=log_file, class_names=list(loaded.cfg.label.classes))
    if message and _VALIDATION_FAILED in message:
        result.data_rejected = True
        result.validation_report = message[message.index(_VALIDATION_FAILED):].split("\n", 1)[-1]
    _read_outputs(result)
    return result


def _describe_error(error: BaseException) -> str:
    """The innermost message: Beam and TFX wrap component errors several layers deep."""
    messages: list[Any] = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    with_report = [m for m in messages if _VALIDATION_FAILED in m]
    return with_report[0] if with_report else (messages[-1] or messages[0])
