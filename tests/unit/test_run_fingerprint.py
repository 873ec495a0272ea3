"""A run that would only repeat the last one is answered from ML Metadata, before TFX is imported."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import config, run_fingerprint, runners
from tests.support import mlmd_records

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def loaded(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ROOT / "data/penguins/penguins.csv", data / "penguins.csv")
    return config.load(ROOT / "configs/penguin.yaml", data=str(data))


def _with_model(loaded, **model):
    cfg = loaded.cfg.model_copy(update={"model": loaded.cfg.model.model_copy(update=model)})
    return loaded.model_copy(update={"cfg": cfg})


def test_the_fingerprint_follows_config_data_and_arguments(loaded):
    digest = run_fingerprint.fingerprint(loaded, "local", [])
    assert digest == run_fingerprint.fingerprint(loaded, "local", [])
    assert digest != run_fingerprint.fingerprint(_with_model(loaded, epochs=61), "local", [])
    assert digest != run_fingerprint.fingerprint(loaded, "beam", [])
    assert digest != run_fingerprint.fingerprint(loaded, "local", ["--direct_num_workers=2"])
    data_file = Path(loaded.data_path) / "penguins.csv"
    stat = data_file.stat()
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert digest != run_fingerprint.fingerprint(loaded, "local", [])


def test_warm_started_training_is_never_a_repeat(loaded):
    assert run_fingerprint.fingerprint(_with_model(loaded, warm_start=True), "local", []) is None


def test_record_round_trip_and_forget(tmp_path):
    assert run_fingerprint.read(tmp_path) is None
    run_fingerprint.write(tmp_path, run_fingerprint.LastRun("abc", "run-1"))
    assert run_fingerprint.read(tmp_path) == run_fingerprint.LastRun("abc", "run-1")
    run_fingerprint.forget(tmp_path)
    assert run_fingerprint.read(tmp_path) is None
    (tmp_path / run_fingerprint.FINGERPRINT_FILE).write_text("not json")
    assert run_fingerprint.read(tmp_path) is None


def _finished_run(layout: runners.Workdir, name: str) -> None:
    store = mlmd_records.writable_store(layout.metadata_path)
    run = mlmd_records.start_run(store, name)
    for node in ("CsvExampleGen", "StatisticsGen", "Trainer"):
        mlmd_records.record(store, run, node, mlmd.Execution.COMPLETE)


def test_a_repeat_reports_the_last_run_cached_until_another_run_happens(loaded, tmp_path):
    layout = runners.Workdir(tmp_path / "run")
    layout.root.mkdir()
    _finished_run(layout, "run-1")
    digest = run_fingerprint.fingerprint(loaded, "local", [])
    assert runners._repeat_of_last_run(loaded, layout, digest, 0.0) is None, "no record yet"
    run_fingerprint.write(layout.root, run_fingerprint.LastRun(digest, "run-1"))
    repeat = runners._repeat_of_last_run(loaded, layout, digest, 0.0)
    assert repeat is not None and repeat.succeeded
    assert {c.node_id: c.state for c in repeat.components} == dict.fromkeys(
        ("CsvExampleGen", "StatisticsGen", "Trainer"), "cached")
    assert runners._repeat_of_last_run(loaded, layout, "other", 0.0) is None, "something changed"
    assert runners._repeat_of_last_run(loaded, layout, None, 0.0) is None, "never a repeat"
    _finished_run(layout, "run-2")
    assert runners._repeat_of_last_run(loaded, layout, digest, 0.0) is None, "another run since"


def test_local_beam_stages_name_their_runner_and_skip_tfx_packaging():
    image = "ghcr.io/tfxpipe/pipeline:0.1.0"
    assert runners.local_beam_args(["--direct_num_workers=1"], image) == [
        runners.LOCAL_BEAM_RUNNER, "--direct_num_workers=1", f"--sdk_container_image={image}"]
    assert runners.local_beam_args(["--extra_package=/dist/x.tar.gz"], image) == [
        runners.LOCAL_BEAM_RUNNER, "--extra_package=/dist/x.tar.gz"]
    remote = ["--runner=DataflowRunner", "--project=p"]
    assert runners.local_beam_args(remote, image) == remote, "remote workers need TFX's packaging"
