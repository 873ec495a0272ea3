"""A tiny SavedModel with the same signature contract as trainer/export.py, for serving tests.

The serving tests must not depend on a trained model, so this module writes a small `tf.Module` with:

- `serving_default`: one `[None]` input per raw penguin feature (float32 numerics, string
  categoricals) -> `scores` float32 [N, 3], `classes` string [N, 3], `predicted_class` string [N];
- `classification`: `inputs` = serialized tf.Example [None] -> `classes`, `scores`, with its
  method_name rewritten to `tensorflow/serving/classify`;
- `transform_features`: `examples` = serialized tf.Example [None] -> float features;
- optionally `regression` (method `tensorflow/serving/regress`): `inputs` -> `outputs` float [N];
- `assets.extra/tf_serving_warmup_requests` with one PredictionLog.

`favoured_class` adds a large bias to one class so each version's predictions are recognisable.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

CLASS_NAMES = ["Adelie", "Chinstrap", "Gentoo"]
NUMERIC_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL_FEATURES = {"island": ["Biscoe", "Dream", "Torgersen"], "sex": ["FEMALE", "MALE"]}
FEATURE_NAMES = NUMERIC_FEATURES + list(CATEGORICAL_FEATURES)

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

INTEGER_FEATURES = ("flipper_length_mm", "body_mass_g")  # int64 in tf.Examples, float32 in serving_default
PENGUIN_ROW = {
    "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0, "body_mass_g": 3750.0,
    "island": "Torgersen", "sex": "MALE",
}
# The same penguin as a tf.Example-style row (classify/regress): integer features as JSON integers.
EXAMPLE_ROW = {name: int(v) if name in INTEGER_FEATURES else v for name, v in PENGUIN_ROW.items()}
_MEANS = [43.9, 17.2, 200.9, 4201.8]
_STDS = [5.5, 2.0, 14.1, 802.0]


def _build_module(favoured_class: int | None, seed: int, include_regression: bool):
    import tensorflow as tf

    INTEGER_EXAMPLE_FEATURES = {name: tf.int64 for name in INTEGER_FEATURES}

    class PenguinLikeModel(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(seed)
            self.hidden = tf.Variable(rng.normal(size=[4 + 8, 16]).astype(np.float32) * 0.3)
            self.hidden_bias = tf.Variable(np.zeros([16], np.float32))
            self.out = tf.Variable(rng.normal(size=[16, 3]).astype(np.float32) * 0.3)
            bias = np.zeros([3], np.float32)
            if favoured_class is not None:
                bias[favoured_class] = 50.0
            self.out_bias = tf.Variable(bias)
            self.embeddings = {
                name: tf.Variable(rng.normal(size=[len(vocab) + 1, 4]).astype(np.float32))
                for name, vocab in CATEGORICAL_FEATURES.items()
            }
            self.tables = {
                name: tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(tf.constant(vocab), tf.range(len(vocab), dtype=tf.int64)),
                    default_value=len(vocab),
                )
                for name, vocab in CATEGORICAL_FEATURES.items()
            }
            self.class_names = tf.constant(CLASS_NAMES)
            self.means = tf.constant(_MEANS)
            self.stds = tf.constant(_STDS)

        def _transform(self, features):
            numeric = tf.stack([tf.cast(features[n], tf.float32) for n in NUMERIC_FEATURES], axis=1)
            numeric = tf.where(tf.math.is_nan(numeric), self.means, numeric)
            out = {n: (numeric[:, i] - self.means[i]) / self.stds[i] for i, n in enumerate(NUMERIC_FEATURES)}
            for name in CATEGORICAL_FEATURES:
                out[name] = tf.cast(self.tables[name].lookup(features[name]), tf.float32)
            return out

        def _scores(self, features):
            transformed = self._transform(features)
            numeric = tf.stack([transformed[n] for n in NUMERIC_FEATURES], axis=1)
            embedded = [
                tf.gather(self.embeddings[n], tf.cast(transformed[n], tf.int64)) for n in CATEGORICAL_FEATURES
            ]
            x = tf.concat([numeric] + embedded, axis=1)
            h = tf.nn.relu(tf.matmul(x, self.hidden) + self.hidden_bias)
            return tf.nn.softmax(tf.matmul(h, self.out) + self.out_bias)

        def _classes(self, scores):
            return tf.tile(self.class_names[tf.newaxis, :], [tf.shape(scores)[0], 1])

        def predict_raw(self, **features):
            scores = self._scores(features)
            return {
                "scores": scores,
                "classes": self._classes(scores),
                "predicted_class": tf.gather(self.class_names, tf.argmax(scores, axis=1)),
            }

        def _parse(self, serialized):
            # As in the pipeline's schema: flipper length and body mass are integers in tf.Examples.
            spec = {n: tf.io.FixedLenFeature([], INTEGER_EXAMPLE_FEATURES.get(n, tf.float32), default_value=-1)
                    for n in NUMERIC_FEATURES}
            spec.update({n: tf.io.FixedLenFeature([], tf.string, default_value="") for n in CATEGORICAL_FEATURES})
            parsed = tf.io.parse_example(serialized, spec)
            for name in NUMERIC_FEATURES:
                value = tf.cast(parsed[name], tf.float32)
                parsed[name] = tf.where(value < 0, float("nan"), value)
            return parsed

        def classify(self, inputs):
            scores = self._scores(self._parse(inputs))
            return {"classes": self._classes(scores), "scores": scores}

        def transform(self, examples):
            return self._transform(self._parse(examples))

        def regress(self, inputs):
            return {"outputs": self._scores(self._parse(inputs))[:, 0]}

    module = PenguinLikeModel()
    raw_spec = {n: tf.TensorSpec([None], tf.float32, name=n) for n in NUMERIC_FEATURES}
    raw_spec.update({n: tf.TensorSpec([None], tf.string, name=n) for n in CATEGORICAL_FEATURES})
    examples = tf.TensorSpec([None], tf.string)
    signatures = {
        "serving_default": tf.function(module.predict_raw, autograph=False).get_concrete_function(**raw_spec),
        "classification": tf.function(module.classify, autograph=False).get_concrete_function(tf.TensorSpec([None], tf.string, name="inputs")),
        "transform_features": tf.function(module.transform, autograph=False).get_concrete_function(tf.TensorSpec([None], tf.string, name="examples")),
    }
    del examples
    if include_regression:
        signatures["regression"] = tf.function(module.regress, autograph=False).get_concrete_function(
            tf.TensorSpec([None], tf.string, name="inputs")
        )
    return module, signatures


def write_model(
    export_dir: str | os.PathLike,
    favoured_class: int | None = None,
    seed: int = 0,
    include_regression: bool = False,
    warmup_rows: int = 2,
) -> Path:
    """Writes the fixture SavedModel (with warm-up records) to `export_dir` and returns it."""
    import tensorflow as tf

    export_dir = Path(export_dir)
    module, signatures = _build_module(favoured_class, seed, include_regression)
    tf.saved_model.save(module, str(export_dir), signatures=signatures)
    method_names = {"classification": CLASSIFY_METHOD}
    if include_regression:
        method_names["regression"] = REGRESS_METHOD
    set_method_names(export_dir, method_names)
    if warmup_rows:
        write_warmup_file(export_dir, [PENGUIN_ROW] * warmup_rows)
    return export_dir


def set_method_names(export_dir: Path, method_names: dict[str, str]) -> None:
    """TF2 saves every signature as a Predict one; TF Serving's Classify/Regress need their method names."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(export_dir) / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        for name, method in method_names.items():
            meta_graph.signature_def[name].method_name = method
    path.write_bytes(saved_model.SerializeToString())
    try:
        from tensorflow.python.saved_model import fingerprinting_utils

        fingerprinting_utils.write_fingerprint(str(export_dir))
    except Exception:  # noqa: BLE001 - the fingerprint is informational; loading does not need it
        pass


def predict_request(rows: list[dict], model_name: str = ""):
    """A PredictRequest for `serving_default` of `model_name` built from JSON-style rows."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    for name in FEATURE_NAMES:
        values = [row[name] for row in rows]
        dtype = np.float32 if name in NUMERIC_FEATURES else object
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array(values, dtype=dtype)))
    return request


def write_warmup_file(export_dir: Path, rows: list[dict], extra_logs: list | None = None) -> Path:
    """TF Serving's warm-up format: a TFRecord of PredictionLog under assets.extra/."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    logs = [prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=predict_request(rows)))]
    logs += list(extra_logs or [])
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def example_bytes(row: dict) -> bytes:
    """A serialized tf.Example for one JSON-style row (no TensorFlow needed)."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    for name, value in row.items():
        feature = example.features.feature[name]
        if isinstance(value, str):
            feature.bytes_list.value.append(value.encode())
        elif isinstance(value, int):
            feature.int64_list.value.append(value)
        else:
            feature.float_list.value.append(float(value))
    return example.SerializeToString()


class ModelStore:
    """Builds each fixture variant once per session and copies it into version directories."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._built: dict[tuple, Path] = {}

    def variant(self, favoured_class: int | None = None, include_regression: bool = False) -> Path:
        key = (favoured_class, include_regression)
        if key not in self._built:
            self._built[key] = write_model(
                self.root / f"variant_{favoured_class}_{int(include_regression)}",
                favoured_class=favoured_class,
                include_regression=include_regression,
            )
        return self._built[key]

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
    assert "predicted_class" in response.json()["predictions"][0]
    if channel is not None:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        request = predict_request([PENGUIN_ROW], model_name="penguin")
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert "predicted_class" in reply.outputs


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
    signature.model_spec.signature_name = "../serving_default"
    cases.append(("bad signature", signature))
    version = base()
    version.model_spec.version.value = -1
    cases.append(("negative version", version))
    return cases
