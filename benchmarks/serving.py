"""Serving benchmark: in-process model call vs `tfxpipe serve` (REST, gRPC) vs a naive FastAPI wrapper.

One run on one machine measures, for single-row penguin requests:

- the in-process model call (`Servable.run`, the limit any server adds overhead to), one row per call
  and 32 rows per call;
- `tfxpipe serve` with its default flags (no batching, as TF Serving) and with `--enable_batching`, over
  REST and over gRPC, at concurrency 1 and 32;
- the baseline a user would write: FastAPI + `tf.saved_model.load`, one model call per request.

Servers run in their own processes, all started at once and measured in turns (`--rounds`), so that
each sees the same machine; the load generators (keep-alive HTTP/1.1 connections over raw asyncio
streams, and grpc.aio) run here, so everything shares this machine's cores.

    python -m benchmarks.serving                      # fixture model with the pipeline's signatures
    python -m benchmarks.serving --model-base-path runs/serving/penguin --seconds 10 --rounds 5 --json-out bench.json

The naive baseline needs FastAPI (`pip install fastapi`); it is skipped with a note otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.support.serving_fixtures import PENGUIN_ROW as ROW


# --- measurements --------------------------------------------------------------------------------------

def summarize(name: str, concurrency: int, latencies: list[float], elapsed: float, errors: int) -> dict:
    ordered = sorted(latencies)
    pick = (lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3) if ordered else (lambda q: float("nan"))
    return {"name": name, "concurrency": concurrency, "requests": len(ordered), "errors": errors,
            "throughput_rps": len(ordered) / elapsed if elapsed else 0.0, "p50_ms": pick(0.50), "p99_ms": pick(0.99)}


def in_process(model_dir: str, seconds: float) -> list[dict]:
    import numpy as np

    from serving.servable import Servable

    servable = Servable.load("penguin", 1, model_dir)
    results = []
    for rows in (1, 32):
        inputs = {name: np.array([value] * rows, dtype=np.float32 if isinstance(value, float) else object)
                  for name, value in ROW.items()}
        for _ in range(50):
            servable.run("serving_default", inputs)
        latencies, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds:
            began = time.perf_counter()
            servable.run("serving_default", inputs)
            latencies.append(time.perf_counter() - began)
        elapsed = time.perf_counter() - start
        result = summarize(f"in-process call, {rows} row(s)/call", 1, latencies, elapsed, 0)
        result["rows_per_second"] = result["throughput_rps"] * rows
        results.append(result)
    return results


async def _http_worker(port: int, request: bytes, deadline: float, latencies: list, errors: list) -> None:
    from tests.support.serving_process import KeepAliveConnection

    connection = await KeepAliveConnection.open(port)
    try:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            status, _ = await connection.exchange(request)
            if status == 200:
                latencies.append(time.perf_counter() - began)
            else:
                errors.append(status)
    finally:
        connection.close()


def http_load(port: int, concurrency: int, seconds: float) -> tuple[list[float], list, float]:
    """(latencies of the answered requests, errors, elapsed seconds) of predict requests over REST."""
    from tests.support.serving_process import http_request

    request = http_request("POST", PREDICT_PATH, json.dumps({"instances": [ROW]}).encode())

    async def run(duration: float):
        latencies, errors = [], []
        start = time.perf_counter()
        await asyncio.gather(*(_http_worker(port, request, start + duration, latencies, errors)
                               for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - start

    asyncio.run(run(min(1.0, seconds)))  # warm-up: connections, first batches
    return asyncio.run(run(seconds))


def grpc_load(port: int, concurrency: int, seconds: float) -> tuple[list[float], list, float]:
    """`http_load` over gRPC."""
    import grpc

    from serving import protos, tensors

    apis = protos.load()
    request = apis.predict_pb2.PredictRequest()
    request.model_spec.name = "penguin"
    for feature, value in ROW.items():
        tensors.fill_proto(request.inputs[feature], [value], as_content=True,
                           dtype=tensors.DT_FLOAT if isinstance(value, float) else tensors.DT_STRING)

    async def run(duration: float):
        latencies, errors = [], []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = apis.prediction_service_pb2_grpc.PredictionServiceStub(channel)

            async def worker(deadline):
                while time.perf_counter() < deadline:
                    began = time.perf_counter()
                    try:
                        await stub.Predict(request, timeout=30)
                        latencies.append(time.perf_counter() - began)
                    except grpc.RpcError as exc:
                        errors.append(exc.code())

            start = time.perf_counter()
            await asyncio.gather(*(worker(start + duration) for _ in range(concurrency)))
            return latencies, errors, time.perf_counter() - start

    asyncio.run(run(min(1.0, seconds)))
    return asyncio.run(run(seconds))


# --- servers ------------------------------------------------------------------------------------------

NAIVE_APP = '''
import sys
import tensorflow as tf
from fastapi import FastAPI
import uvicorn

model = tf.saved_model.load(sys.argv[2])
predict_fn = model.signatures["serving_default"]
app = FastAPI()
STRING_FEATURES = {"island", "sex"}


@app.post("/v1/models/penguin:predict")
def predict(body: dict):
    rows = body["instances"]
    inputs = {name: tf.constant([row[name] for row in rows], dtype=tf.string if name in STRING_FEATURES else tf.float32)
              for name in rows[0]}
    outputs = predict_fn(**inputs)
    scores = outputs["scores"].numpy().tolist()
    classes = [c.decode() for c in outputs["predicted_class"].numpy()]
    return {"predictions": [{"scores": s, "predicted_class": c} for s, c in zip(scores, classes)]}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
'''


# --- main ---------------------------------------------------------------------------------------------

def prepare_model(args, workdir: Path) -> tuple[str, str]:
    """(base path holding <version>/, one version directory)."""
    if args.model_base_path:
        base = Path(args.model_base_path).resolve()
        version = max(int(p.name) for p in base.iterdir() if p.name.isdigit())
        return str(base), str(base / str(version))
    from tests.support.serving_fixtures import write_model

    version_dir = write_model(workdir / "penguin" / "1")
    return str(workdir / "penguin"), str(version_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-base-path", help="Serve this model directory instead of the fixture model.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Measured seconds per scenario and round.")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Rounds; each measures every server once per scenario, servers taking turns.")
    parser.add_argument("--json-out", help="Also write the results as JSON here.")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    try:
        base_path, version_dir = prepare_model(args, workdir)
        results = in_process(version_dir, args.seconds)
        with contextlib.ExitStack() as servers:
            targets = start_servers(servers, base_path, version_dir, workdir)
            results += take_turns(targets, args.rounds, args.seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


DEFAULT = "tfxpipe serve (default flags)"
BATCHING = "tfxpipe serve --enable_batching"
NAIVE = "naive FastAPI wrapper"
PREDICT_PATH = "/v1/models/penguin:predict"


def start_servers(stack: contextlib.ExitStack, base_path: str, version_dir: str, workdir: Path) -> list[tuple]:
    """Starts every server at once: [(scenario name, load function, port)], all serving until `stack` closes.

    Running side by side and measured in turns, they see the same machine: on a shared machine the load
    of other work changes from minute to minute, and one server measured after another would compare
    those minutes rather than the servers.
    """
    from tests.support.serving_fixtures import free_port
    from tests.support.serving_process import BATCHING_CONFIG, running, serve_command

    batching = workdir / "batching.config"
    batching.write_text(BATCHING_CONFIG)
    targets = []
    for label, batching_file in ((DEFAULT, None), (BATCHING, batching)):
        rest_port, grpc_port = free_port(), free_port()
        command = serve_command(base_path, rest_port, grpc_port, batching_file)
        stack.enter_context(running(command, rest_port, "/v1/models/penguin", workdir / f"{len(targets)}.log"))
        targets += [(f"{label} REST", http_load, rest_port), (f"{label} gRPC", grpc_load, grpc_port)]
    try:
        import fastapi  # noqa: F401
    except ImportError:
        print("note: FastAPI is not installed; naive baseline skipped (pip install fastapi)", file=sys.stderr)
        return targets
    script, port = workdir / "naive_app.py", free_port()
    script.write_text(NAIVE_APP)
    stack.enter_context(running([sys.executable, str(script), str(port), version_dir], port, "/docs",
                                workdir / "naive_app.log"))
    return targets + [(NAIVE, http_load, port)]


def take_turns(targets: list[tuple], rounds: int, seconds: float) -> list[dict]:
    """Each round measures every target at concurrency 1 and 32; the rounds' requests are pooled."""
    pooled: dict[tuple[str, int], tuple[list, int, float]] = {}
    for _ in range(rounds):
        for concurrency in (1, 32):
            for name, load, port in targets:
                latencies, errors, elapsed = load(port, concurrency, seconds)
                before = pooled.get((name, concurrency), ([], 0, 0.0))
                pooled[(name, concurrency)] = (before[0] + latencies, before[1] + len(errors), before[2] + elapsed)
    return [summarize(name, concurrency, latencies, elapsed, errors)
            for (name, concurrency), (latencies, errors, elapsed) in sorted(pooled.items(), key=lambda item: (
                [target[0] for target in targets].index(item[0][0]), item[0][1]))]


def report(results: list[dict]) -> None:
    print(f"{'scenario':46} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for r in results:
        print(f"{r['name']:46} {r['concurrency']:>4} {r['throughput_rps']:>9.0f} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['errors']:>6}")
    by_key = {(r["name"], r["concurrency"]): r for r in results}
    naive = by_key.get((NAIVE, 32))
    call = by_key.get(("in-process call, 1 row(s)/call", 1))
    print()
    for label, goal in ((DEFAULT, "goal >= 1x, p99 <= the naive wrapper's"), (BATCHING, "goal >= 5x, p99 <= 25 ms")):
        rest32, rest1 = by_key.get((f"{label} REST", 32)), by_key.get((f"{label} REST", 1))
        if naive and rest32:
            print(f"{label} REST at concurrency 32: {rest32['throughput_rps'] / naive['throughput_rps']:.2f}x the naive "
                  f"wrapper's throughput, p99 {rest32['p99_ms']:.1f} ms vs the naive wrapper's {naive['p99_ms']:.1f} ms "
                  f"({goal})")
        if rest1 and call:
            print(f"{label} REST at concurrency 1: p50 {rest1['p50_ms'] - call['p50_ms']:+.2f} ms over the in-process "
                  f"call (goal <= 1 ms)")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, Python "
          f"{sys.version.split()[0]}, one run of {len(results)} scenarios")


if __name__ == "__main__":
    raise SystemExit(main())
