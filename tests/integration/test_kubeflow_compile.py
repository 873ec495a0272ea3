"""Kubeflow compile: strict KFP IR, the same DAG as the local pipeline, configured image/args, determinism."""
import json
import socket
from pathlib import Path

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import config, kubeflow
from pipeline.pipeline import create_pipeline

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["penguin", "wine"]


@pytest.fixture(scope="module", params=CONFIGS)
def compiled(request, tmp_path_factory):
    loaded = config.load(ROOT / f"configs/{request.param}.yaml", check_data=False)
    out = tmp_path_factory.mktemp(request.param)
    # A local pipeline root: a gs:// root makes the compiler try the network.
    first = kubeflow.compile_pipeline(loaded, out / "a.json", pipeline_root=str(out / "root"))
    second = kubeflow.compile_pipeline(loaded, out / "b.json", pipeline_root=str(out / "root"))
    return loaded, json.loads(first.read_text()), json.loads(second.read_text()), out


def test_parses_strictly_as_kfp_ir(compiled):
    _, job, _, _ = compiled
    json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())  # unknown fields raise
    spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert spec.pipeline_info.name == compiled[0].cfg.pipeline_name
    assert spec.schema_version == "2.0.0"


def test_same_components_in_same_order_as_local(compiled):
    loaded, job, _, out = compiled
    from pipeline.runners import Workdir, pipeline_paths

    local = create_pipeline(loaded, pipeline_paths(loaded, Workdir(out / "local")), beam_args=[])
    local_order = [c.id for c in local.components]
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    # KubeflowV2 splits the latest-blessed-model resolver into one task per resolved channel.
    node_of = {task: next(c for c in local_order if task == c or task.startswith(c + "-")) for task in tasks}
    assert set(node_of.values()) == set(local_order)
    for task, spec in tasks.items():
        for upstream in spec.get("dependentTasks", []):
            assert local_order.index(node_of[upstream]) < local_order.index(node_of[task]), (upstream, task)
    assert "AcceptValidatedData" in tasks["Transform"]["dependentTasks"], "bad data must stop the run before Transform"
    assert "DataValidationGate" in tasks["AcceptValidatedData"]["dependentTasks"], "it acts on the gate's verdict"
    assert set(tasks["Transform"]["inputs"]["artifacts"]) == {"examples", "schema"}, "ordering only: cache key unchanged"


def test_image_and_beam_args_from_config(compiled):
    loaded, job, _, _ = compiled
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values() if "container" in e} == {loaded.cfg.kubeflow.image}
    transform_args = executors["Transform_executor"]["container"]["args"]
    for arg in loaded.cfg.kubeflow.beam_args:
        assert arg in transform_args


def test_paths_are_rerooted_into_the_image(compiled):
    loaded, job, _, _ = compiled
    text = json.dumps(job)
    assert str(ROOT) not in text, "local checkout paths must not leak into the cluster spec"
    assert loaded.cfg.kubeflow.project_root + "/data/" in text


def test_compiles_identically_twice(compiled):
    _, first, second, _ = compiled
    assert first == second


def test_trainer_resources(tmp_path):
    loaded = config.load(ROOT / "configs/penguin.yaml", check_data=False)
    cfg = loaded.cfg.model_copy(update={"kubeflow": loaded.cfg.kubeflow.model_copy(update={
        "resources": {"Trainer": config.ResourcesConfig(cpu=4, memory_gb=8, gpus=2)}})})
    job = json.loads(kubeflow.compile_pipeline(loaded.model_copy(update={"cfg": cfg}), tmp_path / "p.json",
                                               pipeline_root=str(tmp_path)).read_text())
    resources = job["pipelineSpec"]["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["resources"]
    assert resources["cpuLimit"] == 4 and resources["memoryLimit"] == 8
    assert resources["accelerator"] == {"type": "nvidia.com/gpu", "count": "2"}


def test_submit_to_unreachable_host_fails_fast_and_clearly(compiled):
    _, _, _, out = compiled
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(kubeflow.SubmitError, match=r"cannot reach Kubeflow Pipelines at http://127\.0\.0\.1:\d+"):
        kubeflow.submit(out / "a.json", host=f"http://127.0.0.1:{port}", timeout=2)


def test_warm_start_and_infra_validation_compile_strictly_and_deterministically(tmp_path):
    """The Trainer takes the latest blessed model; Pusher waits for the Docker-free InfraValidator."""
    loaded = config.load(ROOT / "configs/penguin.yaml", check_data=False)
    cfg = loaded.cfg.model_copy(update={
        "model": loaded.cfg.model.model_copy(update={"warm_start": True}),
        "serving": config.ServingConfig(latency_budget_ms=250.0)})
    loaded = loaded.model_copy(update={"cfg": cfg})
    jobs = [json.loads(kubeflow.compile_pipeline(loaded, tmp_path / f"{name}.json", pipeline_root=str(tmp_path))
                       .read_text()) for name in ("a", "b")]
    assert jobs[0] == jobs[1]
    json_format.ParseDict(jobs[0], pipeline_spec_pb2.PipelineJob())
    tasks = jobs[0]["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "InfraValidator" in tasks["Pusher"]["dependentTasks"]
    assert "Evaluator" in tasks["Pusher"]["dependentTasks"]
    assert any(t.startswith("latest_blessed_model_resolver") for t in tasks["Trainer"]["dependentTasks"])
    assert "base_model" in tasks["Trainer"]["inputs"]["artifacts"]
    parameters = tasks["InfraValidator"]["inputs"]["parameters"]
    assert parameters["latency_budget_ms"]["runtimeValue"]["constantValue"]["doubleValue"] == 250.0
