"""trainer.trainer_config and trainer.features: how every trainer module agrees on names and settings."""
from __future__ import annotations

import dataclasses

import pytest

from tests.support.trainer_configs import penguin_loaded_config, trainer_config_dict
from trainer import contract, features, trainer_config

CONFIG = trainer_config_dict(
    features=[
        {"name": "bill_length_mm", "type": "numeric"},
        {"name": "island", "type": "categorical", "oov_buckets": 2, "top_k": 10},
        {"name": "body_mass_g", "type": "numeric"},
    ],
    label={"name": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"]},
    hidden_units=[16, 8], epochs=3,
)


def _parsed() -> trainer_config.TrainerConfig:
    return trainer_config.parse(CONFIG, "test")


def test_transformed_name_appends_suffix():
    assert contract.transformed_name("island") == "island_xf"
    assert _parsed().feature("island").transformed_name == "island_xf"


def test_feature_lists_keep_config_order():
    config = _parsed()
    assert config.feature_names == ["bill_length_mm", "island", "body_mass_g"]
    assert [f.name for f in config.numeric_features] == ["bill_length_mm", "body_mass_g"]
    assert [f.name for f in config.categorical_features] == ["island"]


def test_label_helpers():
    config = _parsed()
    assert config.label.name == "species"
    assert config.label.transformed_name == "species_xf"
    assert config.label.classes == ("Adelie", "Chinstrap", "Gentoo")
    assert config.num_classes == 3


def test_vocabulary_file_is_named_after_the_feature():
    assert features.vocabulary_file_name("island") == "island"


def test_feature_spec_lookup_and_unknown_name():
    assert _parsed().feature("island").oov_buckets == 2
    with pytest.raises(KeyError, match="known"):
        _parsed().feature("nope")


def test_parsed_config_is_frozen_and_independent_of_the_dict():
    config = _parsed()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.model.epochs = 99  # type: ignore[misc]
    with pytest.raises(AttributeError):
        config.label.classes.append("Emperor")  # type: ignore[attr-defined]
    assert config.model.hidden_units == (16, 8) and config.model.epochs == 3
    assert CONFIG["features"][0]["name"] == "bill_length_mm"
    assert CONFIG["label"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert CONFIG["model"]["epochs"] == 3


def test_missing_config_names_the_consumer():
    with pytest.raises(trainer_config.TrainerConfigError, match="run_fn needs custom_config"):
        trainer_config.parse({}, "run_fn")


def test_no_defaults_of_its_own_a_missing_key_is_named():
    """Defaults live in pipeline/config.py only; a dict that lacks one is not the loader's and fails."""
    incomplete = {**CONFIG, "model": {k: v for k, v in CONFIG["model"].items() if k != "epochs"}}
    with pytest.raises(trainer_config.TrainerConfigError, match=r"custom_config.model: missing keys \['epochs'\]"):
        trainer_config.parse(incomplete, "test")
    no_oov = {**CONFIG, "features": [{k: v for k, v in CONFIG["features"][0].items() if k != "oov_buckets"}]}
    with pytest.raises(trainer_config.TrainerConfigError, match=r"features\[0\]: missing keys \['oov_buckets'\]"):
        trainer_config.parse(no_oov, "test")


def test_unknown_key_and_type_are_named():
    with pytest.raises(trainer_config.TrainerConfigError, match=r"unknown keys \['colour'\]"):
        trainer_config.parse({**CONFIG, "label": {**CONFIG["label"], "colour": "red"}}, "test")
    bad_type = {**CONFIG, "features": [{**CONFIG["features"][0], "type": "image"}]}
    with pytest.raises(trainer_config.TrainerConfigError, match="type: 'image'"):
        trainer_config.parse(bad_type, "test")


def test_agrees_with_pipeline_config_dict():
    """The parser reads the exact dict PipelineConfig.trainer_config() produces (tests may import pipeline)."""
    loaded = penguin_loaded_config()
    config = trainer_config.parse(loaded.cfg.trainer_config(), "test")
    assert config.label.transformed_name == "species_xf"
    assert "island" in [f.name for f in config.categorical_features]
    assert config.model.batch_size_per_replica == loaded.cfg.model.batch_size_per_replica >= 1
    assert config.model.hidden_units == tuple(loaded.cfg.model.hidden_units)


def test_transform_config_carries_no_hyper_parameters():
    """Transform's cache key must not change with model.epochs: its custom_config holds no `model`."""
    loaded = penguin_loaded_config()
    longer = penguin_loaded_config(epochs=loaded.cfg.model.epochs + 1)
    assert loaded.cfg.transform_config() == longer.cfg.transform_config()
    assert loaded.cfg.trainer_config() != longer.cfg.trainer_config()
    assert not {"model", "tuning"} & set(loaded.cfg.transform_config())


def test_parse_transform_reads_transform_and_trainer_dicts_alike():
    loaded = penguin_loaded_config()
    from_transform = trainer_config.parse_transform(loaded.cfg.transform_config(), "test")
    from_trainer = trainer_config.parse_transform(loaded.cfg.trainer_config(), "test")
    assert type(from_transform) is trainer_config.TransformConfig
    assert isinstance(from_trainer, trainer_config.TrainerConfig)
    for field in dataclasses.fields(trainer_config.TransformConfig):
        assert getattr(from_transform, field.name) == getattr(from_trainer, field.name)


def test_trainer_needs_its_hyper_parameters():
    with pytest.raises(trainer_config.TrainerConfigError, match=r"missing keys \['model', 'tuning'\]"):
        trainer_config.parse(penguin_loaded_config().cfg.transform_config(), "run_fn")
    with pytest.raises(trainer_config.TrainerConfigError, match="preprocessing_fn needs custom_config"):
        trainer_config.parse_transform(None, "preprocessing_fn")
