"""Keep a work directory consistent across crashes and concurrent runs.

A run killed mid-component (SIGKILL, OOM, a closed laptop) leaves its execution marked RUNNING in the
metadata store forever; completed components are already recorded and are reused from cache by the
next run. Holding an exclusive lock on the work directory while running means that, at the start of a
run, any RUNNING execution is known to be orphaned, so it is closed as CANCELED (with the reason) and
the store again describes only what really happened.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.config import ConfigError

LOCK_FILE = ".run.lock"
ABANDONED_PROPERTY = "tfxpipe_abandoned"


@contextlib.contextmanager
def exclusive_workdir(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on `root` for the duration of a run; fail clearly if it is taken."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise ConfigError(f"another tfxpipe run (pid {holder}) is using {root}; wait for it to finish "
                              "or pass a different --workdir") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def close_interrupted_executions(metadata_path: Path) -> list[str]:
    """Mark executions left RUNNING by a dead process as CANCELED; returns their node names.

    Only call this while holding `exclusive_workdir`, when no other process can be running.
    """
    if not metadata_path.exists():
        return []
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    store = metadata_store.MetadataStore(config)
    orphans = [e for e in store.get_executions() if e.last_known_state == metadata_store_pb2.Execution.RUNNING]
    for execution in orphans:
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
        execution.custom_properties[ABANDONED_PROPERTY].string_value = (
            "the process running this execution ended before it finished; closed by the next run")
    if orphans:
        store.put_executions(orphans)
    return [e.type.rsplit(".", 1)[-1] for e in orphans]
