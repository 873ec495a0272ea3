"""GPU readiness of `run_fn`'s glue, on CPU: learning-rate scaling with the replicas, and GPU memory growth
set on every GPU (faked here: TensorFlow's device calls are replaced, no GPU is needed)."""
from __future__ import annotations

import dataclasses

import pytest

from tests.support.trainer_configs import penguin_loaded_config
from trainer import task, trainer_config

HPARAMS = trainer_config.parse(penguin_loaded_config(learning_rate=0.01).cfg.trainer_config(), "test").model


@pytest.mark.parametrize("scale, replicas, expected", [(False, 4, 0.01), (True, 1, 0.01), (True, 4, 0.04)])
def test_learning_rate_scales_with_replicas_only_when_asked(scale, replicas, expected):
    hparams = dataclasses.replace(HPARAMS, scale_learning_rate=scale)
    assert task.scaled_learning_rate(hparams, replicas) == pytest.approx(expected)


def test_scaling_is_off_and_mixed_precision_is_off_by_default():
    assert HPARAMS.scale_learning_rate is False and HPARAMS.mixed_precision is False


def test_memory_growth_is_set_on_every_gpu_and_a_late_call_is_logged_not_raised(monkeypatch):
    import tensorflow as tf

    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(3)]
    calls = []

    def set_memory_growth(device, enable):
        calls.append((device.name, enable))
        if device.name.endswith(":2"):
            raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", set_memory_growth)
    assert task.enable_gpu_memory_growth() == [gpus[0].name, gpus[1].name]
    assert calls == [(gpu.name, True) for gpu in gpus]


def test_memory_growth_without_gpus_is_a_no_op():
    assert task.enable_gpu_memory_growth() == []


def test_in_memory_batches_hold_every_row_once_per_epoch_reshuffled_deterministically():
    import numpy as np
    import tensorflow as tf

    rows = tf.data.Dataset.from_tensor_slices(({"x_xf": np.arange(10.0, dtype=np.float32)}, np.arange(10))).batch(4)
    features, labels = task.in_memory(rows)
    assert labels.numpy().tolist() == list(range(10))
    dataset = task.shuffled_batches(features, labels, batch_size=4, seed=7)
    epochs = [[(batch["x_xf"].numpy().tolist(), label.numpy().tolist()) for batch, label in dataset] for _ in range(2)]
    for epoch in epochs:
        assert [len(label) for _, label in epoch] == [4, 4, 2]
        assert sorted(v for _, label in epoch for v in label) == list(range(10))
        assert all(x == [float(v) for v in label] for x, label in epoch), "features stay with their labels"
    assert epochs[0] != epochs[1], "a new order every epoch"
    rebuilt = task.shuffled_batches(features, labels, batch_size=4, seed=7)
    again = [[label.numpy().tolist() for _, label in rebuilt] for _ in range(2)]
    assert again == [[label for _, label in epoch] for epoch in epochs], "the same seed, the same epochs"


def test_in_memory_declines_empty_and_sparse_data():
    import tensorflow as tf

    empty = tf.data.Dataset.from_tensor_slices(({"x_xf": tf.zeros([0])}, tf.zeros([0], tf.int64))).batch(4)
    assert task.in_memory(empty) is None
    sparse = tf.data.Dataset.from_tensors(({"x_xf": tf.sparse.from_dense([[1.0]])}, tf.constant([0])))
    assert task.in_memory(sparse) is None
