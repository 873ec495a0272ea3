"""The default pipeline run vs the TFX penguin example, side by side: cold, cached, per component.

Usage (from the project root, with the project's venv):

    .venv/bin/python -m benchmarks.pipeline [--config configs/penguin.yaml] [--workdir DIR] [--json-out FILE]

Four whole processes, interleaved so that machine load hits both alike: the stock example cold, ours
cold (`tfxpipe run --config …`, what `make run` runs, in an empty work directory), the stock example
again and ours again with nothing changed. Each figure is a process's wall time (interpreter start and
imports included), its CPU seconds (user + system, children included: on a machine shared with other
work these move far less than wall time) and its peak RSS (largest resident set among the process and
the children it waited for); per-component seconds are the executions' create→last-update times read from each run's ML
Metadata store; "outside components" is the rest: start-up, pipeline construction, the orchestrator.

The stock reference is TFX's own `tfx/examples/penguin/penguin_pipeline_local.py` from the installed
tfx package, built by its `create_pipeline` with its module file `penguin_utils_keras.py`, its
DirectRunner Beam arguments and every optional part off (tuning, bulk inference, Transform cache,
example diff): CsvExampleGen, StatisticsGen, SchemaGen, Transform, Trainer, Evaluator (with its
latest-blessed-model resolver) and Pusher. The example's CSV (`penguins_processed.csv`, not shipped in
the wheel) is prepared from data/penguins/penguins.csv the way TFX prepared it: rows with a missing
measurement dropped (342 left), species as ids 0-2, the four measurements min-max scaled to [0, 1].
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
STOCK_PIPELINE_NAME = "penguin_local_keras"
_MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
_STOCK_COLUMNS = ("culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g")
_SPECIES = ("Adelie", "Chinstrap", "Gentoo")


def write_stock_data(source: Path, destination: Path) -> int:
    """The example's `labelled/penguins_processed.csv` from the raw table; returns the row count."""
    rows = [r for r in csv.DictReader(open(source)) if all(r[m] not in ("", "NA") for m in _MEASUREMENTS)]
    bounds = {m: (min(float(r[m]) for r in rows), max(float(r[m]) for r in rows)) for m in _MEASUREMENTS}
    destination.mkdir(parents=True, exist_ok=True)
    with open(destination / "penguins_processed.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("species",) + _STOCK_COLUMNS)
        for row in rows:
            scaled = [(float(row[m]) - lo) / (hi - lo) for m, (lo, hi) in bounds.items()]
            writer.writerow([_SPECIES.index(row["species"])] + [f"{v:.6f}" for v in scaled])
    return len(rows)


def run_stock_example(workdir: Path) -> None:
    """The penguin example's own `create_pipeline` and LocalDagRunner (runs in a child process)."""
    from tfx import v1 as tfx
    from tfx.examples.penguin import penguin_pipeline_local as example

    penguin_root = Path(example.__file__).parent
    tfx.orchestration.LocalDagRunner().run(example.create_pipeline(
        pipeline_name=STOCK_PIPELINE_NAME, pipeline_root=str(workdir / "pipeline_root"),
        data_root=str(workdir / "data"), module_file=str(penguin_root / "penguin_utils_keras.py"),
        accuracy_threshold=0.6, serving_model_dir=str(workdir / "serving_model"),
        metadata_path=str(workdir / "metadata.sqlite"), user_provided_schema_path=None,
        enable_tuning=False, enable_bulk_inferrer=False, examplegen_input_config=None,
        examplegen_range_config_date=None, resolver_range_config=None,
        beam_pipeline_args=example._beam_pipeline_args_by_runner["DirectRunner"],  # pylint: disable=protected-access
        enable_transform_input_cache=False, enable_example_diff=False))


def timed_process(command: list[str], log_path: Path) -> dict:
    """Runs `command` to completion; wall and CPU seconds, peak RSS (MB) and exit status."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "exit": process.returncode, "log": str(log_path)}


def run_count(metadata_path: Path) -> int:
    """How many pipeline runs a TFX metadata store holds."""
    from pipeline import run_outcome

    return len(run_outcome.run_contexts(run_outcome.open_store(metadata_path))) if metadata_path.exists() else 0


def component_seconds(metadata_path: Path) -> dict[str, dict]:
    """{node id: {state, seconds}} of the latest pipeline run in a TFX metadata store."""
    from pipeline import run_outcome

    if not metadata_path.exists():
        return {}
    store = run_outcome.open_store(metadata_path)
    return {c.node_id: {"state": c.state, "seconds": round(c.seconds, 1)}
            for c in run_outcome.run_components(store, run_outcome.find_run(store))}


def measure(label: str, command: list[str], metadata_path: Path, logs: Path) -> dict:
    """One process's figures; no components when it recorded no run (a repeat answered from the last one)."""
    print(f"  {label} ...", file=sys.stderr, flush=True)
    runs_before = run_count(metadata_path)
    figures = timed_process(command, logs / f"{label}.log")
    figures["components"] = component_seconds(metadata_path) if run_count(metadata_path) > runs_before else {}
    in_components = sum(c["seconds"] for c in figures["components"].values())
    figures["outside_components"] = round(figures["seconds"] - in_components, 1)
    if figures["exit"] != 0:
        print(f"  {label} exited {figures['exit']}: see {figures['log']}", file=sys.stderr)
    return figures


def benchmark(config: str, workdir: Path) -> dict:
    """Stock cold, ours cold, stock cached, ours cached; every figure of the four processes."""
    stock_dir, ours_dir, logs = workdir / "stock", workdir / "ours", workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows = write_stock_data(ROOT / "data/penguins/penguins.csv", stock_dir / "data" / "labelled")
    stock = [sys.executable, "-m", "benchmarks.pipeline", "--stock-child", str(stock_dir)]
    ours = [sys.executable, "-c", "from pipeline.cli import entrypoint; entrypoint()",  # the `tfxpipe` script
            "run", "--config", config, "--workdir", str(ours_dir)]
    results = {"stock_rows": rows, "config": config}
    for phase in ("cold", "cached"):
        results[f"stock_{phase}"] = measure(f"stock-{phase}", stock, stock_dir / "metadata.sqlite", logs)
        results[f"ours_{phase}"] = measure(f"ours-{phase}", ours, ours_dir / "metadata.sqlite", logs)
    results["ratios"] = {f"{a}_vs_{b}{suffix}": round(results[a][key] / results[b][key], 2)
                         for a, b in (("ours_cold", "stock_cold"), ("ours_cached", "ours_cold"),
                                      ("stock_cached", "stock_cold"))
                         for key, suffix in (("seconds", ""), ("cpu_seconds", "_cpu"))}
    return results


def markdown(results: dict) -> str:
    """Two tables: whole processes, then seconds per component (cold / cached)."""
    runs = ("stock_cold", "ours_cold", "stock_cached", "ours_cached")
    lines = ["| process | wall s | CPU s | outside components s | peak RSS MB | exit |", "|---|---:|---:|---:|---:|---:|"]
    for run in runs:
        r = results[run]
        lines.append(f"| {run.replace('_', ' ')} | {r['seconds']} | {r['cpu_seconds']} | {r['outside_components']} "
                     f"| {r['peak_rss_mb']} | {r['exit']} |")
    lines += ["", "| component | stock cold | ours cold | stock cached | ours cached |", "|---|---:|---:|---:|---:|"]
    nodes = list(dict.fromkeys(n for run in runs for n in results[run]["components"]))
    for node in nodes:
        cells = []
        for run in runs:
            c = results[run]["components"].get(node)
            cells.append("" if c is None else f"{c['seconds']}" + ("" if c["state"] == "complete" else f" ({c['state']})"))
        lines.append(f"| {node} | " + " | ".join(cells) + " |")
    ratios = results["ratios"]
    lines += ["", f"ours cold / stock cold = **{ratios['ours_cold_vs_stock_cold']}** wall, "
              f"{ratios['ours_cold_vs_stock_cold_cpu']} CPU (target ≤ 0.5); "
              f"ours cached / ours cold = **{ratios['ours_cached_vs_ours_cold']}** wall, "
              f"{ratios['ours_cached_vs_ours_cold_cpu']} CPU (target ≤ 0.15); "
              f"stock cached / stock cold = {ratios['stock_cached_vs_stock_cold']} wall"]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/penguin.yaml")
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch directory [default: a new temp dir].")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--stock-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stock_child:
        run_stock_example(args.stock_child)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    print(f"benchmarks.pipeline: working in {workdir}", file=sys.stderr)
    results = benchmark(args.config, workdir)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
