"""A second dataset is a second YAML: the wine config, on TFX's BeamDagRunner, to a pushed model that is
served and answers over REST and gRPC. One run (module-scoped) serves every test here."""
from pathlib import Path

import pytest

from pipeline import config, runners

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wine")
    loaded = config.load(ROOT / "configs/wine.yaml")
    return loaded, runners.run_local(loaded, workdir=workdir, runner="beam", show_progress=False), workdir


def test_wine_pipeline_on_beam_runner_pushes_a_blessed_model(wine_run):
    _, result, workdir = wine_run
    assert result.succeeded, result.error
    states = {c.node_id: c.state for c in result.components}
    assert states["SchemaGen"] == "complete", "no curated schema: the schema is inferred"
    assert "[ok]   skew (train vs eval split)" in result.validation_report
    assert result.metrics["Overall"]["sparse_categorical_accuracy"] >= 0.8
    assert result.blessed is True
    assert Path(result.pushed_path).parent == workdir / "serving_model" / "wine"
    assert (Path(result.pushed_path) / "saved_model.pb").is_file()


def test_wine_model_is_served_and_answers_rest_and_grpc(wine_run):
    from pipeline.serve_check import serve_and_query

    loaded, result, workdir = wine_run
    check = serve_and_query(loaded, workdir / "serving_model")
    assert check.version == int(Path(result.pushed_path).name)
    classes = set(loaded.cfg.label.classes)
    for prediction in (check.rest_prediction, check.grpc_prediction):
        assert set(prediction.class_scores) == classes and prediction.predicted_class in classes
    assert check.rest_prediction.class_scores == pytest.approx(check.grpc_prediction.class_scores, abs=1e-6)
    for scores in (check.rest_examples_result, check.grpc_examples_result):  # Classify, on the same row
        assert scores == pytest.approx(check.rest_prediction.class_scores, abs=1e-5)
