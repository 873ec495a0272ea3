"""Spans: `{SPAN}` paths, choosing the latest or a requested span, and refusing to re-ingest one by accident."""
import shutil
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import config, preflight, runners, spans
from tests.support import mlmd_records

ROOT = Path(__file__).resolve().parents[2]


def _span_data(root: Path, numbers=(1, 2, 3), width: int = 0) -> Path:
    for n in numbers:
        directory = root / f"span-{str(n).zfill(width)}"
        directory.mkdir(parents=True)
        shutil.copy(ROOT / "data/penguins/penguins.csv", directory / "penguins.csv")
    return root


def _loaded(data: Path, pattern: str = "span-{SPAN}"):
    return config.load(ROOT / "configs/penguin.yaml", data=str(data / pattern))


@pytest.mark.parametrize("path, expected", [
    ("/d/penguins/span-{SPAN}/", ("/d/penguins", "span-{SPAN}/*")),
    ("/d/penguins/span-{SPAN:3}/day", ("/d/penguins", "span-{SPAN:3}/day/*")),
    ("/d/span-{SPAN}.csv", ("/d", "span-{SPAN}.csv")),
    ("/d/penguins", ("/d/penguins", "*")),
    ("/d/penguins/one.csv", ("/d/penguins", "one.csv")),
])
def test_example_gen_base_and_pattern(path, expected):
    assert spans.split_pattern(path) == expected


def test_latest_and_requested_spans(tmp_path):
    data = _span_data(tmp_path, (1, 2, 10))
    (tmp_path / "span-11").mkdir()  # empty: not landed yet
    assert spans.available_spans(str(tmp_path / "span-{SPAN}")) == [1, 2, 10]
    assert spans.choose(str(data / "span-{SPAN}"), None) == spans.SpanChoice(10, False, (1, 2, 10))
    assert spans.choose(str(data / "span-{SPAN}"), 2).span == 2
    with pytest.raises(config.ConfigError, match=r"--span 7: .*span-7' does not exist \(spans present .*: 1, 2, 10\)"):
        spans.choose(str(data / "span-{SPAN}"), 7)


def test_zero_padded_spans(tmp_path):
    data = _span_data(tmp_path, (1, 2), width=3)
    assert spans.available_spans(str(data / "span-{SPAN:3}")) == [1, 2]
    assert spans.span_path(str(data / "span-{SPAN:3}"), 2) == str(data / "span-002")


def test_no_span_yet(tmp_path):
    with pytest.raises(config.ConfigError, match="no span matches"):
        spans.choose(str(tmp_path / "span-{SPAN}"), None)


def test_config_accepts_span_paths_and_checks_the_directory_above(tmp_path):
    loaded = _loaded(_span_data(tmp_path))
    assert loaded.data_path.endswith("span-{SPAN}") and loaded.span is None
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(ROOT / "configs/penguin.yaml", data=str(tmp_path / "missing/span-{SPAN}"))


@pytest.mark.parametrize("data, message", [
    ({"path": "a/{SPAN}/b/{SPAN}"}, "holds {SPAN} 2 times"),
    ({"path": "data/penguins", "window": 3}, "window 3 needs spans"),
])
def test_span_config_mistakes(data, message):
    with pytest.raises(ValueError, match=message):
        config.DataConfig(**data)


def test_a_window_is_accepted_with_spans():
    assert config.DataConfig(path="data/span-{SPAN}", window=3).window == 3


@pytest.mark.parametrize("span, window, available, expected", [
    (5, 1, None, ()),
    (5, 3, None, (4, 3)),
    (5, 3, (1, 3, 5), (5, 3)),  # span 4 is missing: its slot repeats the newest (counted once)
    (1, 3, (1,), (1, 1)),  # fewer spans than the window: train on those there are
    (1, 3, None, (0, 1)),  # nothing below span 0
    (None, 3, None, (None, None)),  # the latest, resolved where ExampleGen runs: the window holds it alone
])
def test_previous_window_slots(span, window, available, expected):
    assert spans.previous_slots(span, window, available) == expected


def test_the_runner_fills_the_window_with_the_spans_present(tmp_path):
    data = _span_data(tmp_path, (1, 2, 4))
    raw = config.load(ROOT / "configs/penguin.yaml", data=str(data / "span-{SPAN}"))
    loaded = raw.model_copy(update={"cfg": raw.cfg.model_copy(update={
        "data": raw.cfg.data.model_copy(update={"window": 3})})})
    latest, _ = runners.choose_span(loaded, None)
    assert (latest.span, latest.previous_spans) == (4, (4, 2))
    backfill, _ = runners.choose_span(loaded, 2)
    assert (backfill.span, backfill.previous_spans) == (2, (1, 2))
    assert runners.pipeline_paths(backfill, runners.Workdir(tmp_path / "work")).previous_spans == (1, 2)


def test_preflight_reads_the_chosen_span(tmp_path):
    data = _span_data(tmp_path, (1, 2))
    (data / "span-2" / "penguins.csv").write_text("species,island\nAdelie,Biscoe\n")
    loaded = _loaded(data)
    with pytest.raises(config.ConfigError, match="span-2"):
        preflight.check_input_files(loaded)  # the latest span by default
    chosen, _ = runners.choose_span(loaded, 1)
    assert chosen.span == 1 and chosen.span_data_path == str(data / "span-1")
    preflight.check_input_files(chosen)


def test_span_flag_needs_a_span_path():
    with pytest.raises(config.ConfigError, match=r"--span 2: data.path .* has no \{SPAN\} placeholder"):
        runners.choose_span(config.load(ROOT / "configs/penguin.yaml"), 2)


def _ingested(path: Path, span: int, run_id: str, trainer_state=None) -> None:
    """A run whose ExampleGen recorded `span` on its Examples artifact (a custom property, as TFX 1.16 does)."""
    store = mlmd_records.writable_store(path)
    run = mlmd_records.start_run(store, run_id)
    mlmd_records.record(store, run, "CsvExampleGen", outputs={"examples": mlmd_records.artifact("Examples", span=span)})
    mlmd_records.record(store, run, "latest_validated_statistics_resolver", mlmd.Execution.FAILED)  # first run: empty
    if trainer_state is not None:
        mlmd_records.record(store, run, "Trainer", trainer_state)


def test_no_new_span_since_the_last_run_is_refused_but_a_backfill_is_not(tmp_path):
    data = _span_data(tmp_path / "data", (1, 2))
    store_path = tmp_path / "metadata.sqlite"
    latest = spans.choose(str(data / "span-{SPAN}"), None)
    spans.check_new(latest, store_path)  # no store yet: new
    _ingested(store_path, 1, "run-1")
    spans.check_new(latest, store_path)  # span 2 is new
    _ingested(store_path, 2, "run-2")
    assert spans.ingested_spans(store_path) == [1, 2]
    with pytest.raises(spans.NoNewSpan, match="no new span since the last run: the latest span is 2"):
        spans.check_new(latest, store_path)
    spans.check_new(spans.choose(str(data / "span-{SPAN}"), 2), store_path)  # --span 2: deliberate


@pytest.mark.parametrize("state", [mlmd.Execution.CANCELED, mlmd.Execution.FAILED])
def test_the_span_of_an_interrupted_or_failed_run_can_be_resumed(tmp_path, state):
    data = _span_data(tmp_path / "data", (1,))
    store_path = tmp_path / "metadata.sqlite"
    _ingested(store_path, 1, "run-1", trainer_state=state)
    assert spans.ingested_spans(store_path) == []
    spans.check_new(spans.choose(str(data / "span-{SPAN}"), None), store_path)
