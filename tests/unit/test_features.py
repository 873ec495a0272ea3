"""trainer.features: the helpers every trainer module relies on to agree on names."""
from __future__ import annotations

from pathlib import Path

import pytest

from trainer import features

CONFIG = {
    "features": [
        {"name": "bill_length_mm", "type": "numeric", "oov_buckets": 1, "top_k": None, "embedding_dim": None},
        {"name": "island", "type": "categorical", "oov_buckets": 2, "top_k": 10, "embedding_dim": None},
        {"name": "body_mass_g", "type": "numeric", "oov_buckets": 1, "top_k": None, "embedding_dim": None},
    ],
    "label": {"name": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"]},
    "model": {"hidden_units": [16, 8], "epochs": 3},
}


def test_transformed_name_appends_suffix():
    assert features.transformed_name("island") == "island_xf"


def test_feature_lists_keep_config_order():
    assert features.feature_names(CONFIG) == ["bill_length_mm", "island", "body_mass_g"]
    assert features.numeric_feature_names(CONFIG) == ["bill_length_mm", "body_mass_g"]
    assert features.categorical_feature_names(CONFIG) == ["island"]


def test_label_helpers():
    assert features.label_name(CONFIG) == "species"
    assert features.label_key(CONFIG) == "species_xf"
    assert features.class_names(CONFIG) == ["Adelie", "Chinstrap", "Gentoo"]
    assert features.num_classes(CONFIG) == 3


def test_vocabulary_file_is_named_after_the_feature():
    assert features.vocabulary_file_name("island") == "island"


def test_feature_spec_lookup_and_unknown_name():
    assert features.feature_spec(CONFIG, "island")["oov_buckets"] == 2
    with pytest.raises(KeyError, match="known"):
        features.feature_spec(CONFIG, "nope")


def test_helpers_return_copies_not_views():
    features.feature_specs(CONFIG)[0]["name"] = "changed"
    features.class_names(CONFIG).append("Emperor")
    features.model_hparams(CONFIG)["epochs"] = 99
    assert CONFIG["features"][0]["name"] == "bill_length_mm"
    assert CONFIG["label"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert CONFIG["model"]["epochs"] == 3


def test_agrees_with_pipeline_config_dict():
    """The helpers read the exact dict PipelineConfig.trainer_config() produces (tests may import pipeline)."""
    config_module = pytest.importorskip("pipeline.config")
    loaded = config_module.load(Path(__file__).parents[2] / "configs" / "penguin.yaml", check_data=False)
    trainer_config = loaded.cfg.trainer_config()
    assert features.label_key(trainer_config) == "species_xf"
    assert "island" in features.categorical_feature_names(trainer_config)
    assert features.model_hparams(trainer_config)["batch_size_per_replica"] >= 1
