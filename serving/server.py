"""`ModelServer`: the version registry, batching, REST (uvicorn) and gRPC (grpc.aio) on one event loop.

`ServerOptions` carries `tensorflow_model_server`'s flags with their meaning. `ModelServer.run()` serves
until SIGTERM/SIGINT, then stops accepting, lets requests in flight finish and returns (exit 0);
`start_in_background()` / `stop()` do the same from a thread, for tests and embedding.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from typing import Any, Callable

from serving import errors, model_config, protos
from serving.batching import DynamicBatcher
from serving.http_protocol import protocol_class
from serving.inference import InferenceService
from serving.metrics import ServingMetrics
from serving.model_registry import ModelRegistry
from serving.request_log import RequestLogger
from serving.options import GRPC_MAX_MESSAGE_BYTES, ServerOptions, grpc_server_arguments  # noqa: F401 - re-exported
from serving.rest import create_app
from serving.servable import Servable
from serving.warmup import run_warmup

log = logging.getLogger(__name__)


class ModelServer:
    def __init__(self, options: ServerOptions):
        options.validate()
        self.options = options
        protos.load()  # before any server thread exists: see serving.protos on importing without TensorFlow
        self.metrics = ServingMetrics(is_served_model=lambda name: self.registry.has_model(name))
        self.monitoring = model_config.read_monitoring_options(options.monitoring_config_file or None)
        self.batching = model_config.read_batching_options(options.batching_parameters_file or None) \
            if options.enable_batching else None
        self.registry = ModelRegistry(
            self._load_version,
            poll_wait_seconds=options.file_system_poll_wait_seconds,
            allow_version_labels_for_unavailable_models=options.allow_version_labels_for_unavailable_models,
            load_timeout_seconds=options.load_timeout_seconds,
        )
        self.request_logger = RequestLogger(options.request_log_queue_size, options.request_log_max_file_bytes,
                                            options.request_log_rotate_seconds,
                                            on_outcome=self.metrics.count_request_log)
        self.grpc_port: int | None = None
        self.rest_port: int | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._config_text = ""

    # --- lifecycle --------------------------------------------------------------------------------------

    def run(self, on_ready: Callable[["ModelServer"], None] | None = None) -> None:
        """Serves until SIGTERM/SIGINT (main thread), then shuts down gracefully; `on_ready` runs once serving."""
        asyncio.run(self.serve(install_signal_handlers=True, on_ready=on_ready))

    def start_in_background(self, timeout: float = 120.0) -> "ModelServer":
        """Starts serving on a daemon thread; returns once models are loaded and ports listen."""
        self._thread = threading.Thread(target=self._serve_in_thread, name="model-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"model server not ready after {timeout}s")
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def _serve_in_thread(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException:  # noqa: BLE001 - startup errors reach start_in_background's caller
            if self._startup_error is None:
                log.exception("model server stopped with an error")

    def stop(self, timeout: float = 60.0) -> None:
        """Stops accepting, finishes requests in flight, unloads; safe to call from any thread."""
        if self._loop is not None and self._stop_requested is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop_requested.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "ModelServer":
        return self.start_in_background()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def serve(self, install_signal_handlers: bool = False,
                    on_ready: Callable[["ModelServer"], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        service = grpc_server = None
        try:
            self._configure_tensorflow()
            await self._loop.run_in_executor(None, self._apply_config, self._initial_server_config())
            service = self._inference_service()
            grpc_server = await self._start_grpc(service) if self.options.port else None
            rest_server, rest_task = await self._start_rest(service) if self.options.rest_api_port else (None, None)
        except BaseException as exc:  # noqa: BLE001 - reported to start_in_background / run's caller
            self._startup_error = exc
            self._ready.set()
            if grpc_server is not None:
                grpc_server.stop(None)
            if service is not None:
                service.close()
            self.registry.stop()
            self.request_logger.close()
            raise
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(signum, self._stop_requested.set)
        config_poller = asyncio.ensure_future(self._poll_config_file())
        log.info("Serving: gRPC on %s, REST on %s", self.grpc_port, self.rest_port)
        self._ready.set()
        if on_ready is not None:
            on_ready(self)
        await self._stop_requested.wait()
        config_poller.cancel()
        await self._shutdown(service, grpc_server, rest_server, rest_task)

    async def _shutdown(self, service, grpc_server, rest_server, rest_task) -> None:
        log.info("Shutting down: no new requests; finishing those in flight")
        grace = self.options.shutdown_grace_seconds
        if rest_server is not None:
            rest_server.should_exit = True
        if grpc_server is not None:  # stops accepting now; waits for RPCs in flight up to `grace`
            stopped = grpc_server.stop(grace)
            await asyncio.get_running_loop().run_in_executor(None, stopped.wait)
        if rest_task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(rest_task, grace)
        await asyncio.get_running_loop().run_in_executor(None, service.close)
        await asyncio.get_running_loop().run_in_executor(None, self.request_logger.close)
        self.registry.stop()

    # --- pieces -----------------------------------------------------------------------------------------

    def _configure_tensorflow(self) -> None:
        intra, inter = self.options.tensorflow_intra_op_parallelism, self.options.tensorflow_inter_op_parallelism
        if not intra and not inter:
            return
        import tensorflow as tf

        try:
            if intra:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
            if inter:
                tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError as exc:  # TensorFlow already ran something in this process
            log.warning("TensorFlow thread pools already set up; parallelism flags ignored: %s", exc)

    def _initial_server_config(self) -> Any:
        if self.options.model_config_file:
            with open(self.options.model_config_file, encoding="utf-8") as f:
                self._config_text = f.read()
            return model_config.read_model_server_config(self.options.model_config_file)
        return model_config.single_model_server_config(self.options.model_name, self.options.model_base_path)

    def _apply_config(self, server_config: Any) -> None:
        """ServerCore::ReloadConfig: models, labels, then the request loggers (a refused config changes none)."""
        configs = model_config.model_configs(server_config)
        self.registry.apply_config(configs)
        self.request_logger.configure(configs)

    def _load_version(self, name: str, version: int, path: str) -> Servable:
        started = time.perf_counter()
        servable = Servable.load(name, version, path)
        if self.options.enable_model_warmup:
            run_warmup(servable, self.options.enable_signature_method_name_check)
        self.metrics.load_latency.labels(name).observe(time.perf_counter() - started)
        return servable

    def _inference_service(self) -> InferenceService:
        batcher = None
        if self.batching is not None:
            batcher = DynamicBatcher(self.batching, on_batch=self.metrics.batch_size.observe)
        return InferenceService(self.registry, batcher, model_threads=self.options.model_threads,
                                check_method_name=self.options.enable_signature_method_name_check)

    async def _start_grpc(self, service: InferenceService):
        import concurrent.futures

        import grpc

        from serving.grpc_service import add_servicers, build_model_servicer, build_prediction_servicer

        server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(self.options.grpc_max_threads, thread_name_prefix="grpc"),
            options=list(grpc_server_arguments(self.options.grpc_channel_arguments).items()),
        )
        add_servicers(server, build_prediction_servicer(service, self.metrics, self.request_logger),
                      build_model_servicer(service, self.metrics, self._apply_config))
        self.grpc_port = server.add_insecure_port(f"{self._grpc_host()}:{self.options.port}")
        if not self.grpc_port:
            raise errors.unavailable(f"Failed to BuildAndStart gRPC server: cannot bind port {self.options.port}")
        server.start()
        return server

    def _grpc_host(self) -> str:
        return "[::]" if self.options.host in ("0.0.0.0", "::") else self.options.host

    async def _start_rest(self, service: InferenceService):
        import uvicorn

        monitoring = self.monitoring
        app = create_app(service, self.metrics,
                         prometheus_path=monitoring.prometheus_path if monitoring.prometheus_enabled else None,
                         max_body_bytes=self.options.rest_api_max_body_bytes,
                         read_timeout_seconds=self.options.rest_api_read_timeout_seconds,
                         request_logger=self.request_logger)
        # uvicorn binds the port itself: a socket handed to it pre-bound loses TCP_NODELAY semantics on
        # keep-alive connections (40 ms Nagle/delayed-ACK stalls), measured in benchmarks/serving.py.
        config = uvicorn.Config(app, host=self.options.host, port=self.options.rest_api_port, log_level="warning",
                                access_log=False, lifespan="off", proxy_headers=False,
                                http=protocol_class(self.options.rest_api_read_timeout_seconds),
                                server_header=False,
                                timeout_graceful_shutdown=int(self.options.shutdown_grace_seconds))
        _check_bindable(self.options.host, self.options.rest_api_port)
        server = _EmbeddedUvicorn(config)

        async def serve_rest():
            try:
                await server.serve()
            except SystemExit:  # uvicorn exits on startup failures; a SystemExit would stop our whole loop
                raise errors.unavailable(f"cannot serve REST on port {self.options.rest_api_port}") from None

        task = asyncio.ensure_future(serve_rest())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        self.rest_port = server.servers[0].sockets[0].getsockname()[1]
        return server, task

    async def _poll_config_file(self) -> None:
        interval = self.options.model_config_file_poll_wait_seconds
        if not self.options.model_config_file or interval <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                with open(self.options.model_config_file, encoding="utf-8") as f:
                    text = f.read()
                if text == self._config_text:
                    continue
                config = model_config.read_model_server_config(self.options.model_config_file)
                await loop.run_in_executor(None, self._apply_config, config)
                self._config_text = text  # a refused config is tried again at the next poll, as TF Serving does
            except (OSError, errors.ServingError) as exc:
                log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", exc)


def _check_bindable(host: str, port: int) -> None:
    """Fails with a clear message when the REST port is taken (uvicorn would only log and exit)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise errors.unavailable(f"cannot serve REST on {host}:{port}: {exc.strerror or exc}") from None


class _EmbeddedUvicorn:
    """uvicorn.Server without its own signal handling: ModelServer owns SIGTERM/SIGINT."""

    def __new__(cls, config):
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):
                yield

            def install_signal_handlers(self) -> None:
                return None

        return Server(config)
