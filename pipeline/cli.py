"""`tfxpipe`: a thin command line over the library.

Each command parses flags, calls one library function and renders its result. Heavy imports
(TensorFlow, TFX) happen inside the commands so that `tfxpipe --help` is instant.
Commands that belong to other packages (serving, deployment) are registered from their modules.
"""
from __future__ import annotations

import sys

import click

from pipeline.cli_common import fail_on_config_error, setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Show TensorFlow/TFX logs (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """tfxpipe: validate, transform, train, evaluate, push and serve a TFX model."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    setup_logging(verbose)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Pipeline YAML under configs/.")
@click.option("--data", default=None, help="Override the config's data.path.")
@click.option("--workdir", default=None, type=click.Path(file_okay=False), help="Run directory [default: runs/<config name>/].")
@click.option("--runner", type=click.Choice(["local", "beam"]), default="local", show_default=True,
              help="local: TFX LocalDagRunner; beam: TFX BeamDagRunner (each component a Beam stage).")
@click.option("--beam-arg", "beam_args", multiple=True, help="Extra Apache Beam option, repeatable (e.g. --beam-arg=--direct_num_workers=2).")
@click.pass_context
def run(ctx: click.Context, config_path: str, data: str | None, workdir: str | None, runner: str, beam_args: tuple[str, ...]) -> None:
    """Run the pipeline end to end on this machine and print a summary."""
    from pipeline import config as config_lib
    from pipeline import runners, report

    with fail_on_config_error():
        loaded = config_lib.load(config_path, data=data)
    result = runners.run_local(loaded, workdir=workdir, runner=runner, extra_beam_args=list(beam_args),
                               verbose=ctx.obj["verbose"])
    report.print_run_summary(result)
    sys.exit(0 if result.succeeded else 1)


def _register_optional_commands() -> None:
    """Commands implemented in other packages; each module exposes click commands."""
    import importlib

    for module_name, names in (
        ("pipeline.kubeflow_cli", ("compile", "submit")),
        ("serving.cli", ("serve", "predict")),
        ("pipeline.deploy", ("deploy",)),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for name in names:
            command = getattr(module, name, None)
            if command is not None:
                main.add_command(command, name=name)


_register_optional_commands()
