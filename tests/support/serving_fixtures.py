"""Serving test models built by the trainer's own code, and helpers for running servers in tests.

`write_model` exports what the pipeline would push, made by the same functions: tf.Transform with
`trainer.preprocessing.preprocessing_fn` on a slice of the penguins (tests/support/penguin_transform.py,
once per process), `trainer.model.build_model` with configs/penguin.yaml's hyper-parameters, a few
epochs of training, and `trainer.export.export_serving_model` (signatures and warm-up records). The
serving tests therefore exercise the real contract (`trainer.contract`), not a look-alike of it.

`favoured_class` sets a large bias on one class of the softmax layer so each version's predictions
are recognisable. A `regression` signature comes from tests/support/regression_fixture.py (the trainer
does not export one yet).
"""
from __future__ import annotations

import functools
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from tests.support.trainer_configs import penguin_loaded_config
from trainer import contract

_PENGUIN = penguin_loaded_config()
CLASS_NAMES = list(_PENGUIN.cfg.label.classes)
NUMERIC_FEATURES = [f.name for f in _PENGUIN.cfg.features if f.type == "numeric"]
CATEGORICAL_FEATURES = [f.name for f in _PENGUIN.cfg.features if f.type == "categorical"]
FEATURE_NAMES = [f.name for f in _PENGUIN.cfg.features]


def _integer_features() -> tuple[str, ...]:
    """Numeric features the curated schema types INT: int64 in tf.Examples, float32 in serving_default."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    from tests.support.penguin_transform import load_schema

    schema = load_schema(_PENGUIN.schema_path)
    return tuple(f.name for f in schema.feature if f.type == schema_pb2.INT and f.name in NUMERIC_FEATURES)


INTEGER_FEATURES = _integer_features()
PENGUIN_ROW = {
    "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0, "body_mass_g": 3750.0,
    "island": "Torgersen", "sex": "MALE",
}
# The same penguin as a tf.Example-style row (classify/regress): integer features as JSON integers.
EXAMPLE_ROW = {name: int(v) if name in INTEGER_FEATURES else v for name, v in PENGUIN_ROW.items()}
#: Logit added to the favoured class: softmax then gives it ~1.0 whatever the features say.
FAVOURED_BIAS = 50.0
TRAINING_EPOCHS = 3


@functools.lru_cache(maxsize=None)
def _trained_weights(seed: int) -> list:
    """Weights of the penguin classifier after a few epochs on the shared transform (once per seed)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from tests.support.penguin_transform import shared_transform_run

    run = shared_transform_run()
    tf_transform_output = tft.TFTransformOutput(str(run.transform_graph_dir))
    model = _build(seed, tf_transform_output)
    spec = tf_transform_output.transformed_feature_spec()
    files = sorted(str(p) for p in (run.transformed_examples_dir / "Split-train").glob("*.gz"))
    records = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    batch = {k: np.asarray(v) for k, v in tf.io.parse_example(records, spec).items()}
    labels = batch.pop(_trainer_config().label.transformed_name)
    model.fit(batch, labels, batch_size=16, epochs=TRAINING_EPOCHS, verbose=0)
    return model.get_weights()


@functools.lru_cache(maxsize=None)
def _trainer_config():
    """The penguin config as `run_fn` sees it."""
    from trainer import trainer_config

    return trainer_config.parse(_PENGUIN.cfg.trainer_config(), "tests")


def _build(seed: int, tf_transform_output):
    """The trainer's Keras model for the penguin config (vocabulary sizes from the transform)."""
    import dataclasses

    from trainer import task
    from trainer.model import build_model

    config = _trainer_config()
    hparams = dataclasses.replace(config.model, seed=seed)
    return build_model(config.features, task.vocabulary_sizes(config, tf_transform_output), hparams, config.num_classes)


def write_model(
    export_dir: str | os.PathLike,
    favoured_class: int | None = None,
    seed: int = 0,
    include_regression: bool = False,
    warmup_rows: int | None = None,
) -> Path:
    """Exports the penguin model with `trainer.export.export_serving_model` to `export_dir`, returns it.

    `warmup_rows` None keeps the exporter's warm-up records; 0 removes them (a model without warm-up
    data); n replaces them with one request of n copies of PENGUIN_ROW.
    """
    import tensorflow_transform as tft

    from tests.support.penguin_transform import shared_transform_run
    from trainer import export
    from trainer.model import OUTPUT_LAYER

    export_dir = Path(export_dir)
    tf_transform_output = tft.TFTransformOutput(str(shared_transform_run().transform_graph_dir))
    model = _build(seed, tf_transform_output)
    model.set_weights(_trained_weights(seed))
    if favoured_class is not None:
        output = model.get_layer(OUTPUT_LAYER)
        kernel, bias = output.get_weights()
        bias[favoured_class] += FAVOURED_BIAS
        output.set_weights([kernel, bias])
    if include_regression:
        from tests.support.regression_fixture import add_regression_signature

        staging = export_dir.with_name(export_dir.name + ".classifier")
        export.export_serving_model(model, tf_transform_output, _trainer_config(), str(staging))
        add_regression_signature(staging, export_dir)
        shutil.rmtree(staging)
    else:
        export.export_serving_model(model, tf_transform_output, _trainer_config(), str(export_dir))
    if warmup_rows == 0:
        shutil.rmtree(export_dir / Path(contract.WARMUP_FILE).parent)
    elif warmup_rows:
        write_warmup_file(export_dir, [PENGUIN_ROW] * warmup_rows)
    return export_dir


def predict_request(rows: list[dict], model_name: str = ""):
    """A PredictRequest for `serving_default` of `model_name` built from JSON-style rows."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = contract.SERVING_SIGNATURE
    for name in FEATURE_NAMES:
        values = [row[name] for row in rows]
        dtype = np.float32 if name in NUMERIC_FEATURES else object
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array(values, dtype=dtype)))
    return request


def write_warmup_file(export_dir: Path, rows: list[dict], extra_logs: list | None = None) -> Path:
    """Replaces the warm-up records: one PredictionLog for `rows`, then `extra_logs` (TF Serving's format)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(export_dir) / contract.WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    logs = [prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=predict_request(rows)))]
    logs += list(extra_logs or [])
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def example_bytes(row: dict) -> bytes:
    """A serialized tf.Example for one JSON-style row (no TensorFlow needed); a None value is a feature
    present without a value, as a missing CSV cell becomes."""
    from serving import protos

    example = protos.load().example_pb2.Example()
    for name, value in row.items():
        feature = example.features.feature[name]
        if isinstance(value, str):
            feature.bytes_list.value.append(value.encode())
        elif isinstance(value, int):
            feature.int64_list.value.append(value)
        elif value is None:
            feature.bytes_list.SetInParent()
        else:
            feature.float_list.value.append(float(value))
    return example.SerializeToString()


_VARIANTS: dict[tuple, Path] = {}
_VARIANTS_LOCK = threading.Lock()


class ModelStore:
    """Copies fixture variants into version directories; each variant is exported once per process
    (once per run under pytest-xdist: `penguin_transform.built_once`)."""

    def variant(self, favoured_class: int | None = None, include_regression: bool = False) -> Path:
        from tests.support.penguin_transform import built_once

        key = (favoured_class, include_regression)
        with _VARIANTS_LOCK:
            if key not in _VARIANTS:
                _VARIANTS[key] = built_once(
                    f"variants/variant_{favoured_class}_{int(include_regression)}",
                    lambda target: write_model(target, favoured_class=favoured_class,
                                               include_regression=include_regression))
            return _VARIANTS[key]

    def push(self, base_path: Path, version: int, favoured_class: int | None = None,
             include_regression: bool = False, atomic: bool = True) -> Path:
        """Copies a variant to `<base_path>/<version>`, atomically (rename) unless asked otherwise."""
        target = Path(base_path) / str(version)
        source = self.variant(favoured_class, include_regression)
        if not atomic:
            shutil.copytree(source, target)
            return target
        staging = Path(base_path) / f".tmp-{version}"
        shutil.copytree(source, staging)
        os.replace(staging, target)
        return target


def write_corrupt_version(base_path: Path, version: int) -> Path:
    """A version directory whose saved_model.pb is garbage (a half-written or damaged push)."""
    target = Path(base_path) / str(version)
    (target / "variables").mkdir(parents=True)
    (target / "saved_model.pb").write_bytes(b"\x08\x01garbage, not a SavedModel")
    return target


# --- running servers in tests -------------------------------------------------------------------------

def free_port() -> int:
    """A loopback port free right now (the server binds it a moment later)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(**options):
    """A ModelServer on free loopback ports, started in a background thread (ready when this returns)."""
    from serving.server import ModelServer, ServerOptions

    options.setdefault("port", free_port())
    options.setdefault("rest_api_port", free_port())
    options.setdefault("host", "127.0.0.1")
    options.setdefault("load_timeout_seconds", 120)
    return ModelServer(ServerOptions(**options)).start_in_background()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05, message: str = "condition"):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` passes (AssertionError)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# --- hostile requests and liveness --------------------------------------------------------------------

def assert_alive(http, channel=None):
    """A valid predict still answers over REST (and gRPC when given a channel)."""
    response = http.post("/v1/models/penguin:predict", json={"instances": [PENGUIN_ROW]})
    assert response.status_code == 200, response.text
    assert contract.PREDICTED_CLASS in response.json()["predictions"][0]
    if channel is not None:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        request = predict_request([PENGUIN_ROW], model_name="penguin")
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert contract.PREDICTED_CLASS in reply.outputs


def hostile_predict_requests() -> list[tuple[str, object]]:
    """(name, PredictRequest) pairs for `penguin`, each a valid request bent in one hostile way. TF Serving
    rejects all but "more values than the shape": Tensor::FromProto reads the first N and ignores the rest."""
    def base():
        return predict_request([PENGUIN_ROW], model_name="penguin")

    cases = []
    huge = base()  # 2**40 elements: TensorFlow's "repeat the last value" must not allocate them
    huge.inputs["bill_length_mm"].tensor_shape.dim[0].size = 2**40
    cases.append(("huge shape", huge))
    huge_strings = base()
    huge_strings.inputs["island"].tensor_shape.dim[0].size = 2**40
    cases.append(("huge string shape", huge_strings))
    many_dims = base()
    proto = many_dims.inputs["bill_depth_mm"]
    proto.tensor_shape.dim[0].size = 2**20
    for _ in range(3):
        proto.tensor_shape.dim.add().size = 2**20
    cases.append(("product overflows int64", many_dims))
    negative = base()
    negative.inputs["body_mass_g"].tensor_shape.dim[0].size = -5
    cases.append(("negative dim", negative))
    mismatch = base()
    mismatch.inputs["bill_length_mm"].dtype = 7  # DT_STRING for a float input
    cases.append(("dtype mismatch", mismatch))
    unknown_dtype = base()
    unknown_dtype.inputs["bill_length_mm"].dtype = 20  # DT_RESOURCE
    cases.append(("unsupported dtype", unknown_dtype))
    content = base()
    content.inputs["bill_length_mm"].ClearField("float_val")
    content.inputs["bill_length_mm"].tensor_content = b"\x00" * 7
    cases.append(("ragged tensor_content", content))
    too_many = base()
    too_many.inputs["bill_length_mm"].float_val.extend([1.0] * 10)
    cases.append(("more values than the shape", too_many))
    rank = base()
    rank.inputs["bill_depth_mm"].tensor_shape.dim.add().size = 1
    cases.append(("wrong rank", rank))
    missing = base()
    del missing.inputs[FEATURE_NAMES[0]]
    cases.append(("missing input", missing))
    extra = base()
    extra.inputs["../../etc/passwd"].CopyFrom(extra.inputs["bill_length_mm"])
    cases.append(("unknown input", extra))
    signature = base()
    signature.model_spec.signature_name = "../" + contract.SERVING_SIGNATURE
    cases.append(("bad signature", signature))
    version = base()
    version.model_spec.version.value = -1
    cases.append(("negative version", version))
    return cases
