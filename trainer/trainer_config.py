"""The trainer's view of its `custom_config`, parsed once into frozen, typed objects.

Transform and Trainer receive their configuration as a plain dict (`PipelineConfig.transform_config()`
and `PipelineConfig.trainer_config()`), because the trainer package must run in any container without
`pipeline/`. `preprocessing_fn` turns its dict into a `TransformConfig` and `run_fn` into a
`TrainerConfig` on their first line; every other trainer module takes the typed object, so no module
reads a key with `.get(key, default)`. Transform's dict holds no hyper-parameters: TFX caches a
component by its inputs and parameters, so changing `model.epochs` re-runs the Trainer, not Transform.

These classes have no defaults on purpose: the YAML loader (`pipeline/config.py`) is the one place
defaults live, and `trainer_config()` always writes every key. A missing or extra key therefore means
the dict was not made by that loader, and parsing fails with the key's path instead of silently
training with a second, diverging default.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from trainer import contract

BINARY = "binary"
MULTICLASS = "multiclass"
REGRESSION = "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)

NUMERIC = "numeric"
CATEGORICAL = "categorical"
TEXT = "text"
FEATURE_TYPES = (NUMERIC, CATEGORICAL, TEXT)


class TrainerConfigError(ValueError):
    """custom_config is missing, incomplete or malformed; the message names the key."""


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One raw column and how `preprocessing_fn` transforms it (see `pipeline.config.FeatureConfig`)."""

    name: str
    type: str
    oov_buckets: int
    top_k: Optional[int]
    embedding_dim: Optional[int]
    normalize: str
    log: bool
    bucketize: Optional[int]
    hash_buckets: Optional[int]
    max_tokens: int

    @property
    def is_numeric(self) -> bool:
        """A numeric raw column (float32 in `serving_default`), whatever its transform."""
        return self.type == NUMERIC

    @property
    def is_id(self) -> bool:
        """One int64 id per row reaches the model: categorical, or bucketized numeric."""
        return self.type == CATEGORICAL or bool(self.bucketize)

    @property
    def is_text(self) -> bool:
        """[max_tokens] int64 token ids per row reach the model (-1 pads)."""
        return self.type == TEXT

    @property
    def has_vocabulary(self) -> bool:
        """Transform writes a vocabulary file for it (categorical without hashing, or text)."""
        return self.type == TEXT or (self.type == CATEGORICAL and not self.hash_buckets)

    @property
    def transformed_name(self) -> str:
        return contract.transformed_name(self.name)


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """The label column; for classification its classes, a class's position in `classes` being its id.

    Binary labels are [negative, positive] (`positive_class` is the second); regression has no classes
    and may `normalize` (z-score) the label for training.
    """

    name: str
    classes: tuple[str, ...]
    positive_class: Optional[str]
    normalize: bool
    class_weights: Any  # None, "auto" or {class name: weight}

    @property
    def transformed_name(self) -> str:
        """What Trainer's `label_key` and TFMA's `label_key` must name."""
        return contract.transformed_name(self.name)


@dataclasses.dataclass(frozen=True)
class ModelHparams:
    """Hyper-parameters of `trainer.model.build_model` and `run_fn` (see `pipeline.config.ModelConfig`)."""

    hidden_units: tuple[int, ...]
    dropout: float
    learning_rate: float
    batch_size_per_replica: int
    epochs: int
    early_stopping_patience: int
    seed: int
    warm_start: bool
    mixed_precision: bool
    scale_learning_rate: bool
    cache_training_data: bool


@dataclasses.dataclass(frozen=True)
class TuningSpec:
    """The optional search of `trainer.tuning.tuner_fn` (see `pipeline.config.TuningConfig`)."""

    algorithm: str
    max_trials: int
    epochs_per_trial: int
    search_space: Mapping[str, tuple]


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    """What `preprocessing_fn` reads from `custom_config`: the task, features, crosses and label."""

    task: str
    features: tuple[FeatureSpec, ...]
    crosses: tuple[tuple[str, ...], ...]
    cross_hash_buckets: int
    label: LabelSpec

    @property
    def cross_names(self) -> list[str]:
        """Raw-style names of the crosses (`a_X_b`); their transformed keys add the usual suffix."""
        return [cross_name(cross) for cross in self.crosses]

    @property
    def is_regression(self) -> bool:
        return self.task == REGRESSION

    @property
    def is_binary(self) -> bool:
        return self.task == BINARY

    @property
    def feature_names(self) -> list[str]:
        """Raw names of all model features (the label excluded), in the model's input order."""
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.type == NUMERIC]

    @property
    def categorical_features(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.type == CATEGORICAL]

    @property
    def vocabulary_features(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.has_vocabulary]

    @property
    def num_classes(self) -> int:
        return len(self.label.classes)

    def feature(self, name: str) -> FeatureSpec:
        """The spec of feature `name`; KeyError names the known features when it is absent."""
        for spec in self.features:
            if spec.name == name:
                return spec
        raise KeyError(f"feature {name!r} is not in the config; known: {self.feature_names}")


@dataclasses.dataclass(frozen=True)
class TrainerConfig(TransformConfig):
    """Everything the Trainer (and Tuner) read from `custom_config`: Transform's view plus the model's
    hyper-parameters and the optional search."""

    model: ModelHparams
    tuning: Optional[TuningSpec]


def cross_name(features: tuple[str, ...] | list[str]) -> str:
    """`a_X_b` for the cross of features a and b."""
    return "_X_".join(features)


def parse_transform(custom_config: Optional[Mapping[str, Any]], consumer: str) -> TransformConfig:
    """`custom_config` (the dict `PipelineConfig.transform_config()` writes) -> TransformConfig.

    A whole Trainer dict (`trainer_config()`, with `model`) is accepted too and parsed as such: it is a
    TransformConfig with hyper-parameters, so code that runs `preprocessing_fn` outside the pipeline can
    hand it the one dict it has.
    """
    if custom_config and isinstance(custom_config, Mapping) and "model" in custom_config:
        return parse(custom_config, consumer)
    return TransformConfig(**_transform_fields(custom_config, consumer, TransformConfig))


def parse(custom_config: Optional[Mapping[str, Any]], consumer: str) -> TrainerConfig:
    """`custom_config` (the dict `PipelineConfig.trainer_config()` writes) -> TrainerConfig.

    `consumer` names the caller (e.g. "run_fn") so a missing config says who needed it.
    """
    fields = _transform_fields(custom_config, consumer, TrainerConfig)
    return TrainerConfig(**fields, model=_hparams(custom_config["model"]), tuning=_tuning(custom_config["tuning"]))


def _transform_fields(custom_config: Optional[Mapping[str, Any]], consumer: str, cls: type) -> dict[str, Any]:
    """TransformConfig's fields, parsed, from a dict that holds exactly `cls`'s keys."""
    if not custom_config:
        raise TrainerConfigError(
            f"{consumer} needs custom_config (PipelineConfig.{'trainer' if cls is TrainerConfig else 'transform'}"
            "_config()); pass it to the component"
        )
    section = _fields(custom_config, cls, "custom_config")
    features = section["features"]
    if not isinstance(features, (list, tuple)) or not features:
        raise TrainerConfigError(f"custom_config.features: expected a non-empty list, got {features!r}")
    if section["task"] not in TASKS:
        raise TrainerConfigError(f"custom_config.task: {section['task']!r} is not one of {list(TASKS)}")
    return dict(
        task=section["task"],
        features=tuple(_feature(f, f"custom_config.features[{i}]") for i, f in enumerate(features)),
        crosses=tuple(tuple(str(name) for name in cross) for cross in section["crosses"]),
        cross_hash_buckets=int(section["cross_hash_buckets"]),
        label=_label(section["label"]),
    )


def _feature(raw: Any, where: str) -> FeatureSpec:
    spec = FeatureSpec(**_fields(raw, FeatureSpec, where))
    if spec.type not in FEATURE_TYPES:
        raise TrainerConfigError(f"{where}.type: {spec.type!r} is not one of {list(FEATURE_TYPES)}")
    return spec


def _label(raw: Any) -> LabelSpec:
    fields = _fields(raw, LabelSpec, "custom_config.label")
    positive = fields["positive_class"]
    return LabelSpec(name=fields["name"], classes=tuple(str(c) for c in fields["classes"]),
                     positive_class=None if positive is None else str(positive), normalize=bool(fields["normalize"]),
                     class_weights=fields["class_weights"])


def _hparams(raw: Any) -> ModelHparams:
    fields = _fields(raw, ModelHparams, "custom_config.model")
    return ModelHparams(**{**fields, "hidden_units": tuple(int(u) for u in fields["hidden_units"])})


def _tuning(raw: Any) -> Optional[TuningSpec]:
    if raw is None:
        return None
    fields = _fields(raw, TuningSpec, "custom_config.tuning")
    space = {key: tuple(tuple(v) if isinstance(v, list) else v for v in values)
             for key, values in fields["search_space"].items()}
    return TuningSpec(**{**fields, "search_space": space})


def _fields(raw: Any, cls: type, where: str) -> dict[str, Any]:
    """The mapping's values for exactly the dataclass's fields; missing or unknown keys fail by name."""
    if not isinstance(raw, Mapping):
        raise TrainerConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = [field.name for field in dataclasses.fields(cls)]
    missing = [name for name in names if name not in raw]
    unknown = sorted(set(raw) - set(names))
    if missing or unknown:
        raise TrainerConfigError(
            f"{where}: missing keys {missing}, unknown keys {unknown}; "
            "custom_config must be the dict PipelineConfig.transform_config() or trainer_config() writes"
        )
    return {name: raw[name] for name in names}
