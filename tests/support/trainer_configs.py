"""Trainer `custom_config` dicts for tests, made by the pipeline's own config models.

The trainer parses `custom_config` with no defaults of its own (`trainer.trainer_config`), so a test
config must carry every key. Building it with `pipeline.config`'s models, exactly as
`PipelineConfig.trainer_config()` does, keeps the defaults in their one place instead of copying them
into each test.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PENGUIN_CONFIG = PROJECT_ROOT / "configs" / "penguin.yaml"


def trainer_config_dict(features: Sequence[Mapping[str, Any]], label: Mapping[str, Any], **model: Any) -> dict:
    """The dict `PipelineConfig.trainer_config()` would write for these features, label and hparams."""
    from pipeline.config import FeatureConfig, LabelConfig, ModelConfig

    return {
        "features": [FeatureConfig(**spec).model_dump() for spec in features],
        "label": LabelConfig(**label).model_dump(),
        "model": ModelConfig(**model).model_dump(),
    }


def penguin_loaded_config(features: Mapping[str, Mapping[str, Any]] | None = None, **model: Any):
    """configs/penguin.yaml, loaded and validated, with per-feature settings and `model`
    hyper-parameters overridden (e.g. `features={"sex": {"embedding_dim": 2}}, epochs=3`)."""
    from pipeline import config

    loaded = config.load(PENGUIN_CONFIG, check_data=False)
    cfg = loaded.cfg
    if model:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update=model)})
    if features:
        cfg = cfg.model_copy(update={"features": [
            f.model_copy(update=dict(features.get(f.name, {}))) for f in cfg.features]})
    return loaded.model_copy(update={"cfg": cfg})
