"""ExamplesWindow: the examples of the last K spans as one Examples artifact (`data.window: K`).

Why a component (TFX 1.16 sources): ExampleGen ingests exactly one span per execution (its static range
must start and end on one span); a Resolver with SpanRangeStrategy over earlier runs' Examples is
rejected by the KubeflowV2 compiler (step_builder.py compiles only LatestArtifactStrategy and
LatestBlessedModelStrategy); and a union of channels (`tfx.types.channel.union`) is refused there too
("Only single Channel is supported."). So the pipeline has one ExampleGen per window slot, each with its
own span (a static range locally, a runtime parameter on Kubeflow), and this component gathers their
files into one artifact that Transform and Trainer read like any ExampleGen output. One component per
window size: its inputs are the newest span's examples, the older slots' examples (one input key each,
since the compiler takes one channel per key) and the newest span's `validated_statistics`.

Which spans enter: only the newest (validated in this run: this component consumes what
AcceptValidatedData publishes, so it never runs on rejected data) and older slots whose span the data
gate accepted in an earlier run. AcceptValidatedData carries the set of accepted spans forward on every
`validated_statistics` artifact (the previous set, resolved like the drift baseline, plus its own span),
so the check needs nothing but this run's inputs, locally and in-cluster alike. A slot holding a span
already in the window (a repeated span stands for "no older span": fewer spans than K exist) counts once.
What entered and what was left out, and why, is recorded on the output artifact.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec

from components import validation_report
from components.data_validation_gate import artifact_span

NEWEST_KEY = "examples"
VALIDATED_STATISTICS_KEY = "validated_statistics"
OUTPUT_KEY = "window_examples"
_PREVIOUS_PREFIX = "previous_examples_"
#: String properties of an Examples artifact that say how to read its files, copied from the newest span's.
_FORMAT_PROPERTIES = ("file_format", "payload_format")


def previous_slot_key(slot: int) -> str:
    """The input key of the window slot `slot` spans before the newest (1 = the one before)."""
    return f"{_PREVIOUS_PREFIX}{slot}"


def window_members(newest: int, previous: Iterable[int], validated: Iterable[int]) -> tuple[list[int], list[int]]:
    """(spans in the window, ascending; older spans left out as never validated, ascending).

    `newest` is always in: it was validated in this run. An older slot's span enters when the gate
    accepted it in an earlier run; a span seen twice counts once.
    """
    accepted = set(validated) | {newest}
    members = {newest} | {span for span in previous if span in accepted}
    left_out = {span for span in previous if span not in accepted}
    return sorted(members), sorted(left_out)


class ExamplesWindowSpec(ComponentSpec):
    """The inputs every window has; `ExamplesWindow` adds one input per older slot."""

    PARAMETERS: dict = {}
    INPUTS = {
        NEWEST_KEY: ChannelParameter(type=standard_artifacts.Examples),
        VALIDATED_STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
    }
    OUTPUTS = {OUTPUT_KEY: ChannelParameter(type=standard_artifacts.Examples)}


def _spec_with_slots(slots: int) -> type[ExamplesWindowSpec]:
    inputs = dict(ExamplesWindowSpec.INPUTS)
    inputs.update({previous_slot_key(slot): ChannelParameter(type=standard_artifacts.Examples)
                   for slot in range(1, slots + 1)})
    return type(f"ExamplesWindow{slots + 1}Spec", (ExamplesWindowSpec,), {"INPUTS": inputs})


class Executor(base_executor.BaseExecutor):
    """Copy the files of every admitted span's splits into the output, prefixed by span (no name clash)."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        newest = artifact_utils.get_single_instance(input_dict[NEWEST_KEY])
        statistics = artifact_utils.get_single_instance(input_dict[VALIDATED_STATISTICS_KEY])
        previous = {artifact_span(a): a for key, artifacts in input_dict.items()
                    if key.startswith(_PREVIOUS_PREFIX) for a in artifacts}
        validated = json.loads(statistics.get_string_custom_property(validation_report.VALIDATED_SPANS_PROPERTY) or "[]")
        members, left_out = window_members(artifact_span(newest), previous, validated)
        by_span = {**previous, artifact_span(newest): newest}
        window = artifact_utils.get_single_instance(output_dict[OUTPUT_KEY])
        window.split_names = newest.split_names
        for split in artifact_utils.decode_split_names(newest.split_names):
            target = artifact_utils.get_split_uri([window], split)
            fileio.makedirs(target)
            for span in members:
                source = artifact_utils.get_split_uri([by_span[span]], split)
                for name in fileio.listdir(source):
                    fileio.copy(os.path.join(source, name), os.path.join(target, f"span-{span}-{name}"))
        window.set_int_custom_property("span", artifact_span(newest))
        for name in _FORMAT_PROPERTIES:
            if newest.has_custom_property(name):
                window.set_string_custom_property(name, newest.get_string_custom_property(name))
        window.set_string_custom_property(validation_report.WINDOW_SPANS_PROPERTY, json.dumps(members))
        window.set_string_custom_property(validation_report.UNVALIDATED_SPANS_PROPERTY, json.dumps(left_out))
        window.set_int_custom_property(validation_report.WINDOW_SIZE_PROPERTY,
                                       1 + sum(key.startswith(_PREVIOUS_PREFIX) for key in input_dict))


class ExamplesWindow(base_component.BaseComponent):
    """The newest span's examples plus those of `len(previous_examples)` older window slots."""

    SPEC_CLASS = ExamplesWindowSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, validated_statistics: types.BaseChannel,
                 previous_examples: list[types.BaseChannel]):
        spec_class = _spec_with_slots(len(previous_examples))
        super().__init__(spec=spec_class(
            examples=examples, validated_statistics=validated_statistics,
            window_examples=types.Channel(type=standard_artifacts.Examples),
            **{previous_slot_key(slot): channel for slot, channel in enumerate(previous_examples, start=1)}))
