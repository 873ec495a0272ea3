"""ExamplesWindow: which spans enter a window, and its executor gathering their files into one artifact."""
import json

import pytest
from tfx.types import standard_artifacts

from components import examples_window, validation_report


@pytest.mark.parametrize("newest, previous, validated, expected", [
    (3, [2, 1], [1, 2], ([1, 2, 3], [])),
    (4, [3, 2], [1, 2], ([2, 4], [3])),  # span 3 was rejected (or never run): left out
    (1, [1, 1], [], ([1], [])),  # fewer spans than the window: the slots repeat the newest
    (2, [1], [], ([2], [1])),  # no record of validated spans (a store from before windows): newest only
])
def test_window_members(newest, previous, validated, expected):
    assert examples_window.window_members(newest, previous, validated) == expected


def test_validated_spans_accumulate():
    assert validation_report.validated_spans(None, 1) == [1]
    assert validation_report.validated_spans("[1, 3]", 2) == [1, 2, 3]
    assert validation_report.validated_spans("[1, 2]", 1) == [1, 2], "a backfill adds nothing new"


def _examples(tmp_path, span: int, name: str = "data_tfrecord-00000-of-00001.gz"):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / f"examples-{span}")
    examples.split_names = json.dumps(["train", "eval"])
    examples.set_int_custom_property("span", span)
    examples.set_string_custom_property("file_format", "tfrecords_gzip")
    for split in ("train", "eval"):
        (tmp_path / f"examples-{span}" / f"Split-{split}").mkdir(parents=True)
        (tmp_path / f"examples-{span}" / f"Split-{split}" / name).write_text(f"{split} of span {span}")
    return examples


def test_executor_copies_the_admitted_spans_and_records_what_it_left_out(tmp_path):
    statistics = standard_artifacts.ExampleStatistics()
    statistics.set_string_custom_property(validation_report.VALIDATED_SPANS_PROPERTY, "[1, 2, 4]")
    window = standard_artifacts.Examples()
    window.uri = str(tmp_path / "window")
    examples_window.Executor().Do(
        {"examples": [_examples(tmp_path, 4)], "validated_statistics": [statistics],
         "previous_examples_1": [_examples(tmp_path, 3)], "previous_examples_2": [_examples(tmp_path, 2)]},
        {"window_examples": [window]}, {})
    assert sorted(p.name for p in (tmp_path / "window" / "Split-train").iterdir()) == [
        "span-2-data_tfrecord-00000-of-00001.gz", "span-4-data_tfrecord-00000-of-00001.gz"]
    assert (tmp_path / "window" / "Split-eval" / "span-2-data_tfrecord-00000-of-00001.gz").read_text() == "eval of span 2"
    assert json.loads(window.get_string_custom_property(validation_report.WINDOW_SPANS_PROPERTY)) == [2, 4]
    assert json.loads(window.get_string_custom_property(validation_report.UNVALIDATED_SPANS_PROPERTY)) == [3]
    assert window.get_int_custom_property(validation_report.WINDOW_SIZE_PROPERTY) == 3
    assert window.get_int_custom_property("span") == 4
    assert window.get_string_custom_property("file_format") == "tfrecords_gzip"
    assert json.loads(window.split_names) == ["train", "eval"]
