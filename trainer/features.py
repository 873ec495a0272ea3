"""Pure helpers over the trainer config dict (`PipelineConfig.trainer_config()`).

Transform, the model builder and the exporter all need the same answers — which columns are numeric,
what the transformed key of a column is, which classes the label has — and must agree on them exactly.
Keeping those answers here, as functions of the plain dict, means no module re-derives them and the
trainer never needs `pipeline/` to interpret its config.
"""
from __future__ import annotations

from typing import Any, Mapping

NUMERIC = "numeric"
CATEGORICAL = "categorical"

#: Suffix of every key produced by `preprocessing_fn`; keeps raw and transformed names apart.
TRANSFORMED_SUFFIX = "_xf"

#: Value a missing categorical cell is mapped to before the vocabulary is computed, so that
#: "missing" is a category of its own (learned from training data) rather than an OOV bucket.
MISSING_CATEGORY = "__missing__"

Config = Mapping[str, Any]


def transformed_name(name: str) -> str:
    """The key `preprocessing_fn` emits for raw column `name`."""
    return name + TRANSFORMED_SUFFIX


def feature_specs(config: Config) -> list[dict[str, Any]]:
    """The feature entries of the config, in config order (the model's input order)."""
    return [dict(spec) for spec in config["features"]]


def feature_names(config: Config) -> list[str]:
    """Raw names of all model features (the label excluded)."""
    return [spec["name"] for spec in config["features"]]


def numeric_feature_names(config: Config) -> list[str]:
    return [spec["name"] for spec in config["features"] if spec["type"] == NUMERIC]


def categorical_feature_names(config: Config) -> list[str]:
    return [spec["name"] for spec in config["features"] if spec["type"] == CATEGORICAL]


def feature_spec(config: Config, name: str) -> dict[str, Any]:
    """The config entry of feature `name`; KeyError names the known features when it is absent."""
    for spec in config["features"]:
        if spec["name"] == name:
            return dict(spec)
    raise KeyError(f"feature {name!r} is not in the config; known: {feature_names(config)}")


def label_name(config: Config) -> str:
    """Raw name of the label column."""
    return config["label"]["name"]


def label_key(config: Config) -> str:
    """Transformed label key: what Trainer's `label_key` and TFMA's `label_key` must name."""
    return transformed_name(label_name(config))


def class_names(config: Config) -> list[str]:
    """Label classes; a class's position in this list is its integer id."""
    return list(config["label"]["classes"])


def num_classes(config: Config) -> int:
    return len(config["label"]["classes"])


def vocabulary_file_name(name: str) -> str:
    """Vocabulary file name of a categorical feature, readable back with
    `TFTransformOutput.vocabulary_by_name` / `vocabulary_size_by_name`."""
    return name


def model_hparams(config: Config) -> dict[str, Any]:
    """The `model` section: hyper-parameters for `trainer.model.build_model` and `run_fn`."""
    return dict(config["model"])
