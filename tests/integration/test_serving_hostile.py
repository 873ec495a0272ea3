"""Hostile requests against one in-process server: each gets the right 4xx / gRPC status, and the server
keeps answering a valid predict afterwards (checked after every case).

Covered: malformed JSON, 10,000-deep nesting, bodies over `rest_api_max_body_bytes` (413), wrong dtypes,
`../` and `%2e%2e%2f` in model names/versions, bad versions, unknown methods/paths, clients that stall in
their headers or body (`rest_api_read_timeout_seconds`), garbage bytes and hostile tensors over gRPC.
"""
from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from tests.support.serving_fixtures import (
    PENGUIN_ROW, ModelStore, assert_alive, hostile_predict_requests, predict_request, start_server,
)

pytestmark = pytest.mark.slow
MAX_BODY = 256 * 1024
READ_TIMEOUT = 1.0
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    base = root / "models" / "penguin"
    base.mkdir(parents=True)
    ModelStore().push(base, 1, include_regression=True)
    server = start_server(model_name="penguin", model_base_path=str(base), rest_api_max_body_bytes=MAX_BODY,
                          rest_api_read_timeout_seconds=READ_TIMEOUT, enable_model_warmup=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(server):
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def channel(server):
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield channel
    channel.close()


def assert_error(response, status: int):
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body


# --- REST: bodies ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b"{", b"{\"instances\": [1,}", b"not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b"\"text\"", b"null",
    b"{\"instances\": NaN-ish}", b"{\"instances\": [" + b"1," * 1000 + b"]",
])
def test_malformed_json_is_400(http, body):
    assert_error(http.post("/v1/models/penguin:predict", content=body), 400)
    assert_alive(http)


@pytest.mark.parametrize("api", ["predict", "classify", "regress"])
@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a":', "}")])
@pytest.mark.parametrize("depth", [500, 999, 1023, 1100, 10_000])
def test_deep_nesting_is_400_not_a_crash(http, api, opener, closer, depth):
    nested = opener * depth + "1" + closer * depth
    for doc in ('{"instances": %s}' % nested, '{"inputs": %s}' % nested,
                '{"examples": [{"x": %s}]}' % nested, '{"signature_name": %s}' % nested):
        assert_error(http.post(f"/v1/models/penguin:{api}", content=doc.encode()), 400)
    assert_alive(http)


def test_body_over_the_limit_is_413_declared_or_streamed(http, server):
    big = b'{"instances": [' + b"1," * MAX_BODY + b"1]}"
    assert_error(http.post("/v1/models/penguin:predict", content=big), 413)

    def chunks():  # chunked transfer: no content-length to check up front
        for _ in range(MAX_BODY // 4096 + 2):
            yield b" " * 4096

    assert_error(http.post("/v1/models/penguin:predict", content=chunks()), 413)
    just_under = json.dumps({"instances": [PENGUIN_ROW]}).encode()
    assert http.post("/v1/models/penguin:predict",
                     content=just_under + b" " * (MAX_BODY - len(just_under))).status_code == 200
    assert_alive(http)


@pytest.mark.parametrize("doc", [
    {"instances": [{**PENGUIN_ROW, "bill_length_mm": "long"}]},
    {"instances": [{**PENGUIN_ROW, "island": 3}]},
    {"instances": [{**PENGUIN_ROW, "island": {"b64": "%%%not base64"}}]},
    {"instances": [{**PENGUIN_ROW, "bill_length_mm": [[1.0], [2.0, 3.0]]}]},
    {"instances": [{**PENGUIN_ROW, "bill_length_mm": True}]},
    {"instances": [{**PENGUIN_ROW, "unknown_feature": 1.0}]},
    {"instances": [{name: v for name, v in PENGUIN_ROW.items() if name != "sex"}]},
    {"instances": []},
    {"instances": 7},
    {"inputs": {name: [v] for name, v in PENGUIN_ROW.items()}, "instances": [PENGUIN_ROW]},
    {"inputs": "text"},
    {"signature_name": 5, "instances": [PENGUIN_ROW]},
    {"signature_name": "no_such_signature", "instances": [PENGUIN_ROW]},
    {},
])
def test_wrong_dtypes_and_shapes_are_400(http, doc):
    assert_error(http.post("/v1/models/penguin:predict", json=doc), 400)
    assert_alive(http)


@pytest.mark.parametrize("api, doc", [
    ("classify", {"examples": [{"bill_length_mm": {"nested": 1}}]}),
    ("classify", {"examples": "text"}),
    ("classify", {"examples": [[1, 2]]}),
    ("regress", {"examples": [{"island": [1, "mixed"]}]}),
    ("regress", {"context": 3, "examples": [{}]}),
])
def test_bad_examples_are_400(http, api, doc):
    assert_error(http.post(f"/v1/models/penguin:{api}", json=doc), 400)
    assert_alive(http)


# --- REST: paths and methods ----------------------------------------------------------------------------

def _raw_request(server, request_line: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Sends a request with an exact request target (httpx would normalise `../`)."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(request_line + b"\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), payload


@pytest.mark.parametrize("target, expected", [
    (b"/v1/models/../penguin:predict", {400, 404}),
    (b"/v1/models/..%2fpenguin:predict", {400, 404}),  # %2f decodes to "/": the path no longer matches
    (b"/v1/models/%2e%2e%2fpenguin:predict", {400, 404}),
    (b"/v1/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd:predict", {400, 404}),
    (b"/v1/models/%2e%2e:predict", {404}),
    (b"/v1/models/penguin/versions/../1:predict", {400, 404}),
    (b"/v1/models/penguin/versions/%2e%2e%2f1:predict", {400}),
    (b"/v1/models/penguin/versions/1%2f..%2f..:predict", {400}),
    (b"/v1/models/penguin/labels/..%2fstable:predict", {400, 404}),
    (b"/v1/models/penguin/versions/abc:predict", {400}),
    (b"/v1/models/penguin/versions/-1:predict", {400}),
    (b"/v1/models/penguin/versions/%D9%A1:predict", {400}),  # an Arabic-Indic 1: versions are ASCII digits
    (b"/v1/models/penguin/versions/99999999999999999999999:predict", {400}),
    (b"/v1/models/penguin/versions/9223372036854775807:predict", {404}),
    (b"/v1/models/penguin/versions/0:predict", {404}),
    (b"/v1/models/penguin:explode", {400}),
    (b"/v1/models/penguin%00:predict", {404}),
    (b"/v1/models/" + b"a" * 8000 + b":predict", {404}),
    (b"/v1/../../etc/passwd", {400, 404}),
    (b"/v2/models/penguin:predict", {404}),
    (b"/", {404}),
])
def test_path_tricks_never_escape_and_get_4xx(server, http, target, expected):
    body = json.dumps({"instances": [PENGUIN_ROW]}).encode()
    status, payload = _raw_request(server, b"POST " + target + b" HTTP/1.1", body)
    assert status in expected, (target, status, payload[:300])
    if target.startswith(b"/v1/"):
        assert isinstance(json.loads(payload)["error"], str)
    assert_alive(http)


@pytest.mark.parametrize("method, path", [
    ("PUT", "/v1/models/penguin:predict"), ("DELETE", "/v1/models/penguin"), ("PATCH", "/v1/models/penguin"),
    ("GET", "/v1/models/penguin:predict"), ("POST", "/v1/models/penguin"), ("OPTIONS", "/v1/models/penguin"),
    ("GET", "/v1/unknown"), ("GET", "/nothing/here"), ("POST", "/metrics"),
])
def test_unknown_methods_and_paths_are_4xx(http, method, path):
    response = http.request(method, path, content=b"{}")
    assert 400 <= response.status_code < 500, (method, path, response.status_code)
    if path.startswith("/v1/"):
        assert_error(response, 400)  # TF Serving: "Malformed request"
    assert_alive(http)


def test_metadata_and_status_with_hostile_names_are_4xx(http):
    for path in ("/v1/models/..%2f..%2f", "/v1/models/penguin/versions/-3", "/v1/models/%2e%2e/metadata",
                 "/v1/models/penguin/labels/%00/metadata", "/v1/models/penguin/versions/1e3/metadata"):
        response = http.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
    assert_alive(http)


# --- REST: slow clients ---------------------------------------------------------------------------------

def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data, time.monotonic() - started


@pytest.mark.parametrize("sent", [
    b"",  # connects and says nothing
    b"POST /v1/models/penguin:predict HTTP/1.1\r\nHost: x\r\nContent-Le",  # stalls inside the headers
    b"POST /v1/models/penguin:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inst",  # in the body
])
def test_stalled_client_is_timed_out_while_others_are_served(server, http, sent):
    stalled = [socket.create_connection(("127.0.0.1", server.rest_port)) for _ in range(20)]
    try:
        for sock in stalled:
            sock.sendall(sent)
        started = time.monotonic()
        assert_alive(http)  # served while 20 connections hang
        assert time.monotonic() - started < READ_TIMEOUT
        data, waited = _read_until_closed(stalled[0], timeout=READ_TIMEOUT + 10)
        assert waited < READ_TIMEOUT + 5, "the server never timed the stalled client out"
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
    finally:
        for sock in stalled:
            sock.close()
    assert_alive(http)


def test_keep_alive_connection_stalling_in_its_second_request_is_timed_out(server, http):
    body = json.dumps({"instances": [PENGUIN_ROW]}).encode()
    with socket.create_connection(("127.0.0.1", server.rest_port)) as sock:
        sock.sendall(b"POST /v1/models/penguin:predict HTTP/1.1\r\nHost: x\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        sock.settimeout(10)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        sock.sendall(b"POST /v1/models/penguin:predict HTTP/1.1\r\nHo")
        data, waited = _read_until_closed(sock, timeout=READ_TIMEOUT + 10)
        assert waited < READ_TIMEOUT + 5
    assert_alive(http)


# --- gRPC -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [b"\xff" * 64, b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x05abc", bytes(range(256)) * 8])
def test_grpc_garbage_bytes_are_rejected_and_the_server_stays_up(http, channel, payload, caplog):
    import grpc

    call = channel.unary_unary(PREDICT_METHOD, request_serializer=None, response_deserializer=None)
    with caplog.at_level(logging.WARNING), pytest.raises(grpc.RpcError) as caught:
        call(payload, timeout=30)
    assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL), caught.value
    assert_alive(http, channel)
    # One line per bad request, never a traceback at ERROR: garbage from clients must not flood the log.
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text
    if caught.value.code() == grpc.StatusCode.INTERNAL:
        assert "gRPC request did not parse (answered INTERNAL)" in caplog.text


def test_grpc_hostile_tensors_are_invalid_argument(http, channel):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    cases = hostile_predict_requests()
    wrong = []
    for name, request in cases:
        try:
            stub.Predict(request, timeout=30)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
        expected = {grpc.StatusCode.INVALID_ARGUMENT}
        if name == "negative version":
            expected = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
        if name == "bad signature":  # TF Serving: "Serving signature key ... not found." is FAILED_PRECONDITION
            expected = {grpc.StatusCode.FAILED_PRECONDITION}
        if name == "more values than the shape":  # Tensor::FromProto reads the first N values, ignores the rest
            expected = {grpc.StatusCode.OK}
        if code not in expected:
            wrong.append((name, code, details))
        assert_alive(http, channel)
    assert wrong == [], "\n".join(map(repr, wrong))
    for name in ("penguin/../penguin", "../penguin", "%2e%2e%2fpenguin"):
        request = predict_request([PENGUIN_ROW], model_name=name)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert_alive(http, channel)


def test_grpc_request_over_the_configured_message_limit_is_resource_exhausted(tmp_path):
    """`--grpc_channel_arguments=grpc.max_receive_message_length=N` is gRPC's body limit (REST's is
    --rest_api_max_body_bytes); the server answers RESOURCE_EXHAUSTED and keeps serving smaller requests."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    base = tmp_path / "models" / "penguin"
    base.mkdir(parents=True)
    ModelStore().push(base, 1)
    limited = start_server(model_name="penguin", model_base_path=str(base), enable_model_warmup=False,
                           grpc_channel_arguments="grpc.max_receive_message_length=65536")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{limited.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_request([PENGUIN_ROW], model_name="penguin")
            assert "predicted_class" in stub.Predict(request, timeout=30).outputs
            request.inputs["island"].string_val[0] = b"x" * 100_000
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(request, timeout=30)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value
            del request.inputs["island"].string_val[:]
            request.inputs["island"].string_val.append(b"Torgersen")
            assert "predicted_class" in stub.Predict(request, timeout=30).outputs
    finally:
        limited.stop()
