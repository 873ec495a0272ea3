"""StatisticsGen's per-split statistics and the schema in use, read without TensorFlow or TFDV.

StatisticsGen stores one `DatasetFeatureStatisticsList` per split as `Split-<name>/FeatureStats.pb`
(TFX's stats_artifact_utils.BINARY_PB_BASENAME); the schema artifact holds `schema.pbtxt`. Both
messages come from tensorflow_metadata, which is protobuf only, so the report reads them in a read-only
command without importing TFDV (and with it TensorFlow). `summarize()` turns one split into rows a
person reads: counts, missing, mean/std/min/max or the top values, and the buckets to draw.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

#: StatisticsGen's file per split (tfx.components.statistics_gen.stats_artifact_utils.BINARY_PB_BASENAME).
STATISTICS_FILE = "FeatureStats.pb"
SCHEMA_FILE = "schema.pbtxt"
#: How many categories a bar chart shows; the rest are summed as "(other)".
TOP_CATEGORIES = 10


@dataclasses.dataclass(frozen=True)
class Bucket:
    label: str
    count: float
    #: Numeric buckets: their value range (the chart draws them at their true width).
    low: Optional[float] = None
    high: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class FeatureSummary:
    """One feature of one split, as the report shows it."""

    name: str
    kind: str  # "numeric" or "categorical"
    count: int
    missing: int
    mean: Optional[float] = None
    std: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    unique: Optional[int] = None
    top_values: tuple[tuple[str, float], ...] = ()
    buckets: tuple[Bucket, ...] = ()

    @property
    def missing_fraction(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0


def split_names(artifact: metadata_store_pb2.Artifact) -> list[str]:
    """The splits an ExampleStatistics (or Examples) artifact holds, from its `split_names` property."""
    value = artifact.properties.get("split_names") or artifact.custom_properties.get("split_names")
    return json.loads(value.string_value) if value is not None and value.string_value else []


def read_split(artifact: metadata_store_pb2.Artifact, split: str) -> Optional[statistics_pb2.DatasetFeatureStatistics]:
    """The statistics of one split (None when the file is not there, e.g. a store from an older TFX)."""
    path = os.path.join(artifact.uri, f"Split-{split}", STATISTICS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        datasets = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read()).datasets
    return datasets[0] if datasets else None


def read_schema(artifact: metadata_store_pb2.Artifact) -> Optional[schema_pb2.Schema]:
    """The schema a Schema artifact holds (None when its file is missing)."""
    from google.protobuf import text_format

    path = os.path.join(artifact.uri, SCHEMA_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def _numeric_buckets(stats: statistics_pb2.NumericStatistics) -> tuple[Bucket, ...]:
    standard = next((h for h in stats.histograms if h.type == statistics_pb2.Histogram.STANDARD), None)
    if standard is None:
        return ()
    return tuple(Bucket(f"{b.low_value:.4g}–{b.high_value:.4g}", b.sample_count, b.low_value, b.high_value)
                 for b in standard.buckets)


def _category_buckets(stats: statistics_pb2.StringStatistics) -> tuple[Bucket, ...]:
    ranked = [(b.label, b.sample_count) for b in stats.rank_histogram.buckets] or \
             [(v.value, v.frequency) for v in stats.top_values]
    ranked.sort(key=lambda item: -item[1])
    buckets = [Bucket(label, count) for label, count in ranked[:TOP_CATEGORIES]]
    rest = sum(count for _, count in ranked[TOP_CATEGORIES:])
    return tuple(buckets + ([Bucket("(other)", rest)] if rest else []))


def summarize_feature(feature: statistics_pb2.FeatureNameStatistics) -> FeatureSummary:
    name = feature.name or ".".join(feature.path.step)
    if feature.HasField("num_stats"):
        stats = feature.num_stats
        return FeatureSummary(name=name, kind="numeric", count=stats.common_stats.num_non_missing,
                              missing=stats.common_stats.num_missing, mean=stats.mean, std=stats.std_dev,
                              min=stats.min, max=stats.max, buckets=_numeric_buckets(stats))
    stats = feature.string_stats
    return FeatureSummary(name=name, kind="categorical", count=stats.common_stats.num_non_missing,
                          missing=stats.common_stats.num_missing, unique=stats.unique,
                          top_values=tuple((v.value, v.frequency) for v in stats.top_values[:3]),
                          buckets=_category_buckets(stats))


def summarize(dataset: Optional[statistics_pb2.DatasetFeatureStatistics]) -> dict[str, FeatureSummary]:
    """Feature name → its summary, in name order ({} for no statistics)."""
    if dataset is None:
        return {}
    summaries = (summarize_feature(feature) for feature in dataset.features)
    return {summary.name: summary for summary in sorted(summaries, key=lambda s: s.name)}


def schema_rows(schema: schema_pb2.Schema) -> list[dict]:
    """One row per schema feature: name, type, presence, valency and domain, as the schema states them."""
    domains = {domain.name: list(domain.value) for domain in schema.string_domain}
    rows = []
    for feature in schema.feature:
        presence = feature.presence
        required = "required" if presence.min_fraction >= 1 else \
            f"min fraction {presence.min_fraction:g}" if presence.HasField("min_fraction") else "optional"
        kind = feature.WhichOneof("domain_info")
        if kind == "domain":
            domain = ", ".join(domains.get(feature.domain, [])) or feature.domain
        elif kind == "string_domain":
            domain = ", ".join(feature.string_domain.value)
        elif kind in ("int_domain", "float_domain"):
            bounds = getattr(feature, kind)
            domain = " ".join(part for part in (f"min {bounds.min:g}" if bounds.HasField("min") else "",
                                                f"max {bounds.max:g}" if bounds.HasField("max") else "") if part)
        else:
            domain = ""
        rows.append({"name": feature.name, "type": schema_pb2.FeatureType.Name(feature.type), "presence": required,
                     "domain": domain,
                     "drift": _comparator(feature.drift_comparator), "skew": _comparator(feature.skew_comparator)})
    return rows


def _comparator(comparator: schema_pb2.FeatureComparator) -> str:
    if comparator.HasField("infinity_norm"):
        return f"L-infinity ≤ {comparator.infinity_norm.threshold:g}"
    if comparator.HasField("jensen_shannon_divergence"):
        return f"JS divergence ≤ {comparator.jensen_shannon_divergence.threshold:g}"
    return ""
