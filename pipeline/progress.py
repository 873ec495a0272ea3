"""A live, quiet progress view of a pipeline run: one line per component with its state and seconds.

TFX's runners announce each component ("Component X is running." / "... is finished.", and "A cached
execution N is used." when the metadata store already holds the result). We listen to those records
on the `absl` logger, write every log record to the run's log file, and show only the progress lines
on the terminal unless -v asked for the full log.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Optional

from rich.console import Console

_STARTED = re.compile(r"^(?:Component|node) (\S+) is running\.$")
_FINISHED = re.compile(r"^(?:Component|node) (\S+) is finished\.$")
_CACHED = re.compile(r"^A cached execution \d+ is used\.$")


class _ProgressHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__(level=logging.INFO)
        self._console = console
        self._current: Optional[str] = None
        self._started = 0.0
        self._cached = False
        self._status = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if match := _STARTED.match(message):
            self._current, self._started, self._cached = match.group(1), time.time(), False
            self._status = self._console.status(f"{self._current} running…")
            self._status.start()
        elif _CACHED.match(message):
            self._cached = True
        elif (match := _FINISHED.match(message)) and match.group(1) == self._current:
            self.stop_status()
            state = "[dim]cached[/]" if self._cached else "[green]done[/]  "
            self._console.print(f"  [green]✓[/] {self._current:<40} {state} {time.time() - self._started:6.1f}s",
                                highlight=False)
            self._current = None

    def stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    @property
    def current(self) -> Optional[str]:
        return self._current


class ComponentProgress:
    """Context manager: route TFX/absl logs to `log_file`, show progress lines on stderr."""

    def __init__(self, log_file: Path, *, enabled: bool = True, verbose: int = 0) -> None:
        self._log_file = log_file
        self._enabled = enabled
        self._verbose = verbose
        self._console = Console(stderr=True)
        self._handlers: list[logging.Handler] = []
        self._saved: list[tuple[logging.Handler, int]] = []

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
        if self._enabled:
            self._progress = _ProgressHandler(self._console)
            self._handlers.append(self._progress)
        for handler in self._handlers:
            root.addHandler(handler)
        root.setLevel(min(root.level or logging.INFO, logging.INFO))
        if self._enabled:
            self._console.print(f"[bold]Running pipeline[/] (full log: {self._log_file})", highlight=False)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        from absl import logging as absl_logging

        root = logging.getLogger()
        absl_logging.set_verbosity(self._absl_verbosity)
        if self._enabled:
            self._progress.stop_status()
        if self._enabled and self._progress.current:
            self._console.print(f"  [red]✗[/] {self._progress.current:<40} [red]failed[/]", highlight=False)
        for handler in self._handlers:
            root.removeHandler(handler)
            handler.close()
        for handler, level in self._saved:
            handler.setLevel(level)
