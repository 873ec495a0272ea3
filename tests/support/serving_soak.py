"""The serving soak: concurrent REST and gRPC clients for a bounded time while versions come and go.

`run_soak` starts `tfxpipe serve` in its own process (batching on, polling the base path every
`poll_seconds`), then, for `seconds`:

- `rest_clients` keep-alive HTTP connections and `grpc_clients` gRPC channels (the official
  `tensorflow_serving.apis` stubs) send requests without a version: mostly predict, with classify,
  metadata and status in between. Any non-200 / non-OK answer, exception or malformed answer is a
  failed request.
- A pusher pushes a new version every `push_interval` seconds (staged, then renamed into place, as the
  pipeline's Pusher does), waits until the server serves it and has unloaded the one before, and
  deletes the oldest directories so that `keep_versions` remain: one load/unload cycle per push.
- The server's RSS is sampled. The steady state starts after `warmup_cycles` cycles, so the growth
  reported is what repeated cycles cost, not the first load's imports and caches; each settled sample
  is taken just before a push, when exactly one version is loaded and traffic is flowing.

Used by tests/integration/test_serving_soak.py (seconds) and benchmarks/soak.py (minutes).
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import json
import shutil
import time
from pathlib import Path

from tests.support.serving_fixtures import CLASS_NAMES, EXAMPLE_ROW, PENGUIN_ROW, ModelStore, free_port
from tests.support.serving_process import BATCHING_CONFIG, KeepAliveConnection, http_request, running, serve_command
from trainer import contract

MODEL = "penguin"
# Mostly predictions, as production traffic is; the other APIs resolve "latest" through other paths.
REQUEST_MIX = ("predict",) * 6 + ("classify", "metadata", "status")
MAX_FAILURE_MESSAGES = 10
MB = 2**20


@dataclasses.dataclass(frozen=True)
class SoakOptions:
    seconds: float = 20.0
    rest_clients: int = 4
    grpc_clients: int = 2
    push_interval: float = 1.0
    keep_versions: int = 2
    warmup_cycles: int = 3
    poll_seconds: float = 0.2
    swap_timeout: float = 30.0  # a pushed version not serving by then is reported as not served
    #: Keep pushing past `seconds` until this many load/unload cycles follow the warm-up (a loaded machine
    #: swaps slower), for at most `seconds` more; the report's assertions need a few measured cycles.
    min_measured_cycles: int = 0


@dataclasses.dataclass
class SoakReport:
    seconds: float
    requests: dict[str, int]  # by protocol
    requests_by_kind: dict[str, int]
    failed_requests: int
    failure_messages: list[str]  # the first few
    versions_pushed: int
    versions_removed: int
    versions_seen_answering: list[int]
    versions_not_served: list[int]  # pushed, but not serving within swap_timeout
    slowest_swap_seconds: float  # push -> new version serving and the old one unloaded
    server_status: dict[str, int]  # final GetModelStatus: versions by state (END split by error or not)
    rss_mb: dict[str, float | None]  # after_start, steady_start, steady_max, end
    cycles_measured: int  # load/unload cycles between steady_start and end
    growth_mb: float | None
    growth_mb_per_100_cycles: float | None
    settled_rss_mb: list[tuple[int, float]]  # (cycles completed, MB) just before each push: the trend
    server_alive: bool  # still running when the clients stopped
    exit_code: int | None  # after SIGTERM


def run_soak(options: SoakOptions, workdir: Path) -> SoakReport:
    """Runs one soak against a fresh server in `workdir` (model variants, base path, server log)."""
    import psutil

    store = ModelStore()
    for favoured_class in range(len(CLASS_NAMES)):  # built before the clock starts: pushes are plain copies
        store.variant(favoured_class)
    base = workdir / "models" / MODEL
    base.mkdir(parents=True)
    store.push(base, 1, favoured_class=_favoured_class(1))
    batching = workdir / "batching.config"
    batching.write_text(BATCHING_CONFIG)
    rest_port, grpc_port = free_port(), free_port()
    command = serve_command(base, rest_port, grpc_port, batching,
                            [f"--file_system_poll_wait_seconds={options.poll_seconds}"])
    with running(command, rest_port, f"/v1/models/{MODEL}", workdir / "serve.log") as server:
        soak = _Soak(options, store, base, psutil.Process(server.pid), rest_port, grpc_port)
        asyncio.run(soak.run())
        alive = server.poll() is None
    return soak.report(alive, server.returncode)


def _favoured_class(version: int) -> int:
    """Consecutive versions answer with different classes, so a swap shows in the predictions too."""
    return (version - 1) % len(CLASS_NAMES)


class _Soak:
    def __init__(self, options: SoakOptions, store: ModelStore, base: Path, server, rest_port: int, grpc_port: int):
        self.options = options
        self.store = store
        self.base = base
        self.rest_port = rest_port
        self.grpc_port = grpc_port
        self.tally = _Tally()
        self.memory = _Memory(server)
        self.pushes = _Pushes()
        self.seconds = 0.0
        self.final_status: dict[str, int] = {}

    async def run(self) -> None:
        stop = asyncio.Event()
        started = time.monotonic()
        self.memory.sample()
        clients = [self._rest_client(i, stop) for i in range(self.options.rest_clients)]
        clients += [self._grpc_client(i, stop) for i in range(self.options.grpc_clients)]
        await asyncio.gather(self._push_versions(stop), self._sample_memory(stop), *clients)
        self.seconds = time.monotonic() - started
        self.final_status = await self._status_summary()

    # --- clients ------------------------------------------------------------------------------------------

    async def _rest_client(self, index: int, stop: asyncio.Event) -> None:
        predict = json.dumps({"instances": [PENGUIN_ROW]}).encode()
        classify = json.dumps({"signature_name": contract.CLASSIFY_SIGNATURE, "examples": [EXAMPLE_ROW]}).encode()
        requests = {
            "predict": http_request("POST", f"/v1/models/{MODEL}:predict", predict),
            "classify": http_request("POST", f"/v1/models/{MODEL}:classify", classify),
            "metadata": http_request("GET", f"/v1/models/{MODEL}/metadata"),
            "status": http_request("GET", f"/v1/models/{MODEL}"),
        }
        connection = None
        for kind in _mix(index):
            if stop.is_set():
                break
            self.tally.sent("REST", kind)
            try:
                connection = connection or await KeepAliveConnection.open(self.rest_port)
                status, body = await connection.exchange(requests[kind])
                self.tally.answered(_check_rest(kind, status, body))
            except Exception as exc:  # noqa: BLE001 - every failure counts, whatever raised it
                self.tally.fail("REST", kind, exc)
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    async def _grpc_client(self, index: int, stop: asyncio.Event) -> None:
        import grpc
        from tensorflow_serving.apis import (
            get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc,
        )

        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            metadata.model_spec.name = MODEL
            status = get_model_status_pb2.GetModelStatusRequest()
            status.model_spec.name = MODEL
            calls = {"predict": (predictions.Predict, _grpc_predict_request()),
                     "classify": (predictions.Classify, _grpc_classify_request()),
                     "metadata": (predictions.GetModelMetadata, metadata),
                     "status": (models.GetModelStatus, status)}
            for kind in _mix(index):
                if stop.is_set():
                    break
                call, request = calls[kind]
                self.tally.sent("gRPC", kind)
                try:
                    self.tally.answered(_check_grpc(kind, await call(request, timeout=30)))
                except Exception as exc:  # noqa: BLE001 - every failure counts, whatever raised it
                    self.tally.fail("gRPC", kind, exc)

    # --- versions -------------------------------------------------------------------------------------

    async def _push_versions(self, stop: asyncio.Event) -> None:
        """A push every `push_interval` (or as soon as the previous swap completed, if later)."""
        options, loop = self.options, asyncio.get_running_loop()
        started = loop.time()
        version = 1
        try:
            for push in itertools.count(1):
                await asyncio.sleep(max(0.0, started + push * options.push_interval - loop.time()))
                self.memory.settled(cycles=self.pushes.served)
                elapsed = loop.time() - started
                enough = self.pushes.served >= options.warmup_cycles + options.min_measured_cycles
                if elapsed >= options.seconds and (enough or elapsed >= 2 * options.seconds):
                    break
                version += 1
                await asyncio.to_thread(self.store.push, self.base, version, favoured_class=_favoured_class(version))
                self.pushes.pushed += 1
                self.pushes.removed += await asyncio.to_thread(_remove_oldest, self.base, options.keep_versions)
                await self._until_swapped(version)
        finally:
            stop.set()

    async def _until_swapped(self, version: int) -> None:
        """Polls status until `version` is AVAILABLE and every older one has reached END.

        A connection per swap: one idle between pushes would be closed by the server's keep-alive timeout.
        """
        pushed_at = time.monotonic()
        connection = await KeepAliveConnection.open(self.rest_port)
        try:
            while time.monotonic() - pushed_at < self.options.swap_timeout:
                states = {v: entry["state"] for v, entry in (await self._status(connection)).items()}
                if states.get(version) == "AVAILABLE" and all(s == "END" for v, s in states.items() if v != version):
                    self.pushes.served += 1
                    self.pushes.slowest_swap = max(self.pushes.slowest_swap, time.monotonic() - pushed_at)
                    return
                await asyncio.sleep(0.05)
        finally:
            connection.close()
        self.pushes.not_served.append(version)

    async def _status(self, connection: KeepAliveConnection) -> dict[int, dict]:
        """The model's version statuses; a failure counts as a failed REST status request (and gives {})."""
        self.tally.sent("REST", "status")
        try:
            status, body = await connection.exchange(http_request("GET", f"/v1/models/{MODEL}"))
            _check_rest("status", status, body)
        except Exception as exc:  # noqa: BLE001 - every failure counts, whatever raised it
            self.tally.fail("REST", "status", exc)
            return {}
        return {int(entry["version"]): entry for entry in json.loads(body)["model_version_status"]}

    async def _status_summary(self) -> dict[str, int]:
        """The final status: how many versions are in each state (END split by error or not)."""
        connection = await KeepAliveConnection.open(self.rest_port)
        try:
            entries = (await self._status(connection)).values()
        finally:
            connection.close()
        return dict(collections.Counter(
            "END with error" if e["state"] == "END" and e["status"]["error_code"] != "OK" else e["state"]
            for e in entries))

    # --- memory -----------------------------------------------------------------------------------------

    async def _sample_memory(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.memory.sample()
            await asyncio.sleep(0.1)

    def report(self, server_alive: bool, exit_code: int | None) -> SoakReport:
        rss = self.memory.figures(self.options.warmup_cycles)
        return SoakReport(
            seconds=round(self.seconds, 1),
            requests=dict(self.tally.by_protocol), requests_by_kind=dict(sorted(self.tally.by_kind.items())),
            failed_requests=self.tally.failures, failure_messages=self.tally.messages,
            versions_pushed=self.pushes.pushed, versions_removed=self.pushes.removed,
            versions_seen_answering=sorted(self.tally.versions_seen), versions_not_served=self.pushes.not_served,
            slowest_swap_seconds=round(self.pushes.slowest_swap, 2), server_status=self.final_status,
            server_alive=server_alive, exit_code=exit_code, **rss,
        )


def _mix(index: int):
    """REQUEST_MIX forever, each client starting at its own place so the kinds interleave."""
    return itertools.islice(itertools.cycle(REQUEST_MIX), index, None)


def _remove_oldest(base: Path, keep: int) -> int:
    """Deletes all but the newest `keep` version directories, as an operator's clean-up would."""
    versions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())
    for version in versions[:-keep]:
        shutil.rmtree(base / str(version))
    return max(0, len(versions) - keep)


# --- checking answers ---------------------------------------------------------------------------------

class WrongAnswer(Exception):
    """A request that succeeded on the wire but did not answer what it should have."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise WrongAnswer(message)


def _check_rest(kind: str, status: int, body: bytes) -> int | None:
    """Raises unless the answer is right for `kind`; returns the version it names, if any."""
    _expect(status == 200, f"HTTP {status}: {body[:300]!r}")
    document = json.loads(body)
    if kind == "predict":
        _expect(document["predictions"][0][contract.PREDICTED_CLASS] in CLASS_NAMES, f"unexpected prediction {document}")
    elif kind == "classify":
        _expect(len(document["results"][0]) == len(CLASS_NAMES), f"unexpected classification {document}")
    elif kind == "metadata":
        return int(document["model_spec"]["version"])
    else:
        states = [entry["state"] for entry in document["model_version_status"]]
        _expect("AVAILABLE" in states, f"no version AVAILABLE: {states}")
    return None


def _check_grpc(kind: str, response) -> int | None:
    if kind == "predict":
        predicted = [value.decode() for value in response.outputs[contract.PREDICTED_CLASS].string_val]
        _expect(len(predicted) == 1 and predicted[0] in CLASS_NAMES, f"unexpected prediction {predicted}")
    elif kind == "classify":
        _expect(len(response.result.classifications) == 1, f"unexpected classification {response.result}")
    elif kind == "status":
        from tensorflow_serving.apis import get_model_status_pb2

        available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        _expect(any(s.state == available for s in response.model_version_status), "no version AVAILABLE")
        return None
    return response.model_spec.version.value


def _grpc_predict_request():
    from tests.support.serving_fixtures import predict_request

    return predict_request([PENGUIN_ROW], model_name=MODEL)


def _grpc_classify_request():
    from tensorflow_serving.apis import classification_pb2

    from tests.support.serving_fixtures import example_bytes

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = contract.CLASSIFY_SIGNATURE
    request.input.example_list.examples.add().ParseFromString(example_bytes(EXAMPLE_ROW))
    return request


# --- bookkeeping --------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Tally:
    """What the clients sent and saw. Only the event loop's thread touches it: no lock."""

    by_protocol: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    by_kind: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    failures: int = 0
    messages: list[str] = dataclasses.field(default_factory=list)
    versions_seen: set[int] = dataclasses.field(default_factory=set)

    def sent(self, protocol: str, kind: str) -> None:
        self.by_protocol[protocol] += 1
        self.by_kind[f"{protocol} {kind}"] += 1

    def answered(self, version: int | None) -> None:
        if version is not None:
            self.versions_seen.add(version)

    def fail(self, protocol: str, kind: str, exc: BaseException) -> None:
        self.failures += 1
        if len(self.messages) < MAX_FAILURE_MESSAGES:
            details = exc.details() if callable(getattr(exc, "details", None)) else ""
            self.messages.append(f"{protocol} {kind}: {exc!r} {details}".strip())


@dataclasses.dataclass
class _Pushes:
    pushed: int = 0
    removed: int = 0
    served: int = 0  # swaps completed: the pushed version serving, the previous one unloaded
    slowest_swap: float = 0.0
    not_served: list[int] = dataclasses.field(default_factory=list)


class _Memory:
    """The server's RSS: every sample (for the maximum) and the settled ones, by cycles completed."""

    def __init__(self, process):
        self._process = process
        self._samples: list[tuple[int, float]] = []  # (cycles completed so far, MB)
        self._settled: list[tuple[int, float]] = []
        self._cycles = 0

    def sample(self) -> None:
        rss = self._rss()
        if rss is not None:
            self._samples.append((self._cycles, rss))

    def settled(self, cycles: int) -> None:
        self._cycles = cycles
        rss = self._rss()
        if rss is not None:
            self._settled.append((cycles, rss))

    def _rss(self) -> float | None:
        """MB, or None once the server has exited (the clients report that as failures)."""
        import psutil

        try:
            return self._process.memory_info().rss / MB
        except psutil.NoSuchProcess:
            return None

    def figures(self, warmup_cycles: int) -> dict:
        after_start = round(self._samples[0][1], 1) if self._samples else None
        settled = [(cycles, round(mb, 1)) for cycles, mb in self._settled]
        steady = [(c, mb) for c, mb in self._settled if c >= warmup_cycles]
        if len(steady) < 2:
            return dict(rss_mb={"after_start": after_start, "steady_start": None, "steady_max": None, "end": None},
                        cycles_measured=0, growth_mb=None, growth_mb_per_100_cycles=None, settled_rss_mb=settled)
        (first_cycles, start_mb), (last_cycles, end_mb) = steady[0], steady[-1]
        steady_max = max([mb for c, mb in self._samples if c >= first_cycles] + [end_mb])
        cycles = last_cycles - first_cycles
        growth = end_mb - start_mb
        return dict(
            rss_mb={"after_start": after_start, "steady_start": round(start_mb, 1),
                    "steady_max": round(steady_max, 1), "end": round(end_mb, 1)},
            cycles_measured=cycles, growth_mb=round(growth, 1),
            growth_mb_per_100_cycles=round(growth / cycles * 100, 1) if cycles else None, settled_rss_mb=settled,
        )
