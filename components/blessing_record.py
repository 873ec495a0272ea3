"""What the Evaluator records with a ModelBlessing besides blessed or not (every failed check), and the
names of what InfraValidator records with an InfraBlessing.

Written by `components.explained_evaluator` and read by `pipeline.blessing` (the run summary, `tfxpipe
report`, the tests). Both sides import the names and the record from here; this module imports nothing
heavy, so read-only commands can use it without TensorFlow.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Optional

#: ModelBlessing custom property: JSON list of `FailedCheck`s, empty when every check passed.
FAILED_CHECKS_PROPERTY = "failed_checks"
#: Set by TFX's Evaluator on the blessing when a blessed baseline model was compared with (its MLMD id);
#: absent on a first run (tfx.components.evaluator.constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY).
BASELINE_MODEL_ID_PROPERTY = "baseline_model_id"
BASELINE_MODEL_URI_PROPERTY = "baseline_model"
#: Set by TFX's Evaluator: 1 blessed, 0 not (ARTIFACT_PROPERTY_BLESSED_KEY); InfraBlessing uses the same key.
BLESSED_PROPERTY = "blessed"
#: InfraBlessing custom properties (components.infra_validator): why not blessed, and the p99 latency.
INFRA_REASON_PROPERTY = "reason"
INFRA_LATENCY_PROPERTY = "latency_p99_ms"


@dataclasses.dataclass(frozen=True)
class FailedCheck:
    """One threshold TFMA found unmet, on one slice.

    A bound check fills `lower_bound`/`upper_bound`; a change check (vs the blessed baseline) fills
    `baseline_value` and `max_decrease`. `gating` is False for a slice with fewer examples than its
    rule's `min_examples`: the failure is reported but does not refuse the model.
    """

    slice: str
    metric: str
    value: Optional[float]
    examples: Optional[int]
    gating: bool
    lower_bound: Optional[float] = None
    upper_bound: Optional[float] = None
    baseline_value: Optional[float] = None
    max_decrease: Optional[float] = None
    min_examples: Optional[int] = None
    #: TFMA's own explanation when there is no value to compare (e.g. "Metric not found.").
    message: str = ""

    @property
    def is_change(self) -> bool:
        return self.max_decrease is not None


def dumps(checks: list[FailedCheck]) -> str:
    return json.dumps([dataclasses.asdict(c) for c in checks], sort_keys=True)


def loads(text: str) -> list[FailedCheck]:
    return [FailedCheck(**item) for item in json.loads(text or "[]")]
