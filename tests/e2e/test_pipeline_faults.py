"""Faults injected into real runs: killed processes, failed thresholds, drifted and malformed data.

The tests share one work directory and run in order, as a user's successive runs would.
"""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TFXPIPE = str(Path(sys.executable).parent / "tfxpipe")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def penguin_config(tmp_path_factory) -> str:
    """The penguin config every training run here uses (one config: each run resumes from the last's cache)."""
    return str(_config_copy(tmp_path_factory.mktemp("config"), lambda raw: None))


def _run(workdir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([TFXPIPE, "run", "--workdir", str(workdir), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _runs(workdir: Path) -> list:
    """The pipeline_run contexts in the work directory's metadata store (none if it is not there yet)."""
    from pipeline import run_outcome

    try:
        return run_outcome.run_contexts(run_outcome.open_store(workdir / "metadata.sqlite"))
    except Exception:  # noqa: BLE001 - the store may not exist yet or be briefly locked by the run
        return []


def _running_in_new_run(workdir: Path, earlier_runs: set[int]) -> set[str]:
    """Components whose execution is RUNNING in a run started after `earlier_runs`, read from ML Metadata."""
    from ml_metadata.proto import metadata_store_pb2 as mlmd
    from pipeline import run_outcome

    try:
        store = run_outcome.open_store(workdir / "metadata.sqlite")
        return {run_outcome.node_id(store, e) for run in run_outcome.run_contexts(store) if run.id not in earlier_runs
                for e in store.get_executions_by_context(run.id) if e.last_known_state == mlmd.Execution.RUNNING}
    except Exception:  # noqa: BLE001 - the store may be briefly locked by the run
        return set()


def _kill_when_running(workdir: Path, component: str, config: str) -> None:
    """Start a run, SIGKILL it two seconds into `component`."""
    earlier_runs = {run.id for run in _runs(workdir)}
    process = subprocess.Popen([TFXPIPE, "run", "--config", config, "--workdir", str(workdir)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if component in _running_in_new_run(workdir, earlier_runs):
                time.sleep(2)
                break
            assert process.poll() is None, "the run ended before reaching " + component
            time.sleep(0.2)
        else:
            pytest.fail(f"{component} never started")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _versions(workdir: Path) -> list[str]:
    model_dir = workdir / "serving_model" / "penguin"
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


def _states(output: str) -> dict[str, str]:
    """Component states from the summary block printed after 'Run succeeded/FAILED'."""
    summary = output[output.index("\nRun "):]
    states = {}
    for line in summary.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3 and parts[2].endswith("s"):
            states[parts[0]] = parts[1]
        elif states and not line.strip():
            break
    return states


def test_killed_during_transform_then_trainer_the_next_run_finishes_from_cache(workdir, penguin_config):
    _kill_when_running(workdir, "Transform", penguin_config)
    _kill_when_running(workdir, "Trainer", penguin_config)
    assert _versions(workdir) == []
    result = _run(workdir, "--config", penguin_config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Recovered from an interrupted run: closed unfinished Trainer" in result.stdout
    states = _states(result.stdout)
    for node in ("CsvExampleGen", "StatisticsGen", "ExampleValidator", "Transform"):
        assert states[node] == "cached", (node, states)
    assert states["Trainer"] == "complete" and states["Pusher"] == "complete"
    assert len(_versions(workdir)) == 1
    _assert_metadata_consistent(workdir)


def _assert_metadata_consistent(workdir: Path) -> None:
    """No execution is left RUNNING or NEW, and every output a finished execution recorded exists."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    config = mlmd.ConnectionConfig()
    config.sqlite.filename_uri = str(workdir / "metadata.sqlite")
    config.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    executions = store.get_executions()
    open_states = {mlmd.Execution.RUNNING, mlmd.Execution.NEW, mlmd.Execution.UNKNOWN}
    assert not [e.type for e in executions if e.last_known_state in open_states]
    assert sum(e.last_known_state == mlmd.Execution.CANCELED for e in executions) == 2  # the two killed runs
    finished = [e.id for e in executions if e.last_known_state in (mlmd.Execution.COMPLETE, mlmd.Execution.CACHED)]
    outputs = {event.artifact_id for event in store.get_events_by_execution_ids(finished)
               if event.type == mlmd.Event.OUTPUT}
    for artifact in store.get_artifacts_by_id(list(outputs)):
        assert artifact.state == mlmd.Artifact.LIVE, artifact
        assert Path(artifact.uri).exists(), f"{artifact.type}: {artifact.uri} is recorded but missing"


def _config_copy(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load((ROOT / "configs/penguin.yaml").read_text())
    change(raw)
    raw["serving"] = {"infra_validation": False}  # not what these tests check (~30 s a run)
    raw["data"]["path"] = str(ROOT / "data/penguins")
    raw["validation"]["schema_path"] = str(ROOT / "configs/schemas/penguin.pbtxt")
    path = tmp_path / "penguin.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_model_failing_its_thresholds_is_not_pushed(workdir, tmp_path):
    before = _versions(workdir)
    strict = _config_copy(tmp_path, lambda raw: raw["evaluation"]["thresholds"].update(
        sparse_categorical_accuracy={"lower_bound": 1.01}))
    result = _run(workdir, "--config", str(strict))
    assert "Model blessed: no" in result.stdout, result.stdout + result.stderr
    assert "FAILED    Overall: sparse_categorical_accuracy " in result.stdout and "bound >= 1.01 (" in result.stdout
    assert "Pushed to:" not in result.stdout
    assert _versions(workdir) == before


def test_drifted_data_stops_the_run_with_a_report(workdir, tmp_path):
    before = _versions(workdir)
    rows = [r for r in csv.DictReader(open(ROOT / "data/penguins/penguins.csv")) if r["island"] == "Biscoe"]
    (tmp_path / "drifted").mkdir()
    with open(tmp_path / "drifted" / "penguins.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = _run(workdir, "--config", "configs/penguin.yaml", "--data", str(tmp_path / "drifted"))
    assert result.returncode == 1
    assert "[FAIL] drift (train split vs last validated data)" in result.stdout
    assert "island" in result.stdout and "Data rejected" in result.stdout
    assert "Trainer" not in _states(result.stdout)
    assert "Data validation: rejected" in result.stdout
    assert _versions(workdir) == before


def _bad_csv(case: str) -> str:
    rows = list(csv.reader((ROOT / "data/penguins/penguins.csv").read_text().splitlines()))
    if case == "extra column":
        rows[10].append("surplus")
    elif case == "unclosed quote":
        rows[5][1] = '"' + rows[5][1]
    elif case == "missing label column":
        index = rows[0].index("species")
        rows = [row[:index] + row[index + 1:] for row in rows]
    elif case == "renamed column":
        rows[0][rows[0].index("sex")] = "gender"
    elif case == "header only":
        rows = rows[:1]
    elif case == "empty file":
        return ""
    return "".join(",".join(row) + "\n" for row in rows)  # written by hand: csv.writer would fix the quote


@pytest.mark.parametrize("case, message", [
    ("extra column", "penguins.csv:11: 9 columns, the header has 8"),
    ("unclosed quote", "penguins.csv:6: unreadable CSV (unexpected end of data) in the record starting on that line"),
    ("empty file", "penguins.csv' is empty; it needs a header row and data"),
    ("header only", "penguins.csv: only a header row, no data"),
    ("missing label column", "label.name: column(s) ['species'] not in the header of"),
    ("renamed column", "features: column(s) ['sex'] not in the header of"),
])
def test_malformed_files_are_rejected_before_any_work_with_file_and_line(workdir, tmp_path, case, message):
    before = _versions(workdir)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "penguins.csv").write_text(_bad_csv(case))
    result = _run(workdir, "--config", "configs/penguin.yaml", "--data", str(tmp_path / "bad"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert _versions(workdir) == before  # after the earlier tests of this module, the pushed model stays
