"""Compile the shared pipeline for Kubeflow Pipelines (KubeflowV2DagRunner) and submit it with kfp.

The DAG is the one `create_pipeline` builds for local runs; only paths, Beam arguments, the image and
container resources change. Local paths (data, curated schema), once resolved as `pipeline.config.load`
resolves them, are re-rooted from the local project (`local_project_root`) at the project directory
inside the pipeline image (`kubeflow.project_root`), so the bundled data and schemas work in-cluster
without extra uploads; point `kubeflow.data_path` at a bucket for real data.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from pipeline.config import ConfigError, LoadedConfig, ResourcesConfig
from pipeline.uris import is_remote
from pipeline.pipeline import PipelinePaths, create_pipeline
from pipeline.spans import has_span, previous_slots


class SubmitError(RuntimeError):
    """Submission failed for a reason the user can fix (host unreachable, auth, bad package)."""


def local_project_root(config_path: Path) -> Path:
    """The local directory the pipeline image holds at `kubeflow.project_root` (docker/pipeline.Dockerfile
    copies configs/ and data/ there): the parent of a configs/ folder holding the config, else its folder."""
    config_dir = config_path.resolve().parent
    return config_dir.parent if config_dir.name == "configs" else config_dir


def _in_image(loaded: LoadedConfig, local_path: Optional[str], key: str = "kubeflow.data_path") -> Optional[str]:
    """Map a path under the local project root to the same path inside the pipeline image."""
    if local_path is None or is_remote(local_path):
        return local_path
    try:
        relative = Path(local_path).resolve().relative_to(local_project_root(loaded.source))
    except ValueError:
        raise ConfigError(
            f"{key}: {local_path!r} is outside the project, so the pipeline image cannot see it; "
            f"set {key} to an object-store URI (gs://, s3://)") from None
    return os.path.join(loaded.cfg.kubeflow.project_root, str(relative))


#: The runtime parameter holding ExampleGen's span range (RangeConfig JSON); by default the latest span.
SPAN_PARAMETER = "range_config"
LATEST_SPAN = json.dumps({"rollingRange": {"numSpans": 1}})


def previous_span_parameter_name(slot: int) -> str:
    """The runtime parameter of the window slot `slot` spans before the newest (data.window > 1)."""
    return f"previous_range_config_{slot}"


def span_parameters(window: int) -> tuple:
    """The span ranges as runtime parameters, as the TFX periodic-training RFC recommends: the scheduler
    passes the spans (see `span_arguments`), and a missing span fails ExampleGen instead of silently
    retraining on old data. The newest span's parameter, then one per older window slot; all default to
    the latest span, so a run without arguments trains on that span alone."""
    from tfx import v1 as tfx

    names = [SPAN_PARAMETER] + [previous_span_parameter_name(slot) for slot in range(1, window)]
    return tuple(tfx.dsl.experimental.RuntimeParameter(name=name, ptype=str, default=LATEST_SPAN) for name in names)


def span_arguments(span: int, window: int = 1) -> dict[str, str]:
    """Run arguments that make the compiled pipeline ingest exactly `span`, and with a window the spans
    before it (a slot below span 0 repeats `span`: counted once). The pipeline cannot list the bucket
    before it runs, so every span passed must exist; spans the data gate rejected are left out in-run."""
    def static(number: int) -> str:
        return json.dumps({"staticRange": {"startSpanNumber": number, "endSpanNumber": number}}, sort_keys=True)

    arguments = {SPAN_PARAMETER: static(span)}
    for slot, previous in enumerate(previous_slots(span, window), start=1):
        arguments[previous_span_parameter_name(slot)] = static(previous)
    return arguments


def kubeflow_paths(loaded: LoadedConfig, pipeline_root: Optional[str] = None) -> PipelinePaths:
    kf = loaded.cfg.kubeflow
    data_path = kf.data_path or _in_image(loaded, loaded.data_path)
    return PipelinePaths(
        pipeline_root=pipeline_root or kf.pipeline_root,
        data_path=data_path,
        serving_dir=kf.serving_base_dir,
        schema_path=_in_image(loaded, loaded.schema_path),
        **_span_paths(loaded.cfg.data.window) if has_span(data_path) else {},
        serving_logs=_in_image(loaded, loaded.serving_logs, "validation.serving_logs"),
    )


def _span_paths(window: int) -> dict:
    newest, *previous = span_parameters(window)
    return {"span": newest, "previous_spans": tuple(previous)}


def _resource_spec(resources: ResourcesConfig):
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if resources.cpu:
        spec.cpu_limit = resources.cpu
    if resources.memory_gb:
        spec.memory_limit = resources.memory_gb
    if resources.gpus:
        spec.accelerator.type = resources.gpu_type
        spec.accelerator.count = resources.gpus
    return spec


def compile_pipeline(loaded: LoadedConfig, output: str | os.PathLike, *, pipeline_root: Optional[str] = None) -> Path:
    """Write the KFP v2 PipelineJob JSON for `loaded` to `output` and return its path."""
    from tfx import v1 as tfx

    kf = loaded.cfg.kubeflow
    paths = kubeflow_paths(loaded, pipeline_root)
    pipeline = create_pipeline(loaded, paths, beam_args=list(kf.beam_args))
    default = kf.resources.get("default")
    for component in pipeline.components:
        resources = kf.resources.get(component.id, default)
        if resources is not None and hasattr(component, "with_platform_config"):
            component.with_platform_config(_resource_spec(resources))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=kf.image),
        output_dir=str(output.parent), output_filename=output.name)
    # KFP reads no default from the spec's parameters, so the runtime config carries it (submit forwards it).
    defaults = {parameter.name: LATEST_SPAN for parameter in (paths.span, *paths.previous_spans) if parameter is not None}
    runner.run(pipeline, parameter_values=defaults, write_out=True)
    return output


def _unwrap(package: Path) -> tuple[dict, Optional[str], dict]:
    """TFX writes a Vertex-style PipelineJob (`pipelineSpec` + `runtimeConfig`); the KFP API takes the bare
    pipeline spec, the pipeline root, and the runtime parameters' values (here: their defaults)."""
    job = json.loads(package.read_text())
    runtime = job.get("runtimeConfig", {})
    defaults = {name: next(iter(value.values())) if isinstance(value, dict) else value
                for name, value in runtime.get("parameterValues", runtime.get("parameters", {})).items()}
    return job.get("pipelineSpec", job), runtime.get("gcsOutputDirectory"), defaults


def _with_client(package: Path, host: str, namespace: Optional[str], timeout: float, call, arguments: Optional[dict]):
    """Check `host`, then `call(client, spec_file, pipeline_root, arguments)` with the package's default
    parameter values under `arguments`; kfp's errors become SubmitError."""
    kfp = _import_kfp()
    spec, pipeline_root, defaults = _unwrap(package)
    arguments = {**defaults, **(arguments or {})}
    _check_reachable(host, timeout)
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "pipeline.json"
        spec_file.write_text(json.dumps(spec))
        try:
            return call(kfp.Client(host=host, namespace=namespace), str(spec_file), pipeline_root, arguments)
        except Exception as exc:  # kfp raises ApiException, MaxRetryError, ValueError...
            raise SubmitError(f"Kubeflow Pipelines at {host} rejected the request: {exc}") from exc


def submit(package: Path, *, host: str, experiment: Optional[str] = None, run_name: Optional[str] = None,
           namespace: Optional[str] = None, timeout: float = 10.0, arguments: Optional[dict] = None) -> str:
    """Submit a compiled package to the KFP API at `host`; returns the run id."""
    def create(client, spec_file: str, pipeline_root: Optional[str], arguments: dict):
        return client.create_run_from_pipeline_package(
            spec_file, arguments=arguments, run_name=run_name, experiment_name=experiment,
            namespace=namespace, pipeline_root=pipeline_root).run_id

    return _with_client(package, host, namespace, timeout, create, arguments)


def kfp_cron(expression: str) -> str:
    """KFP's cron format has a leading seconds field (6 fields); a usual 5-field expression gets `0`."""
    fields = expression.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise ConfigError(f"--cron {expression!r}: expected 5 fields (minute hour day month weekday, e.g. '0 3 * * *') "
                      "or KFP's 6 (with seconds first)")


def schedule(package: Path, *, host: str, cron: str, experiment: str, job_name: str,
             namespace: Optional[str] = None, timeout: float = 10.0, arguments: Optional[dict] = None,
             max_concurrency: int = 1) -> str:
    """Create a KFP recurring run of `package` on `cron`; returns the recurring run id.

    One run at a time (`max_concurrency` 1) and no catch-up: a scheduler that was paused starts the
    latest interval only, and ExampleGen ingests whatever span is latest then.
    """
    expression = kfp_cron(cron)

    def create(client, spec_file: str, pipeline_root: Optional[str], arguments: dict):
        experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
        recurring = client.create_recurring_run(
            experiment_id=experiment_id, job_name=job_name, cron_expression=expression,
            max_concurrency=max_concurrency, no_catchup=True, params=arguments,
            pipeline_package_path=spec_file, pipeline_root=pipeline_root)
        return recurring.recurring_run_id

    return _with_client(package, host, namespace, timeout, create, arguments)


def _import_kfp():
    """kfp, or a SubmitError saying what to install (TFX 1.21's kfp extra is empty on Python >= 3.12)."""
    try:
        import kfp
    except ImportError:
        raise SubmitError(
            "submit needs the kfp SDK, which is not installed in this environment: `pip install kfp` (both "
            "locks pin one: kfp 2.5 on Python 3.10, kfp 2.17 on 3.13), or upload the output of `tfxpipe compile "
            "--target kubeflow --output pipeline.json` in the Kubeflow UI") from None
    return kfp


def _check_reachable(host: str, timeout: float) -> None:
    """Fail in seconds with a clear message instead of kfp's long retry loop on a dead host."""
    import httpx

    try:
        httpx.get(host.rstrip("/") + "/apis/v2beta1/healthz", timeout=timeout)
    except httpx.HTTPError as exc:
        raise SubmitError(
            f"cannot reach Kubeflow Pipelines at {host} ({type(exc).__name__}: {exc}); check --host, "
            "port-forward the UI (kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80) or your VPN") from exc
