"""`tfxpipe lineage MODEL:VERSION`: what made a pushed model, read from ML Metadata's events.

From the PushedModel artifact of that version, upstream: the Pusher's inputs (the model, its blessing and
infra blessing), the Trainer's (transformed examples, transform graph, schema) and, through Transform,
the Examples ExampleGen wrote (its artifact id, URI and span). The statistics and the data validation
verdict are not upstream of the model in the graph (Transform waits for the gate by ordering only), so
they are found downstream of those same Examples. Files and ml_metadata only: no TensorFlow.
"""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import run_outcome, statistics
from pipeline.blessing import read_decision
from pipeline.html_report import TRAINING_SUMMARY_FILE
from pipeline.model_versions import overall_metrics
from pipeline.run_outcome import INPUT_EVENTS, artifact_span, execution_artifacts, execution_property, producer_execution


class LineageError(LookupError):
    """No such pushed version in the store."""


def parse_model_version(text: str) -> tuple[str, str]:
    """'penguin:1733150000' → ('penguin', '1733150000'); raises ValueError with the expected form."""
    name, _, version = text.rpartition(":")
    if not name or not version.isdigit():
        raise ValueError(f"{text!r} is not MODEL_NAME:VERSION (e.g. penguin:1733150000; `tfxpipe models` lists versions)")
    return name, version


def _pushed_artifact(store: metadata_store.MetadataStore, model_name: str, version: str) -> metadata_store_pb2.Artifact:
    """The PushedModel that first pushed `version` of `model_name` (a cached re-run records it again)."""
    for artifact in run_outcome.pushed_models(store):
        properties = artifact.custom_properties
        destination = properties["pushed_destination"].string_value if "pushed_destination" in properties else ""
        if properties["pushed_version"].string_value == version and Path(destination).parent.name == model_name:
            return artifact
    raise LineageError(f"no pushed version {model_name}:{version} in this metadata store; "
                       "`tfxpipe models` lists the pushed versions")


def _artifact(store, artifact: metadata_store_pb2.Artifact, **extra: Any) -> dict[str, Any]:
    """An artifact as the lineage shows it: id, type, URI, the run and component that made it."""
    producer = producer_execution(store, artifact.id)
    node = run = None
    if producer is not None:
        [execution] = store.get_executions_by_id([producer])
        node, run = run_outcome.node_id(store, execution), run_outcome.run_of(store, producer)
    [artifact_type] = store.get_artifact_types_by_id([artifact.type_id])
    return {"artifact_id": artifact.id, "type": artifact_type.name, "uri": artifact.uri, "produced_by": node,
            "run": run, **extra}


def _execution(store, artifact: metadata_store_pb2.Artifact) -> Optional[metadata_store_pb2.Execution]:
    producer = producer_execution(store, artifact.id)
    return store.get_executions_by_id([producer])[0] if producer is not None else None


def _inputs(store, artifact: metadata_store_pb2.Artifact) -> dict[str, list[metadata_store_pb2.Artifact]]:
    producer = producer_execution(store, artifact.id)
    return execution_artifacts(store, producer, INPUT_EVENTS) if producer is not None else {}


def _first(artifacts: dict[str, list], key: str) -> Optional[metadata_store_pb2.Artifact]:
    return (artifacts.get(key) or [None])[0]


def _consumers_outputs(store, examples: metadata_store_pb2.Artifact, node_suffix: str, key: str
                       ) -> Optional[metadata_store_pb2.Artifact]:
    """The `key` output of the first `node_suffix` execution that read `examples` (e.g. its statistics)."""
    events = [e for e in store.get_events_by_artifact_ids([examples.id]) if e.type in INPUT_EVENTS]
    for execution in store.get_executions_by_id(sorted({e.execution_id for e in events})):
        if run_outcome.node_id(store, execution).endswith(node_suffix):
            output = _first(execution_artifacts(store, execution.id), key)
            if output is not None:
                return output
    return None


def _data(store, examples: metadata_store_pb2.Artifact) -> dict[str, Any]:
    """ExampleGen's output, its statistics and the data validation verdict on it."""
    from components import validation_report

    example_gen = _execution(store, examples)
    result: dict[str, Any] = {"examples": _artifact(store, examples, span=artifact_span(examples),
                                                    splits=statistics.split_names(examples),
                                                    input_base=execution_property(example_gen, "input_base"))}
    stats = _consumers_outputs(store, examples, "StatisticsGen", "statistics")
    if stats is not None:
        result["statistics"] = _artifact(store, stats)
    verdict = _consumers_outputs(store, examples, run_outcome.GATE_NODE, run_outcome.VERDICT_OUTPUT)
    if verdict is not None:
        findings = json.loads(verdict.custom_properties[validation_report.FINDINGS_PROPERTY].string_value or "[]") \
            if validation_report.FINDINGS_PROPERTY in verdict.custom_properties else []
        result["data_validation"] = _artifact(
            store, verdict, verdict=verdict.custom_properties[validation_report.VERDICT_PROPERTY].string_value,
            findings=len(findings))
    return result


def _trainer(store, model: metadata_store_pb2.Artifact) -> dict[str, Any]:
    """The model, and how it was trained: hyper-parameters, the code that ran, the warm start."""
    trainer = _execution(store, model)
    custom_config = json.loads(execution_property(trainer, "custom_config") or "{}")
    summary: dict[str, Any] = {}
    model_run = _first(execution_artifacts(store, trainer.id), "model_run") if trainer is not None else None
    if model_run is not None and os.path.isfile(os.path.join(model_run.uri, TRAINING_SUMMARY_FILE)):
        with open(os.path.join(model_run.uri, TRAINING_SUMMARY_FILE)) as f:
            summary = json.load(f)
    tfx_version = model.custom_properties["tfx_version"].string_value if "tfx_version" in model.custom_properties else None
    return {"model": _artifact(store, model),
            "hyperparameters": summary.get("hyperparameters") or custom_config.get("model"),
            "code": {"run_fn": execution_property(trainer, "run_fn"), "tfx_version": tfx_version,
                     **(summary.get("code_version") or {})},
            "replicas": summary.get("num_replicas"), "global_batch_size": summary.get("global_batch_size"),
            "warm_start": summary.get("warm_start")}


def _evaluation(store, blessing: metadata_store_pb2.Artifact) -> dict[str, Any]:
    decision = read_decision(blessing)
    evaluator = _execution(store, blessing)
    evaluation = _first(execution_artifacts(store, evaluator.id), "evaluation") if evaluator is not None else None
    result = {"blessing": _artifact(store, blessing, blessed=decision.blessed if decision else None,
                                    baseline_model=decision.baseline_uri if decision else None)}
    if evaluation is not None:
        result["evaluation"] = _artifact(store, evaluation, overall_metrics=overall_metrics(evaluation.uri))
    return result


def lineage(metadata_path: Path, model_name: str, version: str) -> dict[str, Any]:
    """Everything behind `model_name:version`, as plain data (the tree and `--format json` render it).

    Raises LineageError when the store holds no such pushed version.
    """
    store = run_outcome.open_store(Path(metadata_path))
    pushed = _pushed_artifact(store, model_name, version)
    pusher_inputs = _inputs(store, pushed)
    result: dict[str, Any] = {
        "model": f"{model_name}:{version}",
        "pushed": _artifact(store, pushed, path=pushed.custom_properties["pushed_destination"].string_value,
                            pushed_at=datetime.datetime.fromtimestamp(pushed.create_time_since_epoch / 1000,
                                                                      datetime.timezone.utc).isoformat()),
    }
    model = _first(pusher_inputs, "model")
    if model is not None:
        result["trainer"] = _trainer(store, model)
        trainer_inputs = _inputs(store, model)
        transform_graph = _first(trainer_inputs, "transform_graph")
        schema = _first(trainer_inputs, "schema")
        if schema is not None:
            source = execution_property(_execution(store, schema), "schema_file")
            result["schema"] = _artifact(store, schema, source=f"curated: {source}" if source else "inferred")
        if transform_graph is not None:
            result["transform_graph"] = _artifact(store, transform_graph)
            examples = _first(_inputs(store, transform_graph), "examples")
            if examples is not None:
                result["data"] = _data(store, examples)
    blessing = _first(pusher_inputs, "model_blessing")
    if blessing is not None:
        result.update(_evaluation(store, blessing))
    infra = _first(pusher_inputs, "infra_blessing")
    if infra is not None:
        blessed = infra.custom_properties.get("blessed")
        result["infra_blessing"] = _artifact(store, infra, blessed=None if blessed is None else blessed.int_value == 1)
    return result


_ARTIFACT_KEYS = ("artifact_id", "type", "uri", "produced_by", "run")


def _label(key: str, value: dict[str, Any]) -> str:
    """'examples: Examples #12 (CsvExampleGen, run 2026-...) /path' for an artifact, the key otherwise."""
    if "artifact_id" not in value:
        return key
    made = f" ({value['produced_by']}, run {value['run']})" if value.get("produced_by") else ""
    return f"[bold]{key}[/]: {value['type']} #{value['artifact_id']}{made} {value['uri']}"


def _add(branch, key: str, value: Any) -> None:
    from rich.markup import escape

    if isinstance(value, dict):
        child = branch.add(_label(key, value) if "artifact_id" in value else f"[bold]{escape(key)}[/]")
        for name, item in value.items():
            if name not in _ARTIFACT_KEYS and item not in (None, "", [], {}):
                _add(child, name, item)
    else:
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        branch.add(f"{escape(key)}: {escape(str(shown))}")


def tree(found: dict[str, Any]):
    """`lineage()`'s result as a rich Tree for the terminal."""
    from rich.tree import Tree

    root = Tree(f"[bold]{found['model']}[/]")
    for key, value in found.items():
        if key != "model":
            _add(root, key, value)
    return root
