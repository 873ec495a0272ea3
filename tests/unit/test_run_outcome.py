"""The run's outcome is read from ML Metadata: the gate's verdict artifact decides, no message does."""
import json
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd

from components import validation_report
from pipeline import config, run_outcome
from tests.support import mlmd_records

ROOT = Path(__file__).resolve().parents[2]
FINDINGS = [{"check": "drift", "split": "train", "feature": "island", "kind": "COMPARATOR_L_INFTY_HIGH",
             "description": "too far", "measure": "L_INFTY", "distance": 0.6, "threshold": 0.25}]


@pytest.fixture(scope="module")
def loaded():
    return config.load(ROOT / "configs/penguin.yaml", check_data=False)


def _verdict(decision: str) -> mlmd.Artifact:
    return mlmd_records.artifact("tfxpipe.DataValidationVerdict", **{
        validation_report.VERDICT_PROPERTY: decision,
        validation_report.FINDINGS_PROPERTY: json.dumps(FINDINGS if decision == "rejected" else []),
        validation_report.REPORT_PROPERTY: f"[FAIL] drift: 1 anomaly ({decision})"})


def _run_until_gate(path: Path, decision: str, run_id: str = "run-1"):
    store = mlmd_records.writable_store(path)
    run = mlmd_records.start_run(store, run_id)
    for node in ("CsvExampleGen", "StatisticsGen"):
        mlmd_records.record(store, run, node, mlmd.Execution.CACHED)
    mlmd_records.record(store, run, "latest_validated_statistics_resolver", mlmd.Execution.FAILED)
    mlmd_records.record(store, run, "DataValidationGate", outputs={"verdict": _verdict(decision)})
    return store, run


def test_rejected_verdict_is_read_from_the_gate_artifact(tmp_path, loaded):
    path = tmp_path / "metadata.sqlite"
    store, run = _run_until_gate(path, "rejected")
    mlmd_records.record(store, run, "AcceptValidatedData", mlmd.Execution.FAILED)
    result = run_outcome.collect(loaded, path, error=RuntimeError("AcceptValidatedData raised"))
    assert not result.succeeded and result.data_rejected
    assert result.data_validation.verdict == "rejected"
    assert result.data_validation.findings == FINDINGS
    assert result.validation_report == "[FAIL] drift: 1 anomaly (rejected)"
    states = {c.node_id: c.state for c in result.components}
    assert states == {"CsvExampleGen": "cached", "StatisticsGen": "cached", "DataValidationGate": "complete",
                      "latest_validated_statistics_resolver": "empty", "AcceptValidatedData": "failed"}


def test_a_rejected_verdict_fails_the_run_even_without_an_error(tmp_path, loaded):
    path = tmp_path / "metadata.sqlite"
    _run_until_gate(path, "rejected")
    result = run_outcome.collect(loaded, path)
    assert not result.succeeded and result.data_rejected


def test_passed_verdict_and_a_clean_run_succeed(tmp_path, loaded):
    path = tmp_path / "metadata.sqlite"
    store, run = _run_until_gate(path, "passed")
    for node in ("AcceptValidatedData", "Transform"):
        mlmd_records.record(store, run, node)
    result = run_outcome.collect(loaded, path)
    assert result.succeeded and not result.data_rejected
    assert result.data_validation.verdict == "passed" and result.data_validation.findings == []


def test_error_messages_are_shown_but_never_decide(tmp_path, loaded):
    path = tmp_path / "metadata.sqlite"
    store, run = _run_until_gate(path, "passed")
    error = RuntimeError("Data validation failed; the run stops before Transform and Trainer.\n[FAIL] island")
    result = run_outcome.collect(loaded, path, error=error)
    assert not result.succeeded, "the runner raised"
    assert not result.data_rejected, "the verdict artifact says passed, whatever the message says"
    assert result.validation_report == "[FAIL] drift: 1 anomaly (passed)"
    assert result.error == str(error)


def test_only_the_latest_run_is_reported(tmp_path, loaded):
    path = tmp_path / "metadata.sqlite"
    _run_until_gate(path, "rejected", "run-1")
    store, run = _run_until_gate(path, "passed", "run-2")
    result = run_outcome.collect(loaded, path)
    assert result.data_validation.verdict == "passed"
    assert len(result.components) == 4


def test_no_gate_execution_no_verdict(tmp_path, loaded):
    path = tmp_path / "metadata.sqlite"
    store = mlmd_records.writable_store(path)
    mlmd_records.record(store, mlmd_records.start_run(store, "run-1"), "CsvExampleGen", mlmd.Execution.FAILED)
    result = run_outcome.collect(loaded, path)
    assert result.data_validation is None and result.validation_report is None
    assert not result.succeeded and not result.data_rejected


def test_reading_an_outcome_imports_neither_tensorflow_nor_tfx():
    import subprocess
    import sys

    code = ("import sys, pipeline.cli, pipeline.runners, pipeline.run_outcome, pipeline.progress, pipeline.report, "
            "pipeline.spans, pipeline.monitor; "
            "print(sorted(m for m in ('tensorflow', 'tfx', 'tensorflow_data_validation') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def test_spans_and_every_distance_are_read_from_the_store(tmp_path, loaded):
    """The span from ExampleGen's Examples artifact; what the drift compared, from the gate's verdict."""
    distances = [{"check": "drift", "split": "train", "feature": f, "measure": "L_INFTY", "distance": d,
                  "threshold": 0.25, "exceeded": d > 0.25, "span": 3, "baseline_span": 2}
                 for f, d in (("island", 0.6), ("sex", 0.1))]
    verdict = _verdict("rejected")
    verdict.custom_properties[validation_report.DISTANCES_PROPERTY].string_value = json.dumps(distances)
    verdict.custom_properties[validation_report.SPAN_PROPERTY].int_value = 3
    verdict.custom_properties[validation_report.BASELINE_SPAN_PROPERTY].int_value = 2
    path = tmp_path / "metadata.sqlite"
    store = mlmd_records.writable_store(path)
    run = mlmd_records.start_run(store, "run-1")
    mlmd_records.record(store, run, "CsvExampleGen", outputs={"examples": mlmd_records.artifact("Examples", span=3)})
    mlmd_records.record(store, run, "DataValidationGate", outputs={"verdict": verdict})
    spans_config = loaded.model_copy(update={"data_path": str(tmp_path / "span-{SPAN}")})
    result = run_outcome.collect(spans_config, path)
    assert result.span == 3
    validation = result.data_validation
    assert (validation.span, validation.baseline_span, validation.distances) == (3, 2, distances)
    assert run_outcome.collect(loaded, path).span is None, "no {SPAN} in data.path: no span to show"


def test_the_window_trained_on_is_read_from_the_store_and_summarised(tmp_path, loaded):
    from rich.console import Console
    import io

    from pipeline import report

    path = tmp_path / "metadata.sqlite"
    store = mlmd_records.writable_store(path)
    run = mlmd_records.start_run(store, "run-1")
    mlmd_records.record(store, run, "CsvExampleGen", outputs={"examples": mlmd_records.artifact("Examples", span=4)})
    window = mlmd_records.artifact("Examples", span=4, **{
        validation_report.WINDOW_SPANS_PROPERTY: "[2, 4]", validation_report.UNVALIDATED_SPANS_PROPERTY: "[3]",
        validation_report.WINDOW_SIZE_PROPERTY: 3})
    mlmd_records.record(store, run, "ExamplesWindow", outputs={"window_examples": window})
    result = run_outcome.collect(loaded.model_copy(update={"data_path": str(tmp_path / "span-{SPAN}")}), path)
    assert result.span == 4, "the newest span is ExampleGen's, not a window slot's"
    assert result.window == run_outcome.Window(spans=[2, 4], unvalidated=[3], size=3)
    out = io.StringIO()
    report.print_run_summary(result, Console(file=out, width=200))
    assert ("Window trained on span(s) 2, 4 (2 of data.window 3); left out span(s) 3: never accepted by the "
            "data gate") in out.getvalue()
    assert report.window_line(run_outcome.Window([1], [], 3)).endswith("fewer spans than the window exist yet")
