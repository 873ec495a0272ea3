"""The curated penguin schema against realistic bad data, through the same TFDV checks and report the
pipeline uses: what must stop a run stops it, what is within tolerance passes."""
import csv
import json
import random
from pathlib import Path

import pytest
import tensorflow_data_validation as tfdv

from components import validation_report
from components.data_validation_gate import DataValidationVerdict, Section, compare, record_verdict
from tests.support import ingested

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = tfdv.load_schema_text(str(ROOT / "configs/schemas/penguin.pbtxt"))
ROWS = list(csv.DictReader(open(ROOT / "data/penguins/penguins.csv")))
pytestmark = pytest.mark.slow


def _statistics(tmp_path: Path, rows: list[dict], name: str = "data.csv"):
    """Statistics of `rows` as the pipeline computes them (ExampleGen's reader: configured columns only)."""
    path = tmp_path / name
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return ingested.statistics(path, header=list(rows[0]))


def _report(tmp_path: Path, rows: list[dict]) -> str:
    return validation_report.render({"schema": tfdv.validate_statistics(_statistics(tmp_path, rows), SCHEMA)})


def _with(index_step: int, **changes) -> list[dict]:
    return [dict(row, **changes) if i % index_step == 0 else dict(row) for i, row in enumerate(ROWS)]


def test_bundled_data_is_clean(tmp_path):
    assert "[ok]" in _report(tmp_path, ROWS)


def test_unit_mix_up_out_of_domain_numbers(tmp_path):
    rows = [dict(r, bill_length_mm=str(float(r["bill_length_mm"]) / 10) if r["bill_length_mm"] != "NA" else "NA") for r in ROWS]
    report = _report(tmp_path, rows)
    assert "[FAIL]" in report and "bill_length_mm" in report


def test_new_category_within_tolerance_passes_beyond_it_fails(tmp_path):
    assert "[ok]" in _report(tmp_path, _with(100, island="Atlantis"))  # ~1% < 2% tolerance
    report = _report(tmp_path, _with(10, island="Atlantis"))  # ~10%
    assert "[FAIL]" in report and "- island:" in report


def test_missing_required_feature(tmp_path):
    report = _report(tmp_path, _with(20, species=""))
    assert "[FAIL]" in report and "- species:" in report


def test_renamed_column(tmp_path):
    rows = [{("gender" if k == "sex" else k): v for k, v in row.items()} for row in ROWS]
    report = _report(tmp_path, rows)
    assert "- sex:" in report  # only configured columns are read: `gender` never is (preflight names it first)


# --- drift and skew: the comparators DataValidationGate configures from validation.drift / validation.skew ---

def _compare_report(tmp_path: Path, new_rows: list[dict], reference_rows: list[dict], thresholds: dict, kind: str) -> str:
    found = compare(_statistics(tmp_path, new_rows, "new.csv"), _statistics(tmp_path, reference_rows, "reference.csv"),
                    SCHEMA, thresholds, kind)
    return validation_report.render({kind: found})


def test_skew_beyond_threshold_fails_and_a_raised_threshold_accepts_it(tmp_path):
    biscoe_only = [row for row in ROWS if row["island"] == "Biscoe"]  # eval split from one island only
    report = _compare_report(tmp_path, ROWS, biscoe_only, {"island": 0.25}, "skew")
    assert "[FAIL]" in report and "- island:" in report and "skew" in report.lower()
    assert "[ok]" in _compare_report(tmp_path, ROWS, biscoe_only, {"island": 0.6}, "skew")


def _halves() -> tuple[list[dict], list[dict]]:
    """Two random halves of the table (the CSV alternates sexes, so every other row would be skewed)."""
    rows = list(ROWS)
    random.Random(7).shuffle(rows)
    return rows[::2], rows[1::2]


def test_skew_within_threshold_passes(tmp_path):
    assert "[ok]" in _compare_report(tmp_path, *_halves(), {"island": 0.25, "sex": 0.25}, "skew")


def test_numeric_drift_beyond_threshold_fails(tmp_path):
    heavier = [dict(row, body_mass_g=str(float(row["body_mass_g"]) * 1.5) if row["body_mass_g"] != "NA" else "NA") for row in ROWS]
    report = _compare_report(tmp_path, heavier, ROWS, {"body_mass_g": 0.2}, "drift")
    assert "[FAIL]" in report and "- body_mass_g:" in report
    assert "[ok]" in _compare_report(tmp_path, *_halves(), {"body_mass_g": 0.2}, "drift")


# --- the verdict the gate records in ML Metadata (custom properties of its `verdict` artifact) ---

def _verdict_artifact(tmp_path: Path) -> DataValidationVerdict:
    artifact = DataValidationVerdict()
    artifact.uri = str(tmp_path / "verdict")
    return artifact


def test_rejected_verdict_records_findings_with_distances_and_the_report(tmp_path):
    biscoe_only = [row for row in ROWS if row["island"] == "Biscoe"]
    drift = compare(_statistics(tmp_path, biscoe_only, "new.csv"), _statistics(tmp_path, ROWS, "reference.csv"),
                    SCHEMA, {"island": 0.25, "sex": 0.25}, "drift")
    sections = [Section("schema (train split)", "schema", "train", tfdv.validate_statistics(
                    _statistics(tmp_path, ROWS, "all.csv"), SCHEMA)),
                Section("drift (train split vs last validated data)", "drift", "train", drift)]
    verdict = _verdict_artifact(tmp_path)
    assert record_verdict(verdict, sections, fail_on_anomalies=True) == "rejected"
    assert verdict.get_string_custom_property(validation_report.VERDICT_PROPERTY) == "rejected"
    [finding] = json.loads(verdict.get_string_custom_property(validation_report.FINDINGS_PROPERTY))
    assert finding["check"] == "drift" and finding["split"] == "train" and finding["feature"] == "island"
    assert finding["measure"] == "L_INFTY" and finding["distance"] > finding["threshold"] == 0.25
    report = verdict.get_string_custom_property(validation_report.REPORT_PROPERTY)
    assert "[FAIL] drift (train split vs last validated data)" in report and "- island:" in report
    assert (Path(verdict.uri) / "data_validation_report.txt").read_text() == report


def test_clean_data_passes_and_findings_can_be_accepted_without_failing(tmp_path):
    clean = [Section("schema (train split)", "schema", "train",
                     tfdv.validate_statistics(_statistics(tmp_path, ROWS), SCHEMA))]
    assert record_verdict(_verdict_artifact(tmp_path / "a"), clean, fail_on_anomalies=True) == "passed"
    dirty = [Section("schema (train split)", "schema", "train",
                     tfdv.validate_statistics(_statistics(tmp_path, _with(10, island="Atlantis"), "bad.csv"), SCHEMA))]
    lenient = _verdict_artifact(tmp_path / "b")
    assert record_verdict(lenient, dirty, fail_on_anomalies=False) == "passed"
    assert json.loads(lenient.get_string_custom_property(validation_report.FINDINGS_PROPERTY))[0]["feature"] == "island"
