"""`ModelVersionManager`: one model's versions on disk -> loaded, warmed, served, unloaded.

Each poll lists the numeric directories under the base path, asks the version policy which to serve,
loads (and warms) the new ones and only then unloads those no longer wanted, TF Serving's
availability-preserving order. Requests hold a reference to the version they resolved, so unloading
never fails a request in flight: the old version is released when its last request finishes, and its
memory is reclaimed by a full garbage collection at the next poll (see `_reclaim_unloaded`).

A version that fails to load (corrupt, half-written, failing warm-up) is reported as END with its error
and never replaces a version that serves; it is retried when its directory's contents change, so a
push that was still being written loads once it is complete.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import os
import threading
import time
from typing import Callable

from serving import errors
from serving.errors import ServingError
from serving.model_config import ModelConfig

log = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str
    error: ServingError | None = None


Loader = Callable[[str, int, str], object]  # (model name, version, path) -> servable


class ModelVersionManager:
    def __init__(self, config: ModelConfig, loader: Loader):
        self._config = config
        self._loader = loader
        self._serving: dict[int, object] = {}  # replaced, never mutated: readers need no lock
        self._status: dict[int, VersionStatus] = {}
        self._failed_fingerprints: dict[int, tuple] = {}
        self._poll_lock = threading.Lock()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_empty = False
        self._unloaded_since_last_poll = False

    @property
    def config(self) -> ModelConfig:
        return self._config

    @property
    def name(self) -> str:
        return self._config.name

    def update_config(self, config: ModelConfig) -> None:
        """A new policy or base path takes effect at the next poll."""
        self._config = config

    # --- reading (request path) ----------------------------------------------------------------------

    def servable(self, version: int | None = None) -> object | None:
        """The requested version if it is serving, or the newest serving one when `version` is None."""
        serving = self._serving
        if version is not None:
            return serving.get(version)
        return serving[max(serving)] if serving else None

    def available_versions(self) -> list[int]:
        return sorted(self._serving)

    def statuses(self) -> dict[int, VersionStatus]:
        return dict(self._status)

    # --- polling ---------------------------------------------------------------------------------------

    def start_polling(self, interval_seconds: float) -> None:
        """Polls every `interval_seconds`; 0 polls once (done by the first `poll`), < 0 never."""
        if interval_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll_loop, args=(interval_seconds,),
                                        name=f"poll-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def unload_all(self) -> None:
        with self._poll_lock:
            for version in sorted(self._serving):
                self._unload(version)
            self._reclaim_unloaded()  # no poll follows: the model is gone or the server stops

    def _poll_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a poll failure must not end polling
                log.exception("polling %s failed", self.name)

    def poll(self, unload: bool = True) -> None:
        """One pass: load newly aspired versions, then unload the unwanted ones if that is safe.

        `unload=False` only loads: a config reload moves its labels between loading and unloading.
        """
        with self._poll_lock:
            self._reclaim_unloaded()
            config = self._config
            on_disk = list_versions(config.base_path)
            if not on_disk and not self._warned_empty:
                log.warning("No versions of servable %s found under base path %s", self.name, config.base_path)
            self._warned_empty = not on_disk
            aspired = config.version_policy.select(on_disk)
            for version in sorted(aspired, reverse=True):
                if version not in self._serving and self._should_try(version, config):
                    self._load(version, config)
            if not unload:
                return
            if aspired & set(self._serving):
                for version in sorted(set(self._serving) - aspired):
                    self._unload(version)
            elif self._serving and not aspired:
                log.warning("No versions of servable %s found under base path %s; keeping versions %s",
                            self.name, config.base_path, sorted(self._serving))

    def wait_until_settled(self, timeout: float | None = None) -> bool:
        """Blocks until some version serves or every aspired version failed; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._serving and not self._all_aspired_failed():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining if remaining is not None else 1.0)
        return True

    def _all_aspired_failed(self) -> bool:
        statuses = [s for s in self._status.values() if s.state != END or s.error is not None]
        return bool(statuses) and all(s.state == END and s.error is not None for s in statuses)

    def _should_try(self, version: int, config: ModelConfig) -> bool:
        failed = self._failed_fingerprints.get(version)
        return failed is None or failed != directory_fingerprint(version_path(config, version))

    def _load(self, version: int, config: ModelConfig) -> None:
        path = version_path(config, version)
        self._set_status(VersionStatus(version, LOADING))
        log.info("Loading servable version {name: %s version: %d} from %s", self.name, version, path)
        fingerprint = directory_fingerprint(path)
        try:
            servable = self._loader(self.name, version, path)
        except Exception as exc:  # noqa: BLE001 - every failure is reported in the version's status
            error = errors.from_exception(exc)
            log.error("Loading servable version {name: %s version: %d} failed: %s", self.name, version, error.message)
            self._failed_fingerprints[version] = fingerprint
            self._set_status(VersionStatus(version, END, error))
            return
        self._failed_fingerprints.pop(version, None)
        gc.freeze()  # see _reclaim_unloaded
        self._serving = {**self._serving, version: servable}
        self._set_status(VersionStatus(version, AVAILABLE))
        log.info("Successfully loaded servable version {name: %s version: %d}", self.name, version)

    def _unload(self, version: int) -> None:
        self._set_status(VersionStatus(version, UNLOADING))
        self._serving = {v: s for v, s in self._serving.items() if v != version}
        self._unloaded_since_last_poll = True
        self._set_status(VersionStatus(version, END))
        log.info("Unloaded servable version {name: %s version: %d}", self.name, version)

    def _reclaim_unloaded(self) -> None:
        """Frees the memory of versions unloaded since the last poll, now that their requests are done.

        A loaded SavedModel is a web of reference cycles: dropping its last reference frees nothing
        until the interpreter's next full collection. Loaded versions are frozen out of the collector's
        sight (`gc.freeze()` after each load): otherwise every automatic full collection walks
        TensorFlow's ~400k long-lived objects, a pause of 0.2 s on an idle machine and 1.6 s on a busy
        one, which every request in flight waits out (the serving p99 of benchmarks/serving.py). Here,
        once per unload, they are unfrozen for one full collection (the pause TF Serving does not have,
        where it frees a version at once), then frozen again. Without it unloaded versions piled up
        (~5 MB each for the test fixture, their own size for real models; benchmarks/soak.py).
        """
        if self._unloaded_since_last_poll:
            self._unloaded_since_last_poll = False
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    def _set_status(self, status: VersionStatus) -> None:
        with self._changed:
            self._status = {**self._status, status.version: status}
            self._changed.notify_all()


def version_path(config: ModelConfig, version: int) -> str:
    return os.path.join(config.base_path, str(version))


def list_versions(base_path: str) -> list[int]:
    """Numeric child directories of `base_path` (hidden or temporary directories are not versions)."""
    try:
        entries = os.scandir(base_path)
    except OSError:
        return []
    with entries:
        return sorted(int(e.name) for e in entries if e.name.isdigit() and e.is_dir())


def directory_fingerprint(path: str) -> tuple:
    """(relative path, size, mtime) of every file: changes when a push completes or is redone."""
    found = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            found.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))
