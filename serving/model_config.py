"""TF Serving's configuration files and flags -> typed, validated settings.

- `--model_name`/`--model_base_path` or `--model_config_file` (text-format `ModelServerConfig`) ->
  `ModelConfig` per model, with its `VersionPolicy` (latest N, all, specific), version labels and
  request logging (`logging_config`: `RequestLogConfig`);
- `--batching_parameters_file` (text-format `BatchingParameters`) -> `BatchingOptions`;
- `--monitoring_config_file` (text-format `MonitoringConfig`) -> `MonitoringOptions`.

Validation mirrors TF Serving's ServerCore (same wording) so a config that TF Serving rejects is rejected
here too, and the reverse.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Mapping

from serving import protos
from pipeline.uris import is_remote
from serving.errors import ServingError, invalid_argument

TENSORFLOW_PLATFORM = "tensorflow"
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which of the version directories found on disk a model should serve."""

    kind: str = "latest"  # latest | all | specific
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, on_disk: Iterable[int]) -> set[int]:
        versions = sorted(set(on_disk))
        if self.kind == "all":
            return set(versions)
        if self.kind == "specific":
            return set(versions) & set(self.versions)
        return set(versions[-max(1, self.num_versions):]) if versions else set()

    def describe(self) -> str:
        if self.kind == "specific":
            return f"specific {list(self.versions)}"
        return "all" if self.kind == "all" else f"latest {max(1, self.num_versions)}"


@dataclasses.dataclass(frozen=True)
class RequestLogConfig:
    """A model's `logging_config`: log a `sampling_rate` fraction of its requests to `filename_prefix`-* files."""

    filename_prefix: str
    sampling_rate: float


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    version_policy: VersionPolicy = VersionPolicy()
    version_labels: Mapping[str, int] = dataclasses.field(default_factory=dict)
    request_log: RequestLogConfig | None = None


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """BatchingParameters with TF Serving's defaults for unset fields (shared batch scheduler)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int | None = None
    thread_pool_name: str = "model_server_batch_threads"

    def __post_init__(self):
        if self.max_batch_size < 1:
            raise invalid_argument(f"max_batch_size must be positive; was {self.max_batch_size}")
        if self.num_batch_threads < 1:
            raise invalid_argument(f"num_batch_threads must be positive; was {self.num_batch_threads}")
        if self.allowed_batch_sizes:
            sizes = list(self.allowed_batch_sizes)
            if sizes != sorted(set(sizes)):
                raise invalid_argument("allowed_batch_sizes entries must be monotonically increasing")
            if sizes[-1] != self.max_batch_size:
                raise invalid_argument(
                    "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                    f"{sizes[-1]}; expected {self.max_batch_size}"
                )

    @property
    def execution_batch_size(self) -> int:
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size


@dataclasses.dataclass(frozen=True)
class MonitoringOptions:
    prometheus_enabled: bool = False
    prometheus_path: str = DEFAULT_PROMETHEUS_PATH


# --- ModelServerConfig --------------------------------------------------------------------------------

def single_model_server_config(model_name: str, model_base_path: str) -> Any:
    """What `--model_name`/`--model_base_path` mean: one TensorFlow model, latest version."""
    config = protos.load().model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = model_base_path
    model.model_platform = TENSORFLOW_PLATFORM
    return config


def read_model_server_config(path: str) -> Any:
    return _parse_text_file(path, protos.load().model_server_config_pb2.ModelServerConfig())


def model_configs(server_config: Any) -> list[ModelConfig]:
    """Validated ModelConfigs of a ModelServerConfig proto (only model_config_list is supported)."""
    if server_config.WhichOneof("config") != "model_config_list":
        raise invalid_argument(
            "ServerModelConfig type not supported by HandleReloadConfigRequest. "
            "Only ModelConfigList is currently supported"
        )
    seen: set[str] = set()
    configs = []
    for model in server_config.model_config_list.config:
        if model.name in seen:
            raise invalid_argument(f"Illegal to list model {model.name} multiple times in config list")
        seen.add(model.name)
        configs.append(_model_config(model))
    return configs


def _model_config(model: Any) -> ModelConfig:
    platform = model.model_platform
    if not platform and model.model_type == 1:  # deprecated ModelType.TENSORFLOW
        platform = TENSORFLOW_PLATFORM
    if not platform:
        raise invalid_argument(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            f"ModelServerConfig::model_platform, model name is {model.name}"
        )
    if platform != TENSORFLOW_PLATFORM:
        raise invalid_argument(f"Model {model.name} requested platform {platform}; only {TENSORFLOW_PLATFORM} is served")
    if not model.name:
        raise invalid_argument("ModelConfig has no name specified.")
    if not _is_absolute(model.base_path):
        raise invalid_argument(
            f"Expected model {model.name} to have an absolute path or URI; got base_path()={model.base_path}"
        )
    return ModelConfig(
        name=model.name,
        base_path=model.base_path,
        version_policy=_version_policy(model),
        version_labels=dict(model.version_labels),
        request_log=_request_log(model),
    )


#: LogCollectorConfig types this server writes: TFRecord files of PredictionLog. Open-source TF Serving
#: registers no LogCollector at all (tensorflow/serving#408, #1846) and rejects any logging_config.
REQUEST_LOG_TYPES = ("", "tfrecord")


def _request_log(model: Any) -> RequestLogConfig | None:
    if not model.HasField("logging_config"):
        return None
    collector, sampling = model.logging_config.log_collector_config, model.logging_config.sampling_config
    if collector.type not in REQUEST_LOG_TYPES:
        raise invalid_argument(f"Model {model.name}: Cannot find LogCollector::Factory for type: {collector.type} "
                               f"(tfxpipe serve writes TFRecord files: type '' or 'tfrecord')")
    if not collector.filename_prefix:
        raise invalid_argument(f"Model {model.name}: logging_config.log_collector_config needs a filename_prefix")
    if not 0.0 <= sampling.sampling_rate <= 1.0:
        raise invalid_argument(f"Model {model.name}: logging_config.sampling_config.sampling_rate must be in "
                               f"[0, 1]; was {sampling.sampling_rate}")
    return RequestLogConfig(filename_prefix=collector.filename_prefix, sampling_rate=sampling.sampling_rate)


def _version_policy(model: Any) -> VersionPolicy:
    if not model.HasField("model_version_policy"):
        return VersionPolicy()
    policy = model.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return VersionPolicy(kind="all")
    if which == "specific":
        if not policy.specific.versions:
            raise invalid_argument(f"Model {model.name}: a specific version policy needs at least one version")
        return VersionPolicy(kind="specific", versions=tuple(policy.specific.versions))
    return VersionPolicy(kind="latest", num_versions=policy.latest.num_versions or 1)


def _is_absolute(path: str) -> bool:
    return os.path.isabs(path) or is_remote(path)


# --- Batching and monitoring --------------------------------------------------------------------------

def read_batching_options(path: str | None) -> BatchingOptions:
    """BatchingOptions from a BatchingParameters text file; TF Serving's defaults when `path` is None."""
    if not path:
        return BatchingOptions()
    params = _parse_text_file(path, protos.load().batching_parameters_class())
    values: dict[str, Any] = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                 "max_execution_batch_size", "thread_pool_name", "enable_large_batch_splitting"):
        if params.HasField(name):
            values[name] = getattr(params, name).value
    if params.allowed_batch_sizes:
        values["allowed_batch_sizes"] = tuple(params.allowed_batch_sizes)
    return BatchingOptions(**values)


def read_monitoring_options(path: str | None) -> MonitoringOptions:
    if not path:
        return MonitoringOptions()
    config = _parse_text_file(path, protos.load().monitoring_config_class())
    prometheus = config.prometheus_config
    return MonitoringOptions(prometheus_enabled=prometheus.enable, prometheus_path=prometheus.path or DEFAULT_PROMETHEUS_PATH)


def _parse_text_file(path: str, message: Any) -> Any:
    from google.protobuf import text_format

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ServingError(5, f"{path}: {exc.strerror or exc}") from None
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise invalid_argument(f"Invalid protobuf file: '{path}': {exc}") from None
