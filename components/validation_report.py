"""Render TFDV `Anomalies` protos as a report a person can read and act on.

Pure functions over protos, shared by the validation gate (which writes the report and puts it in its
error) and the CLI (which prints it). Every line says which split, which feature, what is wrong and
how to accept it knowingly if it is expected.
"""
from __future__ import annotations

from typing import Mapping, Optional

from tensorflow_metadata.proto.v0 import anomalies_pb2

_HOW_TO_ACCEPT = (
    "If a change is expected, accept it knowingly: edit the curated schema named by validation.schema_path "
    "(e.g. add the new value to the feature's domain, relax presence or distribution_constraints), or raise "
    "the threshold under validation.drift / validation.skew in the config, then re-run."
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
