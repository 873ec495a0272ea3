"""A new task is a new YAML: binary (breast cancer, AUC threshold) and regression (diabetes, RMSE
threshold) from scikit-learn's bundled data, each trained, evaluated, blessed, pushed, served and
answered over REST and gRPC — Predict on raw features, and Classify or Regress on tf.Examples whose
numeric features are sent as int64 and as float alike.

One small run per dataset (module-scoped), so the whole module stays a few minutes long.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline import config, runners
from tests.support.config_files import without_infra_validation

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(name: str, workdir: Path):
    loaded = without_infra_validation(config.load(ROOT / f"configs/{name}.yaml"))  # not what these tests check
    return loaded, runners.run_local(loaded, workdir=workdir, show_progress=False)


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("breast_cancer")
    loaded, result = _run("breast_cancer", workdir)
    return loaded, result, workdir


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("diabetes")
    loaded, result = _run("diabetes", workdir)
    return loaded, result, workdir


def _first_rows(name: str, count: int) -> list[dict[str, str]]:
    with (ROOT / f"data/{name}/{name}.csv").open(newline="") as f:
        return [row for _, row in zip(range(count), csv.DictReader(f))]


def _as_ints_and_floats(row: dict[str, str], loaded) -> tuple[dict, dict]:
    """The same example twice: whole numbers as JSON ints (int64_list), then every number as a float."""
    numbers = {f.name: float(row[f.name]) for f in loaded.cfg.features if f.type == "numeric"}
    text = {f.name: row[f.name] for f in loaded.cfg.features if f.type != "numeric"}
    as_ints = {k: int(v) if v.is_integer() else v for k, v in numbers.items()}
    return {**as_ints, **text}, {**numbers, **text}


def _clients(loaded, workdir):
    import portpicker

    from serving import client
    from serving.server import ModelServer, ServerOptions

    name = loaded.cfg.model_name
    options = ServerOptions(port=portpicker.pick_unused_port(), rest_api_port=portpicker.pick_unused_port(),
                            model_name=name, model_base_path=str(workdir / "serving_model" / name), host="127.0.0.1")
    server = ModelServer(options)
    return server, lambda: (client.RestClient(f"http://127.0.0.1:{server.rest_port}", name),
                            client.GrpcClient(f"127.0.0.1:{server.grpc_port}", name))


def test_binary_run_is_blessed_on_auc_and_pushed(breast_cancer):
    loaded, result, workdir = breast_cancer
    assert loaded.cfg.task == "binary"
    assert result.succeeded, result.error
    overall = result.metrics["Overall"]
    assert overall["auc/class_1"] >= 0.95, overall
    binarized = {"auc_precision_recall", "binary_accuracy", "precision", "recall", "calibration"}
    assert {f"{name}/class_1" for name in binarized} | {"example_count"} <= set(overall), overall
    assert overall["example_count"] >= 50, "the config's example_count floor"
    assert result.blessed is True
    assert Path(result.pushed_path).parent == workdir / "serving_model" / "breast_cancer"


def test_binary_model_answers_predict_and_classify_over_rest_and_grpc(breast_cancer):
    from pipeline.serve_check import serve_and_query

    loaded, _, workdir = breast_cancer
    check = serve_and_query(loaded, workdir / "serving_model")
    assert check.row["mean_radius"] == 17.99  # the first row of the data: a malignant tumour
    for prediction in (check.rest_prediction, check.grpc_prediction):
        assert set(prediction.class_scores) == {"benign", "malignant"}
        assert prediction.predicted_class == "malignant"
        assert sum(prediction.class_scores.values()) == pytest.approx(1.0, abs=1e-5)
    for scores in (check.rest_examples_result, check.grpc_examples_result):
        assert scores == pytest.approx(check.rest_prediction.class_scores, abs=1e-5)


def test_binary_classify_accepts_numbers_as_int64_or_float(breast_cancer):
    loaded, _, workdir = breast_cancer
    examples = [example for row in _first_rows("breast_cancer", 3) for example in _as_ints_and_floats(row, loaded)]
    assert any(isinstance(v, int) for v in examples[0].values()), "mean_area 1001 goes as an int64"
    server, connect = _clients(loaded, workdir)
    with server:
        rest, grpc_client = connect()
        with rest, grpc_client:
            for results in (rest.classify(examples), grpc_client.classify(examples)):
                for as_int, as_float in zip(results[0::2], results[1::2]):
                    assert as_int == pytest.approx(as_float, abs=1e-6)
                    assert set(as_int) == {"benign", "malignant"}


def test_regression_run_is_blessed_on_rmse_and_pushed(diabetes):
    loaded, result, workdir = diabetes
    assert loaded.cfg.task == "regression"
    assert result.succeeded, result.error
    overall = result.metrics["Overall"]
    assert overall["root_mean_squared_error"] <= 66, overall
    assert {"mean_squared_error", "mean_absolute_error", "calibration", "example_count"} <= set(overall)
    assert result.blessed is True
    assert Path(result.pushed_path).parent == workdir / "serving_model" / "diabetes"


def test_regression_model_answers_in_label_units_over_rest_and_grpc(diabetes):
    from pipeline.serve_check import serve_and_query

    loaded, _, workdir = diabetes
    check = serve_and_query(loaded, workdir / "serving_model")
    values = [check.rest_prediction.value, check.grpc_prediction.value,
              check.rest_examples_result, check.grpc_examples_result]
    assert values == pytest.approx([values[0]] * 4, abs=1e-3)
    assert 25 <= values[0] <= 346, "the label's own range (progression 25..346), not z-scores"
    assert check.rest_prediction.predicted_class is None and check.rest_prediction.class_scores == {}


def test_regression_regress_accepts_numbers_as_int64_or_float(diabetes):
    loaded, _, workdir = diabetes
    rows = _first_rows("diabetes", 4)
    examples = [example for row in rows for example in _as_ints_and_floats(row, loaded)]
    assert isinstance(examples[0]["age"], int) and isinstance(examples[1]["age"], float)
    server, connect = _clients(loaded, workdir)
    with server:
        rest, grpc_client = connect()
        with rest, grpc_client:
            rest_values, grpc_values = rest.regress(examples), grpc_client.regress(examples)
            predicted = rest.predict([{k: (float(v) if isinstance(v, int) else v) for k, v in e.items()}
                                      for e in examples[1::2]])
    assert rest_values == pytest.approx(grpc_values, abs=1e-3)
    assert rest_values[0::2] == pytest.approx(rest_values[1::2], abs=1e-3)
    assert rest_values[1::2] == pytest.approx([p.value for p in predicted], abs=1e-3)
