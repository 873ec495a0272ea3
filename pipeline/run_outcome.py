"""Read what a run did back from its ML Metadata store: the store, not a message or a log, is the record.

Which components ran, were cached or failed and for how long, and each decision the pipeline records on
an artifact: the data validation verdict (with its findings and report), TFMA metrics, the blessing, the
pushed model. `collect()` turns the latest pipeline run in the store into a `RunResult`; each decision
has one field and one reader in `DECISION_READERS`, so a new decision is a field and a function.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import blessing_record, ingestion_record, validation_report
from pipeline import tfma_results
from pipeline.blessing import BlessingDecision, read_decision
from pipeline.config import LoadedConfig
from pipeline.spans import has_span

_STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}
#: States in which a component did not do its work; any of them makes the run unsuccessful.
UNSUCCESSFUL_STATES = ("failed", "running", "canceled")
#: The component that records the data validation verdict, and its output (see components/data_validation_gate.py).
GATE_NODE, VERDICT_OUTPUT = "DataValidationGate", "verdict"
INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


@dataclasses.dataclass(frozen=True)
class ComponentRun:
    node_id: str
    state: str
    seconds: float
    outputs: dict[str, list[metadata_store_pb2.Artifact]]
    #: The execution as stored (its id, times and the component's execution properties).
    execution: Optional[metadata_store_pb2.Execution] = None


@dataclasses.dataclass(frozen=True)
class DataValidation:
    """The gate's verdict as recorded on its artifact: `passed` or `rejected`, why, and the report."""

    verdict: str
    findings: list[dict]
    report: str
    #: Every distance measured (drift, skew, serving skew), within its threshold or not, with the spans compared.
    distances: list[dict] = dataclasses.field(default_factory=list)
    #: The span validated and the last validated span its drift was measured against (None: no baseline yet).
    span: Optional[int] = None
    baseline_span: Optional[int] = None

    @property
    def rejected(self) -> bool:
        return self.verdict != validation_report.PASSED


@dataclasses.dataclass(frozen=True)
class Window:
    """What ExamplesWindow trained on (data.window > 1): the spans in it, those left out, the size asked for."""

    spans: list[int]
    #: Older slots' spans the data gate never accepted (rejected, or never run): kept out of the window.
    unvalidated: list[int]
    size: int


@dataclasses.dataclass(frozen=True)
class InfraValidation:
    """What InfraValidator recorded on its InfraBlessing."""

    blessed: bool
    reason: str
    latency_p99_ms: Optional[float]


@dataclasses.dataclass
class RunResult:
    """Everything `tfxpipe run` reports; `succeeded` is False when a component failed or data was rejected."""

    succeeded: bool
    components: list[ComponentRun]
    seconds: float
    data_validation: Optional[DataValidation] = None
    metrics: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    blessed: Optional[bool] = None
    #: Why the model was (not) blessed: failed checks and the baseline, as the Evaluator recorded them.
    blessing: Optional[BlessingDecision] = None
    #: Did the candidate load and answer in a model server (InfraValidator), and why not.
    infra_validation: Optional[InfraValidation] = None
    pushed_path: Optional[str] = None
    #: A crash's message, for display only: what happened is read from the store.
    error: Optional[str] = None
    log_file: Optional[Path] = None
    class_names: list[str] = dataclasses.field(default_factory=list)
    #: Executions an earlier, killed run left unfinished, closed before this run started.
    recovered: list[str] = dataclasses.field(default_factory=list)
    #: The span ExampleGen ingested (its Examples artifact's `span`); None when data.path has no {SPAN}.
    span: Optional[int] = None
    #: The run's id in ML Metadata (its `pipeline_run` context's name), as `tfxpipe runs` lists it.
    run_id: Optional[str] = None
    #: The HTML report written for this run, when one was.
    report_path: Optional[Path] = None
    #: With data.window > 1, once the window was gathered: the spans trained on.
    window: Optional[Window] = None
    #: Rows ExampleGen read and dropped for a missing label (None: TFRecord input, or not reached).
    ingestion: Optional[ingestion_record.Ingestion] = None

    @property
    def data_rejected(self) -> bool:
        return self.data_validation is not None and self.data_validation.rejected

    @property
    def validation_report(self) -> Optional[str]:
        return self.data_validation.report if self.data_validation else None

    def component(self, node_id: str) -> Optional[ComponentRun]:
        return next((c for c in self.components if c.node_id == node_id), None)


def open_store(metadata_path: Path) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def run_contexts(store: metadata_store.MetadataStore) -> list[metadata_store_pb2.Context]:
    """The store's pipeline runs, oldest first."""
    return sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))


def node_id(store: metadata_store.MetadataStore, execution: metadata_store_pb2.Execution) -> str:
    """The pipeline node an execution belongs to (its `node` context is named `<pipeline>.<node id>`)."""
    node_type = store.get_context_type("node")
    for context in store.get_contexts_by_execution(execution.id):
        if context.type_id == node_type.id:
            return context.name.split(".", 1)[-1]
    return execution.type


def component_state(execution: metadata_store_pb2.Execution, node: str) -> str:
    state = _STATE_NAMES.get(execution.last_known_state, "unknown")
    if state == "failed" and node.endswith("_resolver"):
        state = "empty"  # nothing to resolve yet (first run): TFX records that as a failed resolution
    return state


def execution_seconds(execution: metadata_store_pb2.Execution) -> float:
    return (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000


def execution_artifacts(store: metadata_store.MetadataStore, execution_id: int,
                        event_types: tuple = OUTPUT_EVENTS) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's artifacts by key (outputs by default; pass INPUT_EVENTS for its inputs)."""
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in event_types]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    keyed: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for event in events:
        keyed.setdefault(event.path.steps[0].key if event.path.steps else "", []).append(artifacts[event.artifact_id])
    return keyed


def producer_execution(store: metadata_store.MetadataStore, artifact_id: int) -> Optional[int]:
    """The id of the execution that output an artifact (the first, when a cached run output it again)."""
    events = [e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in OUTPUT_EVENTS]
    return min(e.execution_id for e in events) if events else None


def pushed_models(store: metadata_store.MetadataStore) -> list[metadata_store_pb2.Artifact]:
    """The PushedModel artifacts that record a push (`pushed` = 1), oldest first; [] when nothing was pushed."""
    try:
        artifacts = store.get_artifacts_by_type("PushedModel")
    except Exception:  # noqa: BLE001 - NotFoundError: a store without that type has no pushes
        return []
    return sorted((a for a in artifacts if _custom_int(a, "pushed") == 1), key=lambda a: a.id)


def run_of(store: metadata_store.MetadataStore, execution_id: int) -> Optional[str]:
    """The id of the pipeline run an execution belongs to."""
    run_type = store.get_context_type("pipeline_run")
    return next((c.name for c in store.get_contexts_by_execution(execution_id) if c.type_id == run_type.id), None)


def execution_outputs(store: metadata_store.MetadataStore, execution_id: int) -> dict[str, list[metadata_store_pb2.Artifact]]:
    return execution_artifacts(store, execution_id)


def run_components(store: metadata_store.MetadataStore, run: metadata_store_pb2.Context) -> list[ComponentRun]:
    """Executions of one pipeline run, in execution order."""
    results = []
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        node = node_id(store, execution)
        results.append(ComponentRun(node, component_state(execution, node), execution_seconds(execution),
                                    execution_outputs(store, execution.id), execution))
    return results


def _custom_int(artifact: metadata_store_pb2.Artifact, name: str) -> Optional[int]:
    value = artifact.custom_properties.get(name)
    return None if value is None else value.int_value


def _custom_string(artifact: metadata_store_pb2.Artifact, name: str) -> str:
    value = artifact.custom_properties.get(name)
    return "" if value is None else value.string_value


def _read_data_validation(result: RunResult) -> None:
    gate = result.component(GATE_NODE)
    if gate and gate.outputs.get(VERDICT_OUTPUT):
        verdict = gate.outputs[VERDICT_OUTPUT][0]
        result.data_validation = DataValidation(
            verdict=_custom_string(verdict, validation_report.VERDICT_PROPERTY),
            findings=json.loads(_custom_string(verdict, validation_report.FINDINGS_PROPERTY) or "[]"),
            report=_custom_string(verdict, validation_report.REPORT_PROPERTY),
            distances=json.loads(_custom_string(verdict, validation_report.DISTANCES_PROPERTY) or "[]"),
            span=_custom_int(verdict, validation_report.SPAN_PROPERTY),
            baseline_span=_custom_int(verdict, validation_report.BASELINE_SPAN_PROPERTY))


def _read_examples(result: RunResult) -> None:
    """The span and row counts ExampleGen recorded on its Examples artifact."""
    for component in result.components:
        if component.node_id.endswith("ExampleGen") and component.outputs.get("examples"):
            result.span = artifact_span(component.outputs["examples"][0])
            result.ingestion = ingestion_record.read(component.outputs["examples"][0])


def _read_window(result: RunResult) -> None:
    """The spans ExamplesWindow gathered, those it left out, and the window size configured."""
    window = result.component("ExamplesWindow")
    if window and window.outputs.get("window_examples"):
        examples = window.outputs["window_examples"][0]
        result.window = Window(
            spans=json.loads(_custom_string(examples, validation_report.WINDOW_SPANS_PROPERTY) or "[]"),
            unvalidated=json.loads(_custom_string(examples, validation_report.UNVALIDATED_SPANS_PROPERTY) or "[]"),
            size=_custom_int(examples, validation_report.WINDOW_SIZE_PROPERTY) or 0)


def artifact_span(artifact: metadata_store_pb2.Artifact) -> Optional[int]:
    """An artifact's `span`: TFX 1.16 stores it as a custom property (older stores: a type property)."""
    value = artifact.custom_properties.get("span") or artifact.properties.get("span")
    return None if value is None else value.int_value


def _read_evaluation(result: RunResult) -> None:
    evaluator = result.component("Evaluator")
    if evaluator:
        if evaluator.outputs.get("evaluation"):
            result.metrics = tfma_results.metrics_by_slice(evaluator.outputs["evaluation"][0].uri)
        if evaluator.outputs.get("blessing"):
            result.blessed = _custom_int(evaluator.outputs["blessing"][0], blessing_record.BLESSED_PROPERTY) == 1
            result.blessing = read_decision(evaluator.outputs["blessing"][0])


def _read_infra_validation(result: RunResult) -> None:
    validator = result.component("InfraValidator")
    if validator and validator.outputs.get("blessing"):
        blessing = validator.outputs["blessing"][0]
        latency = blessing.custom_properties.get(blessing_record.INFRA_LATENCY_PROPERTY)
        result.infra_validation = InfraValidation(
            blessed=_custom_int(blessing, blessing_record.BLESSED_PROPERTY) == 1,
            reason=_custom_string(blessing, blessing_record.INFRA_REASON_PROPERTY),
            latency_p99_ms=latency.double_value if latency is not None else None)


def _read_push(result: RunResult) -> None:
    pusher = result.component("Pusher")
    if pusher and pusher.outputs.get("pushed_model"):
        pushed = pusher.outputs["pushed_model"][0]
        if _custom_int(pushed, "pushed") == 1:
            result.pushed_path = pushed.custom_properties["pushed_destination"].string_value


#: One reader per decision recorded in the store; each fills its own RunResult field.
DECISION_READERS: tuple[Callable[[RunResult], None], ...] = (
    _read_examples, _read_window, _read_data_validation, _read_evaluation, _read_infra_validation, _read_push)


class UnknownRun(LookupError):
    """A run id that the metadata store does not hold."""


def find_run(store: metadata_store.MetadataStore, run_id: Optional[str] = None) -> Optional[metadata_store_pb2.Context]:
    """The `pipeline_run` context named `run_id`, or the latest run (None: the store has no run yet)."""
    runs = run_contexts(store)
    if run_id is None:
        return runs[-1] if runs else None
    for run in runs:
        if run.name == run_id:
            return run
    raise UnknownRun(f"no run {run_id!r} in this metadata store; `tfxpipe runs` lists the runs it holds")


def collect(loaded: LoadedConfig, metadata_path: Path, *, started: Optional[float] = None,
            error: Optional[BaseException] = None, log_file: Optional[Path] = None) -> RunResult:
    """Build the result of the run that just finished (or failed) from the metadata store.

    `started` is when the run began; without it (reporting an old run) the components' time is summed.
    `error` is what the runner raised, if anything: it marks the run failed and is shown, never parsed.
    """
    store = open_store(metadata_path) if metadata_path.exists() else None
    return read_run(store, find_run(store) if store else None, started=started, error=error, log_file=log_file,
                    class_names=list(loaded.cfg.label.classes), ingests_spans=has_span(loaded.data_path))


def read_run(store: Optional[metadata_store.MetadataStore], run: Optional[metadata_store_pb2.Context], *,
             started: Optional[float] = None, error: Optional[BaseException] = None,
             log_file: Optional[Path] = None, class_names: Optional[list[str]] = None,
             ingests_spans: Optional[bool] = None) -> RunResult:
    """One run's result. Without a config (`tfxpipe report --workdir`), the label's classes come from the
    `custom_config` Transform/Trainer recorded, and whether data.path had {SPAN} from ExampleGen's input
    pattern (ExampleGen records span 0 for data without spans: not worth showing)."""
    components = run_components(store, run) if run is not None else []
    seconds = time.time() - started if started is not None else sum(c.seconds for c in components)
    result = RunResult(succeeded=False, components=components, seconds=seconds,
                       error=_innermost_message(error) if error else None, log_file=log_file,
                       class_names=class_names if class_names is not None else recorded_classes(components),
                       run_id=run.name if run is not None else None)
    for read in DECISION_READERS:
        read(result)
    if not (_ingests_spans(components) if ingests_spans is None else ingests_spans):
        result.span = None
    result.succeeded = (error is None and not result.data_rejected
                        and not any(c.state in UNSUCCESSFUL_STATES for c in components))
    return result


def execution_property(execution: Optional[metadata_store_pb2.Execution], name: str) -> str:
    """A component's execution parameter as TFX 1.16 records it (a custom property of its execution; JSON-valued
    ones as strings), as text; '' if absent."""
    if execution is None or name not in execution.custom_properties:
        return ""
    value = execution.custom_properties[name]
    kind = value.WhichOneof("value")
    return value.string_value if kind == "string_value" else str(getattr(value, kind)) if kind else ""


def recorded_classes(components: list[ComponentRun]) -> list[str]:
    """The label's classes from the `custom_config` Transform or Trainer ran with ([] when neither ran)."""
    for component in components:
        if component.node_id in ("Transform", "Trainer"):
            custom_config = json.loads(execution_property(component.execution, "custom_config") or "{}")
            if custom_config.get("label"):
                return [str(c) for c in custom_config["label"].get("classes") or []]
    return []


def _ingests_spans(components: list[ComponentRun]) -> bool:
    """Whether ExampleGen's input pattern held {SPAN} (without it, ExampleGen records span 0 anyway)."""
    return any(component.node_id.endswith("ExampleGen") and has_span(execution_property(component.execution, "input_config"))
               for component in components)


def _innermost_message(error: BaseException) -> str:
    """For display: Beam and TFX wrap a component's exception several layers deep."""
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    return messages[-1] or messages[0]
