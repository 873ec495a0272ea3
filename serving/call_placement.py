"""Where an unbatched REST model call runs: on the event loop itself, or on the model thread pool.

Handing a call to a pool thread costs two thread switches and, worse, a GIL hand-off each time the
call re-enters Python (argument conversion, the flat call, `.numpy()`): while 32 connections keep the
event loop busy, a pool thread waits up to the interpreter's switch interval (5 ms) for the GIL at each
of those points. For a small model that costs several times the call itself and made the unbatched
server slower than a naive FastAPI wrapper (benchmarks/serving.py). A call that needs little CPU is
therefore made inline on the event loop: nothing else needs the GIL meanwhile, and no hand-off happens.

A signature whose calls need more CPU than `INLINE_CPU_SECONDS` (a large model) goes to the pool so
that the event loop keeps answering other requests while it runs; one call in `REMEASURE_EVERY` still
runs inline to follow the model's cost as it changes (e.g. after TensorFlow's first-call tracing).
The cost is the process CPU time a call takes (TensorFlow's own threads included), not its wall time,
which on a loaded machine measures the machine rather than the model.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import time
import weakref
from typing import Any, Mapping, Sequence

import numpy as np

#: A call needing less process CPU than this runs on the event loop. The penguin model takes 0.4 ms on an
#: idle 2-core machine and 1.5-2 ms when 20 threads compete for those cores (caches and cores shared);
#: a model needing 10 ms holds other requests up by at most that, about what a pool would add under load.
INLINE_CPU_SECONDS = 0.010
#: On the pool, every this-many-th call of a signature runs inline again to measure it.
REMEASURE_EVERY = 64
_SMOOTHING = 0.2  # weight of the newest measurement in the moving average


class _SignatureCost:
    __slots__ = ("cpu_seconds", "calls_since_measured")

    def __init__(self) -> None:
        self.cpu_seconds: float | None = None  # unknown until measured: the first call runs inline
        self.calls_since_measured = 0

    @property
    def inline(self) -> bool:
        return self.cpu_seconds is None or self.cpu_seconds <= INLINE_CPU_SECONDS

    def record(self, spent: float) -> None:
        """A re-measurement replaces a pool signature's cost (one cheap call brings it back inline); an
        inline signature's cost is averaged, so that one slow call (tracing, GC) moves it for a while only."""
        if self.inline and self.cpu_seconds is not None:
            self.cpu_seconds += _SMOOTHING * (spent - self.cpu_seconds)
        else:
            self.cpu_seconds = spent
        self.calls_since_measured = 0


class CallPlacement:
    """Runs unbatched model calls for the event loop, inline or on `executor` (see the module docstring).

    Used only from the event loop's thread; the costs of a servable go when the servable is unloaded.
    """

    def __init__(self, executor: concurrent.futures.Executor):
        self._executor = executor
        self._costs: weakref.WeakKeyDictionary[Any, dict[str, _SignatureCost]] = weakref.WeakKeyDictionary()

    async def run(self, servable: Any, signature_name: str, inputs: Mapping[str, np.ndarray],
                  output_filter: Sequence[str]) -> dict[str, np.ndarray]:
        cost = self._costs.setdefault(servable, {}).setdefault(signature_name, _SignatureCost())
        if cost.inline or cost.calls_since_measured >= REMEASURE_EVERY:
            return self._run_inline(cost, servable, signature_name, inputs, output_filter)
        cost.calls_since_measured += 1
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, servable.run, signature_name, inputs, output_filter)

    @staticmethod
    def _run_inline(cost: _SignatureCost, servable: Any, signature_name: str, inputs: Mapping[str, np.ndarray],
                    output_filter: Sequence[str]) -> dict[str, np.ndarray]:
        started = time.process_time()
        try:
            return servable.run(signature_name, inputs, output_filter)
        finally:
            cost.record(time.process_time() - started)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
