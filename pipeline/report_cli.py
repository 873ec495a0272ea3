"""`tfxpipe report`, `tfxpipe runs` and `tfxpipe lineage`: what happened, read back from a work directory.

Registered on the `tfxpipe` group by pipeline/cli.py. Each takes `--workdir DIR` (enough on its own: the
metadata store holds what they show) or `--config FILE` (its default work directory, runs/<name>/).
Read-only: ml_metadata, protobuf and files; no TensorFlow, TFX, TFMA or Beam (the HTML report adds
Jinja2 and matplotlib).
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Optional

import click

from pipeline.cli_common import fail_on_config_error

_CONFIG = click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
                       help="Pipeline YAML: report on its default work directory, runs/<config name>/.")
_WORKDIR = click.option("--workdir", default=None, type=click.Path(file_okay=False),
                        help="Run directory (holds metadata.sqlite) [default: runs/<config name>/ of --config].")
_FORMAT = click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="A table/tree for people, or JSON for programs.")


def _workdir(config_path: Optional[str], workdir: Optional[str]):
    """The work directory's layout, and the loaded config when one was given."""
    from pipeline import runners

    if workdir is None and config_path is None:
        click.secho("error: give --workdir DIR (a run directory) or --config FILE (uses runs/<config name>/)",
                    fg="red", err=True)
        raise SystemExit(2)
    loaded = None
    if config_path is not None:
        from pipeline import config as config_lib

        with fail_on_config_error():
            loaded = config_lib.load(config_path, check_data=False)
    layout = runners.Workdir(Path(workdir) if workdir else runners.default_workdir(loaded))
    if not layout.metadata_path.exists():
        click.secho(f"error: no runs in {layout.root} yet (no {layout.metadata_path.name}); "
                    "run `tfxpipe run --config FILE` first, or point --workdir at a run directory", fg="red", err=True)
        raise SystemExit(1)
    return layout, loaded


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_CONFIG
@_WORKDIR
@click.option("--run", "run_id", default=None, help="A run id as `tfxpipe runs` lists it [default: the latest run].")
@click.option("--output", default=None, type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report here (charts inline; opens offline).")
def report(config_path: Optional[str], workdir: Optional[str], run_id: Optional[str], output: Optional[str]) -> None:
    """Show what a run did: the terminal summary, or with --output an HTML report of its data, schema and
    findings, training, evaluation against the baseline, and why it was (not) pushed."""
    from pipeline import run_outcome
    from pipeline import report as report_lib
    from pipeline.spans import has_span

    layout, loaded = _workdir(config_path, workdir)
    store = run_outcome.open_store(layout.metadata_path)
    try:
        run = run_outcome.find_run(store, run_id)
    except run_outcome.UnknownRun as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    from_config = dict(class_names=list(loaded.cfg.label.classes), ingests_spans=has_span(loaded.data_path)) if loaded else {}
    result = run_outcome.read_run(store, run, **from_config)
    if output is None:
        report_lib.print_run_summary(result)
        return
    from pipeline import html_report

    path = html_report.write(layout.metadata_path, Path(output), result=result)
    click.echo(f"wrote {path} (run {result.run_id})")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_CONFIG
@_WORKDIR
@_FORMAT
def runs(config_path: Optional[str], workdir: Optional[str], output_format: str) -> None:
    """List past runs from ML Metadata: start, duration, span, component states, headline metric,
    blessed, pushed version."""
    from rich.console import Console
    from rich.table import Table

    from pipeline import run_history

    layout, _ = _workdir(config_path, workdir)
    rows = run_history.runs(layout.metadata_path)
    if output_format == "json":
        click.echo(json.dumps([r.as_json() for r in rows], indent=2))
        return
    table = Table(title=f"Runs in {layout.root}", title_justify="left")
    for column in ("run", "started (UTC)", "seconds", "span", "status", "components", "metric", "blessed", "pushed"):
        table.add_column(column, justify="right" if column in ("seconds", "metric") else "left")
    for r in rows:
        started = datetime.datetime.fromtimestamp(r.started, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") \
            if r.started else "-"
        metric = f"{r.headline_metric} {r.headline_value:.4g}" if r.headline_metric else "-"
        blessed = "-" if r.blessed is None else ("yes" if r.blessed else "no")
        table.add_row(r.run_id, started, f"{r.seconds:.0f}", "-" if r.span is None else str(r.span), r.status,
                      run_history.component_summary(r.components), metric, blessed, r.pushed_version or "-")
    Console(width=200).print(table)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_CONFIG
@_WORKDIR
@_FORMAT
@click.argument("model_version", metavar="MODEL_NAME:VERSION")
def lineage(config_path: Optional[str], workdir: Optional[str], output_format: str, model_version: str) -> None:
    """What made a pushed version: ExampleGen's output (span, URI), statistics and data validation, schema,
    transform graph, trainer hyper-parameters and code, evaluation and blessings."""
    from pipeline import lineage as lineage_lib

    try:
        model_name, version = lineage_lib.parse_model_version(model_version)
    except ValueError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(2) from None
    layout, _ = _workdir(config_path, workdir)
    try:
        found = lineage_lib.lineage(layout.metadata_path, model_name, version)
    except lineage_lib.LineageError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    if output_format == "json":
        click.echo(json.dumps(found, indent=2))
        return
    from rich.console import Console

    Console(width=200).print(lineage_lib.tree(found), highlight=False)
