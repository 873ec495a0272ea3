"""Infra validation without Docker: `tfxpipe serve` on the candidate, its warm-up requests over REST and
gRPC, TFX's InfraBlessing, and a Pusher that refuses what infra validation refused.

The executor runs as TFX runs it (the component's executor class, on Model/InfraBlessing artifacts),
on the serving fixture model and on two broken copies of it: one whose `serving_default` raises for
any request (the server's warm-up replay fails, so the version never loads), one that loads and
answers, but with NaN scores.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components import atomic_pusher, infra_validator
from tests.support import serving_fixtures
from trainer import contract, export

pytestmark = pytest.mark.slow

CLASSES = serving_fixtures.CLASS_NAMES


def _broken_copy(good: Path, target: Path, how: str) -> Path:
    """`good` re-exported with every signature wrapped: `raise` fails serving_default for any input,
    `nan` multiplies every float output by NaN; warm-up records and method names are kept."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(good))
    module = tf.Module()
    module.inner = loaded

    def wrap(function, name):
        def call(**inputs):
            outputs = dict(function(**inputs))
            if how == "raise" and name == contract.SERVING_SIGNATURE:
                first = next(iter(inputs.values()))
                tf.debugging.assert_less(tf.size(first), 0, message="broken on purpose")
            if how == "nan":
                outputs = {k: v * float("nan") if v.dtype.is_floating else v for k, v in outputs.items()}
            return outputs

        return tf.function(call).get_concrete_function(**function.structured_input_signature[1])

    signatures = {name: wrap(function, name) for name, function in loaded.signatures.items()}
    tf.saved_model.save(module, str(target), signatures=signatures)
    export.set_signature_method_name(str(target), contract.CLASSIFY_SIGNATURE, contract.CLASSIFY_METHOD)
    shutil.copytree(good / "assets.extra", target / "assets.extra")
    return target


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("infra_models")
    good = serving_fixtures.write_model(root / "good" / "Format-Serving")
    raising = _broken_copy(good, root / "raising" / "Format-Serving", "raise")
    nan = _broken_copy(good, root / "nan" / "Format-Serving", "nan")
    return {"good": good.parent, "raising": raising.parent, "nan": nan.parent}


def _run_executor(model_uri: Path, blessing_uri: Path, **parameters):
    """The InfraValidator component's executor on a Model artifact, as TFX calls it; returns the blessing."""
    from tfx.types import standard_artifacts

    model = standard_artifacts.Model()
    model.uri = str(model_uri)
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(blessing_uri)
    blessing_uri.mkdir(parents=True)
    properties = {"model_name": "penguin", "task": "multiclass", "classes": json.dumps(CLASSES), **parameters}
    executor = infra_validator.InfraValidator.EXECUTOR_SPEC.executor_class()
    executor.Do({"model": [model]}, {"blessing": [blessing]}, properties)
    return blessing


def _push(tmp_path: Path, model_uri: Path, infra_blessing) -> bool:
    """Our Pusher executor with a blessed ModelBlessing and `infra_blessing`; True if it pushed."""
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    model = standard_artifacts.Model()
    model.uri = str(model_uri)
    model_blessing = standard_artifacts.ModelBlessing()
    model_blessing.uri = str(tmp_path / "model_blessing")
    model_blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(tmp_path / "serving" / "penguin")))
    atomic_pusher.Executor().Do(
        {"model": [model], "model_blessing": [model_blessing], "infra_blessing": [infra_blessing]},
        {"pushed_model": [pushed]}, {"push_destination": proto_utils.proto_to_json(destination)})
    return bool(pushed.get_int_custom_property("pushed"))


def test_a_good_model_is_blessed_with_its_latency_and_pushed(models, tmp_path):
    blessing = _run_executor(models["good"], tmp_path / "blessing", latency_budget_ms=60_000.0)
    assert blessing.get_int_custom_property(infra_validator.BLESSED_KEY) == 1, \
        blessing.get_string_custom_property(infra_validator.REASON_KEY)
    assert (tmp_path / "blessing" / infra_validator.BLESSED_FILE).exists()
    assert blessing.get_float_custom_property(infra_validator.LATENCY_KEY) > 0
    assert (tmp_path / "blessing" / infra_validator.LOG_FILE).exists()
    assert _push(tmp_path, models["good"], blessing)
    assert atomic_pusher.numeric_versions(str(tmp_path / "serving" / "penguin"))


def test_a_model_that_fails_on_inference_is_refused_and_not_pushed(models, tmp_path):
    blessing = _run_executor(models["raising"], tmp_path / "blessing")
    assert blessing.get_int_custom_property(infra_validator.BLESSED_KEY) == 0
    assert (tmp_path / "blessing" / infra_validator.NOT_BLESSED_FILE).exists()
    assert not (tmp_path / "blessing" / infra_validator.BLESSED_FILE).exists()
    assert "broken on purpose" in blessing.get_string_custom_property(infra_validator.REASON_KEY)
    assert not _push(tmp_path, models["raising"], blessing)
    assert atomic_pusher.numeric_versions(str(tmp_path / "serving" / "penguin")) == []


def test_a_model_answering_nan_scores_is_refused_and_a_latency_budget_is_enforced(models, tmp_path):
    from components.infra_validator import Expectations, validate_model

    blessing = _run_executor(models["nan"], tmp_path / "blessing")
    assert blessing.get_int_custom_property(infra_validator.BLESSED_KEY) == 0
    assert "finite" in blessing.get_string_custom_property(infra_validator.REASON_KEY)
    assert not _push(tmp_path, models["nan"], blessing)

    too_slow = validate_model(str(models["good"] / "Format-Serving"), "penguin",
                              Expectations("multiclass", tuple(CLASSES)), latency_budget_ms=1e-6)
    assert not too_slow.blessed and "latency_budget_ms" in too_slow.reason and too_slow.latency_p99_ms > 1e-6


def test_answers_with_unknown_classes_or_wrong_counts_are_refused():
    from serving.client import Prediction

    expect = infra_validator.Expectations("multiclass", tuple(CLASSES))
    good = Prediction({"scores": [0.2, 0.3, 0.5], "classes": CLASSES, "predicted_class": "Gentoo"})
    assert infra_validator.check_answer("predict", [good], 1, expect, "w") == [[0.2, 0.3, 0.5]]
    for answer, rows in (([good], 2),
                         ([Prediction({**good.outputs, "classes": ["a", "b", "c"]})], 1),
                         ([Prediction({**good.outputs, "predicted_class": "Emperor"})], 1),
                         ([Prediction({**good.outputs, "scores": [0.5, 0.5]})], 1)):
        with pytest.raises(infra_validator.InfraValidationFailed):
            infra_validator.check_answer("predict", answer, rows, expect, "w")
    with pytest.raises(infra_validator.InfraValidationFailed, match="classes"):
        infra_validator.check_answer("classify", [{"a": 1.0}], 1, expect, "w")
    regression = infra_validator.Expectations("regression", ())
    assert infra_validator.check_answer("regress", [1.5], 1, regression, "w") == [1.5]
    with pytest.raises(infra_validator.InfraValidationFailed, match="finite"):
        infra_validator.check_answer("predict", [Prediction({"outputs": float("inf")})], 1, regression, "w")
