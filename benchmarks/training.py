"""Trainer throughput: examples/s of our input pipeline vs the same model fit on in-memory tensors, for
1..N replicas.

For each replica count, in a fresh process (devices are configured before TensorFlow starts):
the model `run_fn` trains (`trainer.model.build_configured_model`, built in `trainer.task.make_strategy()`'s
scope) is fit for `--epochs` epochs

- `pipeline`: on `trainer.task.training_dataset` with `model.cache_training_data: true` (the split
  read once through TFX's DataAccessor, then reshuffled in memory every epoch);
- `streamed`: on `trainer.task.make_dataset`, the transformed TFRecords read and parsed again every
  epoch through TFXIO (what `cache_training_data: false` trains on);
- `in-memory`: on the same transformed rows, read once into NumPy arrays beforehand, with Keras's own
  batching and shuffling (`model.fit(x, y, batch_size=global_batch, shuffle=True)`): the reference.

Throughput counts the epochs after the first (the first pays tf.function tracing). Replicas are GPUs
when the host has them (the first k visible ones) and logical CPUs otherwise, so the same command
measures MirroredStrategy scaling on a GPU host and the distributed code path here.

The data is a kept run of benchmarks/data_stages.py (or any pipeline root with Transform outputs):

    python -m benchmarks.generate_data --rows 100000 --out /tmp/penguin-100k
    python -m benchmarks.data_stages --data /tmp/penguin-100k --variants pipeline --keep /tmp/stages
    python -m benchmarks.training --run /tmp/stages --replicas 1,2
    python -m benchmarks.training --run /tmp/stages --replicas 1,2,4,8 --hidden-units 1024,1024 --mixed-precision
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

RESULT_PREFIX = "TRAINING_RESULT "


def transform_outputs(run: str) -> tuple[str, str]:
    """(transform_graph, transformed_examples) directories of the latest Transform execution under `run`."""
    found = []
    for output in ("transform_graph", "transformed_examples"):
        candidates = [p for p in Path(run).rglob(f"Transform/{output}/*") if p.is_dir() and p.name.isdigit()]
        if not candidates:
            raise SystemExit(f"no Transform/{output}/<id> under {run}: pass a run kept by benchmarks/data_stages.py --keep")
        found.append(str(max(candidates, key=lambda p: int(p.name))))
    return found[0], found[1]


def configure_devices(replicas: int) -> str:
    """Makes exactly `replicas` devices visible: the first GPUs, or logical CPUs without GPUs."""
    import tensorflow as tf

    from trainer import task

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < replicas:
            raise SystemExit(f"{replicas} replicas asked, {len(gpus)} GPUs visible")
        tf.config.set_visible_devices(gpus[:replicas], "GPU")
        task.enable_gpu_memory_growth()
        return "GPU"
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    return "CPU"


def epoch_timer():
    """(Keras callback, list it appends each epoch's wall seconds to)."""
    import keras

    seconds, started = [], []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: started.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: seconds.append(time.perf_counter() - started[-1]))
    return callback, seconds


def measure(args, replicas: int) -> dict:
    """Fits the configured model on both inputs with `replicas` replicas; examples/s after epoch 1."""
    kind = configure_devices(replicas)
    import tensorflow_transform as tft

    from pipeline import config
    from tests.support.trainer_fn_args import fn_args_from_artifacts
    from trainer import task, trainer_config
    from trainer.model import build_configured_model

    loaded = config.load(args.config, check_data=False)
    model_updates = {"mixed_precision": args.mixed_precision, "cache_training_data": True}
    if args.hidden_units:
        model_updates["hidden_units"] = [int(u) for u in args.hidden_units.split(",")]
    if args.batch_size_per_replica:
        model_updates["batch_size_per_replica"] = args.batch_size_per_replica
    cfg = loaded.cfg.model_copy(update={"model": loaded.cfg.model.model_copy(update=model_updates)})
    custom_config = cfg.trainer_config()
    trainer = trainer_config.parse(custom_config, "benchmarks.training")
    graph, examples = transform_outputs(args.run)
    fn_args = fn_args_from_artifacts(graph, examples, tempfile.mkdtemp(prefix="training_bench_"), json.dumps(custom_config))
    transform_output = tft.TFTransformOutput(graph)
    strategy = task.make_strategy()
    global_batch = trainer.model.batch_size_per_replica * strategy.num_replicas_in_sync
    one_pass = task.make_dataset(fn_args, fn_args.train_files, transform_output, trainer, global_batch, shuffle=False)
    features, label_tensor = task.in_memory(one_pass)
    arrays, labels = {key: value.numpy() for key, value in features.items()}, label_tensor.numpy()
    sizes, moments = task.vocabulary_sizes(trainer, transform_output), task.label_moments(trainer, one_pass)
    inputs = {
        "pipeline": lambda: dict(x=task.training_dataset(fn_args, transform_output, trainer, global_batch)),
        "streamed": lambda: dict(x=task.make_dataset(fn_args, fn_args.train_files, transform_output, trainer,
                                                     global_batch, shuffle=True)),  # cache_training_data: false
        "in-memory": lambda: dict(x=arrays, y=labels, batch_size=global_batch, shuffle=True),
    }
    result = {"replicas": strategy.num_replicas_in_sync, "device": kind, "global_batch": global_batch,
              "rows": int(len(labels)), "examples_per_second": {}}
    for name, fit_input in inputs.items():
        with strategy.scope():
            model = build_configured_model(trainer, sizes, moments)
        timer, seconds = epoch_timer()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(**fit_input(), epochs=args.epochs, callbacks=[timer], verbose=0)
        result["examples_per_second"][name] = len(labels) * (args.epochs - 1) / sum(seconds[1:])
    return result


def run_in_subprocess(args, replicas: int) -> dict:
    command = [sys.executable, "-m", "benchmarks.training", "--one", str(replicas), *args.passthrough]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode or not lines:
        raise SystemExit(f"{replicas} replica(s) failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def print_table(results: list[dict]) -> None:
    base = results[0]["examples_per_second"]["pipeline"] / results[0]["replicas"]
    print(f"\n{results[0]['rows']:,} training rows per epoch, {results[0]['device']} replicas")
    print(f"{'replicas':>8} {'global batch':>12} {'pipeline ex/s':>14} {'streamed ex/s':>14} {'in-memory ex/s':>15} "
          f"{'pipeline/in-memory':>19} {'streamed/in-memory':>19} {'per-replica efficiency':>22}")
    for r in results:
        rate = r["examples_per_second"]
        efficiency = rate["pipeline"] / (base * r["replicas"])
        print(f"{r['replicas']:>8} {r['global_batch']:>12} {rate['pipeline']:>14,.0f} {rate['streamed']:>14,.0f} "
              f"{rate['in-memory']:>15,.0f} {rate['pipeline'] / rate['in-memory']:>18.2f}x "
              f"{rate['streamed'] / rate['in-memory']:>18.2f}x {efficiency:>21.0%}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/penguin.yaml")
    parser.add_argument("--run", required=True, help="a run with Transform outputs (data_stages.py --keep DIR)")
    parser.add_argument("--replicas", default="1,2", help="comma-separated replica counts")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement (the first is not counted)")
    parser.add_argument("--hidden-units", help="override model.hidden_units, e.g. 1024,1024 (a larger model)")
    parser.add_argument("--batch-size-per-replica", type=int, help="override model.batch_size_per_replica")
    parser.add_argument("--mixed-precision", action="store_true", help="model.mixed_precision: true")
    parser.add_argument("--json-out")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is warm-up)")
    if args.one:
        print(RESULT_PREFIX + json.dumps(measure(args, args.one)))
        return
    args.passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    results = []
    for replicas in [int(r) for r in args.replicas.split(",")]:
        results.append(run_in_subprocess(args, replicas))
        print(f"  {replicas} replica(s): {json.dumps(results[-1]['examples_per_second'])}", flush=True)
    print_table(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
