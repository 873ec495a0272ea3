"""`tfxpipe deploy` in-process: dry-run renders the overlay; kubectl failures are clear errors."""
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import deploy
from pipeline.cli import main


def test_manifests_are_found_in_the_serving_package():
    import serving

    assert deploy.k8s_dir() == Path(serving.__file__).parent / "k8s"
    assert (deploy.k8s_dir() / "overlays/dev/kustomization.yaml").is_file()


@pytest.mark.skipif(shutil.which("kubectl") is None,
                    reason="kubectl not found on PATH: install it (https://kubernetes.io/docs/tasks/tools/)")
def test_dry_run_prints_the_overlay():
    result = CliRunner().invoke(main, ["deploy", "--overlay", "dev", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "kind: Deployment" in result.output and "namespace: tfxpipe-dev" in result.output


def _fake_kubectl(tmp_path, monkeypatch, script: str) -> None:
    kubectl = tmp_path / "kubectl"
    kubectl.write_text("#!/bin/sh\n" + script)
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_unreachable_cluster_is_a_clear_error(tmp_path, monkeypatch):
    _fake_kubectl(tmp_path, monkeypatch, 'if [ "$1" = kustomize ]; then echo "kind: Service"; exit 0; fi\n'
                                         'echo "The connection to the server localhost:8080 was refused" >&2; exit 1\n')
    result = CliRunner().invoke(main, ["deploy", "--overlay", "prod"])
    assert result.exit_code == 1
    assert "error: kubectl apply -f failed: The connection to the server localhost:8080 was refused" in result.output


def test_apply_passes_context_and_manifests(tmp_path, monkeypatch):
    log = tmp_path / "calls"
    _fake_kubectl(tmp_path, monkeypatch, f'echo "$@" >> {log}\nif [ "$1" = kustomize ]; then echo "kind: Service"; '
                                         f'else cat >> {log}; echo "service/tfserving configured"; fi\n')
    assert deploy.apply("dev", context="kind-tfxpipe") == "service/tfserving configured\n"
    calls = log.read_text()
    assert "apply -f - --context kind-tfxpipe" in calls and "kind: Service" in calls


def test_missing_kubectl(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(deploy.DeployError, match="kubectl not found on PATH"):
        deploy.render("dev")
