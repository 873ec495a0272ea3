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
