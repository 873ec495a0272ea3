"""The whole penguin pipeline on the bundled data: push, cached re-run, and bad data stopping the run."""
import csv
from pathlib import Path

import pytest

from pipeline import config, runners

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
    # Evaluator runs again once: the first run had no blessed baseline to compare with, this one has.
    for node in ("CsvExampleGen", "StatisticsGen", "ExampleValidator", "Transform", "Trainer"):
        assert states[node] == "cached", (node, states)
    assert _versions(workdir / "serving_model") == _versions(workdir / "serving_model")[:1], "no duplicate push"
    assert result.pushed_path == first_run.pushed_path
    assert result.seconds < first_run.seconds / 2


def _corrupt_copy(destination: Path) -> Path:
    """The penguin table with text in a numeric column, an unknown island and a missing species."""
    destination.mkdir()
    rows = list(csv.DictReader(open(ROOT / "data/penguins/penguins.csv")))
    for i, row in enumerate(rows):
        if i % 5 == 0:
            row["body_mass_g"] = "heavy"
        if i % 4 == 0:
            row["island"] = "Atlantis"
        if i % 7 == 0:
            row["species"] = ""
    with open(destination / "penguins.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return destination


def test_corrupted_data_stops_before_training_and_keeps_the_model(first_run, workdir, tmp_path):
    before = _versions(workdir / "serving_model")
    loaded = config.load(ROOT / "configs/penguin.yaml", data=str(_corrupt_copy(tmp_path / "bad")))
    result = runners.run_local(loaded, workdir=workdir, show_progress=False)
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
