"""Deploy TF Serving to the current Kubernetes context from the kustomize overlays in serving/k8s.

`kubectl kustomize` renders an overlay and `kubectl apply -f -` applies it; `--dry-run` prints the
rendered manifests instead. Errors say what failed and what to do (kubectl missing, no cluster).
The manifests are package data of `serving`, so deploy works from an installed wheel as from a checkout.
"""
from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Optional

import click

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


def render(overlay: str) -> str:
    """The overlay's manifests as one YAML stream."""
    if overlay not in OVERLAYS:
        raise DeployError(f"unknown overlay {overlay!r}; choose one of {', '.join(OVERLAYS)}")
    return _kubectl(["kustomize", str(k8s_dir() / "overlays" / overlay)])


def apply(overlay: str, *, context: Optional[str] = None) -> str:
    """Render and apply an overlay; returns kubectl's report of what changed."""
    manifests = render(overlay)
    args = ["apply", "-f", "-"] + (["--context", context] if context else [])
    return _kubectl(args, stdin=manifests)


@click.command()
@click.option("--overlay", type=click.Choice(OVERLAYS), default="dev", show_default=True,
              help="dev: one replica, model on a PVC; prod: 3+ replicas, model from object storage.")
@click.option("--dry-run", is_flag=True, help="Print the manifests instead of applying them.")
@click.option("--context", default=None, help="kubectl context [default: the current one].")
def deploy(overlay: str, dry_run: bool, context: Optional[str]) -> None:
    """Deploy TensorFlow Serving (serving/k8s) to a Kubernetes cluster."""
    try:
        click.echo(render(overlay) if dry_run else apply(overlay, context=context), nl=False)
    except DeployError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
