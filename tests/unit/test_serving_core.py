"""Config parsing, status mapping, dynamic batching and version management, with fake models (no TF)."""
import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from serving import errors, model_config
from serving.batching import DynamicBatcher
from serving.errors import Code, ServingError
from serving.model_config import BatchingOptions, ModelConfig, VersionPolicy
from serving.model_registry import ModelRegistry
from serving.version_manager import AVAILABLE, END, ModelVersionManager


# --- configuration ----------------------------------------------------------------------------------

def test_model_config_file_with_policies_and_labels(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("""
model_config_list {
  config { name: 'a' base_path: '/models/a' model_platform: 'tensorflow'
           model_version_policy { specific { versions: 42 versions: 43 } }
           version_labels { key: 'stable' value: 42 } version_labels { key: 'canary' value: 43 } }
  config { name: 'b' base_path: '/models/b' model_platform: 'tensorflow' model_version_policy { all {} } }
  config { name: 'c' base_path: '/models/c' model_platform: 'tensorflow' model_version_policy { latest { num_versions: 2 } } }
}""")
    configs = {c.name: c for c in model_config.model_configs(model_config.read_model_server_config(str(path)))}
    assert configs["a"].version_policy == VersionPolicy("specific", versions=(42, 43))
    assert dict(configs["a"].version_labels) == {"stable": 42, "canary": 43}
    assert configs["b"].version_policy.kind == "all"
    assert configs["c"].version_policy.select([1, 2, 3, 7]) == {3, 7}
    assert configs["a"].version_policy.select([41, 42, 44]) == {42}
    assert VersionPolicy().select([5, 9, 10]) == {10}


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'tensorflow' } "
     "config { name: 'a' base_path: '/y' model_platform: 'tensorflow' } }", "Illegal to list model a multiple times"),
    ("model_config_list { config { name: 'a' base_path: '/x' } }",
     "Illegal setting neither ModelServerConfig::model_type (deprecated) nor ModelServerConfig::model_platform, model name is a"),
    ("model_config_list { config { name: 'a' base_path: 'relative' model_platform: 'tensorflow' } }",
     "Expected model a to have an absolute path or URI; got base_path()=relative"),
    ("model_config_list { config { name: 'a' unknown_field: 1 } }", "Invalid protobuf file"),
])
def test_bad_model_config_files(tmp_path, text, message):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(ServingError) as caught:
        model_config.model_configs(model_config.read_model_server_config(str(path)))
    assert caught.value.code == Code.INVALID_ARGUMENT and message in caught.value.message


def test_batching_parameters_file_uses_tf_serving_defaults_for_unset_fields(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 500 }\n"
                    "allowed_batch_sizes: 16\nallowed_batch_sizes: 64\n")
    options = model_config.read_batching_options(str(path))
    assert (options.max_batch_size, options.batch_timeout_micros, options.max_enqueued_batches) == (64, 500, 10)
    assert options.allowed_batch_sizes == (16, 64)
    path.write_text("max_batch_size { value: 64 }\nallowed_batch_sizes: 16\n")
    with pytest.raises(ServingError, match="Last entry in allowed_batch_sizes must match max_batch_size"):
        model_config.read_batching_options(str(path))


def test_monitoring_config(tmp_path):
    path = tmp_path / "monitoring.config"
    path.write_text("prometheus_config { enable: true }\n")
    options = model_config.read_monitoring_options(str(path))
    assert options.prometheus_enabled and options.prometheus_path == "/monitoring/prometheus/metrics"


@pytest.mark.parametrize("code, status", [
    (Code.NOT_FOUND, 404), (Code.INVALID_ARGUMENT, 400), (Code.FAILED_PRECONDITION, 400), (Code.UNAVAILABLE, 503),
    (Code.UNIMPLEMENTED, 501), (Code.RESOURCE_EXHAUSTED, 429), (Code.DEADLINE_EXCEEDED, 504), (Code.INTERNAL, 500),
])
def test_http_status_mapping_follows_tf_serving(code, status):
    assert ServingError(code, "x").http_status == status


# --- dynamic batching ---------------------------------------------------------------------------------

class RecordingModel:
    """Doubles its input; records the batch sizes it was called with. `gate` holds calls until set."""

    def __init__(self):
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()

    def run(self, signature_name, inputs, output_filter=()):
        self.gate.wait(10)
        self.calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}


def _run_requests(batcher, model, sizes):
    async def main():
        return await asyncio.gather(*(
            batcher.run(model, "sig", {"x": np.full([n], float(i), np.float32)}) for i, n in enumerate(sizes)
        ), return_exceptions=True)

    return asyncio.run(main())


def test_concurrent_requests_are_merged_and_split_back():
    model = RecordingModel()
    model.gate.clear()
    batcher = DynamicBatcher(BatchingOptions(max_batch_size=8, num_batch_threads=1, batch_timeout_micros=50_000))
    threading.Timer(0.2, model.gate.set).start()
    results = _run_requests(batcher, model, [1, 2, 3, 1])
    batcher.close()
    assert sum(model.calls) == 7 and len(model.calls) < 4
    for i, (result, n) in enumerate(zip(results, [1, 2, 3, 1])):
        assert result["y"].tolist() == [2.0 * i] * n


def test_batches_respect_max_batch_size_and_padding():
    model = RecordingModel()
    batcher = DynamicBatcher(BatchingOptions(max_batch_size=4, num_batch_threads=1, allowed_batch_sizes=(2, 4),
                                             batch_timeout_micros=20_000))
    results = _run_requests(batcher, model, [3, 3, 1])
    batcher.close()
    assert all(size in (2, 4) for size in model.calls)
    assert [len(r["y"]) for r in results] == [3, 3, 1]


def test_oversized_request_and_full_queue():
    model = RecordingModel()
    batcher = DynamicBatcher(BatchingOptions(max_batch_size=4, num_batch_threads=1, max_enqueued_batches=1))
    (result,) = _run_requests(batcher, model, [5])
    assert isinstance(result, ServingError) and result.message == "Task size 5 is larger than maximum input batch size 4"
    model.gate.clear()
    results = _run_requests_with_release(batcher, model, [4, 4, 4])
    batcher.close()
    failures = [r for r in results if isinstance(r, ServingError)]
    assert failures and failures[0].code == Code.UNAVAILABLE
    assert "batch scheduling queue to which this task was submitted is full" in failures[0].message


def _run_requests_with_release(batcher, model, sizes):
    threading.Timer(0.3, model.gate.set).start()
    return _run_requests(batcher, model, sizes)


def test_large_batch_splitting_runs_in_chunks():
    model = RecordingModel()
    batcher = DynamicBatcher(BatchingOptions(max_batch_size=4, num_batch_threads=1, enable_large_batch_splitting=True))
    (result,) = _run_requests(batcher, model, [10])
    batcher.close()
    assert model.calls == [4, 4, 2] and len(result["y"]) == 10


def test_model_errors_reach_every_request_in_the_batch():
    class Failing(RecordingModel):
        def run(self, *args, **kwargs):
            raise errors.invalid_argument("bad input")

    batcher = DynamicBatcher(BatchingOptions(max_batch_size=8, num_batch_threads=1))
    results = _run_requests(batcher, Failing(), [1, 1])
    batcher.close()
    assert all(isinstance(r, ServingError) and r.message == "bad input" for r in results)


# --- version manager ----------------------------------------------------------------------------------

class FakeLoader:
    """Loads `<dir>/ok` directories; anything else fails like a corrupt SavedModel."""

    def __init__(self):
        self.loaded = []

    def __call__(self, name, version, path):
        if not (Path(path) / "ok").exists():
            raise ServingError(Code.DATA_LOSS, f"Could not parse SavedModel proto at {path}")
        self.loaded.append(version)
        return f"{name}:{version}"


def _version(base: Path, version: int, good: bool = True) -> None:
    (base / str(version)).mkdir(parents=True, exist_ok=True)
    (base / str(version) / ("ok" if good else "garbage")).write_text("x")


def test_new_version_replaces_old_only_after_loading(tmp_path):
    _version(tmp_path, 1)
    manager = ModelVersionManager(ModelConfig("m", str(tmp_path)), FakeLoader())
    manager.poll()
    assert manager.servable() == "m:1"
    _version(tmp_path, 2)
    manager.poll()
    assert manager.servable() == "m:2" and manager.servable(1) is None
    statuses = manager.statuses()
    assert (statuses[1].state, statuses[2].state) == (END, AVAILABLE) and statuses[1].error is None


def test_failed_version_never_replaces_a_good_one_and_is_retried_when_changed(tmp_path):
    loader = FakeLoader()
    _version(tmp_path, 1)
    manager = ModelVersionManager(ModelConfig("m", str(tmp_path)), loader)
    manager.poll()
    _version(tmp_path, 2, good=False)
    manager.poll()
    manager.poll()  # unchanged directory: not retried
    status = manager.statuses()[2]
    assert status.state == END and status.error.code == Code.DATA_LOSS
    assert manager.servable() == "m:1" and manager.statuses()[1].state == AVAILABLE
    _version(tmp_path, 2, good=True)
    manager.poll()
    assert manager.servable() == "m:2" and loader.loaded == [1, 2]


def test_unloaded_version_in_reference_cycles_is_freed_once_its_last_request_is_done(tmp_path):
    # Like a loaded SavedModel, each servable is part of a reference cycle: only a full collection frees
    # it. Automatic collection is off here, so only the manager's own collection can free it.
    import gc
    import weakref

    class CyclicServable:
        def __init__(self):
            self.itself = self

    loaded = []

    def loader(name, version, path):
        servable = CyclicServable()
        loaded.append(weakref.ref(servable))
        return servable

    _version(tmp_path, 1)
    manager = ModelVersionManager(ModelConfig("m", str(tmp_path)), loader)
    gc.disable()
    try:
        manager.poll()
        in_flight = manager.servable()
        _version(tmp_path, 2)
        manager.poll()
        assert manager.available_versions() == [2] and loaded[0]() is in_flight
        del in_flight  # the request finishes
        manager.poll()
        assert loaded[0]() is None and loaded[1]() is manager.servable()
    finally:
        gc.enable()


def test_non_numeric_directories_are_ignored(tmp_path):
    _version(tmp_path, 3)
    (tmp_path / ".tmp-4").mkdir()
    (tmp_path / "4.partial").mkdir()
    manager = ModelVersionManager(ModelConfig("m", str(tmp_path)), FakeLoader())
    manager.poll()
    assert manager.available_versions() == [3]


def test_registry_resolution_errors_and_labels(tmp_path):
    _version(tmp_path, 1)
    _version(tmp_path, 2)
    registry = ModelRegistry(FakeLoader(), poll_wait_seconds=-1)
    config = ModelConfig("m", str(tmp_path), VersionPolicy("all"))
    registry.apply_config([config])
    registry.apply_config([ModelConfig("m", str(tmp_path), VersionPolicy("all"), {"stable": 1})])
    assert registry.resolve("m") == "m:2" and registry.resolve("m", label="stable") == "m:1"
    for call, code, message in (
        (lambda: registry.resolve("x"), Code.NOT_FOUND, "Servable not found for request: Latest(x)"),
        (lambda: registry.resolve("m", 7), Code.NOT_FOUND, "Servable not found for request: Specific(m, 7)"),
        (lambda: registry.resolve("m", label="beta"), Code.INVALID_ARGUMENT, "Unrecognized servable version label: beta"),
        (lambda: registry.resolve("m", 1, "stable"), Code.INVALID_ARGUMENT,
         "Both model version (1) and model version label (stable) cannot be supplied."),
        (lambda: registry.status("m", 9), Code.NOT_FOUND, "Could not find version 9 of model m"),
        (lambda: registry.apply_config([ModelConfig("m", str(tmp_path), VersionPolicy("all"), {"x": 5})]),
         Code.FAILED_PRECONDITION, "Request to assign label to version 5 of model m, which is not currently available for inference"),
    ):
        with pytest.raises(ServingError) as caught:
            call()
        assert (caught.value.code, caught.value.message) == (code, message)
    registry.apply_config([])
    assert registry.model_names() == []
    registry.stop()


def test_a_reload_loads_a_version_then_moves_the_label_onto_it_then_unloads(tmp_path):
    """TF Serving's reload order: a label may name a version the same reload adds to the policy, and the
    version a label leaves is unloaded only after the label has moved (no request finds neither)."""
    for version in (1, 2):
        _version(tmp_path, version)
    seen = []

    class RecordingLoader(FakeLoader):
        def __call__(self, name, version, path):
            seen.append(("load", version, registry.labels("m")))
            return super().__call__(name, version, path)

    registry = ModelRegistry(RecordingLoader(), poll_wait_seconds=-1)
    registry.apply_config([ModelConfig("m", str(tmp_path), VersionPolicy("specific", versions=(2,)))])
    registry.apply_config([ModelConfig("m", str(tmp_path), VersionPolicy("specific", versions=(2,)), {"stable": 2})])
    registry.apply_config([ModelConfig("m", str(tmp_path), VersionPolicy("specific", versions=(1,)), {"stable": 1})])
    assert seen == [("load", 2, {}), ("load", 1, {"stable": 2})]
    assert registry.resolve("m", label="stable") == "m:1"
    assert registry.status("m", 2)[0].state == END
    registry.stop()


def test_model_without_any_loadable_version_fails_to_become_available(tmp_path):
    _version(tmp_path, 1, good=False)
    registry = ModelRegistry(FakeLoader(), poll_wait_seconds=-1, load_timeout_seconds=5)
    with pytest.raises(ServingError) as caught:
        registry.apply_config([ModelConfig("m", str(tmp_path))])
    assert caught.value.code == Code.UNKNOWN
    assert caught.value.message.startswith("1 model(s) did not become available: {{{name: m version: 1} due to error: DATA_LOSS")


def test_coalescing_transport_sends_one_write_per_loop_step():
    from serving.http_protocol import CoalescingTransport

    class Recorder:
        def __init__(self):
            self.writes, self.closed = [], False

        def write(self, data):
            self.writes.append(data)

        def is_closing(self):
            return self.closed

        def close(self):
            self.closed = True

        def get_extra_info(self, name):
            return ("127.0.0.1", 1) if name == "peername" else None

        def get_write_buffer_size(self):
            return 0

    async def main():
        raw = Recorder()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"{}")
        assert raw.writes == [] and transport.get_write_buffer_size() == 21
        await asyncio.sleep(0)
        assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        transport.write(b"last")
        transport.close()  # flushes first
        assert raw.writes[-1] == b"last" and raw.closed
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1)

    asyncio.run(main())


def test_uvicorn_still_has_the_private_surface_http_protocol_and_server_rely_on():
    """Fails when a uvicorn upgrade changes what serving.http_protocol subclasses (the server would then fall
    back to uvicorn's own protocol: two writes per response, no header timeout) or what _EmbeddedUvicorn
    overrides to keep uvicorn's signal handlers out of ModelServer's."""
    import uvicorn

    from serving.http_protocol import private_surface_problems, protocol_class, uvicorn_protocol_class

    base = uvicorn_protocol_class()
    assert base.__module__ == "uvicorn.protocols.http.httptools_impl", "httptools missing: REST runs on h11"
    assert private_surface_problems(base) == []
    assert protocol_class(30.0) is not base and issubclass(protocol_class(None), base)
    assert callable(getattr(uvicorn.Server, "capture_signals", None))


def test_made_up_model_names_share_one_metrics_series():
    from serving.metrics import UNKNOWN_MODEL_LABEL, ServingMetrics

    metrics = ServingMetrics(is_served_model={"penguin"}.__contains__)
    metrics.record("penguin", "predict", "REST", "OK", 0.001)
    for index in range(500):
        metrics.record(f"no-such-model-{index}", "predict", "GRPC", "NOT_FOUND", None)
    exposition = metrics.exposition().decode()
    assert "no-such-model" not in exposition
    assert f'model_name="{UNKNOWN_MODEL_LABEL}",status="NOT_FOUND"}} 500.0' in exposition
    assert 'model_name="penguin",status="OK"} 1.0' in exposition


# --- where unbatched REST calls run -----------------------------------------------------------------------

class _ThreadRecordingServable:
    def __init__(self):
        self.threads = []

    def run(self, signature_name, inputs, output_filter=()):
        self.threads.append(threading.get_ident())
        return {"y": inputs["x"]}


def test_cheap_model_calls_run_on_the_event_loop_and_costly_ones_on_the_pool(monkeypatch):
    import concurrent.futures

    from serving import call_placement

    servable = _ThreadRecordingServable()
    placement = call_placement.CallPlacement(concurrent.futures.ThreadPoolExecutor(1))
    inputs = {"x": np.ones(1, np.float32)}

    async def calls(count):
        for _ in range(count):
            assert (await placement.run(servable, "serving_default", inputs, ()))["y"] is inputs["x"]
        return threading.get_ident()

    try:
        loop_thread = asyncio.run(calls(3))
        assert servable.threads == [loop_thread] * 3
        monkeypatch.setattr(call_placement, "INLINE_CPU_SECONDS", -1.0)  # every call now counts as costly
        servable.threads.clear()
        loop_thread = asyncio.run(calls(2 + call_placement.REMEASURE_EVERY))
        inline = [thread == loop_thread for thread in servable.threads]
        # the measured cost is now over the limit: REMEASURE_EVERY calls on the pool, then one measures again
        assert inline == [*[False] * call_placement.REMEASURE_EVERY, True, False]
        monkeypatch.setattr(call_placement, "INLINE_CPU_SECONDS", 1.0)  # cheap again: one re-measure brings it back
        servable.threads.clear()
        loop_thread = asyncio.run(calls(2 + call_placement.REMEASURE_EVERY))
        assert servable.threads[-2:] == [loop_thread] * 2
    finally:
        placement.shutdown()
