"""The benchmark scripts read per-component seconds from ML Metadata through pipeline.run_outcome; a rename
there once broke both scripts at their first measurement, which no test noticed. These tests read a store
written the way TFX records runs (tests/support/mlmd_records), without running a pipeline."""
from __future__ import annotations

from ml_metadata.proto import metadata_store_pb2 as mlmd

from benchmarks import pipeline as pipeline_benchmark
from tests.support import mlmd_records


def _two_runs(path):
    store = mlmd_records.writable_store(path)
    first = mlmd_records.start_run(store, "run-1")
    mlmd_records.record(store, first, "CsvExampleGen")
    second = mlmd_records.start_run(store, "run-2")
    mlmd_records.record(store, second, "CsvExampleGen", mlmd.Execution.CACHED)
    mlmd_records.record(store, second, "Trainer")
    return path


def test_pipeline_benchmark_reads_the_latest_runs_components(tmp_path):
    path = _two_runs(tmp_path / "metadata.sqlite")
    assert pipeline_benchmark.run_count(path) == 2
    components = pipeline_benchmark.component_seconds(path)
    assert sorted(components) == ["CsvExampleGen", "Trainer"]
    assert components["CsvExampleGen"]["state"] == "cached"
    assert all(isinstance(c["seconds"], float) for c in components.values())


def test_a_missing_store_has_no_runs(tmp_path):
    assert pipeline_benchmark.run_count(tmp_path / "none.sqlite") == 0
    assert pipeline_benchmark.component_seconds(tmp_path / "none.sqlite") == {}
