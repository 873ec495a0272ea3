"""Request logging on a running server: REST and gRPC calls become PredictionLog records that TensorFlow's
TFRecord reader and the official `prediction_log_pb2` read; a stuck writer drops records, never requests."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.support.serving_fixtures import (
    EXAMPLE_ROW, PENGUIN_ROW, ModelStore, example_bytes, predict_request, start_server,
)

pytestmark = pytest.mark.slow


def _config(path: Path, base: Path, prefix: Path, rate: float = 1.0) -> Path:
    path.write_text(
        "model_config_list { config { name: 'penguin' base_path: '%s' model_platform: 'tensorflow'\n"
        "  logging_config { log_collector_config { filename_prefix: '%s' }\n"
        "                   sampling_config { sampling_rate: %s } } } }\n" % (base, prefix, rate))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("request_log") / "models" / "penguin"
    path.mkdir(parents=True)
    ModelStore().push(path, 4, include_regression=True)
    return path


def _read_with_tensorflow(prefix: Path) -> list:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from serving.request_log import completed_files

    files = completed_files(str(prefix))
    assert files, f"no complete log files under {prefix}"
    return [prediction_log_pb2.PredictionLog.FromString(record)
            for record in tf.data.TFRecordDataset(files).as_numpy_iterator()]


def test_rest_and_grpc_calls_are_logged_as_prediction_logs(base, tmp_path):
    import grpc
    import httpx
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc, regression_pb2

    prefix = tmp_path / "logs" / "penguin" / "requests"
    server = start_server(model_config_file=str(_config(tmp_path / "models.config", base, prefix)))
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/penguin"
    try:
        with httpx.Client(timeout=30) as client:
            assert client.post(f"{url}:predict", json={"instances": [PENGUIN_ROW, PENGUIN_ROW]}).status_code == 200
            assert client.post(f"{url}/versions/4:classify",
                               json={"signature_name": "classification", "examples": [EXAMPLE_ROW]}).status_code == 200
            assert client.post(f"{url}:regress",
                               json={"signature_name": "regression", "examples": [EXAMPLE_ROW]}).status_code == 200
            assert client.post(f"{url}:predict", json={"instances": [{"nope": 1}]}).status_code == 400  # not logged
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(predict_request([PENGUIN_ROW], model_name="penguin"), timeout=30)
        for request_class, call, signature in ((classification_pb2.ClassificationRequest, stub.Classify, "classification"),
                                               (regression_pb2.RegressionRequest, stub.Regress, "regression")):
            request = request_class()
            request.model_spec.name, request.model_spec.signature_name = "penguin", signature
            request.input.example_list.examples.add().ParseFromString(example_bytes(EXAMPLE_ROW))
            call(request, timeout=30)
        channel.close()
    finally:
        server.stop()  # completes the open log file
    logs = _read_with_tensorflow(prefix)
    assert [log.WhichOneof("log_type") for log in logs] == [
        "predict_log", "classify_log", "regress_log", "predict_log", "classify_log", "regress_log"]
    assert all(log.log_metadata.model_spec.version.value == 4 and log.log_metadata.model_spec.name == "penguin"
               for log in logs)
    rest_predict, rest_classify = logs[0].predict_log, logs[1].classify_log
    assert list(rest_predict.request.inputs["bill_length_mm"].float_val) == pytest.approx([PENGUIN_ROW["bill_length_mm"]] * 2)
    assert list(rest_predict.request.inputs["island"].string_val) == [b"Torgersen"] * 2
    assert rest_predict.response.outputs["scores"].tensor_shape.dim[0].size == 2
    assert rest_classify.request.model_spec.version.value == 4  # the REST path's /versions/4
    example = rest_classify.request.input.example_list.examples[0]
    assert example.features.feature["island"].bytes_list.value == [b"Torgersen"]
    assert len(rest_classify.response.result.classifications[0].classes) == 3
    assert logs[3].predict_log.request == predict_request([PENGUIN_ROW], model_name="penguin")  # gRPC: as sent
    assert len(logs[5].regress_log.response.result.regressions) == 1


def test_a_stuck_log_writer_drops_and_counts_but_every_request_succeeds(base, tmp_path):
    import httpx

    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text("prometheus_config { enable: true, path: '/monitoring/prometheus/metrics' }\n")
    prefix = tmp_path / "logs" / "requests"
    server = start_server(model_config_file=str(_config(tmp_path / "models.config", base, prefix)),
                          monitoring_config_file=str(monitoring), request_log_queue_size=2)
    logger, release = server.request_logger, threading.Event()
    write = logger._write
    logger._write = lambda *args: (release.wait(60), write(*args))  # a disk that stopped answering
    url = f"http://127.0.0.1:{server.rest_port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            codes = [client.post("/v1/models/penguin:predict", json={"instances": [PENGUIN_ROW]}).status_code
                     for _ in range(20)]
            metrics = client.get("/monitoring/prometheus/metrics").text
    finally:
        release.set()
        server.stop()
    assert codes == [200] * 20
    dropped = [line for line in metrics.splitlines()
               if line.startswith('tfxpipe_request_log_records_total{model_name="penguin",outcome="dropped"}')]
    dropped_count = int(float(dropped[0].split()[-1])) if dropped else 0
    assert dropped_count >= 17  # one being written, two queued, the rest dropped
    assert len(_read_with_tensorflow(prefix)) == 20 - dropped_count
