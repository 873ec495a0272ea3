"""`run_fn` for the TFX Trainer: glue between TFX's FnArgs, the model builder and the exporter.

Distribution is a parameter, not a code path: the model is always built inside a MirroredStrategy
scope — on every logical GPU when there are any, otherwise on every logical CPU (one device on a
plain host, two in the tests that configure two logical CPUs) — and the global batch scales with the
number of replicas (and, with `model.scale_learning_rate`, so does the learning rate). GPU memory
grows on demand instead of being claimed whole at start-up, so the trainer can share a device with
Beam workers or another trainer. A `training_summary.json` in `model_run_dir` records what actually ran.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx_bsl.public import tfxio

from trainer import export, features, trainer_config, warm_start
from trainer.model import build_configured_model
from trainer.tuning import tuned_hparams
from trainer.trainer_config import ModelHparams, TrainerConfig

SUMMARY_FILE = "training_summary.json"


def enable_gpu_memory_growth() -> list[str]:
    """Lets TensorFlow take GPU memory as it needs it instead of all of it at start-up; returns the GPUs
    it was set on.

    Must run before TensorFlow initialises its devices (the first op, or listing logical devices):
    afterwards the setting cannot change, which is logged, not raised — training still works, it just
    does not share the device. Processes we do not start ourselves (Beam workers) get the same from
    `TF_FORCE_GPU_ALLOW_GROWTH=true`, which the CUDA image sets.
    """
    configured = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as error:
            logging.warning("GPU memory growth not set on %s (TensorFlow already initialised it): %s", gpu.name, error)
        else:
            configured.append(gpu.name)
    return configured


def scaled_learning_rate(hparams: ModelHparams, replicas: int) -> float:
    """`learning_rate` × `replicas` with `scale_learning_rate` (the linear scaling rule: the global batch
    grows with the replicas, so each step averages over that many more examples), else as configured."""
    return hparams.learning_rate * replicas if hparams.scale_learning_rate else hparams.learning_rate


def make_strategy() -> tf.distribute.MirroredStrategy:
    """MirroredStrategy over all logical GPUs, or all logical CPUs when there is no GPU."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])


def make_dataset(
    fn_args, file_patterns: list[str], tf_transform_output: tft.TFTransformOutput, config: TrainerConfig,
    batch_size: int, shuffle: bool,
) -> tf.data.Dataset:
    """A finite (one pass) dataset of (transformed features, label id) batches."""
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size,
        label_key=config.label.transformed_name,
        num_epochs=1,
        shuffle=shuffle,
        shuffle_seed=config.model.seed if shuffle else None,
    )
    dataset = fn_args.data_accessor.tf_dataset_factory(
        file_patterns, options, tf_transform_output.transformed_metadata.schema
    )
    # TFXIO already reads files in parallel and parses whole batches; the label filter runs on parallel
    # threads in order, and the prefetch overlaps all of it with the training step.
    return dataset.map(_drop_unlabeled, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
        tf.data.AUTOTUNE)


def in_memory(dataset: tf.data.Dataset) -> Optional[tuple[dict[str, tf.Tensor], tf.Tensor]]:
    """One pass of a finite (features, label) batch dataset as whole-split tensors; None when it is
    empty or a feature is not a dense tensor (then it cannot be gathered by row)."""
    features, labels = {}, []
    for batch, label in dataset:
        if not all(isinstance(value, tf.Tensor) for value in batch.values()):
            return None
        for key, value in batch.items():
            features.setdefault(key, []).append(value)
        labels.append(label)
    if not labels:
        return None
    return {key: tf.concat(values, axis=0) for key, values in features.items()}, tf.concat(labels, axis=0)


def shuffled_batches(features: Mapping[str, tf.Tensor], labels: tf.Tensor, batch_size: int,
                     seed: int) -> tf.data.Dataset:
    """Batches of in-memory rows, reshuffled every epoch (deterministically from `seed`).

    Row indices are shuffled and batched, then each batch is one gather per feature — what Keras does
    for in-memory arrays, and far cheaper than re-reading and re-parsing the records every epoch.
    """
    rows = int(labels.shape[0])
    order = tf.data.Dataset.range(rows).shuffle(rows, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    return order.map(
        lambda index: ({key: tf.gather(value, index) for key, value in features.items()}, tf.gather(labels, index)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def training_dataset(fn_args, tf_transform_output: tft.TFTransformOutput, config: TrainerConfig,
                     batch_size: int) -> tf.data.Dataset:
    """The training split, one pass per epoch, shuffled: held in memory with `model.cache_training_data`
    (its records read and parsed once; a split that is empty or has sparse features is streamed
    anyway), else streamed from the TFRecords every epoch."""
    if config.model.cache_training_data:
        held = in_memory(make_dataset(fn_args, fn_args.train_files, tf_transform_output, config, batch_size,
                                      shuffle=False))
        if held is not None:
            return shuffled_batches(*held, batch_size, config.model.seed)
    return make_dataset(fn_args, fn_args.train_files, tf_transform_output, config, batch_size, shuffle=True)


def _drop_unlabeled(batch: dict, label: tf.Tensor):
    """Rows whose label is missing (id -1, or NaN for regression) teach nothing; they are dropped."""
    label = tf.reshape(label, [-1])
    keep = tf.logical_not(tf.math.is_nan(label)) if label.dtype.is_floating else label >= 0
    return {key: tf.boolean_mask(value, keep) for key, value in batch.items()}, tf.boolean_mask(label, keep)


def label_moments(config: TrainerConfig, train: tf.data.Dataset) -> Optional[tuple[float, float]]:
    """(mean, std) of the training labels when the config normalises a regression label, else None.

    One pass over the (finite) training set; the model bakes the pair into a fixed rescaling layer.
    A constant label gets std 1 so the rescaling stays invertible.
    """
    if not (config.is_regression and config.label.normalize):
        return None
    count, total, squares = 0.0, 0.0, 0.0
    for _, labels in train:
        labels = tf.cast(labels, tf.float64)
        count += float(tf.size(labels))
        total += float(tf.reduce_sum(labels))
        squares += float(tf.reduce_sum(tf.square(labels)))
    if not count:
        raise ValueError("no labelled training rows: cannot normalise the label")
    mean = total / count
    std = math.sqrt(max(squares / count - mean * mean, 0.0))
    return mean, (std if std > 0 else 1.0)


def vocabulary_sizes(config: TrainerConfig, tf_transform_output: tft.TFTransformOutput) -> dict[str, int]:
    """Vocabulary entries of each feature with a vocabulary, read from the files Transform wrote."""
    return {
        spec.name: tf_transform_output.vocabulary_size_by_name(features.vocabulary_file_name(spec.name))
        for spec in config.vocabulary_features
    }


def vocabularies(config: TrainerConfig, tf_transform_output: tft.TFTransformOutput) -> dict[str, list[str]]:
    """Entries of each vocabulary, in id order (bytes as latin-1 text: lossless, JSON-friendly)."""
    return {
        spec.name: [value.decode("latin-1") if isinstance(value, bytes) else str(value) for value in
                    tf_transform_output.vocabulary_by_name(features.vocabulary_file_name(spec.name))]
        for spec in config.vocabulary_features
    }


def class_weights(config: TrainerConfig, train: tf.data.Dataset) -> Optional[dict[int, float]]:
    """Keras `class_weight` from `label.class_weights`: None, {class: weight}, or `auto`.

    `auto` weighs class c by n / (k * n_c) over the training labels (one pass), so every class
    carries the same total weight; a class absent from training keeps weight 1.
    """
    configured = config.label.class_weights
    classes = config.label.classes
    if configured is None:
        return None
    if isinstance(configured, Mapping):
        return {index: float(configured.get(name, 1.0)) for index, name in enumerate(classes)}
    counts = [0] * len(classes)
    for _, labels in train:
        for class_id, count in zip(*np.unique(labels.numpy(), return_counts=True)):
            counts[int(class_id)] += int(count)
    total = sum(counts)
    return {index: (total / (len(classes) * count) if count else 1.0) for index, count in enumerate(counts)}


def _callbacks(fn_args, hparams: ModelHparams) -> list[keras.callbacks.Callback]:
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=hparams.early_stopping_patience,
            restore_best_weights=True,
        ),
        keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
        # Epoch metrics go to the run's log (not stdout), so the CLI's progress view stays clean.
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logging.info(
            "epoch %d: %s", epoch + 1, ", ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items())))),
    ]


def _steps_per_epoch(train_steps: Optional[int], epochs: int) -> Optional[int]:
    """TFX's train_steps caps the total steps; None means one full pass over the data per epoch."""
    return None if not train_steps else max(1, math.ceil(train_steps / epochs))


def _best_values(fn_args) -> Optional[dict[str, Any]]:
    """The Tuner's best hyper-parameter values (`fn_args.hyperparameters`, a KerasTuner config), if any."""
    hyperparameters = getattr(fn_args, "hyperparameters", None)
    if not hyperparameters:
        return None
    import keras_tuner

    return dict(keras_tuner.HyperParameters.from_config(hyperparameters).values)


def run_fn(fn_args) -> None:
    """Trains the configured model (the task's head) and exports it to `fn_args.serving_model_dir`."""
    enable_gpu_memory_growth()  # first: before anything initialises TensorFlow's devices
    config = trainer_config.parse(fn_args.custom_config, "run_fn")
    hparams = tuned_hparams(config.model, _best_values(fn_args))
    config = dataclasses.replace(config, model=hparams)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path or fn_args.transform_output)

    strategy = make_strategy()
    global_batch = hparams.batch_size_per_replica * strategy.num_replicas_in_sync
    epochs = hparams.epochs
    steps_per_epoch = _steps_per_epoch(fn_args.train_steps, epochs)
    train = training_dataset(fn_args, tf_transform_output, config, global_batch)
    if steps_per_epoch:
        train = train.repeat()
    validation = make_dataset(fn_args, fn_args.eval_files, tf_transform_output, config, global_batch, shuffle=False)

    one_pass = make_dataset(fn_args, fn_args.train_files, tf_transform_output, config, global_batch, shuffle=False)
    moments, weights = label_moments(config, one_pass), class_weights(config, one_pass)
    sizes, vocabulary = vocabulary_sizes(config, tf_transform_output), vocabularies(config, tf_transform_output)
    learning_rate = scaled_learning_rate(hparams, strategy.num_replicas_in_sync)
    with strategy.scope():  # mirrored variables are created, and warm-start assigned, in the scope
        model = build_configured_model(
            dataclasses.replace(config, model=dataclasses.replace(hparams, learning_rate=learning_rate)), sizes, moments)
        started = _warm_start(fn_args, model, config, sizes, vocabulary)
    logging.info("Training on %d replica(s), global batch %d, learning rate %g", strategy.num_replicas_in_sync,
                 global_batch, learning_rate)
    with warnings.catch_warnings():
        # Finite datasets have unknown cardinality until the first epoch ends; Keras 3 then warns that
        # the input "ran out of data" although one full pass per epoch is exactly what is intended.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(
            train,
            validation_data=validation,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=_callbacks(fn_args, hparams),
            class_weight=weights,
            verbose=0,
        )
    final_metrics = model.evaluate(validation, return_dict=True, verbose=0)
    export.export_serving_model(model, tf_transform_output, config, fn_args.serving_model_dir)
    warm_start.save(warm_start.snapshot(model, config, sizes, vocabulary), fn_args.serving_model_dir)
    write_training_summary(fn_args.model_run_dir, strategy, global_batch, history, final_metrics, hparams,
                           started, learning_rate)


def _warm_start(fn_args, model, config: TrainerConfig, sizes: Mapping[str, int],
                vocabulary: Mapping[str, list[str]]) -> warm_start.WarmStart:
    """Seeds the fresh model from the Trainer's `base_model` when `model.warm_start` asks for it."""
    if not config.model.warm_start:
        return warm_start.WarmStart(None, cold_reason="model.warm_start is false")
    current = warm_start.snapshot(model, config, sizes, vocabulary)
    return warm_start.warm_start(model, current, getattr(fn_args, "base_model", None))


def code_version() -> dict[str, str]:
    """Which code trained the model (for `tfxpipe lineage`): the tfxpipe distribution's version and a digest
    of the trainer package's sources, which names the exact code even in a container without git."""
    import hashlib
    import importlib.metadata

    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        version = importlib.metadata.version("tfxpipe")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "not installed"
    return {"tfxpipe": version, "trainer_sources_sha256": digest.hexdigest()[:16]}


def write_training_summary(
    run_dir: str, strategy: tf.distribute.Strategy, global_batch: int, history, final_metrics: Mapping[str, float],
    hparams: Optional[ModelHparams] = None, started: Optional[warm_start.WarmStart] = None,
    learning_rate: Optional[float] = None,
) -> dict[str, Any]:
    """Records replicas, batch, epochs run, the hyper-parameters trained with (tuned ones included), the
    learning rate the optimizer used (scaled with the replicas when configured), the restored model's eval
    metrics and the warm start (base model, or why cold) as JSON in `run_dir`."""
    val_losses = history.history.get("val_loss", [])
    summary = {
        "num_replicas": strategy.num_replicas_in_sync,
        "devices": list(strategy.extended.worker_devices),
        "global_batch_size": global_batch,
        "learning_rate": learning_rate,
        "epochs_run": len(history.history.get("loss", [])),
        "best_epoch": (val_losses.index(min(val_losses)) + 1) if val_losses else None,
        "final_eval_metrics": {k: float(v) for k, v in final_metrics.items()},
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "hyperparameters": dataclasses.asdict(hparams) if hparams else None,
        "warm_start": started.summary() if started else None,
        "code_version": code_version(),
    }
    tf.io.gfile.makedirs(run_dir)
    with tf.io.gfile.GFile(os.path.join(run_dir, SUMMARY_FILE), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
