"""`tfxpipe runs`: every pipeline run a metadata store holds, one row each, oldest first.

Each row is read back from ML Metadata like the run summary (run_outcome.read_run): when it started,
how long it took, the span, what each component did, the headline metric, blessed or not, and the
version pushed. Files and ml_metadata only: no TensorFlow.
"""
from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Optional

from pipeline import run_outcome, tfma_results
from pipeline.config import THRESHOLD_METRICS
from pipeline.run_outcome import RunResult


@dataclasses.dataclass(frozen=True)
class RunRow:
    run_id: str
    #: Seconds since the epoch when its first execution was recorded (None: no execution).
    started: Optional[float]
    seconds: float
    span: Optional[int]
    status: str
    #: node id → state (complete, cached, failed, empty, ...), in execution order.
    components: dict[str, str]
    headline_metric: Optional[str]
    headline_value: Optional[float]
    blessed: Optional[bool]
    pushed_version: Optional[str]

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


def run_status(result: RunResult) -> str:
    """The run in a word or two: pushed, data rejected, not blessed, refused by the server, failed..."""
    states = {c.state for c in result.components}
    if "running" in states:
        return "running or interrupted"
    if result.data_rejected:
        return "data rejected"
    if "failed" in states or "canceled" in states:
        return "failed"
    if result.blessing is not None and not result.blessing.blessed or result.blessed is False:
        return "not blessed"
    if result.infra_validation is not None and not result.infra_validation.blessed:
        return "refused by the model server"
    return "pushed" if result.pushed_path else "succeeded"


def _headline(result: RunResult) -> tuple[Optional[str], Optional[float]]:
    """The first threshold metric the Overall slice has (e.g. accuracy for a classifier)."""
    overall = tfma_results.headline_metrics(result.metrics.get(tfma_results.OVERALL, {}))
    name = next((metric for metric in THRESHOLD_METRICS if metric in overall), None)
    return name, overall.get(name) if name else None


def row(result: RunResult) -> RunRow:
    executions = [c.execution for c in result.components if c.execution is not None]
    started = min(e.create_time_since_epoch for e in executions) / 1000 if executions else None
    ended = max(e.last_update_time_since_epoch for e in executions) / 1000 if executions else None
    metric, value = _headline(result)
    return RunRow(run_id=result.run_id or "", started=started, seconds=(ended - started) if executions else 0.0,
                  span=result.span, status=run_status(result),
                  components={c.node_id: c.state for c in result.components},
                  headline_metric=metric, headline_value=value, blessed=result.blessed,
                  pushed_version=Path(result.pushed_path).name if result.pushed_path else None)


def runs(metadata_path: Path) -> list[RunRow]:
    """Every run in the store, oldest first ([] when there is no store yet)."""
    if not Path(metadata_path).exists():
        return []
    store = run_outcome.open_store(Path(metadata_path))
    return [row(run_outcome.read_run(store, run)) for run in run_outcome.run_contexts(store)]


def component_summary(components: dict[str, str]) -> str:
    """'9 complete, 3 cached; failed: AcceptValidatedData' (resolvers that found nothing are not counted)."""
    counted = collections.Counter(state for state in components.values() if state != "empty")
    text = ", ".join(f"{count} {state}" for state, count in counted.items())
    failed = [node for node, state in components.items() if state in run_outcome.UNSUCCESSFUL_STATES]
    return text + (f"; {', '.join(failed)} {'/'.join(sorted({components[n] for n in failed}))}" if failed else "")
