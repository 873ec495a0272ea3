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


def trainer_config_dict(features: Sequence[Mapping[str, Any]], label: Mapping[str, Any], task: str | None = None,
                        crosses: Sequence[Sequence[str]] = (), cross_hash_buckets: int | None = None,
                        **model: Any) -> dict:
    """The dict `PipelineConfig.trainer_config()` writes for these features, label, task and hparams
    (the task inferred from the label when not given, as a YAML config would)."""
    from pipeline.config import PipelineConfig

    raw = {
        "pipeline_name": "test", "model_name": "test", "data": {"path": "unused"}, "task": task,
        "features": [dict(spec) for spec in features], "label": dict(label), "model": model,
        "crosses": [list(cross) for cross in crosses],
    }
    if cross_hash_buckets is not None:
        raw["cross_hash_buckets"] = cross_hash_buckets
    return PipelineConfig.model_validate(raw).trainer_config()


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
