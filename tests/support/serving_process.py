"""`tfxpipe serve` in its own process, and a raw keep-alive HTTP/1.1 client to load it with.

Shared by benchmarks/serving.py and the soak (tests/support/serving_soak.py): a server in a subprocess has
its own GIL and cores, and its memory can be measured alone. Its stderr goes to a file, not a pipe:
nobody reads a pipe during a long run, and a full pipe would block the server mid-request.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Batches form from whatever queued while the previous batch ran (no waiting): the lowest latency
# setting, and the one where a version swap races batches most often.
BATCHING_CONFIG = """max_batch_size { value: 64 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 1 }
"""


def serve_command(base_path: str | os.PathLike, rest_port: int, grpc_port: int,
                  batching_file: str | os.PathLike | None, extra_flags: Sequence[str] = ()) -> list[str]:
    """`tfxpipe serve` for model `penguin` on loopback (the console script's code path); with batching
    from `batching_file`, or with the default flags (no batching) when it is None."""
    batching = [] if batching_file is None else ["--enable_batching", f"--batching_parameters_file={batching_file}"]
    flags = [f"--port={grpc_port}", f"--rest_api_port={rest_port}", "--host=127.0.0.1", "--model_name=penguin",
             f"--model_base_path={base_path}", *batching, *extra_flags]
    return [sys.executable, "-c", "import sys; from serving.cli import serve; serve.main(sys.argv[1:])", *flags]


def wait_ready(process: subprocess.Popen, port: int, path: str, log_path: Path, timeout: float = 180.0) -> None:
    """Polls GET `path` until the server answers (< 500); raises with its log's tail if it exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early ({process.returncode}):\n{_tail(log_path)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready after {timeout}s:\n{_tail(log_path)}")


@contextlib.contextmanager
def running(command: list[str], port: int, ready_path: str, log_path: Path):
    """Starts `command`, yields the process once `ready_path` answers, then SIGTERMs it and waits.

    After the block, `process.returncode` is the server's exit status (-9 if it had to be killed).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_ready(process, port, ready_path, log_path)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def http_request(method: str, path: str, body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request (JSON body), built once and sent many times."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


class KeepAliveConnection:
    """One HTTP/1.1 connection reused for request after request, as load balancers and clients do.

    Raw asyncio streams rather than an HTTP library: per request they cost a fraction of what the
    server does, so a load generator sharing the server's cores measures the server, not itself.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> "KeepAliveConnection":
        return cls(*await asyncio.open_connection(host, port))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Sends one request; returns (HTTP status, body). Needs a Content-Length response."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length_at = head.lower().find(b"content-length:")
        length = int(head[length_at + 15:head.index(b"\r\n", length_at)])
        body = await self._reader.readexactly(length)
        return int(head[9:12]), body

    def close(self) -> None:
        self._writer.close()
