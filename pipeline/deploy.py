"""Deploy TF Serving to the current Kubernetes context from the kustomize overlays in serving/k8s.

`kubectl kustomize` renders an overlay and `kubectl apply -f -` applies it; `--dry-run` prints the
rendered manifests instead. Errors say what failed and what to do (kubectl missing, no cluster).
The manifests are package data of `serving`, so deploy works from an installed wheel as from a checkout.

The shipped tree serves the penguin model. With a pipeline config (`--config`), the model it names is
served instead: the shipped tree is copied into a temporary directory and one more kustomize layer on
top of the overlay replaces models.config (the config's model name and where its versions are) and the
readiness probe's model path, so the overlays stay the single source of everything else.
"""
from __future__ import annotations

import posixpath
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import click
import yaml

from pipeline.uris import is_remote

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig

OVERLAYS = ("dev", "prod")


class DeployError(RuntimeError):
    """kubectl is missing, an overlay does not build, or the cluster refused the manifests."""


def k8s_dir() -> Path:
    """The kustomize tree (base and overlays) shipped in the `serving` package, on disk for kubectl."""
    tree = resources.files("serving") / "k8s"
    # kubectl needs a real directory: true for a checkout and an installed wheel, not for a zipped package.
    if not isinstance(tree, Path) or not (tree / "base" / "kustomization.yaml").is_file():
        raise DeployError(f"the Kubernetes manifests are missing from the installed package ({tree}); "
                          "reinstall tfxpipe from a wheel or a checkout")
    return tree


def _kubectl(args: list[str], *, stdin: Optional[str] = None, timeout: float = 120) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise DeployError("kubectl not found on PATH; install it (https://kubernetes.io/docs/tasks/tools/) and retry")
    try:
        done = subprocess.run([kubectl, *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError(f"kubectl {args[0]} timed out after {timeout:.0f}s; is the cluster reachable?") from None
    if done.returncode != 0:
        raise DeployError(f"kubectl {' '.join(args[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _shipped_models_config(overlay: str) -> Path:
    """The models.config an overlay serves: its own (prod: object storage), else the base's (a volume)."""
    own = k8s_dir() / "overlays" / overlay / "config" / "models.config"
    return own if own.is_file() else k8s_dir() / "base" / "config" / "models.config"


def models_config(overlay: str, cfg: "PipelineConfig") -> str:
    """The overlay's models.config serving `cfg.model_name` (version policy and options kept).

    Versions are where that overlay finds them: in object storage, under `kubeflow.serving_base_dir`,
    where the Kubeflow Pusher writes them; on a mounted volume, beside the shipped model's directory.
    """
    from google.protobuf import text_format

    from serving.model_config import read_model_server_config

    shipped = _shipped_models_config(overlay)
    server_config = read_model_server_config(str(shipped))
    models = server_config.model_config_list.config
    if len(models) != 1:
        raise DeployError(f"{shipped} lists {len(models)} models; --config replaces exactly one")
    model = models[0]
    model.base_path = (f"{cfg.kubeflow.serving_base_dir.rstrip('/')}/{cfg.model_name}" if is_remote(model.base_path)
                       else posixpath.join(posixpath.dirname(model.base_path), cfg.model_name))
    model.name = cfg.model_name
    return (f"# Rendered by `tfxpipe deploy --config` from {shipped.relative_to(k8s_dir())}, "
            f"for model {cfg.model_name}.\n" + text_format.MessageToString(server_config))


def model_layer(overlay: str, model_name: str) -> dict[str, Any]:
    """A kustomization on top of `overlay` (at ../k8s/overlays/<overlay>) serving `model_name`."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"../k8s/overlays/{overlay}"],
        "configMapGenerator": [{"name": "tfserving-config", "behavior": "merge", "files": ["models.config"]}],
        "patches": [{
            "target": {"kind": "Deployment", "name": "tfserving"},
            "patch": yaml.safe_dump([{"op": "replace", "value": f"/v1/models/{model_name}",
                                      "path": "/spec/template/spec/containers/0/readinessProbe/httpGet/path"}]),
        }],
    }


def render(overlay: str, cfg: Optional["PipelineConfig"] = None) -> str:
    """The overlay's manifests as one YAML stream; serving `cfg`'s model when a config is given."""
    if overlay not in OVERLAYS:
        raise DeployError(f"unknown overlay {overlay!r}; choose one of {', '.join(OVERLAYS)}")
    if cfg is None:
        return _kubectl(["kustomize", str(k8s_dir() / "overlays" / overlay)])
    # kustomize refuses absolute resource paths, and the installed tree may be read-only: build in a copy.
    with tempfile.TemporaryDirectory(prefix="tfxpipe-deploy-") as tmp:
        shutil.copytree(k8s_dir(), Path(tmp) / "k8s")
        layer = Path(tmp) / "model"
        layer.mkdir()
        (layer / "models.config").write_text(models_config(overlay, cfg))
        (layer / "kustomization.yaml").write_text(yaml.safe_dump(model_layer(overlay, cfg.model_name), sort_keys=False))
        return _kubectl(["kustomize", str(layer)])


def apply(overlay: str, *, context: Optional[str] = None, cfg: Optional["PipelineConfig"] = None) -> str:
    """Render and apply an overlay (serving `cfg`'s model when given); returns kubectl's report of what changed."""
    manifests = render(overlay, cfg)
    args = ["apply", "-f", "-"] + (["--context", context] if context else [])
    return _kubectl(args, stdin=manifests)


@click.command()
@click.option("--overlay", type=click.Choice(OVERLAYS), default="dev", show_default=True,
              help="dev: one replica, model on a PVC; prod: 3+ replicas, model from object storage.")
@click.option("--dry-run", is_flag=True, help="Print the manifests instead of applying them.")
@click.option("--context", default=None, help="kubectl context [default: the current one].")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="Pipeline YAML whose model_name is served [default: the shipped manifests' penguin].")
def deploy(overlay: str, dry_run: bool, context: Optional[str], config_path: Optional[str]) -> None:
    """Deploy TensorFlow Serving (serving/k8s) to a Kubernetes cluster."""
    from pipeline import config as config_lib
    from pipeline.cli_common import fail_on_config_error

    with fail_on_config_error():
        cfg = config_lib.load(config_path, check_data=False).cfg if config_path else None
    try:
        click.echo(render(overlay, cfg) if dry_run else apply(overlay, context=context, cfg=cfg), nl=False)
    except DeployError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
