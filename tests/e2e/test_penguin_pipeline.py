"""The whole penguin pipeline on the bundled data: push, cached re-run, and bad data stopping the run; then
the HTML reports, `tfxpipe runs` and `tfxpipe lineage` of those same runs (no extra pipeline run)."""
import csv
import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from pipeline import cli, config, run_outcome, runners, statistics
from tests.support import browser

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

TRAINING_COMPONENTS = ("Transform", "Trainer", "Evaluator", "Pusher")


def _versions(serving_dir: Path) -> list[str]:
    model_dir = serving_dir / "penguin"
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("penguin-run")


@pytest.fixture(scope="module")
def first_run(workdir):
    loaded = config.load(ROOT / "configs/penguin.yaml")
    return runners.run_local(loaded, workdir=workdir, show_progress=False)


def test_first_run_pushes_a_blessed_model(first_run, workdir):
    result = first_run
    assert result.succeeded, result.error
    states = {c.node_id: c.state for c in result.components}
    for node in ("CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "DataValidationGate",
                 "AcceptValidatedData", *TRAINING_COMPONENTS):
        assert states[node] == "complete", (node, states)
    assert len(result.components) == len(states), "each component executed once"
    assert "[FAIL]" not in result.validation_report
    assert result.data_validation.verdict == "passed" and result.data_validation.findings == []
    assert result.component("AcceptValidatedData").outputs["validated_statistics"], "the next run's drift baseline"
    overall = result.metrics["Overall"]
    assert overall["sparse_categorical_accuracy"] >= 0.85
    assert {"island:Biscoe", "sex:female"} <= set(result.metrics), "sliced metrics by island and sex"
    assert any("/class_" in key for key in overall), "per-class precision/recall"
    assert result.blessed is True
    assert result.infra_validation is not None and result.infra_validation.blessed, result.infra_validation
    versions = _versions(workdir / "serving_model")
    assert len(versions) == 1 and versions[0].isdigit()
    pushed = Path(result.pushed_path)
    assert pushed == workdir / "serving_model" / "penguin" / versions[0]
    assert (pushed / "saved_model.pb").is_file()
    assert (pushed / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_rerun_with_nothing_changed_is_served_from_cache(first_run, workdir):
    loaded = config.load(ROOT / "configs/penguin.yaml")
    result = runners.run_local(loaded, workdir=workdir, show_progress=False)
    assert result.succeeded, result.error
    states = {c.node_id: c.state for c in result.components}
    # A repeat of the last run (same config, data, code and stack) is recognised by its fingerprint and
    # answered from ML Metadata (pipeline/run_fingerprint.py): every component shows as cached.
    for node in ("CsvExampleGen", "StatisticsGen", "ExampleValidator", "Transform", "Trainer"):
        assert states[node] == "cached", (node, states)
    assert _versions(workdir / "serving_model") == _versions(workdir / "serving_model")[:1], "no duplicate push"
    assert result.pushed_path == first_run.pushed_path
    assert result.seconds < first_run.seconds / 2


def _corrupt_copy(destination: Path) -> Path:
    """The penguin table with impossible masses (kg for g), an unknown island and an unknown species.

    (Text in a numeric column never gets this far: the pre-flight check stops the run on it, and rows
    without a species are dropped at ingestion; tests/e2e/test_real_world_files.py covers both.)"""
    destination.mkdir()
    rows = list(csv.DictReader(open(ROOT / "data/penguins/penguins.csv")))
    for i, row in enumerate(rows):
        if i % 5 == 0 and row["body_mass_g"] != "NA":
            row["body_mass_g"] = str(float(row["body_mass_g"]) / 1000)
        if i % 4 == 0:
            row["island"] = "Atlantis"
        if i % 7 == 0:
            row["species"] = "Unicorn"
    with open(destination / "penguins.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return destination


@pytest.fixture(scope="module")
def rejected_run(first_run, workdir, tmp_path_factory):
    """A run on corrupted data in the same work directory, after the first run pushed (versions before, result)."""
    before = _versions(workdir / "serving_model")
    loaded = config.load(ROOT / "configs/penguin.yaml", data=str(_corrupt_copy(tmp_path_factory.mktemp("corrupt") / "bad")))
    return before, runners.run_local(loaded, workdir=workdir, show_progress=False)


def test_corrupted_data_stops_before_training_and_keeps_the_model(rejected_run, workdir):
    before, result = rejected_run
    assert not result.succeeded
    assert result.data_rejected
    states = {c.node_id: c.state for c in result.components}
    # The gate records its verdict (read back from ML Metadata); AcceptValidatedData stops the run on it.
    assert states["DataValidationGate"] == "complete" and result.data_validation.verdict == "rejected"
    assert states["AcceptValidatedData"] == "failed"
    assert not result.component("AcceptValidatedData").outputs, "rejected data never becomes the drift baseline"
    for node in TRAINING_COMPONENTS:
        assert node not in states, f"{node} must not run on rejected data"
    report = result.validation_report
    assert "body_mass_g" in report and "island" in report and "species" in report
    assert "[FAIL] schema (train split)" in report
    found = {(f["check"], f["split"], f["feature"]) for f in result.data_validation.findings}
    assert {("schema", "train", "body_mass_g"), ("schema", "train", "island"), ("schema", "train", "species")} <= found
    assert _versions(workdir / "serving_model") == before


def test_pushed_model_is_served_and_answers_rest_and_grpc(first_run, workdir):
    from pipeline.serve_check import serve_and_query

    loaded = config.load(ROOT / "configs/penguin.yaml")
    check = serve_and_query(loaded, workdir / "serving_model")
    assert check.version == int(Path(first_run.pushed_path).name)
    assert check.row["island"] == "Torgersen"  # first complete row of the bundled data: an Adelie
    for prediction in (check.rest_prediction, check.grpc_prediction):
        assert prediction.predicted_class == "Adelie"
        assert set(prediction.class_scores) == {"Adelie", "Chinstrap", "Gentoo"}
    assert check.rest_prediction.class_scores == pytest.approx(check.grpc_prediction.class_scores, abs=1e-6)


# --- what happened, read back: the HTML reports, `tfxpipe runs` and `tfxpipe lineage` of the runs above -----

def _page(result) -> BeautifulSoup:
    assert result.report_path is not None and result.report_path.is_file(), "`tfxpipe run` writes a report per run"
    assert result.report_path.parent.name == "reports"
    return BeautifulSoup(result.report_path.read_text(encoding="utf-8"), "html.parser")


def _cell(page: BeautifulSoup, selector: str) -> str:
    element = page.select_one(selector)
    assert element is not None, selector
    return element.get_text(strip=True)


def test_report_of_the_pushed_run_shows_the_numbers_ml_metadata_holds(first_run):
    page = _page(first_run)
    version = Path(first_run.pushed_path).name
    assert _cell(page, "#decision").startswith(f"Pushed version {version} to {first_run.pushed_path}")
    assert _cell(page, '[data-field="pushed-version"]') == version
    overall = first_run.metrics["Overall"]
    accuracy = '#metrics tr[data-slice="Overall"] td[data-metric="sparse_categorical_accuracy"][data-model="candidate"]'
    assert _cell(page, accuracy) == f"{overall['sparse_categorical_accuracy']:.4g}"
    for slice_name in ("island:Biscoe", "sex:female"):
        assert page.select_one(f'#metrics tr[data-slice="{slice_name}"]') is not None
    assert [_cell(page, f'#per-class tr[data-class="{name}"] td:nth-of-type(1)') for name in first_run.class_names] == \
        ["Adelie", "Chinstrap", "Gentoo"]
    threshold = page.select_one('#thresholds tr[data-slice="Overall"][data-metric="sparse_categorical_accuracy"]')
    assert [td.get_text(strip=True) for td in threshold.find_all("td")][2:] == \
        ["≥ 0.85", f"{overall['sparse_categorical_accuracy']:.4g}", "pass"]
    summary = json.loads((Path(first_run.component("Trainer").outputs["model_run"][0].uri) / "training_summary.json").read_text())
    assert _cell(page, '[data-field="num_replicas"]') == str(summary["num_replicas"])
    assert _cell(page, '[data-field="global_batch_size"]') == str(summary["global_batch_size"])
    assert page.select_one("#training svg.chart") is not None, "training curves"
    stats = first_run.component("StatisticsGen").outputs["statistics"][0]
    for split in ("train", "eval"):
        dataset = statistics.read_split(stats, split)
        section = page.select_one(f'.split[data-split="{split}"]')
        assert f"{split} split: {dataset.num_examples} examples" in section.h3.text
        mass = statistics.summarize(dataset)["body_mass_g"]
        assert _cell(section, 'tr[data-feature="body_mass_g"] td[data-field="count"]') == str(mass.count)
        assert len(section.select("figure svg.chart")) == len(dataset.features), "one chart per feature"
    assert "curated: " in page.select_one("#validation").text and page.select_one('#schema tr[data-feature="island"]')


def test_report_of_the_rejected_run_highlights_each_anomaly_and_says_why_nothing_was_pushed(first_run, rejected_run):
    _, result = rejected_run
    page = _page(result)
    decision = _cell(page, "#decision")
    assert decision.startswith("Nothing was pushed: the data validation gate rejected the data")
    assert f"version {Path(first_run.pushed_path).name} keeps serving" in decision
    for feature in ("body_mass_g", "island", "species"):
        assert page.select_one(f'#findings tr.finding[data-check="schema"][data-feature="{feature}"]') is not None, feature
    drifts = {row["feature"]: row for row in result.data_validation.distances if row["check"] == "drift"}
    assert set(drifts) == {"island", "sex"}, "drift is measured against the first run's validated data"
    island = page.select_one('.split[data-split="train"] tr[data-feature="island"] td[data-field="distance"]')
    assert f"{drifts['island']['distance']:.4f}" in island.text
    assert "previous" in str(page.select_one('.split[data-split="train"] figure[data-feature="island"] svg'))
    assert _cell(page, '#components tr[data-node="AcceptValidatedData"] td:nth-of-type(2)') == "failed"
    assert "No model was trained" in page.select_one("#training").text


@pytest.mark.parametrize("which", ["pushed", "rejected"])
def test_reports_render_in_headless_chromium(first_run, rejected_run, which):
    result = first_run if which == "pushed" else rejected_run[1]
    page = browser.view(result.report_path)
    assert page.console_errors == []
    columns = len(config.load(ROOT / "configs/penguin.yaml").cfg.features) + 1  # the features and the label
    # at least a statistics chart per ingested column; every chart found on the page has drawn
    assert page.charts >= columns and page.drawn_charts == page.charts, (page.drawn_charts, page.charts)
    assert page.ink > 0.05, "the screenshot is not blank"


def test_runs_lists_the_pushed_and_the_rejected_run_with_their_status(first_run, rejected_run, workdir):
    outcome = CliRunner().invoke(cli.main, ["runs", "--workdir", str(workdir), "--format", "json"])
    assert outcome.exit_code == 0, outcome.output
    rows = {row["run_id"]: row for row in json.loads(outcome.output)}
    pushed, rejected = rows[first_run.run_id], rows[rejected_run[1].run_id]
    assert (pushed["status"], pushed["pushed_version"], pushed["blessed"]) == ("pushed", Path(first_run.pushed_path).name, True)
    assert pushed["headline_value"] == pytest.approx(first_run.metrics["Overall"]["sparse_categorical_accuracy"])
    assert (rejected["status"], rejected["pushed_version"]) == ("data rejected", None)
    assert rejected["components"]["AcceptValidatedData"] == "failed"
    table = CliRunner().invoke(cli.main, ["runs", "--workdir", str(workdir)])
    assert first_run.run_id in table.output and "data rejected" in table.output


def test_lineage_of_the_pushed_version_names_its_examplegen_artifact_and_span(first_run, workdir):
    version = Path(first_run.pushed_path).name
    [examples] = first_run.component("CsvExampleGen").outputs["examples"]
    outcome = CliRunner().invoke(cli.main, ["lineage", "--workdir", str(workdir), f"penguin:{version}", "--format", "json"])
    assert outcome.exit_code == 0, outcome.output
    found = json.loads(outcome.output)
    data = found["data"]["examples"]
    assert (data["artifact_id"], data["uri"], data["span"]) == (examples.id, examples.uri, run_outcome.artifact_span(examples))
    assert data["produced_by"] == "CsvExampleGen" and data["run"] == first_run.run_id
    assert found["data"]["data_validation"]["verdict"] == "passed"
    assert found["data"]["statistics"]["produced_by"] == "StatisticsGen"
    assert found["schema"]["source"].startswith("curated: ") and found["transform_graph"]["produced_by"] == "Transform"
    assert found["trainer"]["hyperparameters"]["learning_rate"] == 0.01
    assert found["trainer"]["code"]["run_fn"] == "trainer.task.run_fn" and found["trainer"]["code"]["trainer_sources_sha256"]
    assert found["blessing"]["blessed"] is True
    assert found["evaluation"]["overall_metrics"]["sparse_categorical_accuracy"] == \
        pytest.approx(first_run.metrics["Overall"]["sparse_categorical_accuracy"])
    tree = CliRunner().invoke(cli.main, ["lineage", "--workdir", str(workdir), f"penguin:{version}"])
    assert f"Examples #{examples.id}" in tree.output and examples.uri in tree.output
