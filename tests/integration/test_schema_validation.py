"""The curated penguin schema against realistic bad data, through the same TFDV checks and report the
pipeline uses: what must stop a run stops it, what is within tolerance passes."""
import csv
from pathlib import Path

import pytest
import tensorflow_data_validation as tfdv

from components import validation_report

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = tfdv.load_schema_text(str(ROOT / "configs/schemas/penguin.pbtxt"))
ROWS = list(csv.DictReader(open(ROOT / "data/penguins/penguins.csv")))
pytestmark = pytest.mark.slow


def _report(tmp_path: Path, rows: list[dict]) -> str:
    path = tmp_path / "data.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    statistics = tfdv.generate_statistics_from_csv(str(path))
    return validation_report.render({"schema": tfdv.validate_statistics(statistics, SCHEMA)})


def _with(index_step: int, **changes) -> list[dict]:
    return [dict(row, **changes) if i % index_step == 0 else dict(row) for i, row in enumerate(ROWS)]


def test_bundled_data_is_clean(tmp_path):
    assert "[ok]" in _report(tmp_path, ROWS)


def test_unit_mix_up_out_of_domain_numbers(tmp_path):
    rows = [dict(r, bill_length_mm=str(float(r["bill_length_mm"]) / 10) if r["bill_length_mm"] else "") for r in ROWS]
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
    assert "- sex:" in report and "- gender:" in report
