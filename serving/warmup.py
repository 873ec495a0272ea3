"""Replays `assets.extra/tf_serving_warmup_requests` before a version takes traffic, as TF Serving does.

The file is a TFRecord of `PredictionLog`; predict, classify and regress logs are run through the same
checks as live requests (so a warm-up record that TF Serving would reject fails the load here too).
A missing file is fine; an unreadable record or a failing request fails the version's load.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from serving import errors, tensors
from serving.inference import example_call, predict_call, serialized_examples
from serving.servable import Servable
from trainer.contract import CLASSIFY_METHOD, MAX_WARMUP_RECORDS, REGRESS_METHOD, WARMUP_FILE

log = logging.getLogger(__name__)


def run_warmup(servable: Servable, check_method_name: bool = False) -> int:
    """Runs every warm-up record once; returns how many ran."""
    path = os.path.join(servable.path, WARMUP_FILE)
    if not os.path.exists(path):
        log.info("No warmup data file found at %s", path)
        return 0
    from serving import protos

    prediction_log_cls = protos.load().prediction_log_pb2.PredictionLog
    count = 0
    for record in _records(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise errors.invalid_argument(f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}")
        prediction_log = prediction_log_cls()
        try:
            prediction_log.ParseFromString(record)
        except Exception:  # noqa: BLE001 - DecodeError or RuntimeError depending on the protobuf backend
            raise errors.invalid_argument(f"Failed to parse warmup record from {path}") from None
        _replay(servable, prediction_log, check_method_name)
    log.info("Finished reading %d warmup records for %s version %d", count, servable.name, servable.version)
    return count


def _records(path: str):
    import tensorflow as tf

    try:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            yield record
    except tf.errors.OpError as exc:
        raise errors.from_exception(exc) from exc


def _replay(servable: Servable, prediction_log: Any, check_method_name: bool) -> None:
    """One record through the live requests' checks and model call (unbatched, on this thread)."""
    kind = prediction_log.WhichOneof("log_type")
    if kind == "predict_log":
        request = prediction_log.predict_log.request
        signature = servable.predict_signature(request.model_spec.signature_name)
        inputs = {alias: tensors.to_ndarray(proto) for alias, proto in request.inputs.items()}
        predict_call(servable, signature, inputs, tuple(request.output_filter)).result()
    elif kind in ("classify_log", "regress_log"):
        request = getattr(prediction_log, kind).request
        method = CLASSIFY_METHOD if kind == "classify_log" else REGRESS_METHOD
        example_call(servable, request.model_spec.signature_name, method, serialized_examples(request.input),
                     check_method_name).result()
    elif kind is not None:
        raise errors.ServingError(errors.Code.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}")
