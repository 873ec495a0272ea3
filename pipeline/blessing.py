"""The Evaluator's decision, read back from the ModelBlessing artifact in ML Metadata, and put in words.

The Evaluator (components.explained_evaluator) records blessed or not, whether a blessed baseline was
compared with, and every failed check. The run summary and `tfxpipe report` read them from here; nothing
is parsed from logs. Imports no TensorFlow, so read-only commands stay fast.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ml_metadata.proto import metadata_store_pb2

from components.blessing_record import (BASELINE_MODEL_ID_PROPERTY, BASELINE_MODEL_URI_PROPERTY, BLESSED_PROPERTY,
                                        FAILED_CHECKS_PROPERTY, FailedCheck, loads)


@dataclasses.dataclass(frozen=True)
class BlessingDecision:
    """Blessed or not, and why: `failed_checks` holds gating and reported-only failures alike."""

    blessed: bool
    failed_checks: list[FailedCheck]
    #: Where the blessed model this one was compared with lives; None on a first run.
    baseline_uri: Optional[str]

    @property
    def has_baseline(self) -> bool:
        return self.baseline_uri is not None

    @property
    def refusals(self) -> list[FailedCheck]:
        return [c for c in self.failed_checks if c.gating]

    @property
    def reported(self) -> list[FailedCheck]:
        return [c for c in self.failed_checks if not c.gating]


def read_decision(blessing: metadata_store_pb2.Artifact) -> Optional[BlessingDecision]:
    """The decision recorded on a ModelBlessing artifact; None when the Evaluator checked nothing."""
    properties = blessing.custom_properties
    if BLESSED_PROPERTY not in properties:
        return None
    baseline = BASELINE_MODEL_ID_PROPERTY in properties
    return BlessingDecision(
        blessed=properties[BLESSED_PROPERTY].int_value == 1,
        failed_checks=loads(properties[FAILED_CHECKS_PROPERTY].string_value) if FAILED_CHECKS_PROPERTY in properties else [],
        baseline_uri=properties[BASELINE_MODEL_URI_PROPERTY].string_value if baseline else None,
    )


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def describe(check: FailedCheck) -> str:
    """One line: slice, metric, value, what it had to reach, and on how many examples."""
    if check.value is None and not check.metric:
        return f"{check.slice}: {check.message}"
    if check.is_change:
        change = None if check.value is None or check.baseline_value is None else check.value - check.baseline_value
        text = (f"{check.slice}: {check.metric} {_number(check.value)} vs baseline {_number(check.baseline_value)} "
                f"(change {'n/a' if change is None else f'{change:+.4g}'}; allowed to worsen by at most "
                f"{check.max_decrease:g})")
    else:
        bounds = [f">= {check.lower_bound:g}" if check.lower_bound is not None else "",
                  f"<= {check.upper_bound:g}" if check.upper_bound is not None else ""]
        text = f"{check.slice}: {check.metric} {_number(check.value)}, bound {' and '.join(b for b in bounds if b)}"
    examples = "examples unknown" if check.examples is None else f"{check.examples} example{'s' * (check.examples != 1)}"
    if check.min_examples is not None:
        examples += f"; gates from {check.min_examples}"
    return f"{text} ({examples}){' - ' + check.message if check.message and check.value is None else ''}"


def summary_lines(decision: BlessingDecision) -> list[str]:
    """The blessing part of the run summary, in plain text (no markup)."""
    count = len(decision.refusals)
    if decision.blessed:
        lines = ["Model blessed: yes"]
    elif count:
        lines = [f"Model blessed: no - {count} failed check{'s' * (count != 1)} (not pushed):"]
        lines += [f"  FAILED    {describe(c)}" for c in decision.refusals]
    else:  # recorded before failed checks were
        lines = ["Model blessed: no (not pushed); its failed checks were not recorded"]
    if decision.reported:
        lines.append("Reported, not gating (the slice has fewer examples than its rule's min_examples):")
        lines += [f"  reported  {describe(c)}" for c in decision.reported]
    if decision.has_baseline:
        lines.append(f"Compared with the last blessed model: {decision.baseline_uri}")
    else:
        lines.append("No blessed baseline yet: this model was judged on absolute bounds only (max_decrease not applied).")
    return lines
