"""Is a run a repeat of the last one? Same config, data, code and stack, and no other run since.

TFX answers that question too, but only after importing TFX (10-26 s here), building the pipeline and
running every component's driver; and its answer for the first re-run is "no" for the data gate and
the Evaluator, because the last run's own outputs have since become their baselines: the gate then
compares the data with itself and the Evaluator the model with itself, which can only repeat the last
run's verdicts. `tfxpipe run` asks first, in a fraction of a second and without TFX: the last
successful run leaves a fingerprint of its inputs beside the metadata store, and a run whose fingerprint
matches, while that run is still the store's latest, reports that run's outcome (read from ML Metadata)
as cached instead of running again.

What the fingerprint covers: the validated config (every key, defaults included, and the resolved
data, schema and request-log paths), the runner and extra Beam arguments, the data files and request
logs (path, size, modification time: what ExampleGen fingerprints too), the curated schema's content,
this project's source code and the versions of the ML stack. Warm-started training is never a repeat
(each run continues from the model the last one pushed), nor is data in an object store (not listed here).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Iterable, Optional

from pipeline.config import LoadedConfig
from pipeline.uris import is_remote

#: Where the last successful run's fingerprint is kept, inside the run directory.
FINGERPRINT_FILE = "last_run.json"
#: This project's packages: their source is part of every run's inputs (the executors run it).
_PROJECT_PACKAGES = ("pipeline", "trainer", "components", "serving")
#: Distributions whose version changes what a run computes.
_STACK = ("tfx", "tensorflow", "tensorflow-transform", "tensorflow-model-analysis", "tensorflow-data-validation",
          "tfx-bsl", "apache-beam", "keras", "ml-metadata")


@dataclasses.dataclass(frozen=True)
class LastRun:
    """The last successful run: its inputs' fingerprint and its `pipeline_run` context in ML Metadata."""

    fingerprint: str
    run_context: str


def _files(path: str) -> Iterable[Path]:
    root = Path(path)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


def _stat_lines(path: str) -> list[str]:
    """One line per file under `path`: name, size and modification time (ns)."""
    lines = []
    for file in _files(path):
        stat = file.stat()
        lines.append(f"{file}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return lines


def _source_digest() -> str:
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for package in _PROJECT_PACKAGES:
        for source in sorted((root / package).rglob("*.py")):
            digest.update(str(source.relative_to(root)).encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()


def _stack_versions() -> list[str]:
    versions = []
    for name in _STACK:
        try:
            versions.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} absent")
    return versions


def fingerprint(loaded: LoadedConfig, runner: str, extra_beam_args: Optional[list[str]]) -> Optional[str]:
    """A digest of everything a run's outcome depends on, or None when a run can never be a repeat."""
    if loaded.cfg.model.warm_start:
        return None
    data_paths = [loaded.span_data_path] + ([loaded.serving_logs] if loaded.serving_logs else [])
    if any(is_remote(p) for p in data_paths):
        return None
    parts = {
        "config": loaded.model_dump(mode="json"),
        "runner": runner,
        "beam_args": list(extra_beam_args or []),
        "data": [line for path in data_paths if os.path.exists(path) for line in _stat_lines(path)],
        "schema": hashlib.sha256(Path(loaded.schema_path).read_bytes()).hexdigest() if loaded.schema_path else None,
        "source": _source_digest(),
        "stack": _stack_versions(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def read(run_dir: Path) -> Optional[LastRun]:
    """The last successful run's record in `run_dir`, or None (none yet, or unreadable: then run)."""
    try:
        record = json.loads((run_dir / FINGERPRINT_FILE).read_text())
        return LastRun(fingerprint=record["fingerprint"], run_context=record["run_context"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(run_dir: Path, last: LastRun) -> None:
    """Records a successful run (atomically: a crash leaves the old record or the new one)."""
    path = run_dir / FINGERPRINT_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(dataclasses.asdict(last)))
    os.replace(temporary, path)


def forget(run_dir: Path) -> None:
    """Drops the record: the next run runs, whatever its fingerprint."""
    (run_dir / FINGERPRINT_FILE).unlink(missing_ok=True)
