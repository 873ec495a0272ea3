"""TF Serving warm-up records: a few PredictRequests replayed by the server before it takes traffic.

TF Serving reads `contract.WARMUP_FILE` (a TFRecord of PredictionLog) when it loads a
version, so the first real request does not pay for graph tracing and kernel initialisation. Rows use
the first vocabulary entries for categorical features (values the model has seen) and 0.0 for numeric
ones; `contract.SERVING_SIGNATURE` accepts exactly these inputs, so the records double as a smoke test.
The same rows also go, as tf.Examples, to the task's tf.Example signature (a ClassifyLog for
classification, a RegressLog for regression), so each API a client may call is warm.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import (classification_pb2, input_pb2, model_pb2, predict_pb2, prediction_log_pb2,
                                    regression_pb2)

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
        ] if spec.has_vocabulary else []
        vocabulary = vocabulary or [b""]
        inputs[name] = np.array([vocabulary[i % len(vocabulary)] for i in range(rows)], dtype=object)
    return inputs


def predict_request(inputs: Mapping[str, np.ndarray]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=contract.SERVING_SIGNATURE))
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return request


def example_input(inputs: Mapping[str, np.ndarray]) -> input_pb2.Input:
    """The rows of `inputs` as tf.Examples (numbers as float_list, text as bytes_list)."""
    rows = len(next(iter(inputs.values())))
    request_input = input_pb2.Input()
    for row in range(rows):
        example = request_input.example_list.examples.add()
        for name, values in inputs.items():
            value = values[row]
            if isinstance(value, (bytes, str)):
                example.features.feature[name].bytes_list.value.append(value if isinstance(value, bytes) else value.encode())
            else:
                example.features.feature[name].float_list.value.append(float(value))
    return request_input


def examples_log(config: TrainerConfig, inputs: Mapping[str, np.ndarray]) -> prediction_log_pb2.PredictionLog:
    """A ClassifyLog (classification) or RegressLog (regression) on the task's tf.Example signature."""
    if config.is_regression:
        request = regression_pb2.RegressionRequest(
            model_spec=model_pb2.ModelSpec(signature_name=contract.REGRESS_SIGNATURE), input=example_input(inputs))
        return prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=request))
    request = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(signature_name=contract.CLASSIFY_SIGNATURE), input=example_input(inputs))
    return prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))


def write_warmup_requests(
    export_dir: str, config: TrainerConfig, tf_transform_output: tft.TFTransformOutput, rows: int = ROWS
) -> str:
    """Writes a `rows`-row PredictLog and the task's Classify/Regress log; returns the file's path."""
    path = os.path.join(export_dir, contract.WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    inputs = warmup_inputs(config, tf_transform_output, rows)
    predict_log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=predict_request(inputs)))
    with tf.io.TFRecordWriter(path) as writer:
        for log in (predict_log, examples_log(config, inputs)):
            writer.write(log.SerializeToString())
    return path
