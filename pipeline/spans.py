"""Spans: data that arrives in numbered slices, `data.path` holding TFX's `{SPAN}` placeholder.

ExampleGen understands `{SPAN}` (and `{SPAN:N}`, zero-padded to N digits) in its input pattern and
ingests exactly one span per run, recording it as the Examples artifact's `span` property. This module
is the one home of what we do around that, with files and ML Metadata only (no TensorFlow, so
read-only commands and the CLI stay fast):

- split a `{SPAN}` path into ExampleGen's `input_base` and split pattern;
- list the spans present on a local disk and choose one: the latest, or a requested one (backfill);
- read the spans ExampleGen already ingested from the metadata store, so that re-running with no new
  span is refused instead of silently retraining on old data.

The local runner decides the span here and passes it to ExampleGen as a static `RangeConfig`, so the
span ingested is the span checked; on Kubeflow the range is a runtime parameter set by the scheduler.
With `data.window: K`, the K - 1 older window slots get their spans here too (`previous_slots`).
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
from pathlib import Path
from typing import Collection, Optional

from pipeline.config import ConfigError

#: TFX's span spec (tfx.components.example_gen.utils.SPAN_FULL_REGEX): {SPAN} or {SPAN:width}.
SPAN_SPEC = re.compile(r"\{SPAN(?::(\d+))?\}")


class NoNewSpan(Exception):
    """The latest span was already ingested by an earlier run: nothing new to train on."""


def has_span(path: str) -> bool:
    return SPAN_SPEC.search(path) is not None


def split_pattern(data_path: str) -> tuple[str, str]:
    """ExampleGen's (input_base, split pattern) for a data path.

    A directory is ingested whole (`*`), a file on its own; with `{SPAN}`, the input base is the
    directory above the first path segment holding the placeholder, and the pattern keeps it.
    """
    if has_span(data_path):
        segments = data_path.rstrip("/").split("/")
        first = next(i for i, segment in enumerate(segments) if has_span(segment))
        base, rest = "/".join(segments[:first]) or "/", "/".join(segments[first:])
        return base, rest if _looks_like_file(rest) else rest + "/*"
    if _looks_like_file(data_path):
        return os.path.dirname(data_path), os.path.basename(data_path)
    return data_path, "*"


def _looks_like_file(path: str) -> bool:
    return os.path.splitext(path)[1] != "" and not path.endswith("/")


def span_path(data_path: str, span: int) -> str:
    """The path of one span: `{SPAN}` replaced by the number (zero-padded to the spec's width)."""
    def fill(match: re.Match) -> str:
        return str(span).zfill(int(match.group(1) or 0))
    return SPAN_SPEC.sub(fill, data_path)


def available_spans(data_path: str) -> list[int]:
    """The span numbers present under a local `{SPAN}` path, ascending."""
    stripped = data_path.rstrip("/")
    pattern = SPAN_SPEC.sub("*", stripped)
    regex = _span_regex(stripped)
    spans = set()
    for candidate in glob.glob(pattern):
        match = regex.match(candidate.rstrip("/"))
        if match and (Path(candidate).is_file() or any(Path(candidate).iterdir())):
            spans.add(int(match.group(1)))
    return sorted(spans)


def _span_regex(path: str) -> re.Pattern:
    """`path` as a regex whose one group captures the span number."""
    match = SPAN_SPEC.search(path)
    return re.compile("^" + re.escape(path[:match.start()]) + r"(\d+)" + re.escape(path[match.end():]) + "$")


@dataclasses.dataclass(frozen=True)
class SpanChoice:
    """The span a run ingests, and whether it was asked for (a backfill may re-run an ingested span)."""

    span: int
    requested: bool
    available: tuple[int, ...]


def choose(data_path: str, requested: Optional[int]) -> SpanChoice:
    """The span to ingest: `requested`, or the latest present; ConfigError names what exists."""
    available = tuple(available_spans(data_path))
    if requested is not None:
        if requested not in available:
            listed = ", ".join(map(str, available)) or "none"
            raise ConfigError(f"--span {requested}: {span_path(data_path, requested)!r} does not exist "
                              f"(spans present under {data_path!r}: {listed})")
        return SpanChoice(requested, True, available)
    if not available:
        raise ConfigError(f"data.path: no span matches {data_path!r} yet; write span data there "
                          f"(e.g. {span_path(data_path, 1)!r}) or fix the path")
    return SpanChoice(available[-1], False, available)


def previous_slots(span: Optional[int], window: int,
                   available: Optional[Collection[int]] = None) -> tuple[Optional[int], ...]:
    """The spans of a window's older slots, newest first: span - 1, ..., span - window + 1.

    A slot whose span does not exist (below 0, or missing from `available` when the spans present are
    known) repeats `span`: fewer spans than the window exist, and ExamplesWindow counts a span once. With
    `span` None (the latest, resolved where ExampleGen runs) every slot is None: the latest again, so
    the window holds that one span.
    """
    def present(candidate: int) -> bool:
        return candidate >= 0 and (available is None or candidate in available)

    if span is None:
        return (None,) * (window - 1)
    return tuple(span - slot if present(span - slot) else span for slot in range(1, window))


def ingested_spans(metadata_path: Path) -> list[int]:
    """Spans ingested by runs that finished (ExampleGen records the span on its Examples artifact).

    A run that was interrupted or failed (a crash, a rejected span) does not count, so re-running the
    latest span then resumes it from cache (or reports the rejection again) instead of being refused.
    """
    if not metadata_path.exists():
        return []
    from pipeline import run_outcome

    store = run_outcome.open_store(metadata_path)
    spans = set()
    for run in run_outcome.run_contexts(store):
        components = run_outcome.run_components(store, run)
        if any(c.state in run_outcome.UNSUCCESSFUL_STATES for c in components):
            continue
        for component in components:
            for examples in component.outputs.get("examples", []) if component.node_id.endswith("ExampleGen") else []:
                span = run_outcome.artifact_span(examples)
                if span is not None:
                    spans.add(span)
    return sorted(spans)


def check_new(choice: SpanChoice, metadata_path: Path) -> None:
    """Refuse to re-ingest the latest span unless it was asked for (`--span N`, a deliberate backfill)."""
    if choice.requested:
        return
    seen = ingested_spans(metadata_path)
    if seen and choice.span <= max(seen):
        raise NoNewSpan(f"no new span since the last run: the latest span is {choice.span} and span "
                        f"{max(seen)} was already ingested by a finished run; add span {max(seen) + 1} or re-run "
                        f"one deliberately with --span {choice.span}")
