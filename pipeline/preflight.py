"""Pre-flight checks on local input files, before any TFX work starts: the one home of every check
that reads the data files (the config loader only checks that the data location exists).

ExampleGen fails on a malformed file deep inside a Beam worker. These checks read the files the run
will ingest, with the same reader ExampleGen uses (`components.tabular_input`: delimiter, header,
missing-value markers, configured types), and report with file, line and fix:
- a header that lacks a configured column (naming the config key to fix), or that differs between the
  files of one directory;
- structural problems: empty files, rows with the wrong number of columns, broken quoting;
- a numeric column holding text that is not a number (`abc`), with the value;
- a row without a label when `label.required` is true.
Other content problems (unknown categories, out-of-range values, drift) are the schema's job: the data
validation gate reports those.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator, Optional

from pipeline.config import ConfigError, LoadedConfig, PipelineConfig
from pipeline.spans import choose, has_span, span_path
from pipeline.uris import is_remote

_MAX_PROBLEMS = 10


def data_files(loaded: LoadedConfig) -> list[Path]:
    """The files the run ingests: the chosen span's (the latest when none is chosen) with `{SPAN}`."""
    from components.tabular_input import is_data_file

    data_path = loaded.span_data_path
    if has_span(data_path):
        data_path = span_path(data_path, choose(data_path, None).span)
    path = Path(data_path)
    if path.is_file():
        return [path]
    data_format = loaded.cfg.data.format
    return sorted(p for p in path.iterdir() if p.is_file() and (data_format == "tfrecord" or is_data_file(p.name, data_format)))


def read_options(cfg: PipelineConfig):
    """The reader's options for this config (`components.tabular_input.ReadOptions`)."""
    from components.tabular_input import ReadOptions

    return ReadOptions.from_dict(cfg.ingestion_config())


def _check_columns(path: Path, header: list[str], cfg: PipelineConfig) -> None:
    """A configured column missing from a header is a config/data mismatch, not a bad row: name the key."""
    from components.tabular_input import missing_columns

    missing = missing_columns(header, read_options(cfg))
    if missing:
        key = "label.name" if cfg.label.name in missing else "features"
        raise ConfigError(
            f"{key}: column(s) {missing} not in the header of {str(path)!r} (columns: {header}); "
            "fix the config or the data")


def _records(path: Path, cfg: PipelineConfig) -> Iterator[tuple[int, list[str]]]:
    """(line where it starts, fields) of every CSV record, header included, decompressed as ExampleGen does.

    A quoted field may span lines, so a record is located at the line where it starts: an unclosed quote
    makes the reader fail at the end of the file, far from the mistake.
    """
    from components.tabular_input import open_file

    with open_file(str(path)) as binary, io.TextIOWrapper(binary, encoding="utf-8", newline="") as text:
        reader = csv.reader(text, delimiter=cfg.data.delimiter, strict=True)
        start = 1
        try:
            for row in reader:
                yield start, row
                start = reader.line_num + 1
        except csv.Error as exc:
            raise _UnreadableRecord(start, exc) from None


class _UnreadableRecord(Exception):
    """The csv module gave up on the record starting at `line`."""

    def __init__(self, line: int, error: csv.Error):
        super().__init__(str(error))
        self.line = line


def _structure_problems(path: Path, cfg: PipelineConfig,
                        expected: Optional[tuple[Path, list[str]]]) -> tuple[list[str], Optional[list[str]]]:
    """(empty file, header mismatch, rows with the wrong number of columns, broken quoting; the header)."""
    problems: list[str] = []
    records = _records(path, cfg)
    header, rows = cfg.data.columns, 0
    try:
        if header is None:
            first = next(records, None)
            if not first or not first[1]:
                return [f"{str(path)!r} is empty; it needs a header row and data rows"], None
            header = first[1]
            _check_columns(path, header, cfg)
            if expected is not None and header != expected[1]:
                return [f"{path}: its header {header} differs from {expected[0].name}'s {expected[1]}; every file "
                        "of a directory needs the same columns in the same order"], header
        for start, row in records:
            rows += 1
            if len(row) != len(header) and len(problems) < _MAX_PROBLEMS:
                problems.append(f"{path}:{start}: {len(row)} columns, the header has {len(header)}")
    except _UnreadableRecord as exc:
        problems.append(f"{path}:{exc.line}: unreadable CSV ({exc}) in the record starting on that line; "
                        "check its quoting (a quote opened there may never close)")
        return problems, header
    if rows == 0:
        problems.append(f"{path}: only a header row, no data")
    return problems, header


def _record_lines(path: Path, cfg: PipelineConfig, rows: set[int]) -> dict[int, int]:
    """The line where each data row (1 = the first after any header) starts (for messages only)."""
    lines, skip = {}, 0 if cfg.data.columns else 1
    for index, (start, _) in enumerate(_records(path, cfg)):
        if index - skip + 1 in rows:
            lines[index - skip + 1] = start
            if len(lines) == len(rows):
                break
    return lines


def _content_problems(path: Path, cfg: PipelineConfig) -> list[str]:
    """Numeric cells that are not numbers, and unlabeled rows when labels are required, read as ExampleGen
    reads them."""
    from components import tabular_input

    options = read_options(cfg)
    try:
        for first_row, batch in tabular_input.read_batches(str(path), cfg.data.format, options):
            tabular_input.drop_unlabeled(batch, options, str(path), first_row)
    except tabular_input.BadValues as exc:
        where = _locations(path, cfg, [v.row for v in exc.values])
        return [f"{where[v.row]}: {v.value!r} in numeric column {v.column!r} is not a number" for v in exc.values]
    except tabular_input.MissingLabels as exc:
        where = _locations(path, cfg, exc.rows)
        return [f"{where[row]}: no {cfg.label.name!r} label, and label.required is true" for row in exc.rows]
    except tabular_input.InputDataError as exc:
        return [str(exc)]
    return []


def _locations(path: Path, cfg: PipelineConfig, rows: list[int]) -> dict[int, str]:
    """`file:line` of CSV data rows, `file: row N` of Parquet ones."""
    if cfg.data.format != "csv":
        return {row: f"{path}: row {row}" for row in rows}
    lines = _record_lines(path, cfg, set(rows))
    return {row: f"{path}:{lines.get(row, '?')}" for row in rows}


def check_input_files(loaded: LoadedConfig) -> None:
    """Raise ConfigError naming a configured column missing from a CSV header, or listing every
    structural or content problem in the local input files."""
    if is_remote(loaded.data_path):
        return  # object storage: ExampleGen reads it where it runs, with the same checks
    files = data_files(loaded)
    if not files:
        raise ConfigError(f"data.path: no {loaded.cfg.data.format} files in {loaded.span_data_path!r}; "
                          "point it (or --data) at your data, or set data.format")
    if loaded.cfg.data.format == "tfrecord":
        return
    problems: list[str] = []
    expected = None  # the first file's header: every other file must have it too
    for path in files:
        if loaded.cfg.data.format == "csv":
            structure, header = _structure_problems(path, loaded.cfg, expected)
            expected = expected or ((path, header) if header else None)
            problems += structure
            if structure:
                continue
        problems += _content_problems(path, loaded.cfg)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems[:_MAX_PROBLEMS])
        raise ConfigError(
            f"the input data is malformed, so the run stops before ingesting it:\n{listed}\n"
            "Fix or remove these rows (every row needs one value per header column, quote values containing "
            "the delimiter, numeric columns need numbers or a data.missing_values marker) and re-run.")
