"""Render TFDV `Anomalies` protos as a report a person can read and act on, and as structured findings.

Pure functions over protos, shared by the validation gate (which records the verdict, the findings and
the report on its output artifact in ML Metadata) and the run summary (which reads them back). Every
report line says which split, which feature, what is wrong and how to accept it knowingly if it is
expected. This module imports protos only, so the TensorFlow-free CLI commands can use its names.
"""
from __future__ import annotations

import json
from typing import Mapping, Optional

from tensorflow_metadata.proto.v0 import anomalies_pb2

# The gate's verdict as recorded in ML Metadata: custom properties of its `verdict` output artifact.
VERDICT_PROPERTY = "verdict"
FINDINGS_PROPERTY = "findings"  # a JSON list of `findings()` rows
REPORT_PROPERTY = "report"  # the text `render()` returns
DISTANCES_PROPERTY = "distances"  # a JSON list of `distances()` rows: every compared feature, passed or not
SPAN_PROPERTY = "span"  # the span validated (ExampleGen's span of the statistics)
BASELINE_SPAN_PROPERTY = "baseline_span"  # the last validated span it was compared with (absent: none yet)
#: On `validated_statistics`: every span the gate has accepted so far (a JSON list, ascending), carried
#: forward by each accepted run; ExamplesWindow admits an older span into a window only if it is listed.
VALIDATED_SPANS_PROPERTY = "validated_spans"
#: On ExamplesWindow's output: the spans whose examples the window holds (a JSON list, ascending), and the
#: older slots' spans left out because the gate never accepted them (a JSON list).
WINDOW_SPANS_PROPERTY = "window_spans"
UNVALIDATED_SPANS_PROPERTY = "unvalidated_spans"
WINDOW_SIZE_PROPERTY = "window_size"  # data.window: how many spans it could have held
PASSED, REJECTED = "passed", "rejected"
#: The check name of live-traffic skew findings (gated by validation.fail_on_serving_skew, not fail_on_anomalies).
SERVING_SKEW_CHECK = "serving_skew"

def validated_spans(previous: Optional[str], span: int) -> list[int]:
    """The spans accepted so far: the previous record (a JSON list; None or empty: none) plus `span`."""
    return sorted(set(json.loads(previous) if previous else []) | {span})


_HOW_TO_ACCEPT = (
    "If a change is expected, accept it knowingly: edit the curated schema named by validation.schema_path "
    "(e.g. add the new value to the feature's domain, relax presence or distribution_constraints), or raise "
    "the threshold under validation.drift / validation.skew / validation.serving_skew in the config, then re-run."
)


def anomaly_lines(anomalies: anomalies_pb2.Anomalies) -> list[tuple[str, str, str]]:
    """(feature, short description, long description) for each anomaly, sorted by feature."""
    rows = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        short = "; ".join(r.short_description for r in info.reason) or info.short_description
        long = "; ".join(r.description for r in info.reason) or info.description
        rows.append((feature, short, long))
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        short = "; ".join(r.short_description for r in info.reason) or info.short_description
        long = "; ".join(r.description for r in info.reason) or info.description
        rows.append(("(dataset)", short, long))
    return rows


def has_anomalies(anomalies: Optional[anomalies_pb2.Anomalies]) -> bool:
    return anomalies is not None and (bool(anomalies.anomaly_info) or anomalies.HasField("dataset_anomaly_info"))


def render(sections: Mapping[str, Optional[anomalies_pb2.Anomalies]]) -> str:
    """A plain-text report: one block per check (e.g. 'schema: train', 'drift', 'skew').

    A section whose value is None was skipped; its title says why.
    """
    lines: list[str] = []
    found = False
    for title, anomalies in sections.items():
        if anomalies is None:
            lines.append(f"[skip] {title}")
            continue
        rows = anomaly_lines(anomalies)
        if not rows:
            lines.append(f"[ok]   {title}: no anomalies")
            continue
        found = True
        lines.append(f"[FAIL] {title}: {len(rows)} anomal{'y' if len(rows) == 1 else 'ies'}")
        for feature, short, long in rows:
            lines.append(f"       - {feature}: {short}")
            if long and long != short:
                lines.append(f"         {long}")
    if found:
        lines.append("")
        lines.append(_HOW_TO_ACCEPT)
    return "\n".join(lines)


def _measurements(anomalies: anomalies_pb2.Anomalies, check: str) -> dict[str, anomalies_pb2.DriftSkewInfo.Measurement]:
    """Feature path → the drift or skew measurement TFDV computed for it (the largest, if several)."""
    field = "drift_measurements" if check == "drift" else "skew_measurements" if check.endswith("skew") else None
    result = {}
    for info in anomalies.drift_skew_info if field else ():
        for measurement in getattr(info, field):
            name = ".".join(info.path.step)
            if name not in result or measurement.value > result[name].value:
                result[name] = measurement
    return result


def distances(check: str, split: Optional[str], anomalies: Optional[anomalies_pb2.Anomalies],
              **context: object) -> list[dict]:
    """One row per feature TFDV compared (within its threshold or not): check, split, feature, measure,
    distance, threshold, exceeded, plus `context` (e.g. the spans compared). Findings list only failures;
    these rows show how close every configured feature came."""
    if anomalies is None:
        return []
    failed = {feature for feature, info in anomalies.anomaly_info.items()
              if any(anomalies_pb2.AnomalyInfo.Type.Name(r.type).startswith("COMPARATOR_") for r in info.reason)}
    return [{"check": check, "split": split, "feature": feature,
             "measure": anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type),
             "distance": m.value, "threshold": m.threshold, "exceeded": feature in failed, **context}
            for feature, m in sorted(_measurements(anomalies, check).items())]


def findings(check: str, split: Optional[str], anomalies: Optional[anomalies_pb2.Anomalies]) -> list[dict]:
    """One row per anomalous feature: check, split, feature, kind, description, and for drift/skew the
    measured distance and its threshold, as TFDV computed them (no number is read back from text)."""
    if anomalies is None:
        return []
    measured = _measurements(anomalies, check)
    rows = []
    infos = sorted(anomalies.anomaly_info.items())
    if anomalies.HasField("dataset_anomaly_info"):
        infos.append(("(dataset)", anomalies.dataset_anomaly_info))
    for feature, info in infos:
        row = {"check": check, "split": split, "feature": feature,
               "kind": ", ".join(anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason),
               "description": "; ".join(r.description for r in info.reason) or info.description}
        if feature in measured:
            measurement = measured[feature]
            row.update(measure=anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(measurement.type),
                       distance=measurement.value, threshold=measurement.threshold)
        rows.append(row)
    return rows
