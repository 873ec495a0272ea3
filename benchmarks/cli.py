"""Wall time of `tfxpipe`'s read-only commands and of its answers to mistakes, whole process each.

Issue 14's target: `--help`, `report`, `runs`, `lineage`, `models`, `predict`, and a config typo or
malformed data file reported by `run`, `compile` or `submit`, each in ≤ 2 s (they must not import
TensorFlow/TFX; tests/unit/test_import_hygiene.py checks that). Each command runs `--repeat` times as a
fresh `tfxpipe` process; the median and the slowest wall time are printed, with the median CPU time
(user + system) of the process, which moves much less than wall time when other work shares the machine.
`predict` queries a `tfxpipe serve` started here on the work directory's pushed model (its start-up is
not timed).

    python -m benchmarks.cli --workdir runs/penguin          # after `tfxpipe run --config configs/penguin.yaml`
    python -m benchmarks.cli --workdir runs/penguin --repeat 5 --with-imports
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 2.0
READ_ONLY_COMMANDS = ("report", "runs", "lineage", "models")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], expected_codes: tuple[int, ...]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command`; stops the benchmark on an unexpected exit code."""
    cpu_before, started = _children_cpu_seconds(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds, cpu = time.perf_counter() - started, _children_cpu_seconds() - cpu_before
    if result.returncode not in expected_codes:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return seconds, cpu


@contextlib.contextmanager
def served(tfxpipe: str, serving_dir: Path, model_name: str) -> Iterator[str]:
    """A `tfxpipe serve` on the pushed model, yielding its REST URL once the model is AVAILABLE."""
    import httpx
    import portpicker

    rest_port = portpicker.pick_unused_port()
    process = subprocess.Popen([tfxpipe, "serve", "--model_name", model_name,
                                "--model_base_path", str((serving_dir / model_name).resolve()),
                                "--port", str(portpicker.pick_unused_port()), "--rest_api_port", str(rest_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{rest_port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"tfxpipe serve exited {process.returncode} on {serving_dir / model_name}")
            with contextlib.suppress(httpx.HTTPError):
                states = httpx.get(f"{url}/v1/models/{model_name}", timeout=2).json().get("model_version_status", [])
                if any(s.get("state") == "AVAILABLE" for s in states):
                    break
            time.sleep(0.2)
        else:
            raise SystemExit("tfxpipe serve did not load the model within 300 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def cases(tfxpipe: str, config: Path, workdir: Path, model_name: str,
          scratch: Path) -> dict[str, tuple[list[str], tuple[int, ...]]]:
    """Name → (command, accepted exit codes) for every command the target covers that this tree has."""
    from pipeline.cli import main
    from tests.support.config_files import misspell_model_key, penguin_config_copy, penguins_with_surplus_cell

    typo_config = str(penguin_config_copy(scratch, "typo", misspell_model_key))
    bad_data = str(penguins_with_surplus_cell(scratch))
    table = {"--help": ([tfxpipe, "--help"], (0,))}
    latest = max((p.name for p in (workdir / "serving_model" / model_name).iterdir() if p.name.isdigit()), key=int)
    arguments = {"lineage": [f"{model_name}:{latest}"]}  # the pushed version's lineage
    for name in READ_ONLY_COMMANDS:
        if name in main.commands:
            table[name] = ([tfxpipe, name, *arguments.get(name, []), "--config", str(config),
                            "--workdir", str(workdir)], (0,))
    table.update({
        "run, config typo": ([tfxpipe, "run", "--config", typo_config, "--workdir", str(scratch / "w")], (2,)),
        "run, malformed CSV": ([tfxpipe, "run", "--config", str(config), "--data", bad_data,
                                "--workdir", str(scratch / "w")], (2,)),
        "compile, config typo": ([tfxpipe, "compile", "--config", typo_config, "--output", str(scratch / "p.json")],
                                 (2,)),
        "submit, config typo": ([tfxpipe, "submit", "--host", "http://127.0.0.1:9", "--config", typo_config], (2,)),
    })
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs/penguin", help="A finished run of --config.")
    parser.add_argument("--config", type=Path, default=ROOT / "configs/penguin.yaml")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each command (median and max printed).")
    parser.add_argument("--with-imports", action="store_true",
                        help="Also time `import tensorflow` and `import tfx.v1` alone, for comparison.")
    parser.add_argument("--json-out", help="Also write the figures as JSON here.")
    args = parser.parse_args(argv)
    if not (args.workdir / "metadata.sqlite").is_file():
        raise SystemExit(f"{args.workdir} has no metadata.sqlite: run `tfxpipe run --config {args.config} "
                         f"--workdir {args.workdir}` first")
    tfxpipe = str(Path(sys.executable).with_name("tfxpipe"))
    model_name = yaml.safe_load(args.config.read_text())["model_name"]
    scratch = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    figures: dict[str, dict] = {}
    try:
        table = cases(tfxpipe, args.config.resolve(), args.workdir.resolve(), model_name, scratch)
        with served(tfxpipe, args.workdir / "serving_model", model_name) as url:
            row = json.dumps(_sample_row(args.config))
            table["predict"] = ([tfxpipe, "predict", "--model", model_name, "--rest", url, "--json", row], (0,))
            for name, (command, codes) in table.items():
                figures[name] = _figures([timed(command, codes) for _ in range(args.repeat)])
        if args.with_imports:
            for module in ("tensorflow", "tfx.v1"):
                command = [sys.executable, "-c", f"import {module}"]
                figures[f"import {module} (reference)"] = _figures([timed(command, (0,))])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(figures, args.repeat)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2))
    return 0


def _sample_row(config: Path) -> dict:
    from pipeline import config as config_lib
    from pipeline.serve_check import sample_row

    return sample_row(config_lib.load(config))


def _figures(runs: list[tuple[float, float]]) -> dict:
    wall = [seconds for seconds, _ in runs]
    return {"median_s": statistics.median(wall), "max_s": max(wall),
            "median_cpu_s": statistics.median(cpu for _, cpu in runs), "runs": runs}


def print_table(figures: dict[str, dict], repeat: int) -> None:
    print(f"| command | median wall s ({repeat} runs) | slowest wall s | median CPU s "
          f"| ≤ {TARGET_SECONDS:g} s wall |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, figure in figures.items():
        met = "" if "reference" in name else ("yes" if figure["max_s"] <= TARGET_SECONDS else "**no**")
        print(f"| `{name}` | {figure['median_s']:.2f} | {figure['max_s']:.2f} | {figure['median_cpu_s']:.2f} "
              f"| {met} |")
    print(f"(os.cpu_count() = {os.cpu_count()}, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    sys.exit(main())
