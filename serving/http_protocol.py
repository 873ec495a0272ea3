"""uvicorn's HTTP protocol with one socket write per response instead of two.

uvicorn writes a response's status line + headers and its body with separate `transport.write` calls,
i.e. two `send()` syscalls; on loopback each costs tens of microseconds, a large share of a small
predict request. The transport here gathers what is written during one event-loop step and sends it
with one write at the end of the step. Nothing is delayed past the current loop iteration.
"""
from __future__ import annotations

import asyncio
import logging
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


def protocol_class() -> type:
    """uvicorn's preferred HTTP protocol (httptools if installed, else h11) with coalesced writes."""
    try:
        import httptools  # noqa: F401 - uvicorn's C parser, from `uvicorn[standard]`
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        log.warning("httptools is not installed: REST uses uvicorn's pure-Python h11 parser, with about half "
                    "the throughput (pip install httptools)")
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class CoalescingHttpProtocol(Base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport) -> None:  # noqa: D401 - uvicorn API
            super().connection_made(CoalescingTransport(transport, asyncio.get_running_loop()))

    return CoalescingHttpProtocol
