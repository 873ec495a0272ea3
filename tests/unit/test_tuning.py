"""The optional tuning block: config validation, KerasTuner search space and tuners, the tuned values
put back into the hyper-parameters, and the Tuner component wired into the pipeline before Trainer."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pipeline import config
from tests.support.trainer_configs import trainer_config_dict
from trainer import trainer_config, tuning

ROOT = Path(__file__).resolve().parents[2]
SPACE = {"hidden_units": [[8], [16, 8]], "learning_rate": [0.01, 0.05], "dropout": [0.0]}


def _with_tuning(**tuning_block):
    loaded = config.load(ROOT / "configs/penguin.yaml", check_data=False)
    cfg = config.PipelineConfig.model_validate({**loaded.cfg.model_dump(), "tuning": tuning_block})
    return loaded.model_copy(update={"cfg": cfg})


def test_tuning_is_off_by_default_and_validated():
    assert config.load(ROOT / "configs/penguin.yaml", check_data=False).cfg.tuning is None
    cfg = _with_tuning(algorithm="bayesian", max_trials=3, search_space=SPACE).cfg
    assert cfg.trainer_config()["tuning"]["search_space"] == SPACE
    with pytest.raises(ValueError, match=r"search_space over unknown model keys \['epochs'\]"):
        _with_tuning(search_space={"epochs": [1, 2]})
    with pytest.raises(ValueError, match=r"algorithm"):
        _with_tuning(algorithm="grid", search_space=SPACE)


def test_tuned_values_replace_the_configured_ones():
    parsed = trainer_config.parse(_with_tuning(search_space=SPACE).cfg.trainer_config(), "test")
    assert parsed.tuning.search_space["hidden_units"] == ((8,), (16, 8))
    hp = tuning.search_space(parsed.tuning)
    assert hp.values == {"hidden_units": "8", "learning_rate": 0.01, "dropout": 0.0}
    tuned = tuning.tuned_hparams(parsed.model, {"hidden_units": "16,8", "learning_rate": 0.05})
    assert (tuned.hidden_units, tuned.learning_rate) == ((16, 8), 0.05)
    assert dataclasses.replace(tuned, hidden_units=parsed.model.hidden_units, learning_rate=parsed.model.learning_rate) == parsed.model
    assert tuning.tuned_hparams(parsed.model, None) == parsed.model


@pytest.mark.parametrize("algorithm", ["random", "hyperband", "bayesian"])
def test_each_algorithm_searches_and_reports_the_best_values(algorithm, tmp_path):
    from trainer.model import build_model

    raw = trainer_config_dict(features=[{"name": "x", "type": "numeric"}], label={"name": "y", "classes": ["a", "b"]})
    raw["tuning"] = {"algorithm": algorithm, "max_trials": 2, "epochs_per_trial": 2,
                     "search_space": {"hidden_units": [[4], [8]], "learning_rate": [0.05]}}
    parsed = trainer_config.parse(raw, "test")

    def build(hp):
        return build_model(parsed.features, {}, tuning.tuned_hparams(parsed.model, hp.values), 2, task="binary")

    tuner = tuning.make_tuner(parsed.tuning, build, str(tmp_path), seed=1)
    x = np.linspace(-1, 1, 64).astype(np.float32)
    data = ({"x_xf": x}, (x > 0).astype(np.int64))
    tuner.search(*data, validation_data=data, epochs=parsed.tuning.epochs_per_trial, verbose=0)
    best = tuner.get_best_hyperparameters()[0].values
    assert best["hidden_units"] in ("4", "8") and best["learning_rate"] == 0.05
    assert tuning.tuned_hparams(parsed.model, best).hidden_units in ((4,), (8,))


def test_tuner_component_feeds_the_trainer(tmp_path):
    from pipeline.pipeline import TUNER_FN, PipelinePaths, create_pipeline

    loaded = _with_tuning(search_space=SPACE)
    paths = PipelinePaths(pipeline_root=str(tmp_path / "root"), data_path=str(ROOT / "data/penguins"),
                          serving_dir=str(tmp_path / "serving"), metadata_path=str(tmp_path / "m.db"))
    pipeline = create_pipeline(loaded, paths, beam_args=[])
    by_id = {component.id: component for component in pipeline.components}
    assert by_id["Tuner"].exec_properties["tuner_fn"] == TUNER_FN
    assert by_id["Trainer"].inputs["hyperparameters"].producer_component_id == "Tuner"
    untuned = create_pipeline(config.load(ROOT / "configs/penguin.yaml"), paths, beam_args=[])
    assert "Tuner" not in {component.id for component in untuned.components}
