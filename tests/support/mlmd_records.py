"""Write pipeline runs into a real (SQLite) ML Metadata store the way TFX records them, without TFX:
a `pipeline_run` context, one `node` context per component (`<pipeline>.<node id>`), executions with
their state, and output artifacts linked by OUTPUT events keyed by output name."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

PIPELINE = "penguin"


def writable_store(path: Path) -> metadata_store.MetadataStore:
    config = mlmd.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def _context(store, type_name: str, name: str) -> int:
    type_id = store.put_context_type(mlmd.ContextType(name=type_name))
    existing = store.get_context_by_type_and_name(type_name, name)
    return existing.id if existing else store.put_contexts([mlmd.Context(type_id=type_id, name=name)])[0]


def start_run(store, run_id: str) -> int:
    """The `pipeline_run` context of a new run."""
    return _context(store, "pipeline_run", run_id)


def artifact(type_name: str, uri: str = "/nowhere", properties: Optional[dict[str, int]] = None,
             **custom: object) -> mlmd.Artifact:
    """An artifact with custom properties, and integer `properties` its type declares (e.g. Examples' span)."""
    result = mlmd.Artifact(type_id=0, uri=uri, state=mlmd.Artifact.LIVE)
    result.type = type_name
    for key, value in (properties or {}).items():
        result.properties[key].int_value = value
    for key, value in custom.items():
        field = "int_value" if isinstance(value, int) else "string_value"
        setattr(result.custom_properties[key], field, value)
    return result


def record(store, run: int, node: str, state: int = mlmd.Execution.COMPLETE,
           outputs: Optional[dict[str, mlmd.Artifact]] = None,
           inputs: Optional[dict[str, mlmd.Artifact]] = None, parameters: Optional[dict[str, str]] = None) -> int:
    """An execution of `node` in `run` with its outputs (and inputs: artifacts already stored, by key) and
    its execution parameters (custom properties, as TFX 1.16 records them); returns the execution id."""
    execution_type = store.put_execution_type(mlmd.ExecutionType(name=f"tfx.components.{node}"))
    execution = mlmd.Execution(type_id=execution_type, last_known_state=state)
    for key, value in (parameters or {}).items():
        execution.custom_properties[key].string_value = value
    contexts = [store.get_contexts_by_id([run])[0],
                store.get_contexts_by_id([_context(store, "node", f"{PIPELINE}.{node}")])[0]]
    pairs = []
    for key, output in (outputs or {}).items():
        declared = {key: mlmd.INT for key in output.properties}
        output.type_id = store.put_artifact_type(mlmd.ArtifactType(name=output.type, properties=declared),
                                                 can_add_fields=True, can_omit_fields=True)
        output.ClearField("type")
        event = mlmd.Event(type=mlmd.Event.OUTPUT)
        event.path.steps.add().key = key
        event.path.steps.add().index = 0
        pairs.append((output, event))
    for key, stored in (inputs or {}).items():
        event = mlmd.Event(type=mlmd.Event.INPUT)
        event.path.steps.add().key = key
        event.path.steps.add().index = 0
        pairs.append((stored, event))
    execution_id, _, _ = store.put_execution(execution, pairs, contexts)
    return execution_id


def set_state(store, execution_id: int, state: int) -> None:
    [execution] = store.get_executions_by_id([execution_id])
    execution.last_known_state = state
    store.put_executions([execution])
