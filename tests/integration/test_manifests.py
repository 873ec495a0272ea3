"""Offline checks of what we deploy: every overlay builds, validates against a pinned Kubernetes schema,
passes checkov's policy scan; the Dockerfiles pass hadolint and checkov; the serving configs exist once
and ship, with the manifests, in the wheel `tfxpipe deploy` runs from."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "serving/k8s"
OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSION = "1.30.0"
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


def _checkov() -> str:
    path = os.environ.get("CHECKOV_BIN") or str(ROOT / ".venv-tools/bin/checkov")
    if not Path(path).exists():
        pytest.skip(f"checkov not installed at {path}: it lives in .venv-tools, which `make tools` builds with "
                    "python3.11 (install Python 3.11, e.g. `pyenv install 3.11`, then run `make tools`)")
    return path


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl not found on PATH: install it (https://kubernetes.io/docs/tasks/tools/) "
                    "to render the kustomize overlays")
    return path


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("k8s") / f"{request.param}.yaml"
    out.write_text(subprocess.run([_kubectl(), "kustomize", str(K8S / "overlays" / request.param)],
                                  check=True, capture_output=True, text=True).stdout)
    return out


def test_overlay_has_every_serving_object(rendered):
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered.read_text())}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
            "ServiceAccount", "NetworkPolicy", "Namespace"} <= kinds


def test_deployment_contract(rendered):
    docs = list(yaml.safe_load_all(rendered.read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/penguin"
    assert "livenessProbe" in container and container["resources"]["limits"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/monitoring/prometheus/metrics"
    service = next(d for d in docs if d["kind"] == "Service")
    assert sorted(p["port"] for p in service["spec"]["ports"]) == [8500, 8501]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered_for_breast_cancer(request, tmp_path_factory) -> Path:
    """`tfxpipe deploy --config configs/breast_cancer.yaml --dry-run`: the shipped overlay, serving that model."""
    from pipeline import config as config_lib
    from pipeline import deploy

    _kubectl()
    cfg = config_lib.load(ROOT / "configs/breast_cancer.yaml", check_data=False).cfg
    out = tmp_path_factory.mktemp("k8s-breast-cancer") / f"{request.param}.yaml"
    out.write_text(deploy.render(request.param, cfg))
    return out


def test_overlay_rendered_for_a_config_serves_only_its_model(rendered_for_breast_cancer):
    from serving import model_config

    text = rendered_for_breast_cancer.read_text()
    assert "penguin" not in text
    docs = list(yaml.safe_load_all(text))
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/breast_cancer"
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    assert {"models.config", "batching.config", "monitoring.config"} <= set(config_map["data"])
    models_config = rendered_for_breast_cancer.parent / "models.config"
    models_config.write_text(config_map["data"]["models.config"])
    models = model_config.model_configs(model_config.read_model_server_config(str(models_config)))
    assert [(m.name, m.base_path.rsplit("/", 1)[1]) for m in models] == [("breast_cancer", "breast_cancer")]
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version",
                             KUBERNETES_VERSION, str(rendered_for_breast_cancer)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_object_validates_against_pinned_kubernetes_schema(rendered):
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version",
                             KUBERNETES_VERSION, str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_finds_nothing_in_manifests(rendered):
    result = subprocess.run([_checkov(), "-f", str(rendered), "--framework", "kubernetes", "--compact", "--quiet",
                             "--skip-download"], capture_output=True, text=True, cwd=rendered.parent)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Failed checks: 0" in result.stdout


def test_checkov_finds_nothing_in_dockerfiles():
    args = [a for f in DOCKERFILES for a in ("-f", str(f))]
    result = subprocess.run([_checkov(), *args, "--framework", "dockerfile", "--compact", "--quiet", "--skip-download"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_has_no_warnings(dockerfile):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    result = subprocess.run([hadolint, "--failure-threshold", "warning", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["models.config", "batching.config", "monitoring.config"])
def test_serving_configs_have_one_copy(name):
    """serving/k8s/base/config is the source (kustomize reads only below its directory); configs/serving
    links to it and the serving image copies from it, so there is nothing to keep in step."""
    assert (ROOT / "configs/serving").resolve() == (K8S / "base/config").resolve()
    assert (K8S / "base/config" / name).read_bytes() == (ROOT / "configs/serving" / name).read_bytes()
    assert "COPY serving/k8s/base/config/ /etc/tfserving/" in (ROOT / "docker/serving.Dockerfile").read_text()


def test_serving_configs_parse_as_tf_serving_protos():
    from serving import model_config

    config = K8S / "base/config"
    models = model_config.model_configs(model_config.read_model_server_config(str(config / "models.config")))
    assert [m.name for m in models] == ["penguin"]
    assert model_config.read_batching_options(str(config / "batching.config")).max_batch_size == 64
    assert model_config.read_monitoring_options(str(config / "monitoring.config")).prometheus_enabled


def test_wheel_ships_the_manifests_deploy_renders(tmp_path):
    """`tfxpipe deploy` from an installed wheel finds every manifest and renders what a checkout renders."""
    kubectl = _kubectl()
    source = tmp_path / "src"  # a copy, so that the build leaves no build/ or *.egg-info in the checkout
    # Only what git tracks: the checkout may also hold venvs, runs and the modern stack's root (GBs).
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():
            target.symlink_to(os.readlink(ROOT / name))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, text=True)
    with zipfile.ZipFile(next((tmp_path / "dist").glob("tfxpipe-*.whl"))) as wheel:
        shipped = {n for n in wheel.namelist() if n.startswith("serving/k8s/")}
        wheel.extractall(tmp_path / "site")
    in_checkout = {str(p.relative_to(ROOT)) for p in K8S.rglob("*") if p.is_file()}
    assert shipped == in_checkout
    script = "from pipeline import deploy; print(deploy.k8s_dir()); print(deploy.render('dev'), end='')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    found, manifests = done.stdout.split("\n", 1)
    assert found == str(tmp_path / "site/serving/k8s")
    assert manifests == subprocess.run([kubectl, "kustomize", str(K8S / "overlays/dev")],
                                       check=True, capture_output=True, text=True).stdout


def _secret_findings(directory: Path) -> str:
    skipped = [a for path in (".git", ".venv", ".venv-tools", ".stack", "runs", ".hypothesis") for a in ("--skip-path", path)]
    result = subprocess.run([_checkov(), "-d", str(directory), "--framework", "secrets", "--compact", "--quiet",
                             "--skip-download", *skipped], capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result.stdout


def test_no_secrets_in_the_repository(tmp_path):
    planted = tmp_path / "Dockerfile"  # the scanner must see a planted key, or a clean result means nothing
    planted.write_text("FROM python:3.10\nENV AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n")
    assert "CKV_SECRET_2" in _secret_findings(tmp_path)
    findings = _secret_findings(ROOT)
    assert "FAILED" not in findings, findings[-3000:]
