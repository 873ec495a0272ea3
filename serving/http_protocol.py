"""uvicorn's HTTP protocol with one socket write per response instead of two, and a header timeout.

uvicorn writes a response's status line + headers and its body with separate `transport.write` calls,
i.e. two `send()` syscalls; on loopback each costs tens of microseconds, a large share of a small
predict request. The transport here gathers what is written during one event-loop step and sends it
with one write at the end of the step. Nothing is delayed past the current loop iteration.

The subclass leans on uvicorn internals (its protocol classes' `cycle`, `cycle.response_complete`,
`loop` and `transport` attributes). `protocol_class` checks them first; when an upgrade changed them it
logs why and hands uvicorn its own protocol class unchanged (public API: slower, no header timeout),
and tests/unit/test_serving_core.py fails on `private_surface_problems()`.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


class CoalescingTransport:
    """A proxy for an asyncio transport whose writes are flushed together at the end of a loop step."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def writelines(self, chunks) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(chunk) for chunk in self._pending)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def protocol_class(header_timeout_seconds: float | None = None) -> type:
    """uvicorn's preferred HTTP protocol (httptools if installed, else h11) with coalesced writes.

    With `header_timeout_seconds`, a connection whose request headers are not complete that long after it
    opened (or after the first bytes of its next request) is answered 408 and closed: uvicorn itself only
    times out idle keep-alive connections, so a client that stalls in its headers would hold its
    connection forever. (The request body's timeout is `serving.rest`'s.)
    """
    Base = uvicorn_protocol_class()
    problems = private_surface_problems(Base)
    if problems:
        log.warning("uvicorn's %s is not what serving.http_protocol expects (%s): REST uses it unchanged, with "
                    "two writes per response and no request header timeout", Base.__name__, "; ".join(problems))
        return Base

    class CoalescingHttpProtocol(Base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # noqa: D401 - uvicorn API
            super().connection_made(CoalescingTransport(transport, asyncio.get_running_loop()))
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._cancel_header_timer()  # headers complete: a request is being handled
            elif self._header_timer is None:
                self._arm_header_timer()  # part of a request's headers arrived: they must complete in time

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            if header_timeout_seconds and not self.transport.is_closing():
                self._header_timer = self.loop.call_later(header_timeout_seconds, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
                self.transport.write(_REQUEST_TIMEOUT)
                self.transport.close()

    return CoalescingHttpProtocol


def uvicorn_protocol_class() -> type:
    """uvicorn's preferred HTTP protocol: httptools if installed, else h11."""
    try:
        import httptools  # noqa: F401 - uvicorn's C parser, from `uvicorn[standard]`
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        log.warning("httptools is not installed: REST uses uvicorn's pure-Python h11 parser, with about half "
                    "the throughput (pip install httptools)")
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


def private_surface_problems(base: type) -> list[str]:
    """What `CoalescingHttpProtocol` needs from uvicorn's protocol class `base` and does not find."""
    import uvicorn
    from uvicorn.server import ServerState

    problems = [f"no {name}()" for name in ("connection_made", "data_received", "connection_lost")
                if not callable(getattr(base, name, None))]
    try:
        loop = asyncio.new_event_loop()
        try:
            protocol = base(config=uvicorn.Config(_no_app, log_config=None), server_state=ServerState(), app_state={}, _loop=loop)
        finally:
            loop.close()
    except Exception as exc:  # noqa: BLE001 - any change in the constructor is a finding
        return problems + [f"{base.__name__}(config, server_state, app_state, _loop) failed: {exc!r}"]
    problems += [f"no attribute {name!r}" for name in ("cycle", "loop", "transport") if not hasattr(protocol, name)]
    cycle_class = getattr(sys.modules[base.__module__], "RequestResponseCycle", None)
    if cycle_class is None or "response_complete" not in cycle_class.__init__.__code__.co_names:
        problems.append("RequestResponseCycle sets no response_complete")
    return problems


async def _no_app(scope, receive, send) -> None:  # pragma: no cover - never called
    raise NotImplementedError
