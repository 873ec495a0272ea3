"""Warm start's weight transfer on in-memory Keras models: what is copied, what is remapped, when cold."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.support.trainer_configs import trainer_config_dict
from trainer import trainer_config, warm_start
from trainer.model import build_configured_model

FEATURES = [
    {"name": "size", "type": "numeric"},
    {"name": "colour", "type": "categorical", "oov_buckets": 1},  # one-hot: rows of hidden_0
    {"name": "shape", "type": "categorical", "oov_buckets": 2, "embedding_dim": 3},  # embedding rows
    {"name": "note", "type": "text", "max_tokens": 4},  # bag of words: pad row, then token rows
]
OLD_VOCABULARIES = {"colour": ["red", "blue"], "shape": ["round", "square", "flat"], "note": ["hi", "yo"]}
# Frequency order moved values and new ones arrived: old rows must follow their values, not their ids.
NEW_VOCABULARIES = {"colour": ["blue", "green", "red"], "shape": ["square", "round", "flat", "star"],
                    "note": ["yo", "hi", "hey"]}


def _config(seed: int, hidden_units=(8, 4)):
    return trainer_config.parse(trainer_config_dict(
        features=FEATURES, label={"name": "kind", "classes": ["a", "b", "c"]},
        hidden_units=list(hidden_units), seed=seed, warm_start=True), "test")


def _model(config, vocabularies):
    sizes = {name: len(values) for name, values in vocabularies.items()}
    model = build_configured_model(config, sizes, None)
    return model, warm_start.snapshot(model, config, sizes, vocabularies)


def _segment_start(snapshot: warm_start.Snapshot, name: str) -> int:
    start = 0
    for segment in snapshot.segments:
        if segment.name == name:
            return start
        start += segment.width
    raise KeyError(name)


def test_same_shapes_copy_every_layer():
    old_model, base = _model(_config(seed=1), OLD_VOCABULARIES)
    new_model, current = _model(_config(seed=2), OLD_VOCABULARIES)
    outcome = warm_start.transfer_weights(new_model, current, base, "gs://models/1")
    assert outcome.warm and outcome.base_model == "gs://models/1"
    assert set(outcome.copied) == set(base.layers) and not outcome.remapped and not outcome.fresh
    for old, new in zip(old_model.get_weights(), new_model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_grown_vocabularies_keep_old_rows_by_value_and_new_rows_fresh():
    _, base = _model(_config(seed=1), OLD_VOCABULARIES)
    new_model, current = _model(_config(seed=2), NEW_VOCABULARIES)
    fresh = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in new_model.layers if layer.weights}
    outcome = warm_start.transfer_weights(new_model, current, base, "base")
    assert outcome.warm and {"hidden_0", "shape_embedding"} <= set(outcome.remapped)
    assert {"hidden_1", "probabilities"} <= set(outcome.copied)

    embedding_old, embedding_new = base.layers["shape_embedding"][0], new_model.get_layer("shape_embedding").get_weights()[0]
    assert embedding_new.shape == (4 + 2, 3)
    np.testing.assert_array_equal(embedding_new[0], embedding_old[1])  # "square": old id 1, new id 0
    np.testing.assert_array_equal(embedding_new[1], embedding_old[0])  # "round"
    np.testing.assert_array_equal(embedding_new[2], embedding_old[2])  # "flat"
    np.testing.assert_array_equal(embedding_new[3], fresh["shape_embedding"][0][3])  # "star" is new: fresh
    np.testing.assert_array_equal(embedding_new[4:6], embedding_old[3:5])  # OOV buckets keep theirs

    kernel_old, kernel_new = base.layers["hidden_0"][0], new_model.get_layer("hidden_0").get_weights()[0]
    old_colour, new_colour = _segment_start(base, "colour"), _segment_start(current, "colour")
    np.testing.assert_array_equal(kernel_new[new_colour + 0], kernel_old[old_colour + 1])  # blue
    np.testing.assert_array_equal(kernel_new[new_colour + 1], fresh["hidden_0"][0][new_colour + 1])  # green
    np.testing.assert_array_equal(kernel_new[new_colour + 2], kernel_old[old_colour + 0])  # red
    np.testing.assert_array_equal(kernel_new[new_colour + 3], kernel_old[old_colour + 2])  # OOV
    old_note, new_note = _segment_start(base, "note"), _segment_start(current, "note")
    np.testing.assert_array_equal(kernel_new[new_note], kernel_old[old_note])  # the padding row
    np.testing.assert_array_equal(kernel_new[new_note + 1], kernel_old[old_note + 2])  # "yo"
    np.testing.assert_array_equal(kernel_new[new_note + 3], fresh["hidden_0"][0][new_note + 3])  # "hey"
    old_size, new_size = _segment_start(base, "size"), _segment_start(current, "size")
    np.testing.assert_array_equal(kernel_new[new_size], kernel_old[old_size])


def test_changed_architecture_is_a_cold_start_with_the_reason_and_leaves_the_model_untouched():
    _, base = _model(_config(seed=1), OLD_VOCABULARIES)
    new_model, current = _model(_config(seed=2, hidden_units=(8, 6)), OLD_VOCABULARIES)
    before = [np.array(w) for w in new_model.get_weights()]
    with pytest.raises(warm_start.ColdStart, match="hidden_1.*architecture changed"):
        warm_start.transfer_weights(new_model, current, base, "base")
    for old, new in zip(before, new_model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_warm_start_records_why_it_was_cold(tmp_path):
    new_model, current = _model(_config(seed=2), OLD_VOCABULARIES)
    first = warm_start.warm_start(new_model, current, None)
    assert not first.warm and "no blessed model" in first.cold_reason
    no_snapshot = warm_start.warm_start(new_model, current, str(tmp_path))
    assert not no_snapshot.warm and no_snapshot.base_model == str(tmp_path)
    assert warm_start.WEIGHTS_FILE in no_snapshot.cold_reason
    assert no_snapshot.summary()["warm"] is False


def test_snapshot_round_trips_through_the_export_directory(tmp_path):
    old_model, base = _model(_config(seed=1), NEW_VOCABULARIES)
    path = warm_start.save(base, str(tmp_path))
    assert path.endswith(warm_start.WEIGHTS_FILE)
    loaded = warm_start.load(str(tmp_path))
    assert loaded.vocabularies == NEW_VOCABULARIES and list(loaded.segments) == list(base.segments)
    assert loaded.embeddings == base.embeddings
    new_model, current = _model(_config(seed=2), NEW_VOCABULARIES)
    outcome = warm_start.warm_start(new_model, current, str(tmp_path))
    assert outcome.warm and dataclasses.asdict(outcome)["base_model"] == str(tmp_path)
    for old, new in zip(old_model.get_weights(), new_model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_a_wider_embedding_is_a_cold_start_naming_the_feature():
    _, base = _model(_config(seed=1), OLD_VOCABULARIES)
    wider = [dict(f, embedding_dim=5) if f["name"] == "shape" else f for f in FEATURES]
    config = trainer_config.parse(trainer_config_dict(
        features=wider, label={"name": "kind", "classes": ["a", "b", "c"]}, hidden_units=[8, 4], seed=2,
        warm_start=True), "test")
    new_model, current = _model(config, OLD_VOCABULARIES)
    with pytest.raises(warm_start.ColdStart, match="shape"):
        warm_start.transfer_weights(new_model, current, base, "base")


def test_ids_without_a_vocabulary_keep_the_rows_both_models_have():
    old = warm_start.Segment("cell", "ids", 4)
    new = warm_start.Segment("cell", "ids", 6)
    assert warm_start._id_rows(new, old, None, None) == [0, 1, 2, 3, None, None]
