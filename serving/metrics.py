"""Prometheus metrics named after TF Serving's (`:tensorflow:serving:*`), in a registry per server.

TF Serving exposes them at the monitoring config's `prometheus_config.path`
(default /monitoring/prometheus/metrics) on the REST port; so does `serving.rest`.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Requests naming a model the server does not serve are counted under this one label value: every
# name a client makes up would otherwise be a new time series kept for the server's lifetime.
UNKNOWN_MODEL_LABEL = "<unknown>"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    def __init__(self, is_served_model: Callable[[str], bool] = lambda name: True):
        self._is_served_model = is_served_model
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_count = Counter(
            ":tensorflow:serving:request_count", "The total number of requests.",
            ["model_name", "status"], registry=self.registry,
        )
        self.request_latency = Histogram(
            ":tensorflow:serving:request_latency", "Distribution of wall time (seconds) for successful requests.",
            ["model_name", "API", "entrypoint"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            ":tensorflow:serving:batching_session:processed_batch_size", "Sizes of the batches run by the model.",
            buckets=_BATCH_BUCKETS, registry=self.registry,
        )
        self.model_versions = Gauge(
            ":tensorflow:serving:model_versions_available", "Versions currently serving, per model.",
            ["model_name"], registry=self.registry,
        )
        self.load_latency = Histogram(
            ":tensorflow:serving:model_load_latency", "Wall time (seconds) to load and warm up a version.",
            ["model_name"], buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300), registry=self.registry,
        )
        self.request_log_records = Counter(
            "tfxpipe_request_log_records", "Sampled requests by what became of their request log record: "
            "written, dropped (the log queue was full) or failed (not writable).",
            ["model_name", "outcome"], registry=self.registry,
        )

        self._children: dict[tuple, object] = {}

    def record(self, model_name: str, api: str, entrypoint: str, code_name: str, seconds: float | None) -> None:
        """Counts a request by status; observes its latency when it succeeded."""
        if not self._is_served_model(model_name):
            model_name = UNKNOWN_MODEL_LABEL
        counter = self._children.get((model_name, code_name))
        if counter is None:  # label lookups are cached: they cost more than the increment
            counter = self._children[(model_name, code_name)] = self.request_count.labels(model_name, code_name)
        counter.inc()
        if seconds is not None:
            key = (model_name, api, entrypoint)
            histogram = self._children.get(key)
            if histogram is None:
                histogram = self._children[key] = self.request_latency.labels(model_name, api, entrypoint)
            histogram.observe(seconds)

    def count_request_log(self, model_name: str, outcome: str) -> None:
        """What became of a sampled request's log record (serving.request_log's outcomes)."""
        self.request_log_records.labels(model_name, outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
