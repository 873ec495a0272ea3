"""Compile the shared pipeline for Kubeflow Pipelines (KubeflowV2DagRunner) and submit it with kfp.

The DAG is the one `create_pipeline` builds for local runs; only paths, Beam arguments, the image and
container resources change. Paths inside configs (data, curated schema) are re-rooted at the project
directory inside the pipeline image (`kubeflow.project_root`), so the bundled data and schemas work
in-cluster without extra uploads; point `kubeflow.data_path` at a bucket for real data.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from pipeline.config import ConfigError, LoadedConfig, ResourcesConfig, project_root
from pipeline.uris import is_remote
from pipeline.pipeline import PipelinePaths, create_pipeline


class SubmitError(RuntimeError):
    """Submission failed for a reason the user can fix (host unreachable, auth, bad package)."""


def _in_image(loaded: LoadedConfig, local_path: Optional[str]) -> Optional[str]:
    """Map a path under the local project root to the same path inside the pipeline image."""
    if local_path is None or is_remote(local_path):
        return local_path
    try:
        relative = Path(local_path).resolve().relative_to(project_root(loaded.source))
    except ValueError:
        raise ConfigError(
            f"kubeflow.data_path: {local_path!r} is outside the project, so the pipeline image cannot see it; "
            "set kubeflow.data_path to an object-store URI (gs://, s3://)") from None
    return os.path.join(loaded.cfg.kubeflow.project_root, str(relative))


def kubeflow_paths(loaded: LoadedConfig, pipeline_root: Optional[str] = None) -> PipelinePaths:
    kf = loaded.cfg.kubeflow
    return PipelinePaths(
        pipeline_root=pipeline_root or kf.pipeline_root,
        data_path=kf.data_path or _in_image(loaded, loaded.data_path),
        serving_dir=kf.serving_base_dir,
        schema_path=_in_image(loaded, loaded.schema_path),
    )


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
    pipeline = create_pipeline(loaded, kubeflow_paths(loaded, pipeline_root), beam_args=list(kf.beam_args))
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
    runner.run(pipeline, write_out=True)
    return output


def submit(package: Path, *, host: str, experiment: Optional[str] = None, run_name: Optional[str] = None,
           namespace: Optional[str] = None, timeout: float = 10.0) -> str:
    """Submit a compiled package to the KFP API at `host`; returns the run id.

    TFX writes a Vertex-style PipelineJob (`pipelineSpec` + `runtimeConfig`); the KFP API takes the
    bare pipeline spec plus the pipeline root, so we unwrap it here.
    """
    kfp = _import_kfp()
    job = json.loads(package.read_text())
    spec, pipeline_root = job.get("pipelineSpec", job), job.get("runtimeConfig", {}).get("gcsOutputDirectory")
    _check_reachable(host, timeout)
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "pipeline.json"
        spec_file.write_text(json.dumps(spec))
        try:
            client = kfp.Client(host=host, namespace=namespace)
            run = client.create_run_from_pipeline_package(
                str(spec_file), arguments={}, run_name=run_name, experiment_name=experiment,
                namespace=namespace, pipeline_root=pipeline_root)
        except Exception as exc:  # kfp raises ApiException, MaxRetryError, ValueError...
            raise SubmitError(f"Kubeflow Pipelines at {host} rejected the run: {exc}") from exc
    return run.run_id


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
