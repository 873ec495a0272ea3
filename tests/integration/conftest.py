"""Shared integration fixtures: a real Transform output and transformed examples on a slice of penguins.

`penguin_transform_run` runs `trainer.preprocessing.preprocessing_fn` through tf.Transform's Beam
implementation on 90 rows of data/penguins/penguins.csv (30 per species, including rows with empty
cells) and lays the results out as TFX artifacts would: a TransformGraph directory and a transformed
Examples directory with gzipped TFRecords under `Split-train/` and `Split-eval/`.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
from pathlib import Path

import pytest

from tests.support.trainer_configs import trainer_config_dict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PENGUINS_CSV = PROJECT_ROOT / "data" / "penguins" / "penguins.csv"
ROWS_PER_SPECIES = 30

#: Built by the pipeline's own config models (the only home of defaults), as `trainer_config()` does.
PENGUIN_TRAINER_CONFIG = trainer_config_dict(
    features=[
        {"name": "bill_length_mm", "type": "numeric"},
        {"name": "bill_depth_mm", "type": "numeric"},
        {"name": "flipper_length_mm", "type": "numeric"},
        {"name": "body_mass_g", "type": "numeric"},
        {"name": "island", "type": "categorical", "oov_buckets": 1},
        {"name": "sex", "type": "categorical", "oov_buckets": 1, "embedding_dim": 2},
    ],
    label={"name": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"]},
    hidden_units=[16, 8], dropout=0.1, learning_rate=0.02, batch_size_per_replica=16, epochs=30,
    early_stopping_patience=5, seed=42,
)


def raw_feature_spec():
    """The raw spec SchemaGen infers for the CSV: varlen where cells can be empty, [1] where always set."""
    import tensorflow as tf

    return {
        "species": tf.io.FixedLenFeature([1], tf.string),
        "island": tf.io.FixedLenFeature([1], tf.string),
        "bill_length_mm": tf.io.VarLenFeature(tf.float32),
        "bill_depth_mm": tf.io.VarLenFeature(tf.float32),
        "flipper_length_mm": tf.io.VarLenFeature(tf.int64),
        "body_mass_g": tf.io.VarLenFeature(tf.int64),
        "sex": tf.io.VarLenFeature(tf.string),
        "year": tf.io.FixedLenFeature([1], tf.int64),
    }


def penguin_rows() -> list[dict[str, list]]:
    """The first ROWS_PER_SPECIES rows of each species as TFT instance dicts (empty cell -> [])."""
    spec = raw_feature_spec()
    taken: dict[str, int] = {}
    rows = []
    with open(PENGUINS_CSV, newline="") as f:
        for record in csv.DictReader(f):
            if taken.get(record["species"], 0) >= ROWS_PER_SPECIES:
                continue
            taken[record["species"]] = taken.get(record["species"], 0) + 1
            rows.append({name: _parse_cell(record[name], spec[name].dtype) for name in spec})
    return rows


def _parse_cell(cell: str, dtype) -> list:
    if cell == "" or cell == "NA":
        return []
    if dtype.is_integer:
        return [int(float(cell))]
    if dtype.is_floating:
        return [float(cell)]
    return [cell.encode()]


@dataclasses.dataclass(frozen=True)
class TransformRun:
    transform_graph_dir: Path
    transformed_examples_dir: Path
    config: dict


@pytest.fixture(scope="session")
def penguin_transform_run(tmp_path_factory) -> TransformRun:
    """Analyse on the train split, transform both splits, write artifacts in TFX's layout."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from trainer.preprocessing import preprocessing_fn

    root = tmp_path_factory.mktemp("penguin_transform")
    rows = penguin_rows()
    train_rows = [r for i, r in enumerate(rows) if i % 5 != 0]
    eval_rows = [r for i, r in enumerate(rows) if i % 5 == 0]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_feature_spec()))
    fn = functools.partial(preprocessing_fn, custom_config=PENGUIN_TRAINER_CONFIG)
    examples_dir = root / "transformed_examples"
    options = beam.options.pipeline_options.PipelineOptions(["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    with beam.Pipeline(options=options) as pipeline, tft_beam.Context(temp_dir=str(root / "tmp")):
        train = pipeline | "Train" >> beam.Create(train_rows)
        evaluation = pipeline | "Eval" >> beam.Create(eval_rows)
        (train_out, out_meta), transform_fn = (train, metadata) | tft_beam.AnalyzeAndTransformDataset(
            fn, output_record_batches=False
        )
        eval_out, _ = ((evaluation, metadata), transform_fn) | tft_beam.TransformDataset(output_record_batches=False)
        coder = tft.coders.ExampleProtoCoder(out_meta.schema)
        for split, data in (("train", train_out), ("eval", eval_out)):
            _ = data | f"Encode{split}" >> beam.Map(coder.encode) | f"Write{split}" >> beam.io.WriteToTFRecord(
                str(examples_dir / f"Split-{split}" / "transformed_examples"), file_name_suffix=".gz"
            )
        _ = transform_fn | tft_beam.WriteTransformFn(str(root / "transform_graph"))
    # TFX's Transform also stores the raw schema beside the graph; the exporter reads raw specs from it.
    metadata_io.write_metadata(metadata, str(root / "transform_graph" / tft.TFTransformOutput.RAW_METADATA_DIR))
    return TransformRun(root / "transform_graph", examples_dir, PENGUIN_TRAINER_CONFIG)
