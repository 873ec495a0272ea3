"""serve-check's query row comes from the run's own data, whatever its format (CSV, Parquet, TFRecord)."""
import gzip

import pytest

from pipeline import config as config_lib
from pipeline.serve_check import sample_row
from serving.request_log import frame
from tests.support.serving_fixtures import example_bytes

FEATURES = "features: [{name: bill_length_mm, type: numeric}, {name: island, type: categorical}]\n"
#: The first row lacks island: sample_row must skip it.
ROWS = [{"bill_length_mm": 39.1, "island": None, "species": "Adelie"},
        {"bill_length_mm": 46, "island": "Biscoe", "species": "Gentoo"}]
EXPECTED = {"bill_length_mm": 46.0, "island": "Biscoe"}


def _loaded(tmp_path, data_format: str):
    config = tmp_path / "c.yaml"
    config.write_text(f"pipeline_name: p\nmodel_name: m\ndata: {{path: {tmp_path / 'data'}, format: {data_format}}}\n"
                      f"{FEATURES}label: {{name: species, classes: [Adelie, Chinstrap, Gentoo]}}\n")
    return config_lib.load(config)


def test_csv(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/rows.csv").write_text("bill_length_mm,island,species\n39.1,,Adelie\n46,Biscoe,Gentoo\n")
    assert sample_row(_loaded(tmp_path, "csv")) == EXPECTED


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist([{**r, "bill_length_mm": float(r["bill_length_mm"])} for r in ROWS]),
                   tmp_path / "data/rows.parquet")
    assert sample_row(_loaded(tmp_path, "parquet")) == EXPECTED


@pytest.mark.parametrize("name, opener", [("rows.tfrecord", open), ("rows.tfrecord.gz", gzip.open)])
def test_tfrecord(tmp_path, name, opener):
    (tmp_path / "data").mkdir()
    with opener(tmp_path / "data" / name, "wb") as f:
        f.write(b"".join(frame(example_bytes(r)) for r in ROWS))
    assert sample_row(_loaded(tmp_path, "tfrecord")) == EXPECTED


def test_no_complete_row_is_a_config_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/rows.csv").write_text("bill_length_mm,island,species\n39.1,,Adelie\n")
    with pytest.raises(config_lib.ConfigError, match="no csv row .* has every feature"):
        sample_row(_loaded(tmp_path, "csv"))
