"""The data stages, stock TFX vs this pipeline's, side by side: seconds and peak RSS, printed as ratios.

Variants (each in a fresh process, so imports, caches and memory start from zero; peak RSS is the sum
over the process and its children — Beam's multi-processing workers — sampled every 0.2 s):

- `stock`: TFX's own components for the config's format (CsvExampleGen, or FileBasedExampleGen with
  TFX's Parquet executor), StatisticsGen, SchemaGen (ImportSchemaGen when the config curates a schema),
  ExampleValidator and Transform with our `preprocessing_fn`; Beam's DirectRunner in memory, one worker.
- `pipeline`, `pipeline-in-memory`, `pipeline-multi-processing`: the components `create_pipeline` builds
  (whatever ExampleGen and data-validation components the pipeline uses today), up to the last data
  stage, with the config's Beam args, then with them overridden to in-memory/1 worker or to
  multi-processing with one worker per core.

`--through schema` stops after the schema (ExampleGen + StatisticsGen + schema); `--through transform`
(the default) runs every stage before the Trainer. Data comes from `benchmarks.generate_data`:

    python -m benchmarks.generate_data --config configs/penguin.yaml --rows 100000 --out /tmp/penguin-100k
    python -m benchmarks.data_stages --config configs/penguin.yaml --data /tmp/penguin-100k
    python -m benchmarks.data_stages --data /tmp/penguin-1m --through schema --variants stock,pipeline-multi-processing

`--keep DIR` keeps each variant's run (pipeline root + metadata) under DIR/<variant>/; benchmarks/training.py
reads a kept run's Transform outputs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
MULTI_PROCESSING = ["--direct_running_mode=multi_processing", f"--direct_num_workers={os.cpu_count() or 1}"]
#: variant -> (whose components, Beam args added after the config's: later options win)
VARIANTS = {
    "stock": ("stock", IN_MEMORY),
    "pipeline": ("pipeline", []),
    "pipeline-in-memory": ("pipeline", IN_MEMORY),
    "pipeline-multi-processing": ("pipeline", MULTI_PROCESSING),
}
DEFAULT_VARIANTS = "stock,pipeline-in-memory,pipeline-multi-processing"
SCHEMA_NODES = ("SchemaGen", "ImportSchemaGen")
RESULT_PREFIX = "DATA_STAGES_RESULT "


def stock_components(loaded, through: str) -> list:
    """TFX's stock data components for the config's data, format and schema."""
    from tfx import v1 as tfx
    from tfx.components.example_gen.component import FileBasedExampleGen
    from tfx.components.example_gen.custom_executors import parquet_executor
    from tfx.dsl.components.base import executor_spec

    from pipeline.pipeline import PREPROCESSING_FN

    cfg = loaded.cfg
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=cfg.data.train_buckets),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=cfg.data.eval_buckets)]))
    if cfg.data.format == "csv":
        example_gen = tfx.components.CsvExampleGen(input_base=loaded.data_path, output_config=output_config)
    else:
        example_gen = FileBasedExampleGen(
            input_base=loaded.data_path, output_config=output_config,
            custom_executor_spec=executor_spec.BeamExecutorSpec(parquet_executor.Executor))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if loaded.schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=loaded.schema_path)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    if through == "schema":
        return [example_gen, statistics_gen, schema_gen]
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, custom_config=cfg.trainer_config())
    return [example_gen, statistics_gen, schema_gen, example_validator, transform]


def pipeline_run(loaded, paths, beam_args: list[str], through: str):
    """The pipeline `create_pipeline` builds, and RunOptions running it only up to the schema or up to
    Transform (a partial run: the nodes after it stay in the DAG, unrun)."""
    from tfx.orchestration.pipeline import RunOptions  # partial runs are not in tfx.v1's surface

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(loaded, paths, beam_args=beam_args, enable_cache=False)
    ids = [component.id for component in pipeline.components]
    last = next(node for node in ids if node in SCHEMA_NODES) if through == "schema" else "Transform"
    return pipeline, RunOptions(to_nodes=[last])


def run_variant(variant: str, config_path: str, data: str, workdir: str, through: str) -> dict:
    """Runs one variant's data stages here; returns seconds (whole run and per component)."""
    from tfx import v1 as tfx

    from pipeline import config, run_outcome, runners

    loaded = config.load(config_path, data=data)
    layout = runners.Workdir(Path(workdir))
    layout.pipeline_root.mkdir(parents=True, exist_ok=True)
    paths = runners.pipeline_paths(loaded, layout)
    source, extra_args = VARIANTS[variant]
    beam_args = list(loaded.cfg.beam.args) + extra_args
    if source == "stock":
        run_options = None
        pipeline = tfx.dsl.Pipeline(
            pipeline_name=f"{loaded.cfg.pipeline_name}_stock", pipeline_root=paths.pipeline_root,
            components=stock_components(loaded, through), enable_cache=False, beam_pipeline_args=beam_args,
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                paths.metadata_path))
    else:
        pipeline, run_options = pipeline_run(loaded, paths, beam_args, through)
    started = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(pipeline, run_options=run_options)
    seconds = time.perf_counter() - started
    store = run_outcome.open_store(layout.metadata_path)
    runs = run_outcome.run_components(store, run_outcome.find_run(store))
    return {"pipeline_seconds": seconds, "beam_args": beam_args,
            "components": {run.node_id: round(run.seconds, 1) for run in runs},
            "states": sorted({run.state for run in runs})}


def _tree_rss(process) -> int:
    import psutil

    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:  # a worker that just exited
            pass
    return total


def measure(variant: str, config_path: str, data: str, workdir: Path, through: str) -> dict:
    """Runs `variant` in a fresh process; adds its wall seconds and peak RSS (process tree) to its result."""
    import psutil

    command = [sys.executable, "-m", "benchmarks.data_stages", "--run-one", variant, "--config", config_path,
               "--data", data, "--workdir", str(workdir), "--through", through]
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "stderr.log"
    started = time.perf_counter()
    with open(log, "w") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    peak, done = [0], threading.Event()

    def sample() -> None:
        process = psutil.Process(child.pid)
        while not done.wait(0.2):
            try:
                peak[0] = max(peak[0], _tree_rss(process))
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = child.communicate()
    done.set()
    sampler.join()
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if child.returncode or not lines:
        raise RuntimeError(f"{variant} failed (exit {child.returncode}; its log: {log}):\n{log.read_text()[-3000:]}")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    return {**result, "variant": variant, "process_seconds": time.perf_counter() - started,
            "peak_rss_gb": peak[0] / 1e9}


def _rows(data: str) -> int:
    """Data rows (CSV lines minus headers, or Parquet rows) under `data`."""
    files = [p for p in Path(data).rglob("*") if p.is_file()] if Path(data).is_dir() else [Path(data)]
    rows = 0
    for path in files:
        if path.suffix == ".parquet":
            from pyarrow import parquet

            rows += parquet.ParquetFile(path).metadata.num_rows
        else:
            with open(path, "rb") as f:
                rows += sum(1 for _ in f) - 1
    return rows


def print_table(data: str, results: list[dict]) -> None:
    stock = next((r for r in results if r["variant"] == "stock"), None)
    print(f"\n{data}: {_rows(data):,} rows")
    print(f"{'variant':28} {'pipeline s':>10} {'process s':>10} {'peak RSS GB':>11} {'stock/this':>10}  per component (s)")
    for r in results:
        ratio = f"{stock['pipeline_seconds'] / r['pipeline_seconds']:.2f}x" if stock else "-"
        parts = ", ".join(f"{k} {v}" for k, v in r["components"].items())
        print(f"{r['variant']:28} {r['pipeline_seconds']:10.1f} {r['process_seconds']:10.1f} "
              f"{r['peak_rss_gb']:11.2f} {ratio:>10}  {parts}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/penguin.yaml")
    parser.add_argument("--data", action="append", required=True, help="a data directory; repeat for several sizes")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, of {list(VARIANTS)}")
    parser.add_argument("--through", choices=("schema", "transform"), default="transform")
    parser.add_argument("--keep", help="keep each run under KEEP/<data dir name>/<variant>/")
    parser.add_argument("--json-out", help="write every result as JSON here")
    parser.add_argument("--run-one", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:
        print(RESULT_PREFIX + json.dumps(run_variant(args.run_one, args.config, args.data[0], args.workdir, args.through)))
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="data_stages_"))
    everything = []
    try:
        for data in args.data:
            results = []
            for variant in variants:
                workdir = root / Path(data).name / variant
                shutil.rmtree(workdir, ignore_errors=True)
                results.append(measure(variant, args.config, os.path.abspath(data), workdir, args.through))
                print(f"  {variant}: {results[-1]['pipeline_seconds']:.1f} s, {results[-1]['peak_rss_gb']:.2f} GB",
                      flush=True)
            print_table(data, results)
            everything.append({"data": data, "rows": _rows(data), "through": args.through, "results": results})
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
