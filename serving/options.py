"""`ServerOptions`: `tensorflow_model_server`'s flags (same names, meaning and defaults) plus local settings.

The one home of the server's defaults: `tfxpipe serve`'s click options take theirs from here. Kept
free of heavy imports (no TensorFlow, gRPC or web framework) because the CLI imports it to build `--help`.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from serving import errors

GRPC_MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving: SetMaxMessageSize(kint32max)


@dataclasses.dataclass
class ServerOptions:
    """tensorflow_model_server flags (same names and meaning) plus a few local settings."""

    port: int = 8500
    rest_api_port: int = 8501
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: float = 0
    file_system_poll_wait_seconds: float = 1
    enable_batching: bool = False
    batching_parameters_file: str = ""
    monitoring_config_file: str = ""
    allow_version_labels_for_unavailable_models: bool = False
    enable_model_warmup: bool = True
    enable_signature_method_name_check: bool = False
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    grpc_max_threads: int = dataclasses.field(default_factory=lambda: max(8, 2 * (os.cpu_count() or 1)))
    grpc_channel_arguments: str = ""
    # Local settings (not tensorflow_model_server flags).
    host: str = "0.0.0.0"
    rest_api_max_body_bytes: int = 64 * 1024 * 1024
    # A REST client that stalls in its request headers or body longer than this is answered 408 and closed.
    rest_api_read_timeout_seconds: float = 30.0
    model_threads: int = dataclasses.field(default_factory=lambda: max(2, os.cpu_count() or 1))
    shutdown_grace_seconds: float = 30.0
    load_timeout_seconds: float | None = None
    # Request logging (models with a `logging_config`; see serving.request_log): sampled requests wait in
    # a queue this long at most (further ones are dropped and counted); files complete at this size or age.
    request_log_queue_size: int = 1024
    request_log_max_file_bytes: int = 64 * 1024 * 1024
    request_log_rotate_seconds: float = 60.0

    def validate(self) -> None:
        """Server::BuildAndStart's checks, with its messages."""
        if self.port == 0 and self.rest_api_port == 0:
            raise errors.invalid_argument("At least one of --port or --rest_api_port must be set.")
        if not self.model_base_path and not self.model_config_file:
            raise errors.invalid_argument(
                "Both server_options.model_base_path and server_options.model_config_file are empty!"
            )
        if self.batching_parameters_file and not self.enable_batching:
            raise errors.invalid_argument(
                "server_options.batching_parameters_file is set without setting server_options.enable_batching to true."
            )
        grpc_server_arguments(self.grpc_channel_arguments)  # a malformed list fails before anything starts
        if self.port and self.port == self.rest_api_port:
            raise errors.invalid_argument("--rest_api_port must be different than the one specified in --port.")


def grpc_server_arguments(channel_arguments: str) -> dict[str, int | str]:
    """TF Serving's gRPC server arguments, then `--grpc_channel_arguments` ("key=value,key=value") over
    them; like TF Serving, a value that parses as a 32-bit integer is passed as one."""
    arguments: dict[str, int | str] = {"grpc.max_receive_message_length": GRPC_MAX_MESSAGE_BYTES,
                                       "grpc.max_send_message_length": GRPC_MAX_MESSAGE_BYTES,
                                       "grpc.so_reuseport": 0}
    for item in filter(None, (part.strip() for part in channel_arguments.split(","))):
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise errors.invalid_argument(
                f"--grpc_channel_arguments: {item!r} is not key=value (e.g. grpc.max_receive_message_length=4194304)")
        value = value.strip()
        is_int32 = re.fullmatch(r"[+-]?\d+", value) and -2**31 <= int(value) < 2**31
        arguments[key.strip()] = int(value) if is_int32 else value
    return arguments


def default(name: str) -> Any:
    """The default of ServerOptions field `name` (calling its factory, if it has one)."""
    field = next(f for f in dataclasses.fields(ServerOptions) if f.name == name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default
