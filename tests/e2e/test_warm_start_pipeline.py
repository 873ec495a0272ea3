"""Warm start through the real pipeline: the latest blessed model reaches the Trainer as `base_model`.

Two runs of the penguin pipeline with `model.warm_start: true` in one work directory: the first has no
blessed model yet and trains cold (saying so); the second resolves the first run's blessed model, starts
from its weights and so begins — on the same data — with a lower loss than the cold run did. Both are
infra-validated in `tfxpipe serve` before their push. Every fact is read from ML Metadata's artifacts.
"""
import json
from pathlib import Path

import pytest

from pipeline import config, runners

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _training_summary(result) -> dict:
    trainer = result.component("Trainer")
    assert trainer is not None and trainer.state == "complete", [(c.node_id, c.state) for c in result.components]
    return json.loads((Path(trainer.outputs["model_run"][0].uri) / "training_summary.json").read_text())


def _infra_blessed(result) -> int:
    blessing = result.component("InfraValidator").outputs["blessing"][0]
    return blessing.custom_properties["blessed"].int_value


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    loaded = config.load(ROOT / "configs/penguin.yaml")
    cfg = loaded.cfg.model_copy(update={"model": loaded.cfg.model.model_copy(update={"warm_start": True})})
    loaded = loaded.model_copy(update={"cfg": cfg})
    workdir = tmp_path_factory.mktemp("warm-start-run")
    first = runners.run_local(loaded, workdir=workdir, show_progress=False)
    assert first.succeeded, first.error
    second = runners.run_local(loaded, workdir=workdir, show_progress=False)
    assert second.succeeded, second.error
    return first, second


def test_first_run_is_cold_for_want_of_a_blessed_model(runs):
    first, _ = runs
    summary = _training_summary(first)["warm_start"]
    assert summary["warm"] is False and "no blessed model" in summary["cold_reason"]
    assert _infra_blessed(first) == 1 and first.pushed_path


def test_second_run_starts_from_the_blessed_model_below_the_cold_loss(runs):
    first, second = runs
    cold, warm = _training_summary(first), _training_summary(second)
    first_model = first.component("Trainer").outputs["model"][0].uri
    assert warm["warm_start"]["warm"] is True, warm["warm_start"]
    assert warm["warm_start"]["base_model"].startswith(first_model)
    assert warm["history"]["loss"][0] < cold["history"]["loss"][0], (warm["history"]["loss"], cold["history"]["loss"])
    assert _infra_blessed(second) == 1
