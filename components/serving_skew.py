"""Training/serving skew against live traffic: statistics of logged requests, compared with training data.

TF Serving's request logger (and `tfxpipe serve` with a `logging_config`) writes sampled requests as
`PredictionLog` TFRecords, the format TFX's BulkInferrer also writes. The features a model was asked
about are in the request: a `PredictLog`'s `inputs` (one TensorProto per raw feature, batch first), or
the `tf.Example`s of a `ClassifyLog`/`RegressLog`. They become TFDV statistics, and TFDV's skew
comparators (L-infinity for categorical features, Jensen-Shannon divergence for numeric ones, per-feature
thresholds from `validation.serving_skew`) measure how far live traffic is from the training data.

Used by the DataValidationGate (`validation.serving_logs`) and by `tfxpipe monitor`.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2
from tensorflow_serving.apis import prediction_log_pb2

from components.validation_report import SERVING_SKEW_CHECK as CHECK


def log_files(location: str) -> list[str]:
    """The completed log files in a directory (local or object store); files being written are hidden
    (`.name`), as the request loggers write them, and skipped."""
    if not tf.io.gfile.isdir(location):
        raise FileNotFoundError(f"serving logs: {location!r} is not a directory")
    names = sorted(tf.io.gfile.listdir(location))
    return [os.path.join(location, n) for n in names
            if not n.startswith(".") and not tf.io.gfile.isdir(os.path.join(location, n))]


def prediction_logs(location: str) -> Iterator[prediction_log_pb2.PredictionLog]:
    """Every PredictionLog under `location`; a truncated last record (a crashed writer) ends its file."""
    for path in log_files(location):
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                yield prediction_log_pb2.PredictionLog.FromString(record)
        except tf.errors.DataLossError:
            continue


def _example_rows(examples: Iterable[Any]) -> Iterator[dict[str, list]]:
    for example in examples:
        row = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            if kind:
                row[name] = list(getattr(feature, kind).value)
        yield row


def _predict_rows(inputs: Any) -> Iterator[dict[str, list]]:
    """PredictRequest inputs (feature → batch tensor) as one row per batch element; a scalar is one row."""
    columns = {name: np.asarray(tf.make_ndarray(tensor)) for name, tensor in inputs.items()}
    columns = {name: values.reshape(1, -1) if values.ndim == 0 else values.reshape(len(values), -1)
               for name, values in columns.items()}
    size = max((len(values) for values in columns.values()), default=0)
    for i in range(size):
        yield {name: values[i].tolist() for name, values in columns.items() if i < len(values)}


def request_rows(log: prediction_log_pb2.PredictionLog) -> Iterator[dict[str, list]]:
    """The feature values of one logged request, one row per example (multi-inference logs are skipped)."""
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        yield from _predict_rows(log.predict_log.request.inputs)
    elif kind in ("classify_log", "regress_log"):
        request_input = getattr(log, kind).request.input
        if request_input.HasField("example_list"):
            yield from _example_rows(request_input.example_list.examples)
        else:
            context = next(_example_rows([request_input.example_list_with_context.context]), {})
            for row in _example_rows(request_input.example_list_with_context.examples):
                yield {**context, **row}


def _value(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def logged_statistics(location: str, features: Iterable[str]) -> Optional[statistics_pb2.DatasetFeatureStatisticsList]:
    """TFDV statistics of the logged requests' `features` (None: no request logged yet)."""
    import pyarrow as pa

    wanted = list(features)
    rows = [row for log in prediction_logs(location) for row in request_rows(log)]
    if not rows:
        return None
    columns = {}
    for name in wanted:
        if any(name in row for row in rows):
            columns[name] = pa.array([[_value(v) for v in row[name]] if name in row else None for row in rows])
    batch = pa.RecordBatch.from_arrays(list(columns.values()), list(columns))
    from tensorflow_data_validation.statistics import stats_impl

    return stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())

