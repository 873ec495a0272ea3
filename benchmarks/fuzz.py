"""The long mode of the serving fuzz tests: the same tests CI runs for seconds, for as long as you like.

`tests/integration/test_serving_fuzz_rest.py` (schemathesis against serving/openapi.yaml, plus raw JSON)
and `tests/integration/test_serving_fuzz_grpc.py` (hypothesis-built requests and mutated wire bytes)
read their time budget from TFXPIPE_FUZZ_SECONDS and write their counts to TFXPIPE_FUZZ_REPORT. This
script runs each in its own pytest process with a longer budget and prints what was sent and how it
ended; a failed property fails the run (exit 1) with pytest's report of the minimal failing input.

    python -m benchmarks.fuzz --seconds 300                 # both, five minutes each
    python -m benchmarks.fuzz --seconds 60 --only grpc --json-out fuzz.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FUZZ_TESTS = {
    "rest": "tests/integration/test_serving_fuzz_rest.py",
    "grpc": "tests/integration/test_serving_fuzz_grpc.py",
}


def run_fuzzer(name: str, seconds: float, report_dir: Path) -> dict:
    """Runs one fuzz test file with `seconds` of budget; returns its counts, exit code and wall time."""
    report_path = report_dir / f"{name}.json"
    env = dict(os.environ, TFXPIPE_FUZZ_SECONDS=str(seconds), TFXPIPE_FUZZ_REPORT=str(report_path))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", FUZZ_TESTS[name], "-q", "-p", "no:cacheprovider",
                             "-o", f"timeout={int(seconds * 4 + 600)}"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True)
    counts = json.loads(report_path.read_text()) if report_path.exists() else {}
    outcome = {"fuzzer": name, "budget_seconds": seconds, "exit_code": result.returncode,
               "wall_seconds": round(time.monotonic() - started, 1),
               "sent": counts.get("requests", counts.get("calls", 0)), "failures": counts.get("failures"),
               "statuses": counts.get("statuses", {})}
    if result.returncode != 0:
        outcome["pytest_tail"] = result.stdout[-4000:]
    return outcome


def print_outcome(outcome: dict) -> None:
    statuses = ", ".join(f"{code}: {count}" for code, count in outcome["statuses"].items())
    verdict = "passed" if outcome["exit_code"] == 0 else f"FAILED (pytest exit {outcome['exit_code']})"
    print(f"{outcome['fuzzer']:>4}: {outcome['sent']} sent in {outcome['budget_seconds']:g} s of budget "
          f"({outcome['wall_seconds']} s wall), property failures: {outcome['failures']}, {verdict}")
    print(f"      statuses: {statuses or 'none recorded'}")
    if "pytest_tail" in outcome:
        print(outcome["pytest_tail"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="fuzzing budget per fuzzer")
    parser.add_argument("--only", choices=sorted(FUZZ_TESTS), help="run one fuzzer (default: both)")
    parser.add_argument("--json-out", type=Path, help="also write the outcomes here as JSON")
    args = parser.parse_args(argv)

    outcomes = []
    with tempfile.TemporaryDirectory(prefix="tfxpipe-fuzz-") as report_dir:
        for name in [args.only] if args.only else list(FUZZ_TESTS):
            outcomes.append(run_fuzzer(name, args.seconds, Path(report_dir)))
            print_outcome(outcomes[-1])
    if args.json_out:
        args.json_out.write_text(json.dumps(outcomes, indent=2) + "\n")
    return 0 if all(o["exit_code"] == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
