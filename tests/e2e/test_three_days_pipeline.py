"""Three days of data (issue 16), then a window: the continuous-training loop through the real pipeline.

One work directory holds successive runs, as a scheduler's would, and the tests share them (in order);
the days are those of scripts/make_penguin_days.py, which the walk-through in docs/continuous-training.md uses:
- day 1, span 1: no blessed model yet, so a cold start; infra-validated in `tfxpipe serve`; v1 pushed.
- day 2, span 2: the same rows in another order (similar data, and the same train split, so its first
  epoch's loss compares with day 1's cold start on the same data): warm-starts from v1, passes drift
  against span 1, is infra-validated and pushed as v2.
- day 3, span 3: one island only (drifted): stops before Transform; v2 keeps serving.
- `--span 1`: a backfill of span 1, drift measured against span 2 (span 3 never became a baseline).
- live traffic skew (gated) stops a run; `tfxpipe monitor` reports the skewed feature.
- day 4, span 4 with `data.window: 3`: trains on spans 2 and 4; span 3, rejected on day 3, stays out.
Every fact is read from ML Metadata (RunResult) or the run's own artifacts. Training is short and the
blessing bound low: these tests are about the loop, not model quality.
"""
import io
import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from pipeline import config, report, runners, spans
from scripts.make_penguin_days import write_day
from tests.support.prediction_logs import penguin_rows, write_logs

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
TRAINING = ("Transform", "Trainer", "Evaluator", "InfraValidator", "Pusher")


def _config(tmp_path: Path, window: int = 1, **validation) -> Path:
    raw = yaml.safe_load((ROOT / "configs/penguin.yaml").read_text())
    raw["data"]["window"] = window
    raw["validation"].update(schema_path=str(ROOT / "configs/schemas/penguin.pbtxt"), **validation)
    raw["model"].update(epochs=12, early_stopping_patience=3, learning_rate=0.03, warm_start=True)
    raw["evaluation"] = {"thresholds": {"sparse_categorical_accuracy": {"lower_bound": 0.5, "max_decrease": 0.5}}}
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
    days = Days(tmp_path_factory.mktemp("days"))
    write_day(days.data, 1)
    return days


def _states(result) -> dict[str, str]:
    return {c.node_id: c.state for c in result.components}


def _training_summary(result) -> dict:
    trainer = result.component("Trainer")
    assert trainer is not None and trainer.state == "complete", _states(result)
    return json.loads((Path(trainer.outputs["model_run"][0].uri) / "training_summary.json").read_text())


def _infra_blessed(result) -> bool:
    return result.infra_validation is not None and result.infra_validation.blessed


def test_day_1_ingests_span_1_trains_cold_and_pushes_v1(days):
    result, summary = days.run("day1")
    assert result.succeeded, result.error
    assert result.span == 1 and "Span 1" in summary and result.window is None
    assert result.data_validation.span == 1 and result.data_validation.baseline_span is None
    assert "[skip] drift: no validated data to compare with yet (first run)" in summary
    warm_start = _training_summary(result)["warm_start"]
    assert warm_start["warm"] is False and "no blessed model" in warm_start["cold_reason"]
    assert _infra_blessed(result) and result.pushed_path
    assert len(days.versions()) == 1


def test_no_new_span_is_refused_before_any_work(days):
    with pytest.raises(spans.NoNewSpan, match="latest span is 1 and span 1 was already ingested"):
        days.run("again")


def test_day_2_warm_starts_passes_drift_is_infra_validated_and_pushes_v2(days):
    write_day(days.data, 2)
    result, summary = days.run("day2")
    assert result.succeeded, result.error
    assert result.span == 2 and result.data_validation.baseline_span == 1
    assert "[ok]   drift (train split vs last validated data: span 2 vs span 1)" in summary
    distances = {d["feature"]: d for d in result.data_validation.distances if d["check"] == "drift"}
    assert set(distances) == {"island", "sex"}, "every configured drift feature has its distance recorded"
    assert all(not d["exceeded"] and (d["span"], d["baseline_span"]) == (2, 1) for d in distances.values())
    assert "ok   drift        island" in summary and "(span 2 vs span 1)" in summary
    cold, warm = _training_summary(days.results["day1"][0]), _training_summary(result)
    v1_model = days.results["day1"][0].component("Trainer").outputs["model"][0].uri
    assert warm["warm_start"]["warm"] is True and warm["warm_start"]["base_model"].startswith(v1_model)
    assert warm["history"]["loss"][0] < cold["history"]["loss"][0], (warm["history"]["loss"], cold["history"]["loss"])
    assert _infra_blessed(result)
    assert len(days.versions()) == 2


def test_day_3_drifted_data_stops_before_transform_and_v2_keeps_serving(days):
    before = days.versions()
    write_day(days.data, 3)
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


def test_day_4_window_trains_on_the_accepted_spans_and_leaves_the_rejected_one_out(days):
    before = days.versions()
    write_day(days.data, 4)
    result, summary = days.run("window", config_path=_config(days.root, window=3))
    assert result.succeeded, result.error
    assert result.span == 4 and result.data_validation.span == 4, "the newest span is the one validated"
    states = _states(result)
    assert {"CsvExampleGen_previous_1", "CsvExampleGen_previous_2", "ExamplesWindow"} <= set(states)
    assert result.window.spans == [2, 4] and result.window.unvalidated == [3] and result.window.size == 3
    assert ("Window trained on span(s) 2, 4 (2 of data.window 3); left out span(s) 3: never accepted by the "
            "data gate") in summary
    window_uri = Path(result.component("ExamplesWindow").outputs["window_examples"][0].uri)
    assert {p.name.split("-")[1] for p in (window_uri / "Split-train").iterdir()} == {"2", "4"}
    assert _training_summary(result)["warm_start"]["warm"] is True
    assert len(days.versions()) == len(before) + 1
