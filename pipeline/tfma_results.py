"""TFMA's metrics, read from an Evaluator output without TensorFlow.

Read-only commands (`tfxpipe report`, `models`) must start in about a second, and importing
`tensorflow_model_analysis` imports TensorFlow (~20 s here). The metrics TFMA writes are TFRecords of
its `MetricsForSlice` proto, whose generated module needs only protobuf, so it is loaded from its file
directly. If an upgrade moves that file, the public import path is used instead (slow, still right);
tests/unit/test_tfma_results.py fails loudly when that happens.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys
from typing import Any, Iterator

_MODULE = "tensorflow_model_analysis.proto.metrics_for_slice_pb2"
OVERALL = "Overall"


def metrics_module_file() -> str:
    """Where the installed TFMA keeps its generated MetricsForSlice module ('' if not found)."""
    package = importlib.util.find_spec("tensorflow_model_analysis")
    if package is None or not package.submodule_search_locations:
        return ""
    location = os.path.join(package.submodule_search_locations[0], "proto", "metrics_for_slice_pb2.py")
    return location if os.path.isfile(location) else ""


def metrics_for_slice_class() -> Any:
    """TFMA's MetricsForSlice message class, without importing TFMA's package when possible."""
    module = sys.modules.get(_MODULE)
    if module is None:
        location = metrics_module_file()
        if not location:  # the file moved: the public (TensorFlow-importing) path still works
            from tensorflow_model_analysis.proto import metrics_for_slice_pb2 as module
        else:
            from google.protobuf import wrappers_pb2  # noqa: F401 - the file's dependency must be in the pool

            spec = importlib.util.spec_from_file_location(_MODULE, location)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[_MODULE] = module  # a later `import tensorflow_model_analysis` reuses it
    return module.MetricsForSlice


def slice_name(slice_key: Any) -> str:
    """TFMA's `stringify_slice_key`: "Overall", "island:Biscoe", "a_X_b:1_X_x"."""
    if not slice_key.single_slice_keys:
        return OVERALL
    columns, values = [], []
    for key in slice_key.single_slice_keys:
        kind = key.WhichOneof("kind")
        value = key.bytes_value.decode("utf-8", "replace") if kind == "bytes_value" else getattr(key, kind)
        columns.append(key.column)
        values.append(str(value))
    return "_X_".join(columns) + ":" + "_X_".join(values)


def load_metrics(evaluation_uri: str) -> Iterator[Any]:
    """Every MetricsForSlice record in an Evaluator output directory."""
    from serving.request_log import read_records

    metrics_class = metrics_for_slice_class()
    for path in sorted(p for p in glob.glob(os.path.join(evaluation_uri, "metrics*")) if os.path.isfile(p)):
        for record in read_records(path):
            yield metrics_class.FromString(record)


CANDIDATE, BASELINE = "candidate", "baseline"


def metrics_by_model(evaluation_uri: str) -> dict[str, dict[str, dict[str, float]]]:
    """Slice name → metric name (`/class_<id>` for per-class ones) → {"candidate": v, "baseline": v},
    Overall first; "baseline" only when the Evaluator compared with a blessed baseline model."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for metrics in load_metrics(evaluation_uri):
        if metrics.HasField("cross_slice_key"):
            continue
        values = result.setdefault(slice_name(metrics.slice_key), {})
        for entry in metrics.metric_keys_and_values:
            key = entry.key
            if not entry.value.HasField("double_value") or key.is_diff:
                continue
            label = key.name + (f"/class_{key.sub_key.class_id.value}" if key.sub_key.HasField("class_id") else "")
            model = BASELINE if key.model_name == BASELINE else CANDIDATE
            values.setdefault(label, {})[model] = entry.value.double_value.value
    return dict(sorted(result.items(), key=lambda item: (item[0] != OVERALL, item[0])))


def metrics_by_slice(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """Slice name → metric name (`/class_<id>` for per-class ones) → the candidate's value, Overall first."""
    return {name: {metric: models[CANDIDATE] for metric, models in values.items() if CANDIDATE in models}
            for name, values in metrics_by_model(evaluation_uri).items()}


def headline_metrics(values: dict[str, float]) -> dict[str, float]:
    """A slice's model-level metrics, for tables that show one row per slice or version.

    Per-class metrics (`<metric>/class_<id>`) are left out, except for a binary model: its task metrics
    are computed on the positive class only (binarized class_id 1, see pipeline.pipeline._metrics_specs),
    so when class 1 is the only sub-key they are its headline and are shown without the suffix.
    """
    class_ids = {name.rsplit("/class_", 1)[1] for name in values if "/class_" in name}
    headline = {name: value for name, value in values.items() if "/class_" not in name}
    if class_ids == {"1"}:
        headline.update({name.rsplit("/class_", 1)[0]: value for name, value in values.items() if "/class_" in name})
    return dict(sorted(headline.items()))
