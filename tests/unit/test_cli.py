"""The CLI in-process: every command has --help, and bad configs exit 2 with a one-screen message."""
import pytest
from click.testing import CliRunner

from pipeline.cli import main


def _commands():
    return sorted(main.commands)


def test_core_commands_are_registered():
    assert {"run", "compile", "submit"} <= set(main.commands)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--help" in result.output


def test_run_with_bad_config_exits_2_before_any_tfx_work(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline_name: x\nmodel_name: x\ndata: {path: nowhere}\nfeatures: []\nlabel: {name: y, classes: [a, b]}\nextra_key: 1\n")
    result = CliRunner().invoke(main, ["run", "--config", str(bad)])
    assert result.exit_code == 2
    assert "extra_key: unknown key" in result.output
    assert "features: List should have at least 1 item" in result.output
    assert "Traceback" not in result.output


def test_compile_with_missing_config_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["compile", "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "not found" in result.output


# --- continuous training: spans, the work-directory lock, monitor ------------------------------------------

def _span_project(tmp_path, spans=(1, 2)):
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for n in spans:
        (tmp_path / "data" / f"span-{n}").mkdir(parents=True)
        shutil.copy(root / "data/penguins/penguins.csv", tmp_path / "data" / f"span-{n}" / "penguins.csv")
    return root / "configs/penguin.yaml", str(tmp_path / "data" / "span-{SPAN}")


def test_run_of_a_span_that_does_not_exist_exits_2_naming_the_spans_present(tmp_path):
    config_path, data = _span_project(tmp_path)
    result = CliRunner().invoke(main, ["run", "--config", str(config_path), "--data", data, "--span", "5",
                                       "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 2, result.output
    assert "--span 5:" in result.output and "spans present under" in result.output and "1, 2" in result.output


def test_run_with_no_new_span_exits_3_and_says_how_to_rerun(tmp_path):
    from tests.support import mlmd_records

    config_path, data = _span_project(tmp_path)
    (tmp_path / "work").mkdir()
    store = mlmd_records.writable_store(tmp_path / "work" / "metadata.sqlite")
    mlmd_records.record(store, mlmd_records.start_run(store, "run-1"), "CsvExampleGen",
                        outputs={"examples": mlmd_records.artifact("Examples", span=2)})
    result = CliRunner().invoke(main, ["run", "--config", str(config_path), "--data", data,
                                       "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 3, result.output
    assert "no new span since the last run" in result.output and "--span 2" in result.output


def _hold_workdir_lock(root: str, ready, release) -> None:
    from pathlib import Path

    from pipeline import recovery

    with recovery.exclusive_workdir(Path(root)):
        ready.set()
        release.wait(20)


def test_overlapping_local_runs_are_refused_by_the_workdir_lock(tmp_path):
    """What makes a cron'd `tfxpipe run` safe: a run that starts while another holds the work directory
    exits 2 before any TFX work, naming the holder, and leaves the other run alone."""
    import multiprocessing
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    workdir = tmp_path / "work"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_workdir_lock, args=(str(workdir), ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        result = CliRunner().invoke(main, ["run", "--config", str(root / "configs/penguin.yaml"),
                                           "--workdir", str(workdir)])
        assert result.exit_code == 2, result.output
        assert f"another tfxpipe run (pid {holder.pid}) is using {workdir}" in result.output
        assert holder.is_alive()
    finally:
        release.set()
        holder.join()
    assert not (workdir / "metadata.sqlite").exists(), "the refused run did no work"


def test_monitor_without_thresholds_or_runs_exits_2(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = CliRunner().invoke(main, ["monitor", "--config", str(root / "configs/penguin.yaml"),
                                       "--logs", str(tmp_path), "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 2, result.output
    assert "validation.serving_skew is empty" in result.output


def test_recurring_needs_cron():
    result = CliRunner().invoke(main, ["submit", "--host", "http://x", "--config", "c.yaml", "--recurring"])
    assert result.exit_code == 2 and "--recurring and --cron go together" in result.output
