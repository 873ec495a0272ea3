"""Read-only commands and mistakes answer without importing the ML stack.

Importing `tfx.v1` takes ~26 s on a 2-core machine and TensorFlow ~8 s, so `tfxpipe --help`, `report`,
`runs`, `lineage`, `models`, `predict`, and a config typo or malformed input file reported by `run`,
`compile` or `submit`, must read ML Metadata and files only. Each case runs the real command in a fresh
interpreter (as a user would) and lists which of the forbidden packages it imported. The seconds they
take are measured by `benchmarks/cli.py`, not here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd

from tests.support import mlmd_records
from tests.support.config_files import misspell_model_key, penguin_config_copy, penguins_with_surplus_cell

ROOT = Path(__file__).resolve().parents[2]
#: Importing any of these starts TensorFlow or TFX (tensorflow.core's generated protos, which
#: serving.protos loads without TensorFlow's __init__, do not count: they are plain protobuf).
FORBIDDEN = ("tensorflow", "tensorflow.python", "tfx", "tensorflow_model_analysis", "tensorflow_transform",
             "tensorflow_data_validation", "apache_beam", "keras")
#: Commands that only read a work directory, with their arguments; each also gets --config and --workdir
#: when it takes them. A command not registered in this tree is skipped (the test says so).
READ_ONLY_COMMANDS = {"report": (), "runs": (), "lineage": ("penguin:1",), "models": ()}

_RUN_CLI = """
import json, sys
from pipeline.cli import main
try:
    main(sys.argv[1:], prog_name="tfxpipe")
finally:
    sys.stdout.flush()
    print("\\nFORBIDDEN-IMPORTS " + json.dumps([m for m in {forbidden} if m in sys.modules]), file=sys.stderr)
"""


def _cli(*args: str) -> tuple[int, list[str], str]:
    """(exit code, forbidden packages imported, output) of `tfxpipe ARGS` in a fresh interpreter."""
    code = _RUN_CLI.format(forbidden=repr(FORBIDDEN))
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    marker = [line for line in result.stderr.splitlines() if line.startswith("FORBIDDEN-IMPORTS ")]
    assert marker, result.stdout + result.stderr
    return result.returncode, json.loads(marker[-1].split(" ", 1)[1]), result.stdout + result.stderr


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A work directory whose one finished run trained a model and pushed it as version 1."""
    pushed = tmp_path / "serving_model" / "penguin" / "1"
    pushed.mkdir(parents=True)
    store = mlmd_records.writable_store(tmp_path / "metadata.sqlite")
    run = mlmd_records.start_run(store, "run-1")
    mlmd_records.record(store, run, "CsvExampleGen", mlmd.Execution.COMPLETE,
                        outputs={"examples": mlmd_records.artifact("Examples", str(tmp_path / "examples"))})
    mlmd_records.record(store, run, "Trainer", mlmd.Execution.COMPLETE,
                        outputs={"model": mlmd_records.artifact("Model", str(tmp_path / "model"))})
    [model] = store.get_artifacts_by_uri(str(tmp_path / "model"))
    mlmd_records.record(store, run, "Pusher", mlmd.Execution.COMPLETE, inputs={"model": model},
                        outputs={"pushed_model": mlmd_records.artifact(
                            "PushedModel", str(tmp_path / "pushed"), pushed=1, pushed_version="1",
                            pushed_destination=str(pushed))})
    return tmp_path


def test_help_imports_nothing_heavy():
    code, imported, output = _cli("--help")
    assert code == 0 and "Commands:" in output, output
    assert imported == []


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_read_only_command_reads_the_store_without_the_ml_stack(command, workdir, tmp_path):
    from pipeline.cli import main

    if command not in main.commands:
        pytest.skip(f"`tfxpipe {command}` is not registered in this tree")
    options = {param.name for param in main.commands[command].params}
    args = [command, *READ_ONLY_COMMANDS[command]]
    if "config_path" in options:
        args += ["--config", str(penguin_config_copy(tmp_path))]
    if "workdir" in options:
        args += ["--workdir", str(workdir)]
    code, imported, output = _cli(*args)
    assert code == 0, output
    assert imported == [], f"`tfxpipe {command}` imported {imported}"


def test_predict_imports_only_the_client():
    """Against a port nothing listens on: the request is built and sent, and fails as unreachable."""
    row = json.dumps({"bill_length_mm": 39.1, "island": "Torgersen"})
    code, imported, output = _cli("predict", "--model", "penguin", "--rest", "http://127.0.0.1:9", "--json", row,
                                  "--retries", "1", "--timeout", "2")
    assert code == 1 and "error:" in output, output
    assert imported == []


@pytest.mark.parametrize("command, options", [
    ("run", ["--workdir", "{tmp}/work"]),
    ("compile", ["--output", "{tmp}/pipeline.json"]),
    ("submit", ["--host", "http://127.0.0.1:9"]),
])
def test_a_config_typo_is_reported_before_tfx_is_imported(command, options, tmp_path):
    config = penguin_config_copy(tmp_path, change=misspell_model_key)
    code, imported, output = _cli(command, "--config", str(config), *(o.format(tmp=tmp_path) for o in options))
    assert code == 2 and "modle" in output, output
    assert imported == []


def test_a_malformed_data_file_is_reported_before_tfx_is_imported(tmp_path):
    bad = penguins_with_surplus_cell(tmp_path, line=6)
    code, imported, output = _cli("run", "--config", str(penguin_config_copy(tmp_path)), "--data", str(bad),
                                  "--workdir", str(tmp_path / "work"))
    assert code == 2 and "penguins.csv:6:" in output, output
    assert imported == []
