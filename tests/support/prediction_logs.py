"""Write request logs as TF Serving's request logger does: PredictionLog records in TFRecord files.

Rows of raw penguin features become PredictLogs (one TensorProto per feature, batch first, as the REST and
gRPC Predict APIs send them) or ClassifyLogs (tf.Examples), built with the official
`tensorflow_serving.apis` protos, so the reader is tested against the real wire format without a server.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

ROOT = Path(__file__).resolve().parents[2]
NUMERIC = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
CATEGORICAL = ("island", "sex")


def penguin_rows(**overrides: str) -> list[dict]:
    """Complete rows of the bundled table (the logged requests of a healthy day), with `overrides` applied."""
    rows = [r for r in csv.DictReader(open(ROOT / "data/penguins/penguins.csv"))
            if all(r[name] not in ("", "NA") for name in NUMERIC + CATEGORICAL)]
    return [dict(row, **overrides) for row in rows]


def _predict_log(batch: list[dict]) -> prediction_log_pb2.PredictionLog:
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.model_spec.name = "penguin"
    for name in NUMERIC:
        log.predict_log.request.inputs[name].CopyFrom(tf.make_tensor_proto([float(r[name]) for r in batch], tf.float32))
    for name in CATEGORICAL:
        log.predict_log.request.inputs[name].CopyFrom(tf.make_tensor_proto([r[name].encode() for r in batch]))
    return log


def _classify_log(batch: list[dict]) -> prediction_log_pb2.PredictionLog:
    log = prediction_log_pb2.PredictionLog()
    log.classify_log.request.model_spec.name = "penguin"
    for row in batch:
        example = log.classify_log.request.input.example_list.examples.add()
        for name in NUMERIC:
            example.features.feature[name].float_list.value.append(float(row[name]))
        for name in CATEGORICAL:
            example.features.feature[name].bytes_list.value.append(row[name].encode())
    return log


def write_logs(directory: Path, rows: Iterable[dict], batch_size: int = 4) -> Path:
    """Log `rows` in batches, alternating Predict and Classify requests, in two completed files plus a
    hidden in-progress file (which readers must skip, as it is still being written)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    logs = [(_predict_log if i % 2 == 0 else _classify_log)(batch) for i, batch in enumerate(batches)]
    half = len(logs) // 2
    for name, part in (("requests-1.tfrecord", logs[:half]), ("requests-2.tfrecord", logs[half:]),
                       (".requests-3.tfrecord.in-progress", logs[:1])):
        with tf.io.TFRecordWriter(str(directory / name)) as writer:
            for log in part:
                writer.write(log.SerializeToString())
    with open(directory / ".requests-3.tfrecord.in-progress", "ab") as f:
        f.write(b"\x01\x02truncated")
    return directory
