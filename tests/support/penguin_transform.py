"""A real tf.Transform output on a slice of the penguins, built once per process.

`trainer.preprocessing.preprocessing_fn` runs through tf.Transform's Beam implementation with the
features and label of configs/penguin.yaml, on 90 rows of data/penguins/penguins.csv (30 per
species, including rows with empty cells) read with the raw spec of the curated schema
(configs/schemas/penguin.pbtxt). The results are laid out as TFX artifacts would be: a TransformGraph
directory (with the raw schema beside it, as TFX's Transform writes it) and a transformed Examples
directory with gzipped TFRecords under `Split-train/` and `Split-eval/`.

The Beam run takes tens of seconds, so `shared_transform_run()` runs it once per process in a
temporary directory removed at exit; the integration tests' `penguin_transform_run` fixture and the
serving tests' fixture models (tests/support/serving_fixtures.py) both read it. Under pytest-xdist the
workers of one run share one directory (`built_once`): the first worker that needs the transform (or a
fixture model) builds it, the others wait for it and reuse it; tests/conftest.py removes the directory
when the run ends.
"""
from __future__ import annotations

import atexit
import csv
import dataclasses
import fcntl
import functools
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from tests.support.trainer_configs import PROJECT_ROOT, penguin_loaded_config

PENGUINS_CSV = PROJECT_ROOT / "data" / "penguins" / "penguins.csv"
ROWS_PER_SPECIES = 30


@dataclasses.dataclass(frozen=True)
class TransformRun:
    transform_graph_dir: Path
    transformed_examples_dir: Path
    #: The trainer config (`PipelineConfig.trainer_config()`) the transform ran with.
    config: dict


def load_schema(schema_path: str):
    """The curated schema (a text-format tensorflow_metadata Schema)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(Path(schema_path).read_text(), schema_pb2.Schema())


def raw_feature_spec(schema_path: str) -> dict[str, Any]:
    """The raw spec Transform derives from the curated schema: varlen where cells may be empty."""
    from tensorflow_transform.tf_metadata import schema_utils

    return schema_utils.schema_as_feature_spec(load_schema(schema_path)).feature_spec


def penguin_rows(spec: dict[str, Any]) -> list[dict[str, list]]:
    """The first ROWS_PER_SPECIES rows of each species as TFT instance dicts (empty cell -> [])."""
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


def run_transform(root: Path) -> TransformRun:
    """Analyse on the train split (4 rows in 5), transform both splits, write artifacts in TFX's layout."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from trainer.preprocessing import preprocessing_fn

    loaded = penguin_loaded_config()
    config = loaded.cfg.trainer_config()
    spec = raw_feature_spec(loaded.schema_path)
    rows = penguin_rows(spec)
    train_rows = [r for i, r in enumerate(rows) if i % 5 != 0]
    eval_rows = [r for i, r in enumerate(rows) if i % 5 == 0]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    fn = functools.partial(preprocessing_fn, custom_config=config)
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
    return _transform_run_at(root, config)


def _transform_run_at(root: Path, config: dict) -> TransformRun:
    return TransformRun(root / "transform_graph", root / "transformed_examples", config)


_LOCK = threading.Lock()


def xdist_shared_root(controller_pid: int) -> Path:
    """The directory the pytest-xdist workers of the run controlled by `controller_pid` share."""
    return Path(tempfile.gettempdir()) / f"tfxpipe-test-models-xdist-{controller_pid}"


@functools.lru_cache(maxsize=None)
def _cache_root() -> Path:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # an xdist worker: its parent is the run's controller
        root = xdist_shared_root(os.getppid())
        root.mkdir(exist_ok=True)
        return root
    root = Path(tempfile.mkdtemp(prefix="tfxpipe-test-models-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def built_once(name: str, build: Callable[[Path], Any]) -> Path:
    """`<cache root>/<name>`, made by `build(directory)` unless it is already there.

    A lock file serialises the build between processes sharing the root (xdist workers), and the
    result appears by one rename, so a reader never sees half a directory.
    """
    target = _cache_root() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            staging = target.with_name(f"{target.name}.building-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            build(staging)
            os.replace(staging, target)
    return target


@functools.lru_cache(maxsize=None)
def _shared_run() -> TransformRun:
    root = built_once("penguin_transform", run_transform)
    return _transform_run_at(root, penguin_loaded_config().cfg.trainer_config())


def shared_transform_run() -> TransformRun:
    """The penguin transform, run on first use and reused for the rest of the process."""
    with _LOCK:
        return _shared_run()
