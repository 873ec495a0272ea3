"""Errors as TF Serving reports them: a canonical status code plus TF Serving's own message text.

One exception type crosses every layer; REST turns it into `{"error": message}` with the HTTP status TF
Serving's http_server.cc picks for the code, gRPC into a status code and details.
"""
from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """tensorflow.error.Code / absl::StatusCode (same numbers as grpc.StatusCode)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# tensorflow_serving/model_servers/http_server.cc ToHTTPStatusCode.
_HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A failed request or load: `code` is the canonical status, `message` TF Serving's wording."""

    def __init__(self, code: Code, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = Code(code)
        self.message = message
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving answers with; a transport limit (413) may override the mapping."""
        return self._http_status or _HTTP_STATUS.get(self.code, 500)

    def status_string(self) -> str:
        """absl::Status::ToString(): `INVALID_ARGUMENT: message`, used when errors are nested."""
        return f"{self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(Code.FAILED_PRECONDITION, message)


def unavailable(message: str) -> ServingError:
    return ServingError(Code.UNAVAILABLE, message)


def internal(message: str) -> ServingError:
    return ServingError(Code.INTERNAL, message)


def from_exception(exc: BaseException) -> ServingError:
    """Maps an exception raised while loading or running a model to a status.

    TensorFlow's OpError carries its canonical code; anything else is UNKNOWN, as TF Serving reports
    errors it cannot classify.
    """
    if isinstance(exc, ServingError):
        return exc
    code = getattr(exc, "error_code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    try:
        return ServingError(Code(int(code)), message) if code is not None else ServingError(Code.UNKNOWN, message)
    except ValueError:
        return ServingError(Code.UNKNOWN, message)
