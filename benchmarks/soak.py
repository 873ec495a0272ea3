"""Serving soak, long mode: REST and gRPC clients for minutes while versions are pushed and removed.

The same driver as tests/integration/test_serving_soak.py (tests/support/serving_soak.py), run for longer:
`tfxpipe serve` in its own process with batching on, clients sending predict/classify/metadata/status
without a version, a new version pushed every `--push-interval` seconds and the oldest deleted. Prints
requests sent and failed, versions pushed/removed/seen, and the server's RSS after warm-up, at its
maximum and at the end, with the growth per 100 load/unload cycles.

    python -m benchmarks.soak --seconds 300
    python -m benchmarks.soak --seconds 120 --rest-clients 8 --grpc-clients 4 --push-interval 0.5 --json-out soak.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="How long the clients run.")
    parser.add_argument("--rest-clients", type=int, default=8, help="Keep-alive REST connections.")
    parser.add_argument("--grpc-clients", type=int, default=4, help="gRPC channels.")
    parser.add_argument("--push-interval", type=float, default=1.0, help="Seconds between pushed versions.")
    parser.add_argument("--keep-versions", type=int, default=2, help="Version directories left on disk.")
    parser.add_argument("--warmup-cycles", type=int, default=5, help="Load/unload cycles before RSS is measured.")
    parser.add_argument("--json-out", help="Also write the figures as JSON here.")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tests.support.serving_soak import SoakOptions, run_soak

    options = SoakOptions(seconds=args.seconds, rest_clients=args.rest_clients, grpc_clients=args.grpc_clients,
                          push_interval=args.push_interval, keep_versions=args.keep_versions,
                          warmup_cycles=args.warmup_cycles)
    workdir = Path(tempfile.mkdtemp(prefix="serving-soak-"))
    try:
        report = run_soak(options, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures = dataclasses.asdict(report)
    print_report(figures, options)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2))
    clean = report.failed_requests == 0 and not report.versions_not_served and report.exit_code == 0
    return 0 if clean else 1


def print_report(figures: dict, options) -> None:
    rss = figures["rss_mb"]
    print(f"soak: {figures['seconds']} s, {options.rest_clients} REST + {options.grpc_clients} gRPC clients, "
          f"a version every {options.push_interval} s, {options.keep_versions} kept on disk")
    print(f"requests sent: {figures['requests']}  failed: {figures['failed_requests']}")
    print(f"  by kind: {figures['requests_by_kind']}")
    for message in figures["failure_messages"]:
        print(f"  failure: {message}")
    seen = figures["versions_seen_answering"]
    print(f"versions pushed: {figures['versions_pushed']}, removed: {figures['versions_removed']}, "
          f"seen answering: {len(seen)} ({seen[:3]} ... {seen[-3:]}), not served: {figures['versions_not_served']}, "
          f"slowest swap: {figures['slowest_swap_seconds']} s")
    print(f"server status at the end: {figures['server_status']}")
    print(f"server RSS (MB): after start {rss['after_start']}, steady-state start {rss['steady_start']}, "
          f"max {rss['steady_max']}, end {rss['end']}")
    print(f"growth: {figures['growth_mb']} MB over {figures['cycles_measured']} load/unload cycles "
          f"= {figures['growth_mb_per_100_cycles']} MB per 100 cycles")
    settled = figures["settled_rss_mb"]
    trend = settled[::max(1, len(settled) // 10)] + settled[-1:]
    print("RSS before a push (cycles: MB): " + ", ".join(f"{cycles}: {mb}" for cycles, mb in trend))
    print(f"server alive at the end: {figures['server_alive']}, exit code after SIGTERM: {figures['exit_code']}")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    raise SystemExit(main())
