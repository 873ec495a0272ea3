"""Work-directory locking and closing executions orphaned by a killed run."""
import multiprocessing
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import config, recovery


def _hold_lock(root: str, ready, release) -> None:
    with recovery.exclusive_workdir(Path(root)):
        ready.set()
        release.wait(10)


def test_second_run_on_the_same_workdir_is_refused(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(config.ConfigError, match=rf"another tfxpipe run \(pid {holder.pid}\) is using"):
            with recovery.exclusive_workdir(tmp_path):
                pass
    finally:
        release.set()
        holder.join()
    with recovery.exclusive_workdir(tmp_path):  # free again once the holder exits
        pass


def _store(path: Path) -> metadata_store.MetadataStore:
    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = str(path)
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(cfg)


def test_running_executions_left_by_a_dead_process_are_closed(tmp_path):
    path = tmp_path / "metadata.sqlite"
    store = _store(path)
    type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name="tfx.components.Transform"))
    states = [metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.COMPLETE]
    ids = store.put_executions([metadata_store_pb2.Execution(type_id=type_id, last_known_state=s) for s in states])
    assert recovery.close_interrupted_executions(path) == ["Transform"]
    orphan, done = store.get_executions_by_id(ids)
    assert orphan.last_known_state == metadata_store_pb2.Execution.CANCELED
    assert "ended before it finished" in orphan.custom_properties[recovery.ABANDONED_PROPERTY].string_value
    assert done.last_known_state == metadata_store_pb2.Execution.COMPLETE
    assert recovery.close_interrupted_executions(path) == []


def test_no_store_yet(tmp_path):
    assert recovery.close_interrupted_executions(tmp_path / "missing.sqlite") == []
