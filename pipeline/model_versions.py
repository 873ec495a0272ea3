"""Pushed model versions, what ML Metadata knows about each, and moving the `stable`/`canary` labels.

`pushed_versions()` lists `<serving_dir>/<model>/<version>/` with, when the run's metadata store is
there, what made each version: the span(s) of data it was trained on, its blessing and its Overall
metrics (read from the Evaluator's output that the blessing came with) and when it was pushed; and the
labels the model config file gives it. `rollback()` and `promote()` move labels in that file
(serving.version_labels): the server re-reads it and switches without reloading anything.

Read-only and light: ml_metadata, protobuf and files; no TensorFlow or TFX (TFMA's metrics proto is
loaded from its file without running TFMA's package `__init__`, which imports TensorFlow).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Optional

from ml_metadata.proto import metadata_store_pb2

from components import validation_report
from pipeline import tfma_results
from pipeline.blessing import read_decision
from serving import version_labels
from serving.version_manager import list_versions

#: How many executions upstream of a pushed model to look for the Examples it was trained on
#: (Trainer <- Transform <- ExampleGen, with room for a resolver or a gate in between).
_LINEAGE_DEPTH = 6


class VersionError(Exception):
    """A rollback or promotion that cannot be done (no such version, nothing to roll back to)."""


@dataclasses.dataclass(frozen=True)
class PushedVersion:
    version: int
    path: str
    #: Seconds since the epoch: when the Pusher recorded it, else the directory's modification time.
    pushed_at: float
    spans: tuple[int, ...] = ()
    blessed: Optional[bool] = None
    #: Overall slice metrics of the evaluation that blessed it (baseline and diff values left out).
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    labels: tuple[str, ...] = ()


def default_config_path(serving_dir: Path) -> Path:
    """Where `tfxpipe rollback` keeps the model config file when none is given."""
    return Path(serving_dir) / "models.config"


def pushed_versions(serving_dir: Path, model_name: str, metadata_path: Optional[Path] = None,
                    config_path: Optional[Path] = None) -> list[PushedVersion]:
    """Versions under `<serving_dir>/<model_name>/`, oldest first, with their lineage when known."""
    base = Path(serving_dir) / model_name
    records = _pushed_records(metadata_path) if metadata_path and Path(metadata_path).exists() else {}
    labels = version_labels.read_labels(str(config_path), model_name) if config_path else {}
    result = []
    for version in list_versions(str(base)):
        path = base / str(version)
        labelled = tuple(sorted(label for label, v in labels.items() if v == version))
        record = records.get(version, {})
        result.append(PushedVersion(version=version, path=str(path),
                                    pushed_at=record.get("pushed_at", path.stat().st_mtime),
                                    spans=record.get("spans", ()), blessed=record.get("blessed"),
                                    metrics=record.get("metrics", {}), labels=labelled))
    return result


def rollback(serving_dir: Path, model_name: str, config_path: Path, to: Optional[int] = None
             ) -> version_labels.LabelChange:
    """Points `stable` and `canary` at `to`, or at the version pushed before the one `stable` names.

    Without labels yet, the latest version is taken as the one in service (what a server without
    labels answers with), so the first rollback goes to the version before it.
    """
    versions = list_versions(str(Path(serving_dir) / model_name))
    if not versions:
        raise VersionError(f"no versions pushed under {Path(serving_dir) / model_name}")
    current = version_labels.read_labels(str(config_path), model_name).get(version_labels.STABLE, versions[-1])
    if to is None:
        earlier = [v for v in versions if v < current]
        if not earlier:
            raise VersionError(f"version {current} is the oldest pushed version of {model_name}: "
                               "nothing earlier to roll back to")
        to = earlier[-1]
    return _label(serving_dir, model_name, config_path, to, (version_labels.STABLE, version_labels.CANARY))


def promote(serving_dir: Path, model_name: str, config_path: Path, version: Optional[int] = None,
            canary: bool = False) -> version_labels.LabelChange:
    """Labels `version` (default: the newest pushed) `canary`, or `stable` and `canary` (a roll forward).

    A canary keeps `stable` where it is; without one yet, `stable` stays on the version that served.
    """
    versions = list_versions(str(Path(serving_dir) / model_name))
    if not versions:
        raise VersionError(f"no versions pushed under {Path(serving_dir) / model_name}")
    version = versions[-1] if version is None else version
    labels = (version_labels.CANARY,) if canary else (version_labels.STABLE, version_labels.CANARY)
    current = version_labels.read_labels(str(config_path), model_name)
    if canary and version_labels.STABLE not in current:
        serving = [v for v in versions if v < version] or [version]
        _label(serving_dir, model_name, config_path, serving[-1], (version_labels.STABLE,))
    return _label(serving_dir, model_name, config_path, version, labels)


def _label(serving_dir: Path, model_name: str, config_path: Path, version: int, labels: tuple[str, ...]
           ) -> version_labels.LabelChange:
    """Points `labels` at `version`, keeping loaded the version a rollback from the new `stable` goes to."""
    base = Path(serving_dir) / model_name
    versions = list_versions(str(base))
    if version not in versions:
        raise VersionError(f"version {version} of {model_name} is not pushed under {base} (pushed: {versions or 'none'})")
    stable = version if version_labels.STABLE in labels else \
        version_labels.read_labels(str(config_path), model_name).get(version_labels.STABLE, version)
    rollback_target = tuple(v for v in versions if v < stable)[-1:]
    return version_labels.set_labels(str(config_path), model_name, str(base.resolve()),
                                     {label: version for label in labels}, keep_loaded=rollback_target)


# --- ML Metadata ----------------------------------------------------------------------------------------

def _pushed_records(metadata_path: Path) -> dict[int, dict[str, Any]]:
    """version -> {pushed_at, spans, blessed, metrics} for every successful push in the store."""
    from pipeline.run_outcome import open_store, pushed_models

    store = open_store(Path(metadata_path))
    records: dict[int, dict[str, Any]] = {}
    for artifact in pushed_models(store):  # oldest first: the first push of a version made it
        properties = artifact.custom_properties
        version_text = properties["pushed_version"].string_value if "pushed_version" in properties else ""
        if not version_text.isdigit() or int(version_text) in records:
            continue
        records[int(version_text)] = _lineage(store, artifact)
    return records


def _lineage(store, pushed: metadata_store_pb2.Artifact) -> dict[str, Any]:
    record: dict[str, Any] = {"pushed_at": pushed.create_time_since_epoch / 1000}
    pusher = _producer(store, pushed.id)
    if pusher is None:
        return record
    inputs = _inputs(store, pusher)
    blessing = inputs.get("model_blessing", [None])[0]
    if blessing is not None:
        decision = read_decision(blessing)
        record["blessed"] = decision.blessed if decision is not None else None
        evaluator = _producer(store, blessing.id)
        evaluation = _outputs(store, evaluator).get("evaluation", []) if evaluator is not None else []
        if evaluation:
            record["metrics"] = overall_metrics(evaluation[0].uri)
    model = inputs.get("model", [None])[0]
    if model is not None:
        record["spans"] = _spans(store, model)
    return record


def _producer(store, artifact_id: int) -> Optional[int]:
    from pipeline.run_outcome import producer_execution

    return producer_execution(store, artifact_id)


def _inputs(store, execution_id: int) -> dict[str, list[metadata_store_pb2.Artifact]]:
    from pipeline.run_outcome import INPUT_EVENTS, execution_artifacts

    return execution_artifacts(store, execution_id, INPUT_EVENTS)


def _outputs(store, execution_id: int) -> dict[str, list[metadata_store_pb2.Artifact]]:
    from pipeline.run_outcome import execution_artifacts

    return execution_artifacts(store, execution_id)


def _spans(store, model: metadata_store_pb2.Artifact) -> tuple[int, ...]:
    """The spans of the nearest upstream Examples that carry one (ExampleGen's; a window has several)."""
    examples_type = _type_id(store, "Examples")
    frontier, seen = [model], {model.id}
    for _ in range(_LINEAGE_DEPTH):
        spans = {span for a in frontier if a.type_id == examples_type for span in _examples_spans(a)}
        if spans:
            return tuple(sorted(spans))
        upstream = []
        for artifact in frontier:
            producer = _producer(store, artifact.id)
            if producer is not None:
                upstream += [a for group in _inputs(store, producer).values() for a in group if a.id not in seen]
        seen.update(a.id for a in upstream)
        frontier = upstream
        if not frontier:
            break
    return ()


def _examples_spans(examples: metadata_store_pb2.Artifact) -> list[int]:
    """The spans an Examples artifact holds: a window's (ExamplesWindow records them), else its span."""
    window = examples.custom_properties.get(validation_report.WINDOW_SPANS_PROPERTY)
    if window is not None:
        return json.loads(window.string_value)
    span = _span(examples)
    return [] if span is None else [span]


def _span(examples: metadata_store_pb2.Artifact) -> Optional[int]:
    """An Examples artifact's span: a declared property, or a custom one (as some TFX releases record it)."""
    for properties in (examples.properties, examples.custom_properties):
        if "span" in properties:
            return properties["span"].int_value
    return None


def _type_id(store, name: str) -> Optional[int]:
    try:
        return store.get_artifact_type(name).id
    except Exception:  # noqa: BLE001 - NotFoundError: no such type in this store
        return None


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The Overall slice's headline metrics in an Evaluator output (the candidate's)."""
    return tfma_results.headline_metrics(tfma_results.metrics_by_slice(evaluation_uri).get(tfma_results.OVERALL, {}))
