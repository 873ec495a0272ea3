"""Deploy TF Serving to the current Kubernetes context from the kustomize overlays in serving/k8s.

`kubectl kustomize` renders an overlay and `kubectl apply -f -` applies it; `--dry-run` prints the
rendered manifests instead. Errors say what failed and what to do (kubectl missing, no cluster).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

import click

K8S_DIR = Path(__file__).resolve().parent.parent / "serving" / "k8s"
OVERLAYS = ("dev", "prod")


class DeployError(RuntimeError):
    """kubectl is missing, an overlay does not build, or the cluster refused the manifests."""


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
    return _kubectl(["kustomize", str(K8S_DIR / "overlays" / overlay)])


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
