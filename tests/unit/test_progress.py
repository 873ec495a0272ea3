"""The progress view follows the executions recorded in ML Metadata, not log lines."""
import io
import logging

from ml_metadata.proto import metadata_store_pb2 as mlmd
from rich.console import Console

from pipeline import progress
from tests.support import mlmd_records


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, color_system=None), out


def _lines(out: io.StringIO) -> list[list[str]]:
    return [line.split() for line in out.getvalue().splitlines() if line.strip()]


def test_one_line_per_finished_component_then_skipped_ones(tmp_path):
    path = tmp_path / "metadata.sqlite"
    store = mlmd_records.writable_store(path)
    mlmd_records.record(store, mlmd_records.start_run(store, "an earlier run"), "CsvExampleGen")
    console, out = _console()
    watcher = progress.ExecutionWatcher(path, console)
    watcher.poll()
    assert out.getvalue() == "", "executions of earlier runs are not this run's progress"

    run = mlmd_records.start_run(store, "this run")
    mlmd_records.record(store, run, "CsvExampleGen", mlmd.Execution.CACHED)
    gate = mlmd_records.record(store, run, "DataValidationGate", mlmd.Execution.RUNNING)
    watcher.poll()
    assert _lines(out) == [["✓", "CsvExampleGen", "cached", "0.0s"]]
    mlmd_records.set_state(store, gate, mlmd.Execution.COMPLETE)
    mlmd_records.record(store, run, "AcceptValidatedData", mlmd.Execution.FAILED)
    watcher.finish(["CsvExampleGen", "DataValidationGate", "AcceptValidatedData", "Transform", "Trainer"])
    assert [line[:3] for line in _lines(out)] == [
        ["✓", "CsvExampleGen", "cached"], ["✓", "DataValidationGate", "done"],
        ["✗", "AcceptValidatedData", "failed"], ["-", "Transform", "skipped"], ["-", "Trainer", "skipped"]]


def test_a_store_that_does_not_exist_yet_is_waited_for(tmp_path):
    path = tmp_path / "metadata.sqlite"
    console, out = _console()
    watcher = progress.ExecutionWatcher(path, console)
    watcher.poll()
    store = mlmd_records.writable_store(path)
    mlmd_records.record(store, mlmd_records.start_run(store, "first run"), "CsvExampleGen")
    watcher.poll()
    assert _lines(out)[0][:3] == ["✓", "CsvExampleGen", "done"]


def test_context_manager_polls_in_the_background_and_logs_to_the_file(tmp_path):
    path, log_file = tmp_path / "metadata.sqlite", tmp_path / "run.log"
    store = mlmd_records.writable_store(path)
    console, out = _console()
    with progress.ComponentProgress(log_file, path, ["CsvExampleGen", "Transform"], console=console):
        mlmd_records.record(store, mlmd_records.start_run(store, "run"), "CsvExampleGen")
        logging.getLogger("tfx").info("Component CsvExampleGen is finished.")
    assert [line[:3] for line in _lines(out)[1:]] == [["✓", "CsvExampleGen", "done"], ["-", "Transform", "skipped"]]
    assert "Component CsvExampleGen is finished." in log_file.read_text()
