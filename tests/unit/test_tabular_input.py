"""The one reader of CSV and Parquet input (ExampleGen, preflight, serve-check), on tiny files."""
import gzip
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from tfx_bsl.coders import example_coder

from components import tabular_input
from components.tabular_input import ReadOptions

OPTIONS = ReadOptions(label="species", numeric=("mass",), text=("species", "island"))
HEADER = "species,island,mass,unused\n"


def _read(path: Path, options: ReadOptions = OPTIONS, data_format: str = "csv") -> dict:
    batches = [batch for _, batch in tabular_input.read_batches(str(path), data_format, options)]
    return pa.Table.from_batches(batches).to_pydict()


def test_markers_are_missing_in_every_column_and_unused_columns_are_never_parsed(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + "Adelie,NA,3750,x\nnull,Dream,N/A,y\nGentoo,,NaN,?\nChinstrap, Biscoe , 4200.5 ,z\n")
    assert _read(path) == {"mass": [3750.0, None, None, 4200.5], "species": ["Adelie", None, "Gentoo", "Chinstrap"],
                           "island": [None, "Dream", None, " Biscoe "]}


def test_no_markers_keeps_text_but_empty_numbers_stay_missing(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + "Adelie,NA,,x\n")
    options = ReadOptions(label="species", numeric=("mass",), text=("species", "island"), missing_values=())
    assert _read(path, options) == {"mass": [None], "species": ["Adelie"], "island": ["NA"]}


def test_semicolon_gzip_and_headerless_files(tmp_path):
    with gzip.open(tmp_path / "a.csv.gz", "wt") as f:
        f.write("Adelie;Dream;3750;x\n")
    options = ReadOptions(label="species", numeric=("mass",), text=("species", "island"), delimiter=";",
                          column_names=("species", "island", "mass", "unused"))
    assert _read(tmp_path / "a.csv.gz", options) == {"mass": [3750.0], "species": ["Adelie"], "island": ["Dream"]}


def test_text_in_a_numeric_column_names_file_row_column_and_value(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + "Adelie,Dream,1,x\n" * 5 + "Adelie,Dream,abc,x\nAdelie,Dream,12kg,x\n")
    with pytest.raises(tabular_input.BadValues, match=r"a\.csv: .*row 6, column 'mass': 'abc'; row 7, column 'mass': '12kg'") as error:
        _read(path)
    assert [(v.row, v.value) for v in error.value.values] == [(6, "abc"), (7, "12kg")]


def test_a_missing_configured_column_names_the_file(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("species,mass\nAdelie,1\n")
    with pytest.raises(tabular_input.InputDataError, match=r"a\.csv: column\(s\) \['island'\] not in its header"):
        _read(path)


def test_pandas_parquet_with_gaps_reads_as_the_csv_does(tmp_path):
    frame = pd.DataFrame({"species": ["Adelie", None], "island": ["Dream", "NA"], "mass": [3750, None], "code": [1, 2]})
    assert frame["mass"].dtype == "float64"  # what pandas does to an integer column with a gap
    frame.to_parquet(tmp_path / "a.parquet")
    options = ReadOptions(label="species", numeric=("mass",), text=("species", "island", "code"))
    assert _read(tmp_path / "a.parquet", options, "parquet") == {
        "mass": [3750.0, None], "species": ["Adelie", None], "island": ["Dream", None], "code": ["1", "2"]}


def test_unlabeled_rows_are_dropped_and_counted_or_refused_when_required():
    batch = pa.RecordBatch.from_pydict({"mass": pa.array([1.0, 2.0, 3.0], pa.float32()),
                                        "species": ["a", None, None], "island": ["x", "y", "z"]})
    kept, dropped = tabular_input.drop_unlabeled(batch, OPTIONS, "f.csv", first_row=10)
    assert (kept.num_rows, dropped) == (1, 2)
    required = ReadOptions(**{**OPTIONS.__dict__, "label_required": True})
    with pytest.raises(tabular_input.MissingLabels, match=r"f\.csv: no 'species' label in data row\(s\) \[11, 12\]"):
        tabular_input.drop_unlabeled(batch, required, "f.csv", first_row=10)


def test_examples_are_what_stock_csv_example_gen_writes():
    """Numbers as float_list, text as bytes_list, a missing cell as a feature with no value."""
    import tensorflow as tf

    batch = pa.RecordBatch.from_pydict({"mass": pa.array([1.5, None], pa.float32()), "island": ["Dream", None]})
    first, second = [tf.train.Example.FromString(e) for e in
                     example_coder.RecordBatchToExamplesEncoder().encode(tabular_input.as_lists(batch))]
    assert list(first.features.feature["mass"].float_list.value) == [1.5]
    assert list(first.features.feature["island"].bytes_list.value) == [b"Dream"]
    assert second.features.feature["mass"] == tf.train.Feature() and second.features.feature["island"] == tf.train.Feature()


@pytest.mark.parametrize("name, data_format, expected", [
    ("day-1.csv", "csv", True), ("day-1.csv.gz", "csv", True), ("x.tsv", "csv", True), ("README.md", "csv", False),
    (".hidden.csv", "csv", False), ("_SUCCESS", "csv", False), ("a.parquet", "parquet", True), ("a.csv", "parquet", False),
])
def test_which_files_of_a_directory_are_data(name, data_format, expected):
    assert tabular_input.is_data_file(name, data_format) is expected
