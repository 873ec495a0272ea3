"""The HTML run report, `tfxpipe runs` and lineage helpers, on tiny protos and a hand-written ML Metadata store."""
import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner
from ml_metadata.proto import metadata_store_pb2 as mlmd
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components import blessing_record, validation_report
from pipeline import cli, html_report, lineage, run_history, run_outcome, statistics
from pipeline.blessing import BlessingDecision
from pipeline.report_charts import distribution_svg, training_svg
from tests.support import mlmd_records


def _dataset(mass_low: float = 3000.0, islands: tuple = (("Biscoe", 30), ("Dream", 20))) -> statistics_pb2.DatasetFeatureStatistics:
    dataset = statistics_pb2.DatasetFeatureStatistics(num_examples=50)
    mass = dataset.features.add(name="body_mass_g", type=statistics_pb2.FeatureNameStatistics.FLOAT)
    mass.num_stats.common_stats.num_non_missing = 48
    mass.num_stats.common_stats.num_missing = 2
    mass.num_stats.mean, mass.num_stats.std_dev, mass.num_stats.min, mass.num_stats.max = 4200, 800, mass_low, 6000
    histogram = mass.num_stats.histograms.add(type=statistics_pb2.Histogram.STANDARD)
    for low, high, count in ((mass_low, 4500, 30), (4500, 6000, 18)):
        histogram.buckets.add(low_value=low, high_value=high, sample_count=count)
    island = dataset.features.add(name="island", type=statistics_pb2.FeatureNameStatistics.STRING)
    island.string_stats.common_stats.num_non_missing = 50
    island.string_stats.unique = len(islands)
    for label, count in islands:
        island.string_stats.top_values.add(value=label, frequency=count)
        island.string_stats.rank_histogram.buckets.add(label=label, sample_count=count)
    return dataset


def test_statistics_summaries_give_counts_moments_and_buckets():
    summaries = statistics.summarize(_dataset())
    assert list(summaries) == ["body_mass_g", "island"]
    mass, island = summaries["body_mass_g"], summaries["island"]
    assert (mass.kind, mass.count, mass.missing, mass.mean, mass.min) == ("numeric", 48, 2, 4200, 3000)
    assert mass.missing_fraction == pytest.approx(0.04)
    assert [(b.low, b.high, b.count) for b in mass.buckets] == [(3000, 4500, 30), (4500, 6000, 18)]
    assert (island.kind, island.unique, island.top_values[0]) == ("categorical", 2, ("Biscoe", 30))
    assert [b.label for b in island.buckets] == ["Biscoe", "Dream"]


def test_schema_rows_show_type_presence_domain_and_comparators():
    schema = schema_pb2.Schema()
    island = schema.feature.add(name="island", type=schema_pb2.BYTES, domain="island")
    island.presence.min_fraction = 1
    island.drift_comparator.infinity_norm.threshold = 0.25
    schema.string_domain.add(name="island", value=["Biscoe", "Dream"])
    mass = schema.feature.add(name="body_mass_g", type=schema_pb2.FLOAT)
    mass.float_domain.min = 2000
    assert statistics.schema_rows(schema) == [
        {"name": "island", "type": "BYTES", "presence": "required", "domain": "Biscoe, Dream",
         "drift": "L-infinity ≤ 0.25", "skew": ""},
        {"name": "body_mass_g", "type": "FLOAT", "presence": "optional", "domain": "min 2000", "drift": "", "skew": ""}]


def test_distribution_chart_overlays_the_previous_data_and_names_the_distance():
    current = statistics.summarize(_dataset(islands=(("Biscoe", 10), ("Dream", 40))))["island"]
    previous = statistics.summarize(_dataset())["island"]
    svg = distribution_svg(current, previous, {"check": "drift", "distance": 0.3, "threshold": 0.25, "exceeded": True})
    assert svg.startswith('<svg class="chart"') and svg.rstrip().endswith("</svg>")
    assert "previous" in svg and "this run" in svg and "drift 0.300" in svg
    numeric = distribution_svg(statistics.summarize(_dataset())["body_mass_g"])
    assert "previous" not in numeric and "body_mass_g" in numeric


def test_training_chart_has_one_panel_per_metric_with_validation_curves():
    svg = training_svg({"loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]})
    assert svg.count('id="axes_') == 2 and "validation" in svg


EVAL_CONFIG = {"metrics_specs": [{"metrics": [
    {"class_name": "SparseCategoricalAccuracy", "per_slice_thresholds": [
        {"slicing_specs": [{}], "threshold": {"value_threshold": {"lower_bound": 0.85},
                                              "change_threshold": {"direction": "HIGHER_IS_BETTER", "absolute": -0.0500000001}}},
        {"slicing_specs": [{"feature_keys": ["island"]}], "threshold": {"value_threshold": {"lower_bound": {"value": 0.8}}}}]},
    {"class_name": "ExampleCount"}]}]}
EVALUATION = {"Overall": {"sparse_categorical_accuracy": {"candidate": 0.95, "baseline": 0.96}},
              "island:Biscoe": {"sparse_categorical_accuracy": {"candidate": 0.97}},
              "island:Dream": {"sparse_categorical_accuracy": {"candidate": 0.7}},
              "sex:male": {"sparse_categorical_accuracy": {"candidate": 0.9}}}


def _result(blessing: BlessingDecision | None = None, **fields) -> run_outcome.RunResult:
    return run_outcome.RunResult(succeeded=False, components=[], seconds=1.0, blessing=blessing,
                                 blessed=None if blessing is None else blessing.blessed, **fields)


def test_threshold_rows_show_every_rule_on_every_slice_with_the_evaluators_verdict():
    dream = blessing_record.FailedCheck(slice="island:Dream", metric="sparse_categorical_accuracy", value=0.7,
                                        examples=5, gating=False, lower_bound=0.8, min_examples=10)
    result = _result(BlessingDecision(blessed=True, failed_checks=[dream], baseline_uri="/models/1"))
    rows = html_report.threshold_rows(EVAL_CONFIG, EVALUATION, result)
    assert [(r.slice, r.rule, r.value, r.status) for r in rows] == [
        ("Overall", "≥ 0.85", "0.95", "pass"),
        ("Overall", "worse than the baseline by ≤ 0.05", "0.95 vs 0.96", "pass"),
        ("island:Biscoe", "≥ 0.8", "0.97", "pass"),
        ("island:Dream", "≥ 0.8", "0.7", "reported")]
    first_run = _result(BlessingDecision(blessed=True, failed_checks=[], baseline_uri=None))
    assert html_report.threshold_rows(EVAL_CONFIG, EVALUATION, first_run)[1].status == "not applied"


def test_the_decision_is_one_sentence_for_each_outcome():
    rejected = _result(data_validation=run_outcome.DataValidation(
        verdict="rejected", report="", findings=[{"check": "schema", "feature": "island"}]))
    assert html_report.decision_sentence(rejected, ("7", "/m/7")) == (
        "Nothing was pushed: the data validation gate rejected the data (1 finding: schema (island)), "
        "so no model was trained; version 7 keeps serving.")
    low = blessing_record.FailedCheck(slice="Overall", metric="sparse_categorical_accuracy", value=0.5, examples=66,
                                      gating=True, lower_bound=0.85)
    refused = html_report.decision_sentence(_result(BlessingDecision(False, [low], None)), None)
    assert refused.startswith("Nothing was pushed: the model was not blessed (Overall: sparse_categorical_accuracy 0.5")
    assert refused.endswith("; no model has been pushed yet.")
    pushed = _result(BlessingDecision(True, [], "/m/7"), pushed_path="/serving/penguin/8")
    assert html_report.decision_sentence(pushed, ("8", "/serving/penguin/8")).startswith(
        "Pushed version 8 to /serving/penguin/8: the model passed every gating threshold and was compared")


def test_model_version_argument_is_parsed_or_explained():
    assert lineage.parse_model_version("penguin:1733150000") == ("penguin", "1733150000")
    with pytest.raises(ValueError, match="MODEL_NAME:VERSION"):
        lineage.parse_model_version("penguin")


# --- a rejected run in a hand-written store -------------------------------------------------------------

def _statistics_artifact(directory: Path, dataset) -> mlmd.Artifact:
    for split in ("train", "eval"):
        (directory / f"Split-{split}").mkdir(parents=True)
        listing = statistics_pb2.DatasetFeatureStatisticsList(datasets=[dataset])
        (directory / f"Split-{split}" / statistics.STATISTICS_FILE).write_bytes(listing.SerializeToString())
    return mlmd_records.artifact("ExampleStatistics", uri=str(directory), split_names='["train", "eval"]')


@pytest.fixture()
def workdir(tmp_path) -> Path:
    """Two runs: the first pushed version 7; the second's data drifted on island and was rejected."""
    store = mlmd_records.writable_store(tmp_path / "metadata.sqlite")
    first = mlmd_records.start_run(store, "2026-01-01T00:00:00.000001")
    stats = _statistics_artifact(tmp_path / "stats-1", _dataset())
    mlmd_records.record(store, first, "StatisticsGen", outputs={"statistics": stats})
    validated = _statistics_artifact(tmp_path / "validated-1", _dataset())
    mlmd_records.record(store, first, "AcceptValidatedData", outputs={"validated_statistics": validated})
    mlmd_records.record(store, first, "Pusher", outputs={"pushed_model": mlmd_records.artifact(
        "PushedModel", pushed=1, pushed_version="7", pushed_destination="/serving/penguin/7")})
    second = mlmd_records.start_run(store, "2026-01-02T00:00:00.000001")
    drifted = _statistics_artifact(tmp_path / "stats-2", _dataset(islands=(("Biscoe", 5), ("Dream", 45))))
    mlmd_records.record(store, second, "StatisticsGen", outputs={"statistics": drifted})
    distance = {"check": "drift", "split": "train", "feature": "island", "measure": "L_INFTY", "distance": 0.5,
                "threshold": 0.25, "exceeded": True, "span": 0, "baseline_span": 0}
    finding = {"check": "drift", "split": "train", "feature": "island", "kind": "COMPARATOR_L_INFTY_HIGH",
               "description": "The L-infinity distance is 0.5 (up to six significant digits)", "distance": 0.5,
               "threshold": 0.25}
    verdict = mlmd_records.artifact("tfxpipe.DataValidationVerdict", **{
        validation_report.VERDICT_PROPERTY: "rejected", validation_report.FINDINGS_PROPERTY: json.dumps([finding]),
        validation_report.DISTANCES_PROPERTY: json.dumps([distance]),
        validation_report.REPORT_PROPERTY: "[FAIL] drift (train split vs last validated data): 1 anomaly"})
    [stored_validated] = store.get_artifacts_by_uri(str(tmp_path / "validated-1"))
    mlmd_records.record(store, second, "DataValidationGate", outputs={"verdict": verdict},
                        inputs={"baseline_statistics": stored_validated})
    mlmd_records.record(store, second, "AcceptValidatedData", mlmd.Execution.FAILED)
    return tmp_path


def test_report_of_a_rejected_run_shows_the_drift_the_finding_and_the_model_still_serving(workdir, tmp_path):
    page = BeautifulSoup(html_report.render(html_report.build(workdir / "metadata.sqlite")), "html.parser")
    assert "rejected the data (1 finding: drift (island))" in page.select_one("#decision").text
    assert "version 7 keeps serving" in page.select_one("#decision").text
    train = page.select_one('.split[data-split="train"]')
    assert train.select_one('tr[data-feature="island"]')["class"] == ["exceeded"]
    assert "L_INFTY 0.5000 > 0.25" in train.select_one('tr[data-feature="island"] td[data-field="distance"]').text
    assert "previous" in str(train.select_one('figure[data-feature="island"] svg')), "overlaid with the baseline"
    assert page.select_one('#findings tr.finding[data-feature="island"]') is not None
    assert page.select_one('[data-field="serving-version"]').text == "7"
    assert page.select_one('#components tr[data-node="AcceptValidatedData"] td.failed') is not None
    assert page.find("script") is None and page.find("link") is None, "self-contained: nothing to fetch"


def test_report_command_writes_html_for_a_chosen_run_from_the_workdir_alone(workdir):
    output = workdir / "first.html"
    outcome = CliRunner().invoke(cli.main, ["report", "--workdir", str(workdir), "--run", "2026-01-01T00:00:00.000001",
                                            "--output", str(output)])
    assert outcome.exit_code == 0, outcome.output
    page = BeautifulSoup(output.read_text(), "html.parser")
    assert page.select_one('[data-field="pushed-version"]').text == "7"
    unknown = CliRunner().invoke(cli.main, ["report", "--workdir", str(workdir), "--run", "nope"])
    assert unknown.exit_code == 1 and "`tfxpipe runs` lists" in unknown.output


def test_runs_lists_every_run_with_its_status(workdir):
    rows = run_history.runs(workdir / "metadata.sqlite")
    assert [(r.run_id, r.status, r.pushed_version) for r in rows] == [
        ("2026-01-01T00:00:00.000001", "pushed", "7"), ("2026-01-02T00:00:00.000001", "data rejected", None)]
    assert rows[1].components["AcceptValidatedData"] == "failed"
    outcome = CliRunner().invoke(cli.main, ["runs", "--workdir", str(workdir), "--format", "json"])
    assert outcome.exit_code == 0, outcome.output
    assert [r["status"] for r in json.loads(outcome.output)] == ["pushed", "data rejected"]
    assert run_history.component_summary(rows[1].components) == "2 complete, 1 failed; AcceptValidatedData failed"


def test_commands_need_a_workdir_or_a_config(tmp_path):
    outcome = CliRunner().invoke(cli.main, ["runs"])
    assert outcome.exit_code == 2 and "--workdir" in outcome.output
    empty = CliRunner().invoke(cli.main, ["runs", "--workdir", str(tmp_path)])
    assert empty.exit_code == 1 and "no runs in" in empty.output
