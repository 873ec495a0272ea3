"""Request logging without a model: config parsing, TFRecord framing, sampling, rotation, a full queue."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from serving import api_protos, model_config, protos, request_log
from serving.errors import ServingError
from serving.inference import ModelRequest
from serving.metrics import ServingMetrics
from serving.model_config import ModelConfig, RequestLogConfig
from serving.request_log import RequestLogger, RotatingRecordFile


def _config_text(logging_config: str) -> str:
    return ("model_config_list { config { name: 'penguin' base_path: '/models/penguin' "
            f"model_platform: 'tensorflow' {logging_config} }} }}")


def test_logging_config_is_parsed_with_tf_servings_field_names(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(_config_text("logging_config { log_collector_config { filename_prefix: '/logs/penguin/requests' } "
                                 "sampling_config { sampling_rate: 0.25 } }"))
    [config] = model_config.model_configs(model_config.read_model_server_config(str(path)))
    assert config.request_log == RequestLogConfig("/logs/penguin/requests", 0.25)
    path.write_text(_config_text(""))
    assert model_config.model_configs(model_config.read_model_server_config(str(path)))[0].request_log is None


@pytest.mark.parametrize("logging_config, message", [
    ("logging_config { log_collector_config { type: 'bigquery' filename_prefix: '/l/x' } }",
     "Cannot find LogCollector::Factory for type: bigquery"),
    ("logging_config { sampling_config { sampling_rate: 0.5 } }", "needs a filename_prefix"),
    ("logging_config { log_collector_config { filename_prefix: '/l/x' } sampling_config { sampling_rate: 1.5 } }",
     "sampling_rate must be in [0, 1]"),
])
def test_bad_logging_configs_are_refused(tmp_path, logging_config, message):
    path = tmp_path / "models.config"
    path.write_text(_config_text(logging_config))
    with pytest.raises(ServingError, match=message.replace("[", r"\[").replace("]", r"\]")):
        model_config.model_configs(model_config.read_model_server_config(str(path)))


def test_framing_round_trips_and_detects_corruption(tmp_path):
    path = tmp_path / "records.tfrecord"
    records = [b"", b"one", bytes(range(256)) * 40]
    path.write_bytes(b"".join(request_log.frame(r) for r in records))
    assert list(request_log.read_records(str(path))) == records
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        list(request_log.read_records(str(path)))


def test_framing_matches_tensorflows_crc():
    """A known vector: TFRecord's masked CRC32C of b'' (TensorFlow's lib/hash/crc32c masking)."""
    assert request_log._masked_crc(b"") == ((((0 >> 15) | (0 << 17)) + 0xA282EAD8) & 0xFFFFFFFF)
    assert request_log._masked_crc(b"123456789") == ((((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8)
                                                     & 0xFFFFFFFF)


def _result(version: int = 3):
    import types

    from serving.inference import Result

    servable = types.SimpleNamespace(name="penguin", version=version)
    return Result(servable, "serving_default", {"scores": np.array([[0.1, 0.9]], np.float32)})


def _logger(tmp_path, metrics, **kwargs):
    options = dict(queue_size=64, max_file_bytes=1 << 20, rotate_seconds=60.0, on_outcome=metrics.count_request_log)
    options.update(kwargs)
    logger = RequestLogger(**options)
    prefix = str(tmp_path / "logs" / "requests")
    logger.configure([ModelConfig("penguin", "/m", request_log=RequestLogConfig(prefix, 1.0))])
    return logger, prefix


def _build(spec=ModelRequest("penguin", label="stable", signature_name="serving_default")):
    request = api_protos.predict_request(spec, {"x": np.array([1.5], np.float32), "s": np.array([b"a"], object)})
    response = api_protos.predict_response(_result())
    return lambda: api_protos.prediction_log(request, response)


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _count(metrics: ServingMetrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("tfxpipe_request_log_records_total",
                                             {"model_name": "penguin", "outcome": outcome}) or 0.0


def test_records_parse_with_the_official_prediction_log_proto(tmp_path):
    metrics = ServingMetrics()
    logger, prefix = _logger(tmp_path, metrics)
    for _ in range(3):
        logger.log("penguin", _build())
    logger.log("other-model", _build())  # no logging_config: not logged
    logger.close()
    [path] = request_log.completed_files(prefix)
    assert path.startswith(prefix + "-") and path.endswith(".tfrecord")
    assert request_log.completed_files(str(tmp_path / "logs")) == [path]
    prediction_log_pb2 = protos.load().prediction_log_pb2
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in request_log.read_records(path)]
    assert len(logs) == 3 and _count(metrics, "written") == 3
    first = logs[0]
    assert first.WhichOneof("log_type") == "predict_log"
    assert first.predict_log.request.model_spec.version_label == "stable"
    assert list(first.predict_log.request.inputs["x"].float_val) == [1.5]
    assert first.log_metadata.model_spec.version.value == 3
    assert first.log_metadata.model_spec.name == "penguin"
    assert first.log_metadata.sampling_config.sampling_rate == 1.0
    assert list(first.log_metadata.saved_model_tags) == ["serve"]
    assert abs(first.log_metadata.timestamp_secs - time.time()) < 60


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 1.0])
def test_sampling_rate_is_honoured(tmp_path, rate):
    import random

    metrics = ServingMetrics()
    draws = random.Random(7)
    logger = RequestLogger(queue_size=10_000, max_file_bytes=1 << 24, rotate_seconds=60.0,
                           on_outcome=metrics.count_request_log, sample=draws.random)
    prefix = str(tmp_path / "requests")
    logger.configure([ModelConfig("penguin", "/m", request_log=RequestLogConfig(prefix, rate))])
    build = _build()
    for _ in range(2000):
        logger.log("penguin", build)
    logger.close()
    written = sum(1 for path in request_log.completed_files(prefix) for _ in request_log.read_records(path))
    assert written == _count(metrics, "written")
    assert abs(written - 2000 * rate) <= 4 * (2000 * rate * (1 - rate)) ** 0.5  # within 4 standard deviations
    if rate in (0.0, 1.0):
        assert written == 2000 * rate


def test_a_full_queue_drops_and_counts_without_blocking_the_request(tmp_path):
    metrics = ServingMetrics()
    logger, prefix = _logger(tmp_path, metrics, queue_size=2)
    release = threading.Event()
    build = _build()

    def slow_build():  # the writer is stuck (a slow disk): the queue fills behind it
        release.wait(30)
        return build()

    logger.log("penguin", slow_build)
    _wait_for(lambda: logger._queue.qsize() == 0)  # the writer has taken the first record and waits on it
    started = time.perf_counter()
    for _ in range(50):
        logger.log("penguin", build)
    per_call = (time.perf_counter() - started) / 50
    release.set()
    logger.close()
    assert per_call < 0.001, f"logging a request took {per_call * 1e6:.0f} µs"
    assert _count(metrics, "dropped") == 48 and _count(metrics, "written") == 3
    assert b"tfxpipe_request_log_records_total" in metrics.exposition()


def test_a_failing_record_is_counted_and_logging_goes_on(tmp_path):
    metrics = ServingMetrics()
    logger, prefix = _logger(tmp_path, metrics)

    def broken():
        raise RuntimeError("cannot convert")

    logger.log("penguin", broken)
    logger.log("penguin", _build())
    logger.close()
    assert _count(metrics, "failed") == 1 and _count(metrics, "written") == 1


def test_files_rotate_by_size_and_by_age_and_complete_atomically(tmp_path):
    now = [1_000_000.0]
    prefix = str(tmp_path / "requests")
    file = RotatingRecordFile(prefix, max_bytes=100, rotate_seconds=30, clock=lambda: now[0])
    file.write(b"x" * 10)
    assert request_log.completed_files(prefix) == []  # in progress: hidden until complete
    assert len(list(tmp_path.glob(".requests-*.tfrecord.inprogress"))) == 1
    file.write(b"x" * 90)  # over 100 bytes with framing: completed
    assert len(request_log.completed_files(prefix)) == 1
    file.write(b"y")
    now[0] += 29
    file.rotate_if_old()
    assert len(request_log.completed_files(prefix)) == 1
    now[0] += 1
    file.rotate_if_old()
    files = request_log.completed_files(prefix)
    assert len(files) == 2 and list(request_log.read_records(files[1])) == [b"y"]
    assert list(tmp_path.glob(".*")) == []


def test_logger_rotates_old_files_while_idle(tmp_path):
    metrics = ServingMetrics()
    logger, prefix = _logger(tmp_path, metrics, rotate_seconds=0.1)
    logger.log("penguin", _build())
    _wait_for(lambda: request_log.completed_files(prefix))
    assert len(request_log.completed_files(prefix)) == 1  # completed with no further traffic
    logger.close()


def test_reload_without_logging_completes_the_file(tmp_path):
    metrics = ServingMetrics()
    logger, prefix = _logger(tmp_path, metrics)
    logger.log("penguin", _build())
    _wait_for(lambda: _count(metrics, "written") == 1)
    logger.configure([ModelConfig("penguin", "/m")])
    _wait_for(lambda: request_log.completed_files(prefix))
    assert len(request_log.completed_files(prefix)) == 1
    logger.log("penguin", _build())  # logging is off now
    logger.close()
    assert _count(metrics, "written") == 1
