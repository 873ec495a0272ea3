"""TF Serving's REST API as a Starlette app (served by uvicorn in `serving.server`).

Paths and their parsing follow http_rest_api_util.cc: `POST /v1/models/<name>[/versions/<v>|/labels/<l>]
:(predict|classify|regress)` and `GET /v1/models/<name>[/versions/<v>|/labels/<l>][/metadata]`, matched
case-insensitively; any other /v1 request is "Malformed request". Every error is `{"error": message}`
with the HTTP status TF Serving maps the status code to.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from serving import api_protos, errors, json_request, json_response, status_json
from serving.inference import InferenceService, ModelRequest
from serving.metrics import ServingMetrics
from serving.request_log import RequestLogger

_PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.IGNORECASE | re.ASCII
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.IGNORECASE | re.ASCII
)
JSON = "application/json"
log = logging.getLogger(__name__)


def create_app(service: InferenceService, metrics: ServingMetrics, prometheus_path: str | None,
               max_body_bytes: int, read_timeout_seconds: float | None, request_logger: RequestLogger | None = None):
    """The REST ASGI app: /v1 requests go straight to the TF Serving handler, the rest to Starlette.

    The limits are `ServerOptions.rest_api_max_body_bytes` and `rest_api_read_timeout_seconds`.
    Successful predict/classify/regress calls go to `request_logger` as the equivalent gRPC requests.

    The /v1 path skips Starlette's router and middleware layers, which cost more per request than the
    batched model call does; it still uses Starlette's Request and Response.
    """
    handler = _RestHandler(service, metrics, max_body_bytes, read_timeout_seconds, request_logger)
    routes = []
    if prometheus_path:
        routes.append(Route(prometheus_path, lambda request: Response(metrics.exposition(), media_type="text/plain"),
                            methods=["GET"]))
    other = Starlette(routes=routes)

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"][:4].lower() == "/v1/":
            response = await handler(Request(scope, receive))
            await response(scope, receive, send)
        else:
            await other(scope, receive, send)

    return app


class _RestHandler:
    def __init__(self, service: InferenceService, metrics: ServingMetrics, max_body_bytes: int,
                 read_timeout_seconds: float | None, request_logger: RequestLogger | None = None):
        self.service = service
        self.request_logger = request_logger
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.read_timeout_seconds = read_timeout_seconds or None

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        method, path = request.method, request.scope["path"]  # scope path: no URL object to build
        model_name, api = "", ""
        try:
            if method == "POST" and (match := _PREDICTION_PATH.fullmatch(path)):
                model_name, api = match.group(1), match.group(4).lower()
                spec = _model_request(match)
                body = await self._body(request)
                content = await self._inference(api, spec, body)
            elif method == "GET" and (match := _STATUS_PATH.fullmatch(path)):
                model_name, api = match.group(1) or "", "metadata" if match.group(4) else "status"
                content = self._status_or_metadata(match)
            else:
                raise errors.invalid_argument(f"Malformed request: {method} {path}")
        except (errors.ServingError, RecursionError) as exc:
            if isinstance(exc, RecursionError):  # a document nested deeper than the codec's recursion allows
                exc = errors.invalid_argument("JSON Parse error: The document is nested too deeply")
            self.metrics.record(model_name, api, "REST", exc.code.name, None)
            # 408/413: the rest of the body is not read, so the connection cannot carry another request.
            headers = {"connection": "close"} if exc.http_status in (408, 413) else None
            return Response(json_response.error_body(exc.message), status_code=exc.http_status, media_type=JSON,
                            headers=headers)
        except Exception as exc:  # noqa: BLE001 - a bug must still answer in TF Serving's error format
            log.exception("REST request %s %s failed", method, path)
            self.metrics.record(model_name, api, "REST", "INTERNAL", None)
            return Response(json_response.error_body(f"Internal error: {exc}"), status_code=500, media_type=JSON)
        self.metrics.record(model_name, api, "REST", "OK", time.perf_counter() - started)
        return Response(content, media_type=JSON)

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(int(declared), self.max_body_bytes)
        chunks, size, more = [], 0, True
        while more:  # each chunk must arrive within the read timeout: a stalled client gets 408
            message = await self._receive_in_time(request.receive)
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk, more = message.get("body", b""), message.get("more_body", False)
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(size, self.max_body_bytes)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _receive_in_time(self, receive) -> dict:
        """`receive()`, failing with 408 after the read timeout.

        A timer that cancels this request's task, rather than `asyncio.wait_for`: wait_for wraps every
        receive in a new task and costs a loop iteration even when the body has already arrived (nearly
        always), a measurable share of a small predict request.
        """
        if self.read_timeout_seconds is None:
            return await receive()
        task, expired = asyncio.current_task(), False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = asyncio.get_running_loop().call_later(self.read_timeout_seconds, expire)
        try:
            return await receive()
        except asyncio.CancelledError:
            if not expired:
                raise
            if hasattr(task, "uncancel"):  # Python >= 3.11 counts cancellations; this one is handled
                task.uncancel()
            raise errors.ServingError(errors.Code.DEADLINE_EXCEEDED,
                                      f"Request body not received within {self.read_timeout_seconds}s",
                                      http_status=408) from None
        finally:
            timer.cancel()

    async def _inference(self, api: str, spec: ModelRequest, body: bytes) -> bytes:
        doc = json_request.parse_document(body)
        spec = ModelRequest(spec.name, spec.version, spec.label, json_request.signature_name(doc))
        if api == "predict":
            request_format, inputs = json_request.ROW, {}

            def decode(signature):  # the response is written in the format of the request
                nonlocal request_format, inputs
                request_format, inputs = json_request.predict_inputs(doc, signature.inputs)
                return inputs

            result = await self.service.predict(spec, decode, json_api=True)
            self._log(spec, lambda: api_protos.prediction_log(api_protos.predict_request(spec, inputs),
                                                              api_protos.predict_response(result)))
            return json_response.predict_response(result.outputs, request_format)
        examples = json_request.serialized_examples(doc)  # TF Serving's REST API decodes before resolving
        if api == "classify":
            answer = await self.service.classify(spec, lambda: examples)
            self._log(spec, lambda: api_protos.prediction_log(api_protos.example_request(spec, examples, True),
                                                              api_protos.classification_response(*answer)))
            return json_response.classify_response(*answer[1:])
        answer = await self.service.regress(spec, lambda: examples)
        self._log(spec, lambda: api_protos.prediction_log(api_protos.example_request(spec, examples, False),
                                                          api_protos.regression_response(*answer)))
        return json_response.regress_response(answer[1])

    def _log(self, spec: ModelRequest, build) -> None:
        if self.request_logger is not None:
            self.request_logger.log(spec.name, build)

    def _status_or_metadata(self, match: re.Match) -> bytes:
        name, version, label, metadata = match.groups()
        if not name:
            raise errors.invalid_argument("Missing model name in request.")
        version_number = _version(version)
        if metadata:
            return status_json.metadata_json(self.service.metadata(ModelRequest(name, version_number, label)))
        return status_json.status_json(self.service.status(name, version_number))


def _model_request(match: re.Match) -> ModelRequest:
    name, version, label, _ = match.groups()
    return ModelRequest(name=name, version=_version(version), label=label or None)


def _version(text: str | None) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise errors.invalid_argument(f"Failed to convert version: {text} to numeric.") from None
    if value >= 2**63:
        raise errors.invalid_argument(f"Failed to convert version: {text} to numeric.")
    return value


def _too_large(size: int, limit: int) -> errors.ServingError:
    return errors.ServingError(errors.Code.RESOURCE_EXHAUSTED,
                               f"Request body of {size} bytes exceeds the server's limit of {limit} bytes",
                               http_status=413)

