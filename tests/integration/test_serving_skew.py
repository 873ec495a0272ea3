"""Skew against live traffic: request logs (PredictionLog TFRecords) → TFDV statistics → skew vs training data,
in the gate's verdict and in `tfxpipe monitor`."""
import json
import shutil
from pathlib import Path

import pytest
import tensorflow_data_validation as tfdv
import yaml
from click.testing import CliRunner
from tfx.types import standard_artifacts

from components import serving_skew, validation_report
from components.data_validation_gate import DataValidationVerdict, record_verdict, serving_skew_section
from pipeline.cli import main
from tests.support import ingested, mlmd_records
from tests.support.prediction_logs import penguin_rows, write_logs

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = tfdv.load_schema_text(str(ROOT / "configs/schemas/penguin.pbtxt"))
THRESHOLDS = {"island": 0.25, "sex": 0.25, "body_mass_g": 0.3}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def training_statistics(tmp_path_factory) -> standard_artifacts.ExampleStatistics:
    """A StatisticsGen-like artifact of the bundled table (Split-train/FeatureStats.pb)."""
    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = str(tmp_path_factory.mktemp("statistics"))
    artifact.split_names = '["train"]'
    (Path(artifact.uri) / "Split-train").mkdir()
    stats = ingested.statistics(Path(shutil.copy(ROOT / "data/penguins/penguins.csv", artifact.uri)))
    (Path(artifact.uri) / "Split-train" / "FeatureStats.pb").write_bytes(stats.SerializeToString())
    return artifact


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("logs")
    return {"healthy": write_logs(root / "healthy", penguin_rows()),
            "skewed": write_logs(root / "skewed", penguin_rows(island="Biscoe"))}


def test_logs_parse_with_the_official_protos_and_in_progress_files_are_skipped(logs):
    rows = [row for log in serving_skew.prediction_logs(str(logs["healthy"])) for row in serving_skew.request_rows(log)]
    expected = penguin_rows()
    assert len(rows) == len(expected), "every logged example once; the hidden in-progress file is skipped"
    assert {r["island"][0] for r in rows} == {r["island"].encode() for r in expected}
    assert sorted(r["body_mass_g"][0] for r in rows) == sorted(float(r["body_mass_g"]) for r in expected)


def _verdict(tmp_path: Path) -> DataValidationVerdict:
    verdict = DataValidationVerdict()
    verdict.uri = str(tmp_path)
    return verdict


def test_skewed_traffic_is_a_finding_and_gates_only_when_asked(training_statistics, logs, tmp_path):
    section = serving_skew_section(training_statistics, SCHEMA, str(logs["skewed"]), THRESHOLDS)
    lenient, strict = _verdict(tmp_path / "a"), _verdict(tmp_path / "b")
    assert record_verdict(lenient, [section], fail_on_anomalies=True) == "passed"
    assert record_verdict(strict, [section], fail_on_anomalies=True, fail_on_serving_skew=True) == "rejected"
    [finding] = json.loads(strict.get_string_custom_property(validation_report.FINDINGS_PROPERTY))
    assert (finding["check"], finding["feature"], finding["measure"]) == ("serving_skew", "island", "L_INFTY")
    assert finding["distance"] > 0.25
    distances = json.loads(strict.get_string_custom_property(validation_report.DISTANCES_PROPERTY))
    assert {d["feature"] for d in distances} == set(THRESHOLDS), "every configured feature, not only failures"
    assert all(d["serving_logs"] == str(logs["skewed"]) for d in distances)
    assert "[FAIL] serving skew (train split vs requests logged in" in \
        strict.get_string_custom_property(validation_report.REPORT_PROPERTY)


def test_healthy_traffic_passes(training_statistics, logs, tmp_path):
    section = serving_skew_section(training_statistics, SCHEMA, str(logs["healthy"]), THRESHOLDS)
    verdict = _verdict(tmp_path)
    assert record_verdict(verdict, [section], fail_on_anomalies=True, fail_on_serving_skew=True) == "passed"
    distances = json.loads(verdict.get_string_custom_property(validation_report.DISTANCES_PROPERTY))
    assert len(distances) == 3 and not any(d["exceeded"] for d in distances)


def _workdir_with_validated_run(tmp_path: Path, statistics_uri: str) -> Path:
    """A work directory whose store holds what AcceptValidatedData and ImportSchemaGen publish."""
    workdir = tmp_path / "work"
    (workdir / "schema").mkdir(parents=True)
    shutil.copy(ROOT / "configs/schemas/penguin.pbtxt", workdir / "schema" / "schema.pbtxt")
    store = mlmd_records.writable_store(workdir / "metadata.sqlite")
    run = mlmd_records.start_run(store, "run-1")
    mlmd_records.record(store, run, "ImportSchemaGen", outputs={
        "schema": mlmd_records.artifact("Schema", uri=str(workdir / "schema"))})
    mlmd_records.record(store, run, "AcceptValidatedData", outputs={
        "validated_statistics": mlmd_records.artifact("ExampleStatistics", uri=statistics_uri)})
    return workdir


def _config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "configs/penguin.yaml").read_text())
    raw["data"]["path"] = str(ROOT / "data/penguins")
    raw["validation"].update(schema_path=str(ROOT / "configs/schemas/penguin.pbtxt"), serving_skew=THRESHOLDS)
    path = tmp_path / "penguin.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_monitor_reports_the_skewed_feature_and_exits_1(training_statistics, logs, tmp_path):
    workdir = _workdir_with_validated_run(tmp_path, training_statistics.uri)
    args = ["monitor", "--config", str(_config(tmp_path)), "--workdir", str(workdir), "--logs"]
    skewed = CliRunner().invoke(main, args + [str(logs["skewed"])])
    assert skewed.exit_code == 1, skewed.output
    assert "SKEWED island: L_INFTY" in skewed.output and "serving skew: island" in skewed.output
    assert "ok     sex: L_INFTY" in skewed.output, "features within their threshold are listed too"
    healthy = CliRunner().invoke(main, args + [str(logs["healthy"])])
    assert healthy.exit_code == 0, healthy.output
    assert "no serving skew" in healthy.output
