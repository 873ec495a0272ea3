"""Server-side dynamic batching: concurrent requests for the same signature become one model call.

Semantics follow TF Serving's shared batch scheduler: a batch is formed as soon as a batch thread is
free and either `max_batch_size` rows are queued or the oldest task has waited `batch_timeout_micros`
(0 = don't wait: whatever queued while the previous batch ran goes together). The queue holds at most
`max_enqueued_batches` batches; beyond that a request fails with UNAVAILABLE. A request larger than
`max_batch_size` fails unless large batch splitting is on. Batch sizes are padded up to the next
`allowed_batch_sizes` entry when that list is set.

Requests are awaited on the event loop (REST) or block their own thread (gRPC workers); model calls run
on `num_batch_threads` threads, so the event loop keeps parsing and answering while the model works.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from serving import errors
from serving.model_config import BatchingOptions

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Task:
    key: tuple
    servable: Any
    signature_name: str
    inputs: Mapping[str, np.ndarray]
    output_filter: tuple[str, ...]
    rows: int
    future: Any  # asyncio.Future (loop set) or concurrent.futures.Future (loop None)
    loop: asyncio.AbstractEventLoop | None
    enqueued_at: float


class DynamicBatcher:
    """Merges tasks with the same (servable, signature, output filter, inner input shapes) key."""

    def __init__(self, options: BatchingOptions, on_batch: Callable[[int], None] | None = None):
        self.options = options
        self._on_batch = on_batch or (lambda size: None)
        self._queue: collections.deque[_Task] = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{options.thread_pool_name}_{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, servable: Any, signature_name: str, inputs: Mapping[str, np.ndarray],
                  output_filter: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Queues one request's (validated, batchable) inputs and waits for its share of the outputs."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(servable, signature_name, inputs, output_filter, future, loop)
        return await future

    def run_blocking(self, servable: Any, signature_name: str, inputs: Mapping[str, np.ndarray],
                     output_filter: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """`run` for callers on their own threads (the gRPC server's workers)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._enqueue(servable, signature_name, inputs, output_filter, future, None)
        return future.result()

    def _enqueue(self, servable, signature_name, inputs, output_filter, future, loop) -> None:
        rows = batch_rows(inputs)
        limit = self.options.max_batch_size
        if rows > limit and not self.options.enable_large_batch_splitting:
            raise errors.invalid_argument(f"Task size {rows} is larger than maximum input batch size {limit}")
        task = _Task(
            key=(id(servable), signature_name, tuple(output_filter), _inner_shapes(inputs)),
            servable=servable, signature_name=signature_name, inputs=inputs, output_filter=tuple(output_filter),
            rows=rows, future=future, loop=loop, enqueued_at=time.monotonic(),
        )
        with self._cond:
            if self._closed:
                raise errors.unavailable("Batching is shut down")
            if self._queued_rows + rows > self.options.max_enqueued_batches * limit:
                raise errors.unavailable("The batch scheduling queue to which this task was submitted is full")
            self._queue.append(task)
            self._queued_rows += rows
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Finishes queued tasks, then stops the batch threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # --- batch threads ----------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    def _next_batch(self) -> list[_Task] | None:
        limit = self.options.execution_batch_size
        timeout = self.options.batch_timeout_micros / 1e6
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            batch, rows = [first], first.rows
            deadline = first.enqueued_at + timeout
            while True:
                rows = self._take_matching(batch, rows, limit)
                remaining = deadline - time.monotonic()
                if rows >= limit or remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            self._queued_rows -= rows
            return batch

    def _take_matching(self, batch: list[_Task], rows: int, limit: int) -> int:
        key = batch[0].key
        kept: collections.deque[_Task] = collections.deque()
        while self._queue:
            task = self._queue.popleft()
            if task.key == key and rows + task.rows <= limit:
                batch.append(task)
                rows += task.rows
            else:
                kept.append(task)
        self._queue = kept
        return rows

    def _execute(self, batch: list[_Task]) -> None:
        live = [task for task in batch if not task.future.cancelled()]
        if not live:
            return
        try:
            results = self._run_merged(live)
            outcomes = [(task, result, None) for task, result in zip(live, results)]
        except errors.ServingError as exc:
            outcomes = [(task, None, exc) for task in live]
        except Exception as exc:  # noqa: BLE001 - the requests fail, the batch thread lives on
            log.exception("batch failed")
            outcomes = [(task, None, errors.internal(str(exc))) for task in live]
        _settle_all(outcomes)

    def _run_merged(self, batch: list[_Task]) -> list[dict[str, np.ndarray]]:
        first = batch[0]
        total = sum(task.rows for task in batch)
        if total > self.options.execution_batch_size:  # one oversized task with splitting enabled
            return [_run_split(first, self.options.execution_batch_size)]
        padded = self._padded_size(total)
        merged = {alias: _concat([task.inputs[alias] for task in batch], padded - total) for alias in first.inputs}
        outputs = first.servable.run(first.signature_name, merged, first.output_filter)
        self._on_batch(padded)
        if any(value.ndim == 0 or value.shape[0] != padded for value in outputs.values()):
            if len(batch) == 1:
                return [outputs]
            raise errors.invalid_argument("Batched output tensors must have the batch size as 0th dimension")
        results, start = [], 0
        for task in batch:
            results.append({alias: value[start:start + task.rows] for alias, value in outputs.items()})
            start += task.rows
        return results

    def _padded_size(self, rows: int) -> int:
        for size in self.options.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows


def batch_rows(inputs: Mapping[str, np.ndarray]) -> int:
    """The shared 0th dimension of the inputs, or -1 when they have none or disagree."""
    sizes = {value.shape[0] if value.ndim else -1 for value in inputs.values()}
    return sizes.pop() if len(sizes) == 1 else -1


def _inner_shapes(inputs: Mapping[str, np.ndarray]) -> tuple:
    return tuple(sorted((alias, value.dtype.str, value.shape[1:]) for alias, value in inputs.items()))


def _concat(parts: list[np.ndarray], pad_rows: int) -> np.ndarray:
    if pad_rows:
        parts = parts + [np.repeat(parts[-1][-1:], pad_rows, axis=0)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def _run_split(task: _Task, chunk: int) -> dict[str, np.ndarray]:
    pieces = []
    for start in range(0, task.rows, chunk):
        inputs = {alias: value[start:start + chunk] for alias, value in task.inputs.items()}
        pieces.append(task.servable.run(task.signature_name, inputs, task.output_filter))
    return {alias: np.concatenate([piece[alias] for piece in pieces], axis=0) for alias in pieces[0]}


def _settle_all(outcomes: list[tuple[_Task, Any, BaseException | None]]) -> None:
    """Hands results back: blocking callers directly, each event loop with a single wake-up.

    One `call_soon_threadsafe` per loop and batch (not per request) saves a self-pipe write and a loop
    wake-up for every other request in the batch.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for task, result, exc in outcomes:
        if task.loop is None:  # concurrent.futures are thread-safe
            _settle(task.future, result, exc)
        else:
            by_loop.setdefault(task.loop, []).append((task.future, result, exc))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_many, items)
        except RuntimeError:  # the loop closed while the batch ran; nobody is waiting any more
            pass


def _settle_many(items) -> None:
    for future, result, exc in items:
        _settle(future, result, exc)


def _settle(future: Any, result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
