"""Days of data, as spans: each run ingests the newest span, drift is measured against the last validated
span, drifted data stops before Transform while the last model keeps serving, and `--span N` backfills.

One work directory holds successive runs, as a scheduler's would. Spans are generated from the bundled
penguin table: day 1 is the table, day 2 a resample of it (similar), day 3 one island only (drifted).
Training is short and the blessing bound low: these tests are about spans, not model quality.
(The full "three days" scenario adds warm start and infra validation on top; see docs/continuous-training.md.)
"""
import csv
import io
import random
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from pipeline import config, report, runners, spans
from tests.support.prediction_logs import penguin_rows, write_logs

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
TRAINING = ("Transform", "Trainer", "Evaluator", "Pusher")
ROWS = list(csv.DictReader(open(ROOT / "data/penguins/penguins.csv")))


def _write_span(data: Path, span: int, rows: list[dict]) -> None:
    (data / f"span-{span}").mkdir(parents=True)
    with open(data / f"span-{span}" / "penguins.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(rows)


def _config(tmp_path: Path, **validation) -> Path:
    raw = yaml.safe_load((ROOT / "configs/penguin.yaml").read_text())
    raw["validation"].update(schema_path=str(ROOT / "configs/schemas/penguin.pbtxt"), **validation)
    raw["model"].update(epochs=12, early_stopping_patience=3, learning_rate=0.03)
    raw["evaluation"] = {"thresholds": {"sparse_categorical_accuracy": {"lower_bound": 0.5, "max_decrease": 0.5}}}
    raw["serving"] = {"infra_validation": False}  # not what these tests check (~30 s a run)
    path = tmp_path / f"penguin-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class Days:
    """The shared work directory, the span data directory and the runs so far."""

    def __init__(self, root: Path):
        self.root, self.data, self.workdir = root, root / "data", root / "work"
        self.config = _config(root)
        self.results = {}

    def run(self, name: str, span=None, config_path=None):
        loaded = config.load(config_path or self.config, data=str(self.data / "span-{SPAN}"))
        result = runners.run_local(loaded, workdir=self.workdir, show_progress=False, span=span)
        out = io.StringIO()
        report.print_run_summary(result, Console(file=out, width=250))
        self.results[name] = (result, out.getvalue())
        return result, out.getvalue()

    def versions(self) -> list[str]:
        model_dir = self.workdir / "serving_model" / "penguin"
        return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


@pytest.fixture(scope="module")
def days(tmp_path_factory) -> Days:
    days = Days(tmp_path_factory.mktemp("spans"))
    _write_span(days.data, 1, ROWS)
    return days


def _states(result) -> dict[str, str]:
    return {c.node_id: c.state for c in result.components}


def test_day_1_ingests_span_1_and_pushes_v1(days):
    result, summary = days.run("day1")
    assert result.succeeded, result.error
    assert result.span == 1 and "Span 1" in summary
    assert result.data_validation.span == 1 and result.data_validation.baseline_span is None
    assert "[skip] drift: no validated data to compare with yet (first run)" in summary
    assert len(days.versions()) == 1


def test_no_new_span_is_refused_before_any_work(days):
    with pytest.raises(spans.NoNewSpan, match="latest span is 1 and span 1 was already ingested"):
        days.run("again")


def test_day_2_similar_data_passes_drift_against_span_1_and_pushes_v2(days):
    _write_span(days.data, 2, random.Random(2).choices(ROWS, k=len(ROWS)))
    result, summary = days.run("day2")
    assert result.succeeded, result.error
    assert result.span == 2 and result.data_validation.baseline_span == 1
    assert "[ok]   drift (train split vs last validated data: span 2 vs span 1)" in summary
    distances = {d["feature"]: d for d in result.data_validation.distances if d["check"] == "drift"}
    assert set(distances) == {"island", "sex"}, "every configured drift feature has its distance recorded"
    assert all(not d["exceeded"] and (d["span"], d["baseline_span"]) == (2, 1) for d in distances.values())
    assert "ok   drift        island" in summary and "(span 2 vs span 1)" in summary
    assert len(days.versions()) == 2


def test_day_3_drifted_data_stops_before_transform_and_v2_keeps_serving(days):
    before = days.versions()
    _write_span(days.data, 3, [r for r in ROWS if r["island"] == "Biscoe"])
    result, summary = days.run("day3")
    assert not result.succeeded and result.data_rejected
    assert result.span == 3 and result.data_validation.baseline_span == 2
    assert "[FAIL] drift (train split vs last validated data: span 3 vs span 2)" in summary
    [island] = [d for d in result.data_validation.distances if d["feature"] == "island"]
    assert island["exceeded"] and island["distance"] > island["threshold"]
    assert not set(TRAINING) & set(_states(result)), "nothing after the gate ran"
    assert days.versions() == before


def test_backfill_of_span_1_reruns_it_against_the_last_validated_span(days):
    result, summary = days.run("backfill", span=1)
    assert result.succeeded, result.error
    assert result.span == 1 and result.data_validation.baseline_span == 2, "span 3 was rejected: never a baseline"
    assert _states(result)["CsvExampleGen"] == "cached", "the same span is the same input"
    assert "Span 1" in summary


def test_skewed_live_traffic_stops_the_run_when_gating_is_on(days):
    logs = write_logs(days.root / "logs", penguin_rows(island="Biscoe"))
    gated = _config(days.root, serving_logs=str(logs), serving_skew={"island": 0.25},
                    fail_on_serving_skew=True)
    before = days.versions()
    result, summary = days.run("skew", span=2, config_path=gated)
    assert not result.succeeded and result.data_rejected
    [finding] = [f for f in result.data_validation.findings if f["check"] == "serving_skew"]
    assert finding["feature"] == "island" and finding["distance"] > 0.25
    assert "[FAIL] serving skew (train split vs requests logged in" in summary
    assert not set(TRAINING) & set(_states(result))
    assert days.versions() == before


def test_monitor_compares_logged_traffic_with_the_latest_validated_span(days):
    """`tfxpipe monitor` on this work directory: the backfill of span 1 is the latest validated data."""
    from click.testing import CliRunner

    from pipeline.cli import main

    watched = _config(days.root, serving_skew={"island": 0.25, "sex": 0.25})
    args = ["monitor", "--config", str(watched), "--workdir", str(days.workdir), "--logs"]
    skewed = CliRunner().invoke(main, args + [str(write_logs(days.root / "logs-skewed", penguin_rows(island="Biscoe")))])
    assert skewed.exit_code == 1, skewed.output
    assert "serving skew: island (logged traffic vs training span 1)" in skewed.output
    assert "ok     sex: L_INFTY" in skewed.output
    healthy = CliRunner().invoke(main, args + [str(write_logs(days.root / "logs-healthy", penguin_rows()))])
    assert healthy.exit_code == 0 and "no serving skew" in healthy.output, healthy.output
