"""`tfxpipe`: a thin command line over the library.

Each command parses flags, calls one library function and renders its result. Heavy imports
(TensorFlow, TFX) happen inside the commands so that `tfxpipe --help` is instant.
Commands that belong to other packages (serving, deployment) are registered from their modules.
"""
from __future__ import annotations

import click

from pipeline.cli_common import exit_now, fail_on_config_error, setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Show TensorFlow/TFX logs (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """tfxpipe: validate, transform, train, evaluate, push and serve a TFX model."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    setup_logging(verbose)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Pipeline YAML (relative paths inside it resolve against its folder).")
@click.option("--data", default=None, help="Override the config's data.path (a path relative to the working directory).")
@click.option("--workdir", default=None, type=click.Path(file_okay=False), help="Run directory [default: runs/<config name>/].")
@click.option("--runner", type=click.Choice(["local", "beam"]), default="local", show_default=True,
              help="local: TFX LocalDagRunner; beam: TFX BeamDagRunner (each component a Beam stage).")
@click.option("--beam-arg", "beam_args", multiple=True, help="Extra Apache Beam option, repeatable (e.g. --beam-arg=--direct_num_workers=2).")
@click.option("--span", type=click.IntRange(min=0), default=None,
              help="With {SPAN} in data.path: ingest this span (a backfill) [default: the latest, if new].")
@click.pass_context
def run(ctx: click.Context, config_path: str, data: str | None, workdir: str | None, runner: str,
        beam_args: tuple[str, ...], span: int | None) -> None:
    """Run the pipeline end to end on this machine and print a summary.

    Relative paths in the config (data.path, validation.schema_path, ...) are resolved against the config
    file's folder, wherever you run from; --data against the working directory.

    Exit codes: 0 succeeded, 1 failed or data rejected, 2 bad config or data (e.g. a span that does not
    exist), 3 no new span since the last run (nothing to do: safe for cron).
    """
    from pipeline import config as config_lib

    with fail_on_config_error():
        loaded = config_lib.load(config_path, data=data)
        # Only a valid config pays for these (ML Metadata, then TFX inside run_local, after the data preflight).
        from pipeline import runners, report, spans

        try:
            result = runners.run_local(loaded, workdir=workdir, runner=runner, extra_beam_args=list(beam_args),
                                       verbose=ctx.obj["verbose"], span=span)
        except spans.NoNewSpan as exc:
            click.echo(f"nothing to do: {exc}")
            raise SystemExit(NO_NEW_SPAN_EXIT) from None
    report.print_run_summary(result)
    raise SystemExit(0 if result.succeeded else 1)


#: `tfxpipe run`'s exit code when the latest span was already ingested (distinct from a failure).
NO_NEW_SPAN_EXIT = 3


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Pipeline YAML (relative paths inside it resolve against its folder).")
@click.option("--logs", required=True, help="Directory of request logs (PredictionLog TFRecords).")
@click.option("--workdir", default=None, type=click.Path(file_okay=False), help="Run directory [default: runs/<config name>/].")
def monitor(config_path: str, logs: str, workdir: str | None) -> None:
    """Compare logged live traffic with the latest validated training data; exit 1 on skew.

    Thresholds are validation.serving_skew. Exit codes: 0 no skew, 1 skew, 2 nothing to compare with.
    """
    from pathlib import Path

    from pipeline import config as config_lib
    from pipeline import monitor as monitor_lib
    from pipeline import runners

    with fail_on_config_error():
        loaded = config_lib.load(config_path, check_data=False)
        layout = runners.Workdir(Path(workdir) if workdir else runners.default_workdir(loaded))
        result = monitor_lib.check(loaded, layout.metadata_path, logs)
    click.echo(result.report)
    for row in result.distances:
        mark = "SKEWED" if row["exceeded"] else "ok"
        click.echo(f"  {mark:<7}{row['feature']}: {row['measure']} {row['distance']:.4f} (threshold {row['threshold']:g})")
    if result.skewed:
        features = ", ".join(row["feature"] for row in result.findings)
        click.secho(f"serving skew: {features} (logged traffic vs training span {result.training_span})", fg="red")
        raise SystemExit(1)
    click.echo("no serving skew")


@main.command("serve-check")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Pipeline YAML (relative paths inside it resolve against its folder).")
@click.option("--workdir", default=None, type=click.Path(file_okay=False), help="Run directory [default: runs/<config name>/].")
def serve_check(config_path: str, workdir: str | None) -> None:
    """Serve the pushed model locally and query it once over REST and once over gRPC."""
    from pathlib import Path

    from pipeline import config as config_lib
    from pipeline import runners
    from pipeline.serve_check import serve_and_query

    with fail_on_config_error():
        loaded = config_lib.load(config_path)
        layout = runners.Workdir(Path(workdir) if workdir else runners.default_workdir(loaded))
        check = serve_and_query(loaded, layout.serving_dir)
    click.echo(f"Served {loaded.cfg.model_name} version {check.version} from {layout.serving_dir} "
               "(TF-Serving-compatible local server)")
    click.echo(f"  request: {check.row}")
    for protocol, prediction in (("REST", check.rest_prediction), ("gRPC", check.grpc_prediction)):
        click.echo(f"  {protocol:<4} → {prediction.summary()}")


@main.command("compile")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Pipeline YAML (relative paths inside it resolve against its folder).")
@click.option("--target", type=click.Choice(["kubeflow"]), default="kubeflow", show_default=True)
@click.option("--output", default="pipeline.json", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the KFP v2 pipeline JSON.")
@click.option("--pipeline-root", default=None, help="Override kubeflow.pipeline_root (an object-store URI).")
def compile_command(config_path: str, target: str, output: str, pipeline_root: str | None) -> None:
    """Compile the pipeline for Kubeflow Pipelines (KubeflowV2DagRunner), offline."""
    from pipeline import config as config_lib

    with fail_on_config_error():
        loaded = config_lib.load(config_path, check_data=False)
        from pipeline import kubeflow  # imports TFX (seconds): only once the config is known to be valid

        path = kubeflow.compile_pipeline(loaded, output, pipeline_root=pipeline_root)
    click.echo(f"wrote {path} (target {target}, image {loaded.cfg.kubeflow.image})")


@main.command()
@click.option("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080.")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Pipeline YAML (relative paths inside it resolve against its folder).")
@click.option("--experiment", default=None, help="KFP experiment name [default: the pipeline name].")
@click.option("--run-name", default=None, help="Run name [default: generated by KFP].")
@click.option("--namespace", default=None, help="Kubeflow namespace (multi-user installs).")
@click.option("--pipeline-root", default=None, help="Override kubeflow.pipeline_root.")
@click.option("--span", type=click.IntRange(min=0), default=None,
              help="With {SPAN} in data.path: ingest this span (and with data.window K the K - 1 before it) "
                   "[default: the latest when the run starts, alone].")
@click.option("--recurring", is_flag=True, help="Create a KFP recurring run on --cron instead of one run.")
@click.option("--cron", default=None, help="With --recurring: when to run, e.g. '0 3 * * *' (daily at 03:00).")
def submit(host: str, config_path: str, experiment: str | None, run_name: str | None, namespace: str | None,
           pipeline_root: str | None, span: int | None, recurring: bool, cron: str | None) -> None:
    """Compile the pipeline and submit a run (or a recurring run) to Kubeflow Pipelines with the kfp SDK."""
    import tempfile

    from pipeline import config as config_lib

    if recurring != (cron is not None):
        click.secho("error: --recurring and --cron go together (e.g. --recurring --cron '0 3 * * *')", fg="red", err=True)
        raise SystemExit(2)
    with fail_on_config_error():
        loaded = config_lib.load(config_path, check_data=False)
        from pipeline import kubeflow  # imports TFX (seconds): only once the config is known to be valid

        arguments = kubeflow.span_arguments(span, loaded.cfg.data.window) if span is not None else {}
        experiment = experiment or loaded.cfg.pipeline_name
        with tempfile.TemporaryDirectory() as tmp:
            package = kubeflow.compile_pipeline(loaded, f"{tmp}/pipeline.json", pipeline_root=pipeline_root)
            try:
                if recurring:
                    job_id = kubeflow.schedule(package, host=host, cron=cron, experiment=experiment,
                                               job_name=run_name or f"{loaded.cfg.pipeline_name}-recurring",
                                               namespace=namespace, arguments=arguments)
                else:
                    run_id = kubeflow.submit(package, host=host, experiment=experiment, run_name=run_name,
                                             namespace=namespace, arguments=arguments)
            except kubeflow.SubmitError as exc:
                click.secho(f"error: {exc}", fg="red", err=True)
                raise SystemExit(1) from None
    if recurring:
        click.echo(f"created recurring run {job_id} on {host} (cron {kubeflow.kfp_cron(cron)!r}, one run at a time)")
    else:
        click.echo(f"submitted run {run_id} to {host}")


def _register_optional_commands() -> None:
    """Commands implemented in other packages; each module exposes click commands."""
    import importlib

    for module_name, names in (
        ("serving.cli", ("serve", "predict")),
        ("pipeline.deploy", ("deploy",)),
        ("pipeline.versions_cli", ("models", "rollback", "promote")),
        ("pipeline.report_cli", ("report", "runs", "lineage")),
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


def entrypoint() -> None:
    """The `tfxpipe` console script: run the CLI, then exit without interpreter teardown noise."""
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            click.echo(exc.code, err=True)
        exit_now(code)
    exit_now(0)
