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
