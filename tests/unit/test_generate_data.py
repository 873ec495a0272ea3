"""benchmarks/generate_data.py: the same arguments write the same bytes, with the dataset's columns and
types, its missing cells, and a header CsvExampleGen can read."""
from __future__ import annotations

import pyarrow as pa
import pytest
from pyarrow import csv, parquet

from benchmarks import generate_data
from tests.support.trainer_configs import PENGUIN_CONFIG


@pytest.mark.parametrize("data_format", generate_data.FORMATS)
def test_generated_rows_are_deterministic_and_shaped_like_the_source(tmp_path, data_format):
    first = generate_data.generate(str(PENGUIN_CONFIG), 2500, data_format, str(tmp_path / "a"), seed=3)
    second = generate_data.generate(str(PENGUIN_CONFIG), 2500, data_format, str(tmp_path / "b"), seed=3)
    assert first.read_bytes() == second.read_bytes()
    table = csv.read_csv(first) if data_format == "csv" else parquet.read_table(first)
    source = generate_data.read_source(str(PENGUIN_CONFIG.parents[1] / "data/penguins"), "csv")
    assert table.num_rows == 2500 and table.schema.names == source.schema.names
    assert pa.types.is_integer(table.schema.field("body_mass_g").type), "integer columns stay integers"
    assert table["bill_length_mm"].null_count > 0, "missing cells stay missing"
    assert set(table["species"].to_pylist()) == set(source["species"].to_pylist())


def test_csv_header_is_unquoted_for_csv_example_gen(tmp_path):
    """TFX reads CSV column names by splitting the first line on commas."""
    source = generate_data.read_source(str(PENGUIN_CONFIG.parents[1] / "data/penguins"), "csv")
    target = generate_data.write(generate_data.chunks(source, 10, chunk_rows=4), str(tmp_path), "csv")
    header = target.read_text().splitlines()[0]
    assert header.split(",")[0] == "species" and '"' not in header
    assert len(target.read_text().splitlines()) == 11
