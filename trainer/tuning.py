"""`tuner_fn` for TFX's Tuner: a KerasTuner search over the `model:` keys in `tuning.search_space`.

Each trial builds the configured model (`trainer.model.build_model`) with the trial's values put into
the config's hyper-parameters (`tuned_hparams`), and trains it for `epochs_per_trial` epochs on the
same transformed datasets `run_fn` uses; the objective is the validation loss. The Tuner component
writes the best trial's values as its `best_hyperparameters` artifact; the Trainer receives them as
`fn_args.hyperparameters` and `run_fn` applies them with the same `tuned_hparams`, so what was
searched is exactly what is trained.

KerasTuner's `Choice` takes scalars only, so `hidden_units` lists travel as "32,16" strings.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from trainer.trainer_config import ModelHparams, TrainerConfig, TuningSpec

_ALGORITHMS = ("random", "hyperband", "bayesian")


def encode(key: str, value: Any) -> Any:
    """A search-space value as KerasTuner's Choice accepts it."""
    if key == "hidden_units":
        return ",".join(str(int(units)) for units in value)
    return value


def tuned_hparams(hparams: ModelHparams, values: Optional[Mapping[str, Any]]) -> ModelHparams:
    """The config's hyper-parameters with tuned `values` (KerasTuner's, possibly encoded) put in."""
    updates = {}
    for key, value in (values or {}).items():
        if key == "hidden_units":
            updates[key] = tuple(int(units) for units in str(value).split(",") if units)
        elif key in ("dropout", "learning_rate"):
            updates[key] = float(value)
    return dataclasses.replace(hparams, **updates)


def search_space(spec: TuningSpec):
    """KerasTuner HyperParameters with one Choice per `search_space` key."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for key, values in spec.search_space.items():
        hp.Choice(key, [encode(key, value) for value in values])
    return hp


def make_tuner(spec: TuningSpec, build, directory: str, seed: int):
    """The KerasTuner tuner of `spec.algorithm`, minimising validation loss."""
    import keras_tuner

    common = dict(hypermodel=build, objective="val_loss", hyperparameters=search_space(spec), directory=directory,
                  project_name="tuning", seed=seed, overwrite=True, tune_new_entries=False)
    if spec.algorithm == "random":
        return keras_tuner.RandomSearch(max_trials=spec.max_trials, **common)
    if spec.algorithm == "bayesian":
        return keras_tuner.BayesianOptimization(max_trials=spec.max_trials, **common)
    if spec.algorithm == "hyperband":
        return keras_tuner.Hyperband(max_epochs=spec.epochs_per_trial, **common)
    raise ValueError(f"tuning.algorithm {spec.algorithm!r} is not one of {list(_ALGORITHMS)}")


def tuner_fn(fn_args):
    """TFX Tuner entry point: (tuner, fit kwargs) for the config's search."""
    import tensorflow_transform as tft
    from tfx.components.tuner.component import TunerFnResult

    from trainer import task, trainer_config
    from trainer.model import build_configured_model

    task.enable_gpu_memory_growth()
    config: TrainerConfig = trainer_config.parse(fn_args.custom_config, "tuner_fn")
    if config.tuning is None:
        raise trainer_config.TrainerConfigError("tuner_fn needs custom_config.tuning (the YAML's tuning: block)")
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    batch = config.model.batch_size_per_replica
    train = task.make_dataset(fn_args, fn_args.train_files, tf_transform_output, config, batch, shuffle=True)
    validation = task.make_dataset(fn_args, fn_args.eval_files, tf_transform_output, config, batch, shuffle=False)
    moments, weights = task.label_moments(config, train), task.class_weights(config, train)
    vocabulary_sizes = task.vocabulary_sizes(config, tf_transform_output)

    def build(hp):
        trial = dataclasses.replace(config, model=tuned_hparams(config.model, hp.values))
        return build_configured_model(trial, vocabulary_sizes, moments)

    tuner = make_tuner(config.tuning, build, fn_args.working_dir, config.model.seed)
    fit_kwargs = dict(x=train, validation_data=validation, epochs=config.tuning.epochs_per_trial,
                      class_weight=weights, verbose=0)
    return TunerFnResult(tuner=tuner, fit_kwargs=fit_kwargs)
