"""Model versions on a running server: swaps under load, corrupt and half-written pushes, policies, labels,
config reloads over gRPC, Prometheus metrics, and graceful shutdown on SIGTERM."""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

from trainer import contract

from tests.support.serving_fixtures import (
    CLASS_NAMES, PENGUIN_ROW, ModelStore, free_port, start_server, wait_for, write_corrupt_version,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store():
    return ModelStore()


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "models" / "penguin"
    path.mkdir(parents=True)
    return path


def _predict(url, name="penguin", path_suffix=""):
    import httpx

    response = httpx.post(f"{url}/v1/models/{name}{path_suffix}:predict", json={"instances": [PENGUIN_ROW]}, timeout=30)
    return response.status_code, response.json()


def _status(url, name="penguin"):
    import httpx

    response = httpx.get(f"{url}/v1/models/{name}", timeout=30)
    return {int(s["version"]): s for s in response.json().get("model_version_status", [])}


def _rest(server):
    return f"http://127.0.0.1:{server.rest_port}"


def test_new_version_pushed_under_load_serves_with_zero_failed_requests(store, base):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tests.support.serving_fixtures import predict_request

    store.push(base, 1, favoured_class=0)
    server = start_server(model_name="penguin", model_base_path=str(base), enable_batching=True,
                          file_system_poll_wait_seconds=0.2)
    url = _rest(server)
    failures, answers, stop = [], [], threading.Event()

    def rest_load():
        import httpx

        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/models/penguin:predict", json={"instances": [PENGUIN_ROW]})
                    if response.status_code != 200:
                        failures.append(response.text)
                    else:
                        answers.append(response.json()["predictions"][0]["predicted_class"])
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    failures.append(repr(exc))

    def grpc_load():
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request([PENGUIN_ROW], model_name="penguin")
        while not stop.is_set():
            try:
                stub.Predict(request, timeout=30)
            except grpc.RpcError as exc:
                failures.append(f"grpc {exc.code()}: {exc.details()}")
        channel.close()

    threads = [threading.Thread(target=rest_load) for _ in range(6)] + [threading.Thread(target=grpc_load) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(answers) > 20, message="traffic on version 1")
        assert set(answers) == {CLASS_NAMES[0]}
        store.push(base, 2, favoured_class=2)
        wait_for(lambda: answers and answers[-1] == CLASS_NAMES[2], message="version 2 answering")
        seen = len(answers)
        wait_for(lambda: len(answers) > seen + 20, message="more traffic after the swap")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        statuses = _status(url)
        server.stop()
    assert failures == []
    assert answers[-1] == CLASS_NAMES[2] and set(answers) == {CLASS_NAMES[0], CLASS_NAMES[2]}
    assert statuses[2]["state"] == "AVAILABLE" and statuses[1]["state"] == "END"
    assert statuses[1]["status"]["error_code"] == "OK"


def test_corrupt_version_is_reported_and_the_good_one_keeps_serving(store, base):
    store.push(base, 1, favoured_class=0)
    server = start_server(model_name="penguin", model_base_path=str(base), file_system_poll_wait_seconds=0.2)
    url = _rest(server)
    try:
        write_corrupt_version(base, 2)
        status = wait_for(lambda: _status(url).get(2, {}).get("state") == "END" and _status(url), message="v2 failing")
        assert status[2]["status"]["error_code"] == "DATA_LOSS"
        assert "Could not parse SavedModel proto" in status[2]["status"]["error_message"]
        assert status[1]["state"] == "AVAILABLE"
        code, body = _predict(url)
        assert code == 200 and body["predictions"][0]["predicted_class"] == CLASS_NAMES[0]
        assert _predict(url, path_suffix="/versions/2")[0] == 404

        # The push is redone properly into the same directory: its contents change, so it is retried.
        shutil.rmtree(base / "2")
        store.push(base, 2, favoured_class=1)
        wait_for(lambda: _status(url).get(2, {}).get("state") == "AVAILABLE", message="fixed v2 loading")
        wait_for(lambda: _predict(url)[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[1], message="v2 serving")
    finally:
        server.stop()


def test_half_written_version_is_not_served_until_complete(store, base):
    store.push(base, 1, favoured_class=0)
    server = start_server(model_name="penguin", model_base_path=str(base), file_system_poll_wait_seconds=0.2)
    url = _rest(server)
    try:
        (base / "2" / "variables").mkdir(parents=True)  # a copy in progress: no saved_model.pb yet
        status = wait_for(lambda: _status(url).get(2, {}).get("state") == "END" and _status(url), message="v2 reported")
        assert status[2]["status"]["error_code"] == "NOT_FOUND"
        assert _predict(url)[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[0]
        shutil.rmtree(base / "2")
        shutil.copytree(store.variant(favoured_class=2), base / "2")
        wait_for(lambda: _predict(url)[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[2], message="v2 serving")
        # v1 unloads after v2 serves; a trainer-built model takes a moment to unload, so poll for it.
        wait_for(lambda: _status(url)[1]["state"] == "END", message="v1 unloaded")
    finally:
        server.stop()


def _write_config(path: Path, base: Path, policy: str, labels: dict[str, int] | None = None) -> Path:
    label_text = "".join(f"    version_labels {{ key: '{k}' value: {v} }}\n" for k, v in (labels or {}).items())
    path.write_text(
        "model_config_list {\n  config {\n    name: 'penguin'\n"
        f"    base_path: '{base}'\n    model_platform: 'tensorflow'\n"
        f"    model_version_policy {{ {policy} }}\n{label_text}  }}\n}}\n"
    )
    return path


def test_config_file_policies_labels_and_reload_over_grpc(store, base, tmp_path):
    import grpc
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
    from tensorflow_serving.config import model_server_config_pb2
    from google.protobuf import text_format

    for version, favoured in ((1, 0), (2, 1), (3, 2)):
        store.push(base, version, favoured_class=favoured)
    config = _write_config(tmp_path / "models.config", base, "specific { versions: 1 versions: 2 }",
                           {"stable": 1, "canary": 2})
    server = start_server(model_config_file=str(config), allow_version_labels_for_unavailable_models=True,
                          file_system_poll_wait_seconds=0.2)
    url = _rest(server)
    try:
        assert sorted(_status(url)) == [1, 2]
        assert _predict(url, path_suffix="/labels/stable")[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[0]
        assert _predict(url, path_suffix="/labels/canary")[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[1]
        assert _predict(url)[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[1]  # latest of those served
        assert _predict(url, path_suffix="/versions/3")[0] == 404

        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        new_config = text_format.Parse(
            _write_config(tmp_path / "new.config", base, "all {}", {"stable": 2}).read_text(),
            model_server_config_pb2.ModelServerConfig())
        response = stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=new_config), timeout=60)
        assert response.status.error_code == 0
        wait_for(lambda: _status(url).get(3, {}).get("state") == "AVAILABLE", message="v3 under the 'all' policy")
        assert _predict(url, path_suffix="/labels/stable")[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[1]

        bad = text_format.Parse(_write_config(tmp_path / "bad.config", base, "all {}", {"stable": 9}).read_text(),
                                model_server_config_pb2.ModelServerConfig())
        with pytest.raises(grpc.RpcError) as caught:
            stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=bad), timeout=60)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "Request to assign label to version 9 of model penguin" in caught.value.details()
        channel.close()
    finally:
        server.stop()


def test_labels_on_unloaded_versions_fail_startup_like_tf_serving(store, base, tmp_path):
    from serving.errors import Code, ServingError

    store.push(base, 1)
    config = _write_config(tmp_path / "models.config", base, "latest { num_versions: 1 }", {"stable": 1})
    with pytest.raises(ServingError) as caught:
        start_server(model_config_file=str(config))
    assert caught.value.code == Code.FAILED_PRECONDITION
    assert "which is not currently available for inference" in caught.value.message


def test_latest_two_policy_and_prometheus_metrics(store, base, tmp_path):
    import httpx

    for version in (1, 2, 3):
        store.push(base, version)
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text("prometheus_config { enable: true, path: '/monitoring/prometheus/metrics' }\n")
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 16 }\nbatch_timeout_micros { value: 1000 }\nnum_batch_threads { value: 1 }\n")
    config = _write_config(tmp_path / "models.config", base, "latest { num_versions: 2 }")
    server = start_server(model_config_file=str(config), monitoring_config_file=str(monitoring),
                          enable_batching=True, batching_parameters_file=str(batching))
    url = _rest(server)
    try:
        assert {v: s["state"] for v, s in _status(url).items()} == {2: "AVAILABLE", 3: "AVAILABLE"}
        assert _predict(url)[0] == 200
        too_big = httpx.post(f"{url}/v1/models/penguin:predict", json={"instances": [PENGUIN_ROW] * 17}, timeout=30)
        assert too_big.status_code == 400
        assert too_big.json()["error"] == "Task size 17 is larger than maximum input batch size 16"
        metrics = httpx.get(f"{url}/monitoring/prometheus/metrics", timeout=30).text
        assert ':tensorflow:serving:request_count_total{model_name="penguin",status="OK"}' in metrics
        assert ":tensorflow:serving:batching_session:processed_batch_size_count" in metrics
    finally:
        server.stop()


def test_sigterm_stops_accepting_finishes_and_exits_zero(store, base, tmp_path):
    import socket

    from tests.support.serving_process import BATCHING_CONFIG, running, serve_command

    store.push(base, 1)
    rest_port, grpc_port = free_port(), free_port()
    batching = tmp_path / "batching.config"
    batching.write_text(BATCHING_CONFIG)
    body = json.dumps({"instances": [PENGUIN_ROW]}).encode()
    # `running` returns once the REST port answers, which the server opens only after loading its models.
    with running(serve_command(base, rest_port, grpc_port, batching), rest_port, "/v1/models/penguin",
                 tmp_path / "serve.log") as process:
        with socket.create_connection(("127.0.0.1", rest_port)) as conn:
            # A request in flight: its headers and half its body are in when SIGTERM arrives.
            conn.sendall(b"GET /v1/models/penguin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_http_response(conn)[0] == 200
            conn.sendall(b"POST /v1/models/penguin:predict HTTP/1.1\r\nHost: x\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
            process.send_signal(signal.SIGTERM)
            wait_for(lambda: _refused(rest_port), message="no new connections accepted")
            conn.sendall(body[10:])
            status, payload = _read_http_response(conn)
        assert process.wait(timeout=60) == 0
    assert status == 200 and json.loads(payload)["predictions"][0]["predicted_class"] in CLASS_NAMES


def _refused(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _read_http_response(conn) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "connection closed before a response"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = int(lengths[0])
    while len(rest) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed mid-response"
        rest += chunk
    return int(head.split(b" ", 2)[1]), rest[:length]


def test_predict_cli_against_a_running_server(store, base, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main

    store.push(base, 1, favoured_class=2)
    server = start_server(model_name="penguin", model_base_path=str(base))
    try:
        rows = tmp_path / "rows.jsonl"
        rows.write_text(json.dumps(PENGUIN_ROW) + "\n" + json.dumps(dict(PENGUIN_ROW, sex=None, body_mass_g=None)) + "\n")
        for transport in (["--rest", _rest(server)], ["--grpc", f"127.0.0.1:{server.grpc_port}"]):
            result = CliRunner().invoke(main, ["predict", "--model", "penguin", *transport, "--file", str(rows),
                                               "--format", "jsonl"])
            assert result.exit_code == 0, result.output
            lines = [json.loads(line) for line in result.output.splitlines()]
            assert [line["predicted_class"] for line in lines] == [CLASS_NAMES[2]] * 2
            assert set(lines[0]["scores"]) == set(CLASS_NAMES)
        table = CliRunner().invoke(main, ["predict", "--model", "penguin", "--rest", _rest(server),
                                          "--json", json.dumps(PENGUIN_ROW)])
        assert table.exit_code == 0 and CLASS_NAMES[2] in table.output and "Adelie" in table.output
        wrong = CliRunner().invoke(main, ["predict", "--model", "nope", "--rest", _rest(server),
                                          "--json", json.dumps(PENGUIN_ROW), "--retries", "1"])
        assert wrong.exit_code == 1 and "NOT_FOUND" in wrong.output
    finally:
        server.stop()
    down = CliRunner().invoke(main, ["predict", "--model", "penguin", "--rest", _rest(server),
                                     "--json", json.dumps(PENGUIN_ROW), "--retries", "2"])
    assert down.exit_code == 1 and "cannot reach the model server" in down.output


def test_warmup_records_are_replayed_and_a_failing_one_fails_the_load(store, base, caplog):
    import logging

    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from tests.support.serving_fixtures import predict_request, write_warmup_file

    store.push(base, 1, favoured_class=0)
    caplog.set_level(logging.INFO, logger="serving.warmup")
    server = start_server(model_name="penguin", model_base_path=str(base), file_system_poll_wait_seconds=0.2)
    url = _rest(server)
    try:
        records = sum(1 for _ in tf.data.TFRecordDataset(str(base / "1" / contract.WARMUP_FILE)))
        assert records >= 2, "the exporter writes a Predict and a Classify warm-up record"
        assert any(f"Finished reading {records} warmup records for penguin version 1" in r.getMessage()
                   for r in caplog.records)
        bad = predict_request([PENGUIN_ROW])
        bad.inputs["wings"].CopyFrom(tf.make_tensor_proto(np.array([2.0], np.float32)))
        staging = base / ".tmp-2"
        shutil.copytree(store.variant(favoured_class=2), staging)
        write_warmup_file(staging, [PENGUIN_ROW], extra_logs=[
            prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=bad))])
        os.replace(staging, base / "2")
        status = wait_for(lambda: _status(url).get(2, {}).get("state") == "END" and _status(url), message="v2 failing warm-up")
        assert status[2]["status"]["error_code"] == "INVALID_ARGUMENT"
        assert "input size does not match signature" in status[2]["status"]["error_message"]
        assert _predict(url)[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[0]
    finally:
        server.stop()


def test_polled_config_file_changes_the_served_versions(store, base, tmp_path):
    store.push(base, 1, favoured_class=0)
    store.push(base, 2, favoured_class=2)
    config = _write_config(tmp_path / "models.config", base, "specific { versions: 1 }")
    server = start_server(model_config_file=str(config), model_config_file_poll_wait_seconds=0.2,
                          file_system_poll_wait_seconds=0.2)
    url = _rest(server)
    try:
        assert _predict(url)[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[0]
        _write_config(config, base, "specific { versions: 2 }")
        wait_for(lambda: _status(url).get(1, {}).get("state") == "END", message="v1 unloaded after the config change")
        assert _status(url)[2]["state"] == "AVAILABLE"
        assert _predict(url)[1]["predictions"][0]["predicted_class"] == CLASS_NAMES[2]
    finally:
        server.stop()


def test_a_taken_rest_port_fails_startup_and_releases_the_grpc_port(store, base):
    import socket

    from serving.errors import ServingError

    store.push(base, 1)
    grpc_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ServingError, match="cannot serve REST on 127.0.0.1:.*in use"):
            start_server(model_name="penguin", model_base_path=str(base), port=grpc_port,
                         rest_api_port=taken.getsockname()[1])
    server = start_server(model_name="penguin", model_base_path=str(base), port=grpc_port)  # the port is free again
    server.stop()


def test_the_server_listens_only_where_it_is_told(store, base):
    import ipaddress

    import psutil

    store.push(base, 1)
    server = start_server(model_name="penguin", model_base_path=str(base), host="127.0.0.1")
    try:
        ports = {server.grpc_port, server.rest_port}
        listening = [c.laddr for c in psutil.Process().net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]
    finally:
        server.stop()
    assert {address.port for address in listening} == ports
    # gRPC may bind a dual-stack socket: ::ffff:127.0.0.1 is the same loopback address.
    ips = {ipaddress.ip_address(address.ip) for address in listening}
    assert {getattr(ip, "ipv4_mapped", None) or ip for ip in ips} == {ipaddress.ip_address("127.0.0.1")}, listening


@pytest.mark.parametrize("v1_loaded_before", [True, False], ids=["label-move", "load-then-label"])
def test_rollback_by_label_under_load_with_zero_failed_requests(store, tmp_path, v1_loaded_before):
    """v2 serves by label `stable`; `tfxpipe rollback` rewrites the config file; the polling server moves
    the label to v1 while clients hammer `/labels/stable` over REST and gRPC: no request fails. Without
    v1 loaded before (a config written by hand), the same reload loads v1, then moves the label."""
    import grpc
    from click.testing import CliRunner
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from pipeline.cli import main
    from tests.support.serving_fixtures import predict_request

    workdir = tmp_path / "runs" / "penguin"
    base = workdir / "serving_model" / "penguin"
    base.mkdir(parents=True)
    store.push(base, 1, favoured_class=0)
    store.push(base, 2, favoured_class=2)
    common = ["--config", str(Path(__file__).resolve().parents[2] / "configs/penguin.yaml"), "--workdir", str(workdir)]
    config = workdir / "serving_model" / "models.config"
    if v1_loaded_before:
        promoted = CliRunner().invoke(main, ["promote", *common])  # v2 stable, v1 kept loaded for a rollback
        assert promoted.exit_code == 0, promoted.output
    else:
        _write_config(config, base, "specific { versions: 2 }", {"stable": 2})
    server = start_server(model_config_file=str(config), model_config_file_poll_wait_seconds=0.2,
                          file_system_poll_wait_seconds=0.2, allow_version_labels_for_unavailable_models=True)
    url = _rest(server)
    failures, answers, stop = [], [], threading.Event()

    def rest_load():
        import httpx

        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/models/penguin/labels/stable:predict", json={"instances": [PENGUIN_ROW]})
                    if response.status_code != 200:
                        failures.append(response.text)
                    else:
                        answers.append(response.json()["predictions"][0]["predicted_class"])
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    failures.append(repr(exc))

    def grpc_load():
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request([PENGUIN_ROW], model_name="penguin")
        request.model_spec.version_label = "stable"
        while not stop.is_set():
            try:
                stub.Predict(request, timeout=30)
            except grpc.RpcError as exc:
                failures.append(f"grpc {exc.code()}: {exc.details()}")
        channel.close()

    threads = [threading.Thread(target=rest_load) for _ in range(4)] + [threading.Thread(target=grpc_load) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(answers) > 20, message="traffic on stable = v2")
        assert set(answers) == {CLASS_NAMES[2]}
        rolled = CliRunner().invoke(main, ["rollback", *common])
        assert rolled.exit_code == 0, rolled.output
        wait_for(lambda: answers[-1] == CLASS_NAMES[0], message="stable = v1 answering")
        seen = len(answers)
        wait_for(lambda: len(answers) > seen + 20, message="more traffic after the rollback")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        statuses = _status(url)
        server.stop()
    assert failures == []
    assert answers[-1] == CLASS_NAMES[0] and set(answers) == {CLASS_NAMES[0], CLASS_NAMES[2]}
    assert statuses[1]["state"] == "AVAILABLE" and statuses[2]["state"] == "AVAILABLE"  # undoing it is a label move
