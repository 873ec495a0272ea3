"""TF Serving warm-up records: a few PredictRequests replayed by the server before it takes traffic.

TF Serving reads `contract.WARMUP_FILE` (a TFRecord of PredictionLog) when it loads a
version, so the first real request does not pay for graph tracing and kernel initialisation. Rows use
the first vocabulary entries for categorical features (values the model has seen) and 0.0 for numeric
ones; `contract.SERVING_SIGNATURE` accepts exactly these inputs, so the records double as a smoke test.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from trainer import contract, features
from trainer.trainer_config import TrainerConfig

ROWS = 3


def warmup_inputs(config: TrainerConfig, tf_transform_output: tft.TFTransformOutput, rows: int = ROWS) -> dict:
    """Column-wise numpy inputs for `serving_default`: one array of `rows` values per feature."""
    inputs = {}
    for spec in config.features:
        name = spec.name
        if spec.is_numeric:
            inputs[name] = np.zeros([rows], dtype=np.float32)
            continue
        vocabulary = [
            v for v in tf_transform_output.vocabulary_by_name(features.vocabulary_file_name(name))
            if v != features.MISSING_CATEGORY.encode()
        ] or [b""]
        inputs[name] = np.array([vocabulary[i % len(vocabulary)] for i in range(rows)], dtype=object)
    return inputs


def predict_request(inputs: Mapping[str, np.ndarray]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=contract.SERVING_SIGNATURE))
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return request


def write_warmup_requests(
    export_dir: str, config: TrainerConfig, tf_transform_output: tft.TFTransformOutput, rows: int = ROWS
) -> str:
    """Writes one PredictionLog with a `rows`-row request; returns the file's path."""
    path = os.path.join(export_dir, contract.WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=predict_request(warmup_inputs(config, tf_transform_output, rows)))
    )
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())
    return path
