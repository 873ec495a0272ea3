"""`tfxpipe models`, `tfxpipe rollback` and `tfxpipe promote`: pushed versions and their labels.

Registered on the `tfxpipe` group by pipeline/cli.py. Read ml_metadata and files only (no TensorFlow/TFX):
the library is pipeline.model_versions, the config file format serving.version_labels.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Optional

import click

from pipeline.cli_common import fail_on_config_error

_CONFIG = click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
                       help="Pipeline YAML (relative paths inside it resolve against its folder).")
_WORKDIR = click.option("--workdir", default=None, type=click.Path(file_okay=False),
                        help="Run directory [default: runs/<config name>/].")
_MODEL_CONFIG = click.option("--model_config_file", "model_config_file", default=None, type=click.Path(dir_okay=False),
                             help="TF Serving model config file holding the labels "
                                  "[default: <workdir>/serving_model/models.config].")


def _layout(config_path: str, workdir: Optional[str], model_config_file: Optional[str]):
    """(model name, serving dir, metadata path, model config file) for a pipeline config."""
    from pipeline import config as config_lib
    from pipeline import model_versions, runners

    with fail_on_config_error():
        loaded = config_lib.load(config_path, check_data=False)
    layout = runners.Workdir(Path(workdir) if workdir else runners.default_workdir(loaded))
    config_file = Path(model_config_file) if model_config_file else model_versions.default_config_path(layout.serving_dir)
    return loaded.cfg.model_name, layout.serving_dir, layout.metadata_path, config_file


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_CONFIG
@_WORKDIR
@_MODEL_CONFIG
def models(config_path: str, workdir: Optional[str], model_config_file: Optional[str]) -> None:
    """List pushed model versions: push time, span, blessing, metrics, and the stable/canary labels."""
    from pipeline import model_versions

    model_name, serving_dir, metadata_path, config_file = _layout(config_path, workdir, model_config_file)
    versions = model_versions.pushed_versions(serving_dir, model_name, metadata_path, config_file)
    if not versions:
        click.echo(f"no versions of {model_name} pushed under {serving_dir / model_name}")
        return
    click.echo(f"{model_name}: pushed versions under {serving_dir / model_name} (labels from {config_file})")
    for v in versions:
        pushed = datetime.datetime.fromtimestamp(v.pushed_at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        blessed = "n/a" if v.blessed is None else ("yes" if v.blessed else "no")
        spans = ",".join(str(s) for s in v.spans) or "n/a"
        labels = f"  [{', '.join(v.labels)}]" if v.labels else ""
        click.echo(f"  version {v.version}  pushed {pushed} UTC  span {spans}  blessed {blessed}{labels}")
        metrics = ", ".join(f"{name} {value:.4g}" for name, value in v.metrics.items())
        if metrics:
            click.echo(f"      {metrics}")
    if not any(v.labels for v in versions):
        click.echo(f"no labels in {config_file}: a server without labels answers with version {versions[-1].version}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_CONFIG
@_WORKDIR
@_MODEL_CONFIG
@click.option("--to", "to_version", type=int, default=None,
              help="Version to serve [default: the one pushed before the current stable].")
def rollback(config_path: str, workdir: Optional[str], model_config_file: Optional[str],
             to_version: Optional[int]) -> None:
    """Serve an earlier version: point the `stable` and `canary` labels at it in the model config file."""
    from pipeline import model_versions

    model_name, serving_dir, _, config_file = _layout(config_path, workdir, model_config_file)
    try:
        change = model_versions.rollback(serving_dir, model_name, config_file, to=to_version)
    except model_versions.VersionError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    _report(change)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_CONFIG
@_WORKDIR
@_MODEL_CONFIG
@click.option("--version", "version", type=int, default=None, help="Version to promote [default: the newest pushed].")
@click.option("--canary", is_flag=True, help="Label it `canary` only; `stable` stays where it is.")
def promote(config_path: str, workdir: Optional[str], model_config_file: Optional[str], version: Optional[int],
            canary: bool) -> None:
    """Roll forward: label a pushed version `canary`, or `stable` (and `canary`), in the model config file."""
    from pipeline import model_versions

    model_name, serving_dir, _, config_file = _layout(config_path, workdir, model_config_file)
    try:
        change = model_versions.promote(serving_dir, model_name, config_file, version=version, canary=canary)
    except model_versions.VersionError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    _report(change)


def _report(change) -> None:
    moved = ", ".join(f"{label} {change.before.get(label, '-')} -> {version}" for label, version in sorted(change.after.items()))
    click.echo(f"{change.path}: {moved}; versions kept loaded: {list(change.loaded)}")
    click.echo("A server polling the file (--model_config_file_poll_wait_seconds) switches at its next poll.")
