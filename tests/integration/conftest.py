"""Shared integration fixtures: a real Transform output and transformed examples on a slice of penguins.

The transform itself (tests/support/penguin_transform.py) runs once per process and is shared with
the serving tests' fixture models. Trainer tests train it with smaller, faster hyper-parameters and an
embedding for `sex` (so the distributed run covers embeddings too); those settings are model-only, so
the shared transform output is exactly what Transform would produce for this config.
"""
from __future__ import annotations

import pytest

from tests.support.penguin_transform import TransformRun, shared_transform_run
from tests.support.trainer_configs import penguin_loaded_config

TRAINER_TEST_MODEL = {"learning_rate": 0.02, "batch_size_per_replica": 16, "epochs": 30, "early_stopping_patience": 5}


@pytest.fixture(scope="session")
def penguin_transform_run() -> TransformRun:
    """The shared transform, with the trainer config the trainer tests run with."""
    shared = shared_transform_run()
    config = penguin_loaded_config(features={"sex": {"embedding_dim": 2}}, **TRAINER_TEST_MODEL).cfg.trainer_config()
    assert {k: config[k] for k in ("features", "label")} == {
        "features": [{**f, "embedding_dim": 2 if f["name"] == "sex" else f["embedding_dim"]}
                     for f in shared.config["features"]],
        "label": shared.config["label"],
    }, "the trainer tests may only change model-side settings of the shared transform's config"
    return TransformRun(shared.transform_graph_dir, shared.transformed_examples_dir, config)
