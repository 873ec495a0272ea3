"""TF Serving's generated protobuf and gRPC modules, importable without starting TensorFlow.

`tensorflow_serving.apis.*_pb2` import `tensorflow.core.framework.*_pb2`, and importing any
`tensorflow.*` submodule first runs `tensorflow/__init__.py`, which loads the whole runtime (seconds and
hundreds of MB). The generated modules themselves only need the `tensorflow.core` package directories,
whose `__init__.py` files are empty. `load()` therefore imports them under a bare placeholder for the
top-level `tensorflow` package and removes the placeholder afterwards, so a later `import tensorflow`
runs TensorFlow's real `__init__` and reuses the same, already registered, message classes (TensorFlow's
`__init__` deletes its `core` attribute itself, so nothing else differs).

When TensorFlow is already imported nothing special happens. While `load()` runs for the first time,
another thread importing TensorFlow would see the placeholder: call it before starting such threads
(`ModelServer` does so in its constructor). If a TensorFlow release breaks the placeholder import (its
generated modules starting to need the real package), `load()` logs why and imports TensorFlow for real:
slow, but correct; tests/unit/test_serving_client.py's import-hygiene test then fails loudly.

Also here: TF Serving's `BatchingParameters` and `MonitoringConfig` messages, which the
tensorflow-serving-api wheel does not ship; they are declared from TF Serving's .proto definitions
(same package, names and field numbers) so their text-format files parse exactly as TF Serving parses them.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
import types

_API_MODULES = (
    "tensorflow_serving.apis.model_pb2",
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.classification_pb2",
    "tensorflow_serving.apis.regression_pb2",
    "tensorflow_serving.apis.inference_pb2",
    "tensorflow_serving.apis.input_pb2",
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.model_management_pb2",
    # Not model_service_pb2 / prediction_service_pb2: the wheel ships them from an old protoc (they assign
    # DESCRIPTOR.has_options, read-only on protobuf >= 4's upb), and the _grpc stubs do not import them.
    "tensorflow_serving.apis.model_service_pb2_grpc",
    "tensorflow_serving.apis.prediction_service_pb2_grpc",
    "tensorflow_serving.apis.prediction_log_pb2",
    "tensorflow_serving.apis.status_pb2",
    "tensorflow_serving.config.model_server_config_pb2",
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow.core.framework.tensor_shape_pb2",
    "tensorflow.core.framework.types_pb2",
    "tensorflow.core.example.example_pb2",
    "tensorflow.core.example.feature_pb2",
    "tensorflow.core.protobuf.meta_graph_pb2",
    "tensorflow.core.protobuf.saved_model_pb2",
    "tensorflow.core.protobuf.error_codes_pb2",
)

_lock = threading.Lock()
_loaded: types.SimpleNamespace | None = None


def load() -> types.SimpleNamespace:
    """The generated modules by short name (`predict_pb2`, `prediction_service_pb2_grpc`, ...)."""
    global _loaded
    with _lock:
        if _loaded is None:
            modules = _import_without_tensorflow_runtime(_API_MODULES)
            _loaded = types.SimpleNamespace(**{name.rsplit(".", 1)[1]: module for name, module in modules.items()})
            _loaded.batching_parameters_class, _loaded.monitoring_config_class = _config_message_classes()
        return _loaded


def _import_without_tensorflow_runtime(names: tuple[str, ...]) -> dict[str, types.ModuleType]:
    if "tensorflow" in sys.modules:
        return {name: importlib.import_module(name) for name in names}
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the tensorflow package is needed for TF Serving's protos (pip install tensorflow-serving-api)")
    placeholder = types.ModuleType("tensorflow")
    placeholder.__path__ = list(spec.submodule_search_locations)
    sys.modules["tensorflow"] = placeholder
    try:
        return {name: importlib.import_module(name) for name in names}
    except (ImportError, AttributeError) as exc:  # the public way: import TensorFlow itself
        logging.getLogger(__name__).warning(
            "TF Serving's protos no longer import without TensorFlow's runtime (%r); importing TensorFlow", exc)
        del sys.modules["tensorflow"]
        return {name: importlib.import_module(name) for name in names}
    finally:
        if sys.modules.get("tensorflow") is placeholder:
            del sys.modules["tensorflow"]


# --- TF Serving config messages missing from the tensorflow-serving-api wheel -------------------------

def _config_message_classes():
    """BatchingParameters (session_bundle_config.proto) and MonitoringConfig (monitoring_config.proto)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2

    try:
        from google.protobuf import message_factory

        get_class = getattr(message_factory, "GetMessageClass", None)
    except ImportError:  # pragma: no cover
        get_class = None

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(_batching_file())
    pool.Add(_monitoring_file())
    classes = []
    for full_name in ("tensorflow.serving.BatchingParameters", "tensorflow.serving.MonitoringConfig"):
        descriptor = pool.FindMessageTypeByName(full_name)
        if get_class is not None:
            classes.append(get_class(descriptor))
        else:
            classes.append(message_factory.MessageFactory(pool).GetPrototype(descriptor))
    del descriptor_pb2
    return tuple(classes)


def _batching_file():
    from google.protobuf import descriptor_pb2

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="tfxpipe/tensorflow_serving/session_bundle_config_batching.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = file.message_type.add(name="BatchingParameters")
    wrapped = (
        ("max_batch_size", 1, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, ".google.protobuf.StringValue"),
        ("enable_large_batch_splitting", 8, ".google.protobuf.BoolValue"),
        ("max_execution_batch_size", 9, ".google.protobuf.Int64Value"),
    )
    for name, number, type_name in wrapped:
        message.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE, type_name=type_name)
    message.field.add(name="allowed_batch_sizes", number=6, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    return file


def _monitoring_file():
    from google.protobuf import descriptor_pb2

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="tfxpipe/tensorflow_serving/monitoring_config.proto", package="tensorflow.serving", syntax="proto3"
    )
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                         type_name=".tensorflow.serving.PrometheusConfig")
    return file
