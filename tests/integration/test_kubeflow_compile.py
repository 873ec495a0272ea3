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


# --- continuous training: spans as a runtime parameter, recurring runs -------------------------------------

def _span_config(**data):
    loaded = config.load(ROOT / "configs/penguin.yaml", check_data=False)
    cfg = loaded.cfg.model_copy(update={"data": config.DataConfig(**{**loaded.cfg.data.model_dump(), **data})})
    return loaded.model_copy(update={"cfg": cfg, "data_path": str(ROOT / data["path"])})


@pytest.fixture(scope="module")
def compiled_with_spans(tmp_path_factory):
    loaded = _span_config(path="data/penguins/span-{SPAN}")
    out = tmp_path_factory.mktemp("spans")
    first = kubeflow.compile_pipeline(loaded, out / "a.json", pipeline_root=str(out / "root"))
    second = kubeflow.compile_pipeline(loaded, out / "b.json", pipeline_root=str(out / "root"))
    return json.loads(first.read_text()), json.loads(second.read_text()), out


def test_span_range_is_a_runtime_parameter_of_example_gen(compiled_with_spans):
    job, again, _ = compiled_with_spans
    json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())  # unknown fields raise
    assert job == again, "compiling twice is identical"
    spec = job["pipelineSpec"]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert kubeflow.SPAN_PARAMETER in parameters
    # KFP takes no default from the spec: the runtime config holds it (the latest span), and submit passes it on.
    assert job["runtimeConfig"]["parameters"] == {kubeflow.SPAN_PARAMETER: {"stringValue": kubeflow.LATEST_SPAN}}
    example_gen = spec["root"]["dag"]["tasks"]["CsvExampleGen"]["inputs"]["parameters"]
    assert example_gen["range_config"] == {"componentInputParameter": kubeflow.SPAN_PARAMETER}
    assert "span-{SPAN}/*" in json.dumps(example_gen["input_config"])
    assert example_gen["input_base"]["runtimeValue"]["constantValue"]["stringValue"] == "/app/data/penguins"


def test_span_argument_is_the_range_config_example_gen_reads():
    from tfx.proto import range_config_pb2
    from tfx.utils import proto_utils

    parsed = proto_utils.json_to_proto(kubeflow.span_arguments(7)[kubeflow.SPAN_PARAMETER], range_config_pb2.RangeConfig())
    assert parsed.static_range.start_span_number == parsed.static_range.end_span_number == 7
    latest = proto_utils.json_to_proto(kubeflow.LATEST_SPAN, range_config_pb2.RangeConfig())
    assert latest.rolling_range.num_spans == 1


class _FakeKfpClient:
    """Records what `tfxpipe submit` asks of kfp.Client (kfp 2.5's create_experiment/create_recurring_run)."""

    calls: list = []

    def __init__(self, host, namespace=None):
        self.calls.append(("init", host, namespace))

    def create_experiment(self, name, namespace=None):
        self.calls.append(("experiment", name))
        return type("Experiment", (), {"experiment_id": "exp-1"})()

    def create_recurring_run(self, **kwargs):
        self.calls.append(("recurring", kwargs, json.loads(Path(kwargs["pipeline_package_path"]).read_text())))
        return type("RecurringRun", (), {"recurring_run_id": "rr-42"})()


def test_submit_recurring_creates_a_kfp_recurring_run(compiled_with_spans, monkeypatch):
    import kfp
    from click.testing import CliRunner

    from pipeline.cli import main

    monkeypatch.setattr(kfp, "Client", _FakeKfpClient)
    monkeypatch.setattr(kubeflow, "_check_reachable", lambda host, timeout: None)
    _FakeKfpClient.calls = []
    result = CliRunner().invoke(main, ["submit", "--host", "http://kfp:8080", "--config", str(ROOT / "configs/penguin.yaml"),
                                       "--recurring", "--cron", "0 3 * * *", "--pipeline-root", "/tmp/root"])
    assert result.exit_code == 0, result.output
    assert "created recurring run rr-42 on http://kfp:8080 (cron '0 0 3 * * *', one run at a time)" in result.output
    (_, host, _), (_, experiment), (_, kwargs, spec) = _FakeKfpClient.calls
    assert host == "http://kfp:8080" and experiment == "penguin"
    assert kwargs["experiment_id"] == "exp-1" and kwargs["job_name"] == "penguin-recurring"
    assert kwargs["cron_expression"] == "0 0 3 * * *" and kwargs["max_concurrency"] == 1 and kwargs["no_catchup"]
    assert kwargs["pipeline_root"] == "/tmp/root" and "pipelineSpec" not in spec and spec["root"]["dag"]["tasks"]
    assert kwargs["params"] == {}, "the bundled config has no {SPAN}: no span parameter"


def test_recurring_run_of_a_span_pipeline_passes_the_span_range(compiled_with_spans, monkeypatch):
    import kfp

    monkeypatch.setattr(kfp, "Client", _FakeKfpClient)
    monkeypatch.setattr(kubeflow, "_check_reachable", lambda host, timeout: None)
    _, _, out = compiled_with_spans
    _FakeKfpClient.calls = []
    assert kubeflow.schedule(out / "a.json", host="http://kfp", cron="0 3 * * *", experiment="e", job_name="j") == "rr-42"
    assert _FakeKfpClient.calls[-1][1]["params"] == {kubeflow.SPAN_PARAMETER: kubeflow.LATEST_SPAN}
    kubeflow.schedule(out / "a.json", host="http://kfp", cron="0 3 * * *", experiment="e", job_name="j",
                      arguments=kubeflow.span_arguments(4))
    assert _FakeKfpClient.calls[-1][1]["params"] == kubeflow.span_arguments(4)


def test_bad_cron_is_a_config_error():
    with pytest.raises(config.ConfigError, match="expected 5 fields"):
        kubeflow.kfp_cron("every day")
    assert kubeflow.kfp_cron("*/5 * * * * *") == "*/5 * * * * *"


# --- data.window: one ExampleGen per window slot, gathered by ExamplesWindow ---------------------------------

@pytest.fixture(scope="module")
def compiled_with_window(tmp_path_factory):
    loaded = _span_config(path="data/penguins/span-{SPAN}", window=3)
    model = loaded.cfg.model.model_copy(update={"warm_start": True})
    loaded = loaded.model_copy(update={"cfg": loaded.cfg.model_copy(update={"model": model})})
    out = tmp_path_factory.mktemp("window")
    jobs = [json.loads(kubeflow.compile_pipeline(loaded, out / f"{name}.json", pipeline_root=str(out / "root"))
                       .read_text()) for name in ("a", "b")]
    return jobs


def test_window_compiles_with_one_span_parameter_per_slot(compiled_with_window):
    """One spec with spans, a window, warm start and infra validation: strict, deterministic, wired."""
    job, again = compiled_with_window
    json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())  # unknown fields raise
    assert job == again, "compiling twice is identical"
    spec = job["pipelineSpec"]
    names = [kubeflow.SPAN_PARAMETER, kubeflow.previous_span_parameter_name(1), kubeflow.previous_span_parameter_name(2)]
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == set(names)
    assert job["runtimeConfig"]["parameters"] == {name: {"stringValue": kubeflow.LATEST_SPAN} for name in names}
    tasks = spec["root"]["dag"]["tasks"]
    for slot in (1, 2):
        example_gen = tasks[f"CsvExampleGen_previous_{slot}"]["inputs"]["parameters"]
        assert example_gen["range_config"] == {"componentInputParameter": kubeflow.previous_span_parameter_name(slot)}
    window = tasks["ExamplesWindow"]["inputs"]["artifacts"]
    assert window["examples"]["taskOutputArtifact"]["producerTask"] == "CsvExampleGen"
    assert window["previous_examples_2"]["taskOutputArtifact"]["producerTask"] == "CsvExampleGen_previous_2"
    assert window["validated_statistics"]["taskOutputArtifact"]["producerTask"] == "AcceptValidatedData"
    transform = tasks["Transform"]["inputs"]["artifacts"]["examples"]["taskOutputArtifact"]
    assert transform == {"producerTask": "ExamplesWindow", "outputArtifactKey": "window_examples"}
    evaluator = tasks["Evaluator"]["inputs"]["artifacts"]["examples"]["taskOutputArtifact"]
    assert evaluator["producerTask"] == "CsvExampleGen", "the model is judged on the newest span"
    assert tasks["StatisticsGen"]["inputs"]["artifacts"]["examples"]["taskOutputArtifact"]["producerTask"] == "CsvExampleGen"
    assert "base_model" in tasks["Trainer"]["inputs"]["artifacts"]
    assert {"InfraValidator", "Evaluator"} <= set(tasks["Pusher"]["dependentTasks"])


def test_span_arguments_fill_the_window_slots_with_the_spans_before():
    arguments = kubeflow.span_arguments(5, window=3)
    spans = {name: json.loads(value)["staticRange"]["startSpanNumber"] for name, value in arguments.items()}
    assert spans == {kubeflow.SPAN_PARAMETER: 5, kubeflow.previous_span_parameter_name(1): 4,
                     kubeflow.previous_span_parameter_name(2): 3}
    early = kubeflow.span_arguments(0, window=2)
    assert json.loads(early[kubeflow.previous_span_parameter_name(1)])["staticRange"]["startSpanNumber"] == 0
