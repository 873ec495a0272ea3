"""A live, quiet progress view of a pipeline run: one line per component with its state and seconds.

The view is driven by the executions TFX records in the run's ML Metadata store, not by log wording: a
background thread polls the SQLite store read-only, shows the component whose execution is RUNNING,
and prints a line when an execution reaches a final state (done, cached, failed). When the run ends,
components of the pipeline that have no execution in it are listed as skipped (the run stopped before
them). Polling works the same for LocalDagRunner and BeamDagRunner (whose DirectRunner may launch
components in other processes, out of reach of an in-process launcher hook). Each poll is a few short
reads; ML Metadata's SQLite source retries a briefly locked database, so TFX's writes wait at most
milliseconds for them, and a poll that meets a lock is simply repeated.

Separately, every log record goes to the run's log file; the terminal shows them only with -v.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console

from pipeline import run_outcome

_POLL_SECONDS = 0.5
_SHOWN = {  # state → (mark, label) on the terminal
    "complete": ("[green]✓[/]", "[green]done[/]   "),
    "cached": ("[green]✓[/]", "[dim]cached[/] "),
    "empty": ("[green]✓[/]", "[dim]empty[/]  "),
    "failed": ("[red]✗[/]", "[red]failed[/] "),
    "canceled": ("[red]✗[/]", "[red]canceled[/]"),
    "skipped": ("[dim]-[/]", "[dim]skipped[/]"),
}


class ExecutionWatcher:
    """Follow one run's executions in a metadata store; `poll()` prints what changed since the last call.

    The run is the first `pipeline_run` context that did not exist when the watcher was created.
    """

    def __init__(self, metadata_path: Path, console: Console) -> None:
        self._path = metadata_path
        self._console = console
        self._store = None
        self._known_runs = {c.id for c in self._contexts()} if metadata_path.exists() else set()
        self._run_id: Optional[int] = None
        self._nodes: dict[int, str] = {}  # execution id → node id
        self._reported: set[int] = set()
        self._status = None
        self._running: Optional[str] = None

    def _contexts(self):
        if self._store is None:
            self._store = run_outcome.open_store(self._path)
        return run_outcome.run_contexts(self._store)

    def poll(self) -> None:
        """Print executions that finished since the last poll; show the running one. Never raises:
        the store may not exist yet, or be briefly locked by the writer; the next poll catches up."""
        try:
            self._poll()
        except Exception:  # noqa: BLE001 - ml_metadata raises its own error types for a busy store
            logging.getLogger(__name__).debug("progress poll failed", exc_info=True)

    def _poll(self) -> None:
        if self._run_id is None:
            if not self._path.exists():
                return
            new = [c for c in self._contexts() if c.id not in self._known_runs]
            if not new:
                return
            self._run_id = new[0].id
        running = None
        for execution in sorted(self._store.get_executions_by_context(self._run_id), key=lambda e: e.id):
            if execution.id not in self._nodes:
                self._nodes[execution.id] = run_outcome.node_id(self._store, execution)
            node = self._nodes[execution.id]
            state = run_outcome.component_state(execution, node)
            if state == "running":
                running = node
            elif execution.id not in self._reported and state in _SHOWN:
                self._reported.add(execution.id)
                self._line(node, state, run_outcome.execution_seconds(execution))
        self._show_running(running)

    def _show_running(self, node: Optional[str]) -> None:
        if node == self._running:
            return
        self.stop_status()
        self._running = node
        if node is not None:
            self._status = self._console.status(f"{node} running…")
            self._status.start()

    def _line(self, node: str, state: str, seconds: Optional[float]) -> None:
        self.stop_status()
        self._running = None
        mark, label = _SHOWN[state]
        duration = f"{seconds:6.1f}s" if seconds is not None else ""
        self._console.print(f"  {mark} {node:<40} {label} {duration}", highlight=False)

    def finish(self, node_ids: Sequence[str]) -> None:
        """Final poll, then one `skipped` line for each pipeline node that has no execution in the run."""
        self.poll()
        self.stop_status()
        executed = set(self._nodes.values())
        for node in node_ids:
            if node not in executed:
                self._line(node, "skipped", None)

    def stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


class ComponentProgress:
    """Context manager: route TFX/absl logs to `log_file`, show progress from `metadata_path` on stderr.

    `node_ids` are the pipeline's components, in order, so that those the run never reached are shown.
    """

    def __init__(self, log_file: Path, metadata_path: Path, node_ids: Sequence[str], *, enabled: bool = True,
                 verbose: int = 0, console: Optional[Console] = None) -> None:
        self._log_file = log_file
        self._metadata_path = metadata_path
        self._node_ids = list(node_ids)
        self._enabled = enabled
        self._verbose = verbose
        self._console = console or Console(stderr=True)
        self._handlers: list[logging.Handler] = []
        self._saved: list[tuple[logging.Handler, int]] = []
        self._watcher: Optional[ExecutionWatcher] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "ComponentProgress":
        from absl import logging as absl_logging

        self._absl_verbosity = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.INFO)
        root = logging.getLogger()
        if not self._verbose:  # silence console handlers (absl's included); the file keeps everything
            for handler in root.handlers:
                self._saved.append((handler, handler.level))
                handler.setLevel(logging.ERROR + 10)
        file_handler = logging.FileHandler(self._log_file)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._handlers.append(file_handler)
        root.addHandler(file_handler)
        root.setLevel(min(root.level or logging.INFO, logging.INFO))
        if self._enabled:
            self._console.print(f"[bold]Running pipeline[/] (full log: {self._log_file})", highlight=False)
            self._watcher = ExecutionWatcher(self._metadata_path, self._console)
            self._thread = threading.Thread(target=self._follow, name="tfxpipe-progress", daemon=True)
            self._thread.start()
        return self

    def _follow(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            self._watcher.poll()

    def __exit__(self, exc_type, exc, tb) -> None:
        from absl import logging as absl_logging

        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._watcher.finish(self._node_ids)
        root = logging.getLogger()
        absl_logging.set_verbosity(self._absl_verbosity)
        for handler in self._handlers:
            root.removeHandler(handler)
            handler.close()
        for handler, level in self._saved:
            handler.setLevel(level)
