"""Reading tabular input (CSV and Parquet files) into the columns a run uses: the one home of the rules.

The ExampleGen executor (`components.tabular_example_gen`), the pre-flight checks (`pipeline.preflight`)
and `serve-check`'s sample row all read data through this module, so a cell means the same thing
everywhere:

- Only the configured columns (the label and the features) are read, each with the type its config
  declares: numeric features (and a regression label) become float32 whatever their storage (CSV text,
  Parquet int64 or float64: pandas turns an integer column with gaps into float64), categorical and
  text features (and a classification label) become text (an integer-coded category `2` becomes "2").
  Unused columns are never parsed, so a stray value there cannot stop a run.
- A cell equal to one of `missing_values` (default `""`, `NA`, `N/A`, `NaN`, `null`) is missing, in
  every column. An empty numeric or label cell, and a NaN stored in a Parquet float column, are missing
  whatever the markers say: they cannot mean anything else.
- A numeric cell that is not a number (`abc`) is an `InputDataError` naming the file, the data row
  (1 = the first row after the header), the column and the value.
- Rows whose label is missing are dropped (and counted), or are an error with `label_required`.

CSV is read with pyarrow's streaming reader (one block at a time, never a whole file), quoted fields may
span lines, and `.gz`/`.bz2` files are decompressed by Apache Beam's file systems, which also open
`gs://` and `s3://` paths where the pipeline runs.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, BinaryIO, Iterator, Mapping, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: `data.missing_values` when the config gives none.
DEFAULT_MISSING_VALUES = ("", "NA", "N/A", "NaN", "null")
#: Names a file in a data directory may have, per format; a path naming one file is read whatever its name.
DATA_FILE_SUFFIXES = {"csv": (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".csv.bz2", ".tsv.bz2"),
                      "parquet": (".parquet",)}
#: Bytes pyarrow parses at a time: rows arrive in batches of about this size, whatever the file's size.
BLOCK_SIZE = 4 << 20
_MAX_REPORTED = 10


class InputDataError(ValueError):
    """A file the run cannot ingest; the message names the file and what to fix."""


@dataclasses.dataclass(frozen=True)
class BadValue:
    """A numeric cell that is not a number (`row`: 1 = the first data row of its file)."""

    row: int
    column: str
    value: str


class BadValues(InputDataError):
    """Numeric cells that are not numbers, in one file (at most ten, in row order)."""

    def __init__(self, path: str, values: list[BadValue]):
        self.path, self.values = path, values
        listed = "; ".join(f"row {v.row}, column {v.column!r}: {v.value!r}" for v in values)
        super().__init__(f"{path}: numeric column(s) hold text that is not a number: {listed}. Fix the value, "
                         "or add it to data.missing_values if it marks a missing value")


class MissingLabels(InputDataError):
    """Rows without a label while `label.required` is true (at most ten data rows, in order)."""

    def __init__(self, path: str, label: str, rows: list[int]):
        self.path, self.rows = path, rows
        super().__init__(f"{path}: no {label!r} label in data row(s) {rows} and label.required is true; fill them "
                         "in, or set label.required: false to drop such rows (they are counted in the run summary)")


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How to read one run's input files; built from the config by `PipelineConfig.ingestion_config()`."""

    label: str
    #: Columns read as numbers (numeric features, a regression label) and as text (the others).
    numeric: tuple[str, ...]
    text: tuple[str, ...]
    delimiter: str = ","
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES
    #: Column names of CSV files without a header row; None: the first row of each file names them.
    column_names: Optional[tuple[str, ...]] = None
    label_required: bool = False

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "ReadOptions":
        """From plain data (what travels through ExampleGen's custom_config); lists become tuples."""
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()}
        return cls(**values)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.numeric, *self.text)


def is_data_file(name: str, data_format: str) -> bool:
    """Whether a file in a data directory is input of `data_format` (hidden files never are)."""
    base = name.rsplit("/", 1)[-1]
    return not base.startswith((".", "_")) and base.lower().endswith(DATA_FILE_SUFFIXES[data_format])


@contextlib.contextmanager
def open_file(path: str, *, decompress: bool = True) -> Iterator[BinaryIO]:
    """A binary stream of `path` (local or object store), decompressed by its extension when asked.

    Local files are opened directly, so the pre-flight checks stay free of Beam (read-only paths of the
    CLI must not import it); object stores through Beam's file systems, which open every scheme.
    Decompression is Python's gzip/bz2 rather than Beam's CompressedFile, which pyarrow cannot read (its
    `closed` is a method, so it always looks closed).
    """
    import bz2
    import gzip

    from pipeline.uris import is_remote

    if is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        opened = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    else:
        opened = open(path, "rb")  # noqa: SIM115 - closed by the `with` below
    suffix = path.lower().rsplit(".", 1)[-1] if decompress else ""
    with opened as raw:
        if suffix == "gz":
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield stream
        elif suffix == "bz2":
            with bz2.BZ2File(raw, mode="rb") as stream:
                yield stream
        else:
            yield raw


def csv_header(path: str, options: ReadOptions) -> list[str]:
    """The column names of a CSV file (`column_names` for files without a header row)."""
    import pyarrow.csv as pacsv

    if options.column_names:
        return list(options.column_names)
    with open_file(path) as stream:
        try:
            reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=1 << 16),
                                    parse_options=_parse_options(options),
                                    convert_options=pacsv.ConvertOptions(include_columns=[]))
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                raise InputDataError(f"{path} is empty; it needs a header row and data rows") from None
            raise InputDataError(f"{path}: unreadable CSV header ({exc})") from None
        return list(reader.schema.names)


def missing_columns(header: list[str], options: ReadOptions) -> list[str]:
    """Configured columns a file lacks, label first."""
    wanted = [options.label] + [c for c in options.columns if c != options.label]
    return [c for c in wanted if c not in header]


def read_batches(path: str, data_format: str, options: ReadOptions) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first data row, batch) of the configured columns of one file, typed and in order, one block of
    rows at a time. Missing labels are kept (see `drop_unlabeled`). Raises InputDataError naming the file.
    """
    batches = _csv_batches(path, options) if data_format == "csv" else _parquet_batches(path, options)
    first_row = 1
    for batch in batches:
        yield first_row, typed(batch, options, path, first_row)
        first_row += batch.num_rows


def _parse_options(options: ReadOptions):
    import pyarrow.csv as pacsv

    return pacsv.ParseOptions(delimiter=options.delimiter, newlines_in_values=True)


def _csv_batches(path: str, options: ReadOptions) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pacsv

    header = csv_header(path, options)
    absent = missing_columns(header, options)
    if absent:
        raise InputDataError(f"{path}: column(s) {absent} not in its header {header}")
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in options.columns}, include_columns=list(options.columns),
        null_values=list(options.missing_values), strings_can_be_null=True, quoted_strings_can_be_null=True)
    read = pacsv.ReadOptions(block_size=BLOCK_SIZE, column_names=list(options.column_names or []) or None)
    with open_file(path) as stream:
        try:
            yield from pacsv.open_csv(stream, read_options=read, parse_options=_parse_options(options),
                                      convert_options=convert)
        except pa.ArrowInvalid as exc:
            raise InputDataError(f"{path}: unreadable CSV ({exc})") from None


def _parquet_batches(path: str, options: ReadOptions) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    with open_file(path, decompress=False) as stream:
        parquet = pq.ParquetFile(stream)
        absent = missing_columns(parquet.schema_arrow.names, options)
        if absent:
            raise InputDataError(f"{path}: column(s) {absent} not in the file (columns: {parquet.schema_arrow.names})")
        yield from parquet.iter_batches(batch_size=64 * 1024, columns=list(options.columns))


def typed(batch: pa.RecordBatch, options: ReadOptions, path: str, first_row: int) -> pa.RecordBatch:
    """The batch's configured columns as float32 (numeric) or string (text), markers made missing."""
    markers = pa.array(list(options.missing_values), pa.string())
    columns, bad = [], []
    for name in options.columns:
        column = batch.column(batch.schema.get_field_index(name))
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if name in options.numeric:
            column, problems = _as_numbers(column, markers)
            bad += [BadValue(first_row + row, name, value) for row, value in problems]
        else:
            column = _as_text(column, markers)
        columns.append(column)
    if bad:
        raise BadValues(path, sorted(bad, key=lambda v: v.row)[:_MAX_REPORTED])
    return pa.RecordBatch.from_arrays(columns, names=list(options.columns))


def _without_markers(text: pa.Array, markers: pa.Array) -> pa.Array:
    return pc.if_else(pc.is_in(text, value_set=markers), pa.scalar(None, text.type), text)


def _as_text(column: pa.Array, markers: pa.Array) -> pa.Array:
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())  # integer-coded categories: 2 -> "2"
    return _without_markers(column, markers)


def _as_numbers(column: pa.Array, markers: pa.Array) -> tuple[pa.Array, list[tuple[int, str]]]:
    """float32 values (missing where a marker, empty or NaN), and the (row index, text) of non-numbers."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(_without_markers(column, markers))
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
        try:
            column = pc.cast(text, pa.float64())
        except pa.ArrowInvalid:
            return column, _not_numbers(text)
    numbers = pc.cast(column, pa.float32())
    return pc.if_else(pc.is_nan(numbers), pa.scalar(None, pa.float32()), numbers), []


def _not_numbers(text: pa.Array, offset: int = 0) -> list[tuple[int, str]]:
    """Positions and values of the cells that do not parse as numbers, by bisection (error path only)."""
    try:
        pc.cast(text, pa.float64())
        return []
    except pa.ArrowInvalid:
        if len(text) == 1:
            return [(offset, text[0].as_py())]
    half = len(text) // 2
    found = _not_numbers(text.slice(0, half), offset)
    if len(found) < _MAX_REPORTED:
        found += _not_numbers(text.slice(half), offset + half)
    return found[:_MAX_REPORTED]


def drop_unlabeled(batch: pa.RecordBatch, options: ReadOptions, path: str, first_row: int) -> tuple[pa.RecordBatch, int]:
    """(the rows that have a label, how many did not); MissingLabels instead with `label_required`."""
    labelled = pc.is_valid(batch.column(batch.schema.get_field_index(options.label)))
    dropped = batch.num_rows - pc.sum(labelled).as_py() if batch.num_rows else 0
    if dropped and options.label_required:
        rows = np.flatnonzero(~labelled.to_numpy(zero_copy_only=False))[:_MAX_REPORTED]
        raise MissingLabels(path, options.label, [first_row + int(i) for i in rows])
    return (batch.filter(labelled) if dropped else batch), dropped


def as_lists(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Each column as one-value lists (null: an empty feature), text as bytes: what tfx_bsl's
    RecordBatchToExamplesEncoder encodes, giving the tf.Examples stock CsvExampleGen writes."""
    columns = []
    for column in batch.columns:
        present = pc.is_valid(column)
        offsets = np.concatenate([[0], np.cumsum(present.to_numpy(zero_copy_only=False))]).astype(np.int32)
        values = column.filter(present)
        if pa.types.is_string(values.type):
            values = values.cast(pa.binary())
        columns.append(pa.ListArray.from_arrays(pa.array(offsets), values, mask=pc.invert(present)))
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
