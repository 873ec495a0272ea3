"""Deterministic N-row data shaped like a configured dataset, for the data-stage and training benchmarks.

Rows are drawn with replacement from the config's own data (its CSV or Parquet files), and every numeric
value gets Gaussian noise of `--noise` × the column's standard deviation (integer columns are rounded
back to integers). So the output has the dataset's columns, types and missing cells, the schema the
pipeline curated for it still holds, and the label stays as learnable as in the real data: it keeps
the relation to the features each drawn row had. The same arguments always write the same bytes.

Rows are generated and written in chunks (pyarrow's CSV and Parquet writers), so 10M rows need no
more memory than one chunk:

    python -m benchmarks.generate_data --config configs/penguin.yaml --rows 1000000 --format csv --out /tmp/penguin-1m
    python -m benchmarks.generate_data --config configs/penguin.yaml --rows 10000000 --format parquet --out /tmp/penguin-10m

`--out` is a directory (what ExampleGen and `tfxpipe run --data` take) holding one `data.csv` or
`data.parquet`.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

FORMATS = ("csv", "parquet")


def read_source(data_path: str, data_format: str) -> pa.Table:
    """Every row of a config's data (a file, or the CSV/Parquet files of a directory) as one table."""
    if data_format not in FORMATS:
        raise ValueError(f"data.format {data_format!r}: only {list(FORMATS)} sources can be resampled")
    path = Path(data_path)
    files = sorted(p for p in path.rglob(f"*.{data_format}")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"no *.{data_format} files under {data_path}")
    if data_format == "csv":
        from pyarrow import csv

        tables = [csv.read_csv(f) for f in files]
    else:
        from pyarrow import parquet

        tables = [parquet.read_table(f) for f in files]
    return pa.concat_tables(tables)


def _as_float(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.float64()).to_numpy()  # nulls become NaN


def _noisy(column: pa.ChunkedArray, std: float, rng: np.random.Generator, noise: float) -> pa.Array:
    """A numeric column with N(0, noise × std) added; nulls stay null, integers stay integers."""
    values = _as_float(column)
    mask = np.isnan(values)
    noisy = np.where(mask, 0.0, values + rng.normal(0.0, noise * std, len(values)))
    # integers stay integers; floats keep 3 decimals (compact CSV, and more than the source's precision)
    noisy = np.round(noisy, 0 if pa.types.is_integer(column.type) else 3)
    return pa.array(noisy.astype(column.type.to_pandas_dtype()), mask=mask, type=column.type)


def chunks(source: pa.Table, rows: int, *, seed: int = 0, noise: float = 0.05,
           chunk_rows: int = 200_000) -> Iterator[pa.Table]:
    """`rows` resampled rows of `source`, in tables of at most `chunk_rows` rows."""
    rng = np.random.default_rng(seed)
    stds = {name: float(np.nanstd(_as_float(source[name])) or 1.0)
            for name, kind in zip(source.column_names, source.schema.types)
            if pa.types.is_integer(kind) or pa.types.is_floating(kind)}
    for start in range(0, rows, chunk_rows):
        picked = source.take(pa.array(rng.integers(0, source.num_rows, min(chunk_rows, rows - start))))
        yield pa.table({name: (_noisy(picked[name], stds[name], rng, noise) if name in stds else picked[name])
                        for name in source.column_names})


def _writer(sink, schema: pa.Schema, data_format: str):
    """pyarrow's streaming writer. CSV gets an unquoted header line: TFX's CsvExampleGen splits the header
    on commas without a CSV parser, and pyarrow (10) quotes the names it writes."""
    if data_format == "csv":
        from pyarrow import csv

        sink.write((",".join(schema.names) + "\n").encode())
        return csv.CSVWriter(sink, schema, write_options=csv.WriteOptions(include_header=False))
    from pyarrow import parquet

    return parquet.ParquetWriter(sink, schema)


def write(tables: Iterator[pa.Table], out_dir: str, data_format: str) -> Path:
    """Streams `tables` into `out_dir/data.<format>`; returns the file."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    target = Path(out_dir) / f"data.{data_format}"
    with open(target, "wb") as sink:
        writer = None
        for table in tables:
            writer = writer or _writer(sink, table.schema, data_format)
            writer.write_table(table)
        if writer is not None:
            writer.close()
    return target


def generate(config_path: str, rows: int, data_format: str, out_dir: str, *, seed: int = 0,
             noise: float = 0.05) -> Path:
    """Writes `rows` rows shaped like `config_path`'s dataset under `out_dir`; returns the file."""
    from pipeline import config

    loaded = config.load(config_path)
    source = read_source(loaded.span_data_path, loaded.cfg.data.format)
    missing = sorted(({f.name for f in loaded.cfg.features} | {loaded.cfg.label.name}) - set(source.column_names))
    if missing:
        raise ValueError(f"{loaded.span_data_path}: columns {missing} of the config are not in the data")
    return write(chunks(source, rows, seed=seed, noise=noise), out_dir, data_format)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/penguin.yaml")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--out", required=True, help="directory to write data.<format> into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.05, help="numeric noise, in standard deviations")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    target = generate(args.config, args.rows, args.format, args.out, seed=args.seed, noise=args.noise)
    print(f"{args.rows} rows -> {target} ({target.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
