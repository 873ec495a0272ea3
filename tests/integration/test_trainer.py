"""run_fn end to end on a real Transform output, distributed over two logical CPUs, then the export.

`run_fn` runs in a subprocess because logical devices must be configured before TensorFlow runs its
first op, which the pytest process has long done. FnArgs are built by TFX's own `get_common_fn_args`
from Examples/TransformGraph artifacts, so the DataAccessor is the one the Trainer component uses.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.trainer_fn_args import fn_args_from_artifacts
from trainer import contract

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _run_fn_with_two_logical_cpus(transform_graph_dir: str, examples_dir: str, out_dir: str, config_json: str,
                                  base_model: str = ""):
    """Subprocess entry point: two logical CPUs, real artifacts -> FnArgs -> trainer.task.run_fn."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from trainer.task import run_fn

    fn_args = fn_args_from_artifacts(transform_graph_dir, examples_dir, out_dir, config_json)
    fn_args.base_model = base_model or None
    run_fn(fn_args)


@pytest.fixture(scope="module")
def trained(penguin_transform_run, tmp_path_factory):
    """Runs run_fn once in a subprocess; returns (serving_model_dir, model_run_dir, config)."""
    out_dir = tmp_path_factory.mktemp("trainer")
    _train_in_subprocess(penguin_transform_run, out_dir, penguin_transform_run.config)
    return out_dir / "serving_model", out_dir / "model_run", penguin_transform_run.config


def _train_in_subprocess(transform_run, out_dir: Path, config: dict, base_model: str = "") -> None:
    """run_fn on two logical CPUs in a fresh process, writing under `out_dir`."""
    args = [
        str(transform_run.transform_graph_dir),
        str(transform_run.transformed_examples_dir),
        str(out_dir),
        json.dumps(config),
        base_model,
    ]
    code = "import sys, test_trainer; test_trainer._run_fn_with_two_logical_cpus(*sys.argv[1:])"
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=Path(__file__).parent,
        env={**_environ(), "PYTHONPATH": f"{Path(__file__).parent}:{PROJECT_ROOT}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-5000:]


def _environ():
    import os

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_training_used_two_replicas_and_converged(trained):
    _, run_dir, config = trained
    summary = json.loads((run_dir / "training_summary.json").read_text())
    assert summary["num_replicas"] == 2
    assert summary["global_batch_size"] == 2 * config["model"]["batch_size_per_replica"]
    assert 1 <= summary["epochs_run"] <= config["model"]["epochs"]
    assert summary["final_eval_metrics"]["sparse_categorical_accuracy"] >= 0.8  # chance is 1/3
    assert any(p.name.startswith("events.out") for p in run_dir.rglob("*")), "no TensorBoard logs"


@pytest.fixture(scope="module")
def loaded(trained):
    import tensorflow as tf

    return tf.saved_model.load(str(trained[0]))


def test_exports_the_contract_signatures(loaded):
    assert {contract.SERVING_SIGNATURE, contract.CLASSIFY_SIGNATURE, contract.TRANSFORM_SIGNATURE} <= set(loaded.signatures)


RAW_ROWS = {  # an Adelie, a Gentoo on an island never seen in training, a Chinstrap missing sex and bill length
    "bill_length_mm": [39.1, 46.1, float("nan")],  # NaN: missing, imputed like an empty CSV cell
    "bill_depth_mm": [18.7, 13.2, 17.9],
    "flipper_length_mm": [181.0, 211.0, 192.0],  # int64 in the schema, float32 on the wire
    "body_mass_g": [3750.0, 4500.0, 3500.0],
    "island": ["Torgersen", "Atlantis", "Dream"],
    "sex": ["male", "female", ""],
}


def _raw_inputs():
    import tensorflow as tf

    return {k: tf.constant(v, tf.string if isinstance(v[0], str) else tf.float32) for k, v in RAW_ROWS.items()}


def test_serving_default_takes_raw_float_and_string_features(loaded):
    import tensorflow as tf

    outputs = loaded.signatures[contract.SERVING_SIGNATURE](**_raw_inputs())
    scores = outputs[contract.SCORES]
    assert scores.dtype == tf.float32 and scores.shape == (3, 3)
    assert np.isfinite(scores.numpy()).all()
    np.testing.assert_allclose(scores.numpy().sum(axis=1), 1.0, rtol=1e-5)
    assert outputs[contract.CLASSES].numpy().tolist() == [[b"Adelie", b"Chinstrap", b"Gentoo"]] * 3
    assert outputs[contract.PREDICTED_CLASS].numpy().tolist()[0] == b"Adelie"
    assert outputs[contract.PREDICTED_CLASS].numpy().tolist()[1] == b"Gentoo"


def _example(values: dict):
    import tensorflow as tf

    feature = {}
    for name, value in values.items():
        if isinstance(value, str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif isinstance(value, int):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


GENTOO = {"bill_length_mm": 47.5, "bill_depth_mm": 14.2, "flipper_length_mm": 209, "body_mass_g": 4600,
          "island": "Biscoe", "sex": "female"}


def test_classification_signature_on_serialized_examples(loaded, trained):
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    examples = tf.constant([_example(GENTOO), _example(GENTOO)])
    outputs = loaded.signatures[contract.CLASSIFY_SIGNATURE](**{contract.CLASSIFY_INPUTS: examples})
    classes, scores = outputs[contract.CLASSES], outputs[contract.SCORES]
    assert classes.shape == (2, 3) and scores.shape == (2, 3)
    best = classes.numpy()[0][np.argmax(scores.numpy()[0])]
    assert best == b"Gentoo"
    saved_model = saved_model_pb2.SavedModel.FromString((trained[0] / "saved_model.pb").read_bytes())
    signature = saved_model.meta_graphs[0].signature_def[contract.CLASSIFY_SIGNATURE]
    assert signature.method_name == "tensorflow/serving/classify"  # TF Serving's own name, spelled out


def test_classification_examples_may_omit_features(loaded):
    """A feature an example lacks is missing, as NaN or "" is in serving_default: imputed, not an error."""
    import tensorflow as tf

    examples = tf.constant([_example({"bill_length_mm": 47.5}), _example({})])
    outputs = loaded.signatures[contract.CLASSIFY_SIGNATURE](**{contract.CLASSIFY_INPUTS: examples})
    assert np.isfinite(outputs[contract.SCORES].numpy()).all()
    np.testing.assert_allclose(outputs[contract.SCORES].numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_transform_features_with_and_without_label(loaded):
    import tensorflow as tf

    with_label = _example({**GENTOO, "species": "Gentoo", "year": 2008})
    examples = tf.constant([with_label, _example(GENTOO)])
    outputs = loaded.signatures[contract.TRANSFORM_SIGNATURE](**{contract.TRANSFORM_INPUTS: examples})
    assert outputs["species_xf"].numpy().tolist() == [2, -1]  # a missing label is parsed as "", id -1
    assert {"bill_length_mm_xf", "island_xf", "sex_xf"} <= set(outputs)
    assert {contract.transformed_name(n) for n in ("species", "island")} <= set(outputs)


def test_warmup_requests_parse_and_run(loaded, trained):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = trained[0] / contract.WARMUP_FILE
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    assert len(records) >= 1
    request = records[0].predict_log.request
    assert request.model_spec.signature_name == contract.SERVING_SIGNATURE
    inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    assert set(inputs) == {f["name"] for f in trained[2]["features"]}
    outputs = loaded.signatures[contract.SERVING_SIGNATURE](**{k: tf.constant(v) for k, v in inputs.items()})
    assert outputs[contract.SCORES].shape[0] == len(inputs["island"])


def test_classification_and_transform_accept_numbers_as_int64_or_float(loaded):
    """body_mass_g is INT in the curated schema, DT_FLOAT in serving_default's metadata: both must work."""
    import tensorflow as tf

    as_float = {k: float(v) if isinstance(v, int) else v for k, v in GENTOO.items()}
    as_int = {**GENTOO, "bill_length_mm": 47}  # a FLOAT column sent as an int64
    batch = tf.constant([_example(GENTOO), _example(as_float), _example(as_int)])
    scores = loaded.signatures["classification"](inputs=batch)["scores"].numpy()
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)
    assert np.isfinite(scores).all()
    transformed = loaded.signatures["transform_features"](examples=batch)
    assert transformed["body_mass_g_xf"].numpy()[0] == transformed["body_mass_g_xf"].numpy()[1]


def test_warmup_exercises_the_classify_api_too(trained):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = trained[0] / "assets.extra" / "tf_serving_warmup_requests"
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    kinds = [record.WhichOneof("log_type") for record in records]
    assert kinds == ["predict_log", "classify_log"]
    request = records[1].classify_log.request
    assert request.model_spec.signature_name == "classification"
    assert len(request.input.example_list.examples) == len(records[0].predict_log.request.inputs["island"].string_val)


def test_tuner_fn_searches_on_the_transformed_data_and_run_fn_takes_its_best_values(penguin_transform_run, tmp_path):
    """TFX's Tuner executor calls tuner.search(**fit_kwargs); the best values are what run_fn applies."""
    from trainer import trainer_config, tuning

    config = {**penguin_transform_run.config, "tuning": {
        "algorithm": "random", "max_trials": 2, "epochs_per_trial": 1,
        "search_space": {"hidden_units": [[4], [8, 4]], "learning_rate": [0.02]}}}
    fn_args = fn_args_from_artifacts(str(penguin_transform_run.transform_graph_dir),
                       str(penguin_transform_run.transformed_examples_dir), str(tmp_path), json.dumps(config))
    result = tuning.tuner_fn(fn_args)
    result.tuner.search(**result.fit_kwargs)
    best = result.tuner.get_best_hyperparameters()[0]
    assert best.values["hidden_units"] in ("4", "8,4") and best.values["learning_rate"] == 0.02
    parsed = trainer_config.parse(config, "test")
    assert tuning.tuned_hparams(parsed.model, best.values).hidden_units in ((4,), (8, 4))


def test_warm_start_from_the_trained_model_begins_below_a_cold_start(trained, penguin_transform_run, tmp_path):
    """Same data, same model, two replicas: the run seeded with the first run's weights starts where that
    run ended."""
    serving_dir, run_dir, config = trained
    cold = json.loads((run_dir / "training_summary.json").read_text())
    assert cold["warm_start"]["warm"] is False and cold["warm_start"]["cold_reason"] == "model.warm_start is false"
    assert (serving_dir / "assets.extra" / "keras_layer_weights.npz").is_file(), "every export leaves a snapshot"
    warm_config = {**config, "model": {**config["model"], "warm_start": True, "epochs": 2}}
    _train_in_subprocess(penguin_transform_run, tmp_path, warm_config, base_model=str(serving_dir))
    warm = json.loads((tmp_path / "model_run" / "training_summary.json").read_text())
    assert warm["num_replicas"] == 2
    assert warm["warm_start"]["warm"] is True and warm["warm_start"]["base_model"] == str(serving_dir)
    assert {"hidden_0", "probabilities", "sex_embedding"} <= set(warm["warm_start"]["copied"])
    assert warm["history"]["loss"][0] < 0.8 * cold["history"]["loss"][0], (warm["history"], cold["history"])


def test_mixed_precision_with_scaled_learning_rate_trains_and_exports_float32(penguin_transform_run, tmp_path):
    """mixed_float16 on two replicas with the learning rate scaled by them: the loss falls and every
    exported signature still answers float32."""
    import tensorflow as tf

    config = penguin_transform_run.config
    mixed = {**config, "model": {**config["model"], "mixed_precision": True, "scale_learning_rate": True, "epochs": 5}}
    _train_in_subprocess(penguin_transform_run, tmp_path, mixed)
    summary = json.loads((tmp_path / "model_run" / "training_summary.json").read_text())
    assert summary["num_replicas"] == 2
    assert summary["learning_rate"] == pytest.approx(2 * config["model"]["learning_rate"])
    assert summary["hyperparameters"]["mixed_precision"] is True
    assert summary["history"]["loss"][-1] < summary["history"]["loss"][0]
    loaded = tf.saved_model.load(str(tmp_path / "serving_model"))
    scores = loaded.signatures[contract.SERVING_SIGNATURE](**_raw_inputs())[contract.SCORES]
    assert scores.dtype == tf.float32 and np.isfinite(scores.numpy()).all()
    examples = tf.constant([_example(GENTOO)])
    classified = loaded.signatures[contract.CLASSIFY_SIGNATURE](**{contract.CLASSIFY_INPUTS: examples})
    assert classified[contract.SCORES].dtype == tf.float32
