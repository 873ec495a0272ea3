"""ExampleGen for every supported data format: CSV (default), Parquet and TFRecord of tf.Examples."""
import csv
from pathlib import Path

import pandas as pd
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from pipeline import config
from pipeline.pipeline import _example_gen

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _write_parquet(directory: Path) -> None:
    pd.read_csv(ROOT / "data/wine/wine.csv").to_parquet(directory / "wine.parquet")


def _write_tfrecord(directory: Path) -> None:
    with tf.io.TFRecordWriter(str(directory / "wine.tfrecord")) as writer:
        for row in csv.DictReader(open(ROOT / "data/wine/wine.csv")):
            feature = {k: tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
                       for k, v in row.items() if k != "cultivar"}
            feature["cultivar"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["cultivar"].encode()]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _count(uri: str, split: str) -> int:
    files = tf.io.gfile.glob(str(Path(uri) / f"Split-{split}" / "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


@pytest.mark.parametrize("data_format, writer", [("parquet", _write_parquet), ("tfrecord", _write_tfrecord)])
def test_format_ingests_all_rows_split_4_to_1(tmp_path, data_format, writer):
    data = tmp_path / "data"
    data.mkdir()
    writer(data)
    loaded = config.load(ROOT / "configs/wine.yaml", data=str(data), check_data=False)
    cfg = loaded.cfg.model_copy(update={"data": loaded.cfg.data.model_copy(update={"format": data_format})})
    example_gen = _example_gen(cfg, str(data))
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=f"formats-{data_format}", pipeline_root=str(tmp_path / "root"), components=[example_gen],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.sqlite")))
    tfx.orchestration.LocalDagRunner().run(pipeline)
    uri = next((tmp_path / "root" / example_gen.id / "examples").iterdir())
    train, evaluation = _count(str(uri), "train"), _count(str(uri), "eval")
    assert train + evaluation == 178
    assert 0.7 < train / 178 < 0.9
