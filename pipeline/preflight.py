"""Pre-flight checks on local input files, before any TFX work starts: the one home of every check
that reads the data files (the config loader only checks that the data location exists).

ExampleGen fails on a malformed CSV deep inside a Beam worker, with a stack trace that names neither the
file nor the line. These checks read the files the run will ingest and report a header that lacks a
configured column (naming the config key to fix) and structural problems (empty files, rows with the
wrong number of columns, broken quoting) with file, line and fix. Content problems (text in a numeric
column, unknown categories, drift) are the schema's job: the data validation gate reports those.
"""
from __future__ import annotations

import csv
from pathlib import Path

from pipeline.config import ConfigError, LoadedConfig, PipelineConfig
from pipeline.spans import choose, has_span, span_path
from pipeline.uris import is_remote

_MAX_PROBLEMS = 10


def data_files(loaded: LoadedConfig) -> list[Path]:
    """The files the run ingests: the chosen span's (the latest when none is chosen) with `{SPAN}`."""
    data_path = loaded.span_data_path
    if has_span(data_path):
        data_path = span_path(data_path, choose(data_path, None).span)
    path = Path(data_path)
    if path.is_file():
        return [path]
    suffix = {"csv": "*.csv", "parquet": "*.parquet", "tfrecord": "*"}[loaded.cfg.data.format]
    return sorted(p for p in path.glob(suffix) if p.is_file())


def _check_columns(path: Path, header: list[str], cfg: PipelineConfig) -> None:
    """A configured column missing from a header is a config/data mismatch, not a bad row: name the key."""
    wanted = [cfg.label.name] + [f.name for f in cfg.features]
    missing = [c for c in wanted if c not in header]
    if missing:
        key = "label.name" if cfg.label.name in missing else "features"
        raise ConfigError(
            f"{key}: column(s) {missing} not in the header of {str(path)!r} (columns: {header}); "
            "fix the config or the data")


def _csv_problems(path: Path, cfg: PipelineConfig) -> list[str]:
    problems: list[str] = []
    with path.open(newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader, None)
            if not header:
                return [f"{str(path)!r} is empty; it needs a header row and data rows"]
            _check_columns(path, header, cfg)
            rows = 0
            # A quoted field may span lines, so a record is reported at the line where it starts: an
            # unclosed quote makes the reader fail at the end of the file, far from the mistake.
            record_start = reader.line_num + 1
            for row in reader:
                rows += 1
                if len(row) != len(header) and len(problems) < _MAX_PROBLEMS:
                    problems.append(f"{path}:{record_start}: {len(row)} columns, the header has {len(header)}")
                record_start = reader.line_num + 1
        except csv.Error as exc:
            problems.append(f"{path}:{record_start}: unreadable CSV ({exc}) in the record starting on that line; "
                            "check its quoting (a quote opened there may never close)")
            return problems
    if rows == 0:
        problems.append(f"{path}: only a header row, no data")
    return problems


def check_input_files(loaded: LoadedConfig) -> None:
    """Raise ConfigError naming a configured column missing from a CSV header, or listing every
    structural problem in the local input files."""
    if is_remote(loaded.data_path):
        return  # object storage: ExampleGen reads it where it runs
    files = data_files(loaded)
    if not files:
        raise ConfigError(f"data.path: no {loaded.cfg.data.format} files in {loaded.span_data_path!r}; "
                          "point it (or --data) at your data, or set data.format")
    if loaded.cfg.data.format != "csv":
        return
    problems = [p for f in files for p in _csv_problems(f, loaded.cfg)]
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems[:_MAX_PROBLEMS])
        raise ConfigError(
            f"the input data is malformed, so the run stops before ingesting it:\n{listed}\n"
            "Fix or remove these rows (every row needs one value per header column; quote values "
            "containing commas) and re-run.")
