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


def _breast_cancer():
    from pipeline import config as config_lib

    return config_lib.load(Path(__file__).resolve().parents[2] / "configs/breast_cancer.yaml", check_data=False).cfg


def _served_models(text: str) -> list[tuple[str, str]]:
    from google.protobuf import text_format

    from serving import protos

    config = text_format.Parse(text, protos.load().model_server_config_pb2.ModelServerConfig())
    return [(m.name, m.base_path) for m in config.model_config_list.config]


def test_models_config_names_the_configs_model_where_each_overlay_finds_it():
    cfg = _breast_cancer()
    dev = deploy.models_config("dev", cfg)
    assert _served_models(dev) == [("breast_cancer", "/models/breast_cancer")]
    assert "num_versions: 2" in dev and "penguin" not in dev
    prod = deploy.models_config("prod", cfg)  # object storage: where the Kubeflow Pusher writes
    assert _served_models(prod) == [("breast_cancer", f"{cfg.kubeflow.serving_base_dir}/breast_cancer")]


def test_model_layer_patches_the_readiness_probe_over_the_overlay():
    layer = deploy.model_layer("prod", "breast_cancer")
    assert layer["resources"] == ["../k8s/overlays/prod"]
    assert layer["configMapGenerator"] == [{"name": "tfserving-config", "behavior": "merge", "files": ["models.config"]}]
    assert "value: /v1/models/breast_cancer" in layer["patches"][0]["patch"]


@pytest.mark.skipif(shutil.which("kubectl") is None,
                    reason="kubectl not found on PATH: install it (https://kubernetes.io/docs/tasks/tools/)")
def test_dry_run_with_a_config_serves_its_model():
    config = Path(__file__).resolve().parents[2] / "configs/breast_cancer.yaml"
    result = CliRunner().invoke(main, ["deploy", "--overlay", "dev", "--dry-run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "path: /v1/models/breast_cancer" in result.output and "penguin" not in result.output


def test_deploy_with_a_bad_config_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline_name: x\n")
    result = CliRunner().invoke(main, ["deploy", "--dry-run", "--config", str(bad)])
    assert result.exit_code == 2 and "model_name: required key is missing" in result.output
