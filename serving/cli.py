"""`tfxpipe serve` (tensorflow_model_server's flags) and `tfxpipe predict` (raw features in, classes or values out).

Registered on the `tfxpipe` group by pipeline/cli.py. Heavy imports happen inside the commands; `serve`'s
flag defaults come from `serving.options.ServerOptions`, which the server uses too.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from serving.options import default  # the flags' defaults are ServerOptions' (no heavy imports)
from trainer import contract

# tensorflow_model_server flags this server does not implement: named in the error instead of "no such option".
UNSUPPORTED_TF_SERVING_FLAGS = (
    "grpc_socket_path", "rest_api_num_threads", "rest_api_enable_cors_support", "enable_per_model_batching_parameters",
    "num_load_threads", "num_unload_threads", "max_num_load_retries", "load_retry_interval_micros",
    "flush_filesystem_caches", "tensorflow_session_parallelism", "tensorflow_session_config_file",
    "use_alts_credentials", "ssl_config_file", "platform_config_file", "per_process_gpu_memory_fraction",
    "saved_model_tags", "num_request_iterations_for_warmup",
    "version", "remove_unused_fields_from_bundle_metagraph", "prefer_tflite_model", "num_tflite_pools",
    "num_tflite_interpreters_per_pool", "xla_cpu_compilation_enabled", "xla_gpu_compilation_enabled",
    "enable_profiler", "thread_pool_factory_config_file", "rest_api_timeout_in_ms",
)


class _TfServingFlagsCommand(click.Command):
    """Rejects unknown flags with a message that lists what is supported."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            flag = exc.option_name
            name = flag.lstrip("-").split("=", 1)[0]
            supported = ", ".join(sorted(o for p in self.params for o in p.opts if o.startswith("--") and o != "--help"))
            if name in UNSUPPORTED_TF_SERVING_FLAGS:
                reason = f"{flag} is a tensorflow_model_server flag that tfxpipe serve does not implement."
            else:
                reason = f"unknown flag {flag}."
            raise click.UsageError(f"{reason} Supported flags: {supported}", ctx) from None


def _bool_flag(name: str, help_text: str):
    """A TF-Serving-style boolean: `--flag`, `--flag=true` or `--flag=false`; its default is ServerOptions'."""
    return click.option(name, type=click.BOOL, is_flag=False, flag_value=True, default=default(name.lstrip("-")),
                        show_default=True, help=help_text)


@click.command(cls=_TfServingFlagsCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=int, default=default("port"), show_default=True, help="gRPC port; 0 disables gRPC.")
@click.option("--rest_api_port", type=int, default=default("rest_api_port"), show_default=True,
              help="REST port; 0 disables REST (tensorflow_model_server defaults to 0, its Docker image to 8501).")
@click.option("--model_name", default=default("model_name"), show_default=True,
              help="Model name (ignored with --model_config_file).")
@click.option("--model_base_path", default=default("model_base_path"),
              help="Directory holding <version>/saved_model.pb (ignored with --model_config_file).")
@click.option("--model_config_file", default=default("model_config_file"),
              help="Text-format ModelServerConfig: several models, version policies, labels.")
@click.option("--model_config_file_poll_wait_seconds", type=float, show_default=True,
              default=default("model_config_file_poll_wait_seconds"),
              help="Re-read --model_config_file this often; 0 reads it once.")
@click.option("--file_system_poll_wait_seconds", type=float, default=default("file_system_poll_wait_seconds"),
              show_default=True,
              help="Seconds between polls for new versions; 0 polls once, negative never.")
@_bool_flag("--enable_batching", "Merge concurrent requests into one model call.")
@click.option("--batching_parameters_file", default=default("batching_parameters_file"),
              help="Text-format BatchingParameters (needs --enable_batching).")
@click.option("--monitoring_config_file", default=default("monitoring_config_file"),
              help="Text-format MonitoringConfig (Prometheus endpoint on the REST port).")
@_bool_flag("--allow_version_labels_for_unavailable_models", "Allow labels on versions that are not loaded yet.")
@_bool_flag("--enable_model_warmup", "Replay assets.extra/tf_serving_warmup_requests at load.")
@_bool_flag("--enable_signature_method_name_check", "Require classify/regress method names on signatures.")
@click.option("--tensorflow_intra_op_parallelism", type=int, default=default("tensorflow_intra_op_parallelism"),
              show_default=True, help="0 = TensorFlow's choice.")
@click.option("--tensorflow_inter_op_parallelism", type=int, default=default("tensorflow_inter_op_parallelism"),
              show_default=True, help="0 = TensorFlow's choice.")
@click.option("--grpc_max_threads", type=int, default=default("grpc_max_threads"), show_default=True,
              help="Threads serving gRPC requests.")
@click.option("--grpc_channel_arguments", default=default("grpc_channel_arguments"),
              help="Comma-separated gRPC server arguments, e.g. grpc.max_receive_message_length=4194304 "
                   "(larger requests get RESOURCE_EXHAUSTED; default: 2 GiB as in TF Serving).")
@click.option("--host", default=default("host"), show_default=True,
              help="[tfxpipe] Address to bind (TF Serving binds all).")
@click.option("--rest_api_max_body_bytes", type=int, default=default("rest_api_max_body_bytes"), show_default=True,
              help="[tfxpipe] Larger REST bodies get HTTP 413.")
@click.option("--rest_api_read_timeout_seconds", type=float, default=default("rest_api_read_timeout_seconds"),
              show_default=True,
              help="[tfxpipe] REST clients stalling in their request headers or body this long get HTTP 408.")
@click.option("--request_log_queue_size", type=int, default=default("request_log_queue_size"), show_default=True,
              help="[tfxpipe] Sampled requests waiting to be logged (models with a logging_config); "
                   "beyond it they are dropped and counted, never waited for.")
@click.option("--request_log_max_file_bytes", type=int, default=default("request_log_max_file_bytes"),
              show_default=True, help="[tfxpipe] A request log file is completed at this size...")
@click.option("--request_log_rotate_seconds", type=float, default=default("request_log_rotate_seconds"),
              show_default=True, help="[tfxpipe] ...or at this age.")
def serve(**flags: Any) -> None:
    """Serve SavedModels over TF Serving's REST and gRPC APIs (tensorflow_model_server's flags).

    Example: tfxpipe serve --model_name=penguin --model_base_path=$PWD/runs/serving/penguin
    """
    from serving.errors import ServingError
    from serving.server import ModelServer, ServerOptions

    if flags["model_base_path"] and not flags["model_config_file"]:
        flags["model_base_path"] = os.path.abspath(flags["model_base_path"])
    try:
        server = ModelServer(ServerOptions(**flags))
        click.echo("tfxpipe serve: loading models...", err=True)
        server.run(on_ready=_announce)
    except ServingError as exc:
        click.secho(f"error: {exc.code.name}: {exc.message}", fg="red", err=True)
        raise SystemExit(1) from None
    except OSError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None


def _announce(server) -> None:
    for name in server.registry.model_names():
        versions = server.registry.status(name)
        serving = sorted(s.version for s in versions if s.state == "AVAILABLE")
        click.echo(f"serving model {name!r} versions {serving}", err=True)
    host = server.options.host
    if server.grpc_port:
        click.echo(f"gRPC  {host}:{server.grpc_port}", err=True)
    if server.rest_port:
        click.echo(f"REST  http://{host}:{server.rest_port}/v1/models/<name>  (Ctrl-C or SIGTERM stops)", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_name", required=True, help="Model name on the server.")
@click.option("--rest", "rest_url", default=None, help="REST base URL [default: http://localhost:8501].")
@click.option("--grpc", "grpc_target", default=None, help="gRPC target host:port, instead of REST.")
@click.option("--json", "json_rows", default=None, help="One row (JSON object) or a list of rows.")
@click.option("--file", "rows_file", type=click.File("r"), default=None, help="JSON Lines file of rows ('-' = stdin).")
@click.option("--signature", default=contract.SERVING_SIGNATURE, show_default=True,
              help="Signature taking raw features (the exported model's default).")
@click.option("--version", type=int, default=None, help="Model version (default: latest).")
@click.option("--label", default=None, help="Version label (e.g. stable).")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds per request.")
@click.option("--retries", type=int, default=3, show_default=True, help="Attempts when the server is UNAVAILABLE.")
@click.option("--format", "output_format", type=click.Choice(["table", "jsonl"]), default="table", show_default=True)
def predict(model_name: str, rest_url: str | None, grpc_target: str | None, json_rows: str | None, rows_file,
            signature: str, version: int | None, label: str | None, timeout: float, retries: int,
            output_format: str) -> None:
    """Send raw feature rows to a TF-Serving-compatible server and print predicted classes (or values)."""
    from serving import client as client_lib

    if rest_url and grpc_target:
        raise click.UsageError("give --rest or --grpc, not both")
    if (json_rows is None) == (rows_file is None):
        raise click.UsageError("give exactly one of --json or --file")
    try:
        rows = _rows(json_rows, rows_file, client_lib)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options = dict(version=version, label=label, timeout=timeout, retry=client_lib.RetryPolicy(attempts=retries))
    try:
        with client_lib.connect(model_name, rest=None if grpc_target else (rest_url or "http://localhost:8501"),
                                grpc_target=grpc_target, **options) as connection:
            predictions = connection.predict(rows, signature_name=signature)
    except client_lib.ServingClientError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    except ValueError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(2) from None
    _print(predictions, output_format)


def _rows(json_rows: str | None, rows_file, client_lib) -> list[dict]:
    if json_rows is not None:
        try:
            value = json.loads(json_rows)
        except ValueError as exc:
            raise ValueError(f"--json is not valid JSON: {exc}") from None
        rows = value if isinstance(value, list) else [value]
        if not rows or not all(isinstance(row, dict) for row in rows):
            raise ValueError("--json must be an object of features or a non-empty list of them")
        return rows
    rows = client_lib.read_rows(rows_file)
    if not rows:
        raise ValueError("--file holds no rows")
    return rows


def _print(predictions, output_format: str) -> None:
    """Classifiers: predicted class and each class's score; regressors: the predicted value."""
    if output_format == "jsonl":
        for prediction in predictions:
            line = ({"value": prediction.value} if prediction.value is not None else
                    {"predicted_class": prediction.predicted_class, "scores": prediction.class_scores})
            click.echo(json.dumps({**line, "outputs": dict(prediction.outputs)}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="predictions")
    table.add_column("row", justify="right")
    if predictions and predictions[0].value is not None:
        table.add_column("value", justify="right")
        for index, prediction in enumerate(predictions):
            table.add_row(str(index), f"{prediction.value:.4g}")
    else:
        class_names = list(predictions[0].class_scores) if predictions else []
        table.add_column("predicted class")
        for name in class_names:
            table.add_column(name, justify="right")
        for index, prediction in enumerate(predictions):
            scores = prediction.class_scores
            table.add_row(str(index), str(prediction.predicted_class),
                          *(f"{scores.get(n, float('nan')):.3f}" for n in class_names))
    Console(file=sys.stdout, soft_wrap=True).print(table)
