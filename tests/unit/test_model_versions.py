"""Pushed versions read from files and ML Metadata; rollback and promotion as label changes in models.config."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from components import validation_report
from pipeline import model_versions, tfma_results
from pipeline.model_versions import VersionError
from serving import model_config, request_log, version_labels
from tests.support import mlmd_records

ROOT = Path(__file__).resolve().parents[2]


def _metrics_file(directory: Path, accuracy: float) -> None:
    metrics_class = tfma_results.metrics_for_slice_class()
    overall = metrics_class()
    for name, value, model, class_id in (("sparse_categorical_accuracy", accuracy, "", None),
                                         ("sparse_categorical_accuracy", 0.5, "baseline", None),
                                         ("example_count", 60.0, "", None), ("recall", 0.2, "", 0),
                                         ("recall", 0.1, "", 1)):  # a multiclass model: every class
        entry = overall.metric_keys_and_values.add()
        entry.key.name, entry.key.model_name = name, model
        if class_id is not None:
            entry.key.sub_key.class_id.value = class_id
        entry.value.double_value.value = value
    sliced = metrics_class()
    sliced.slice_key.single_slice_keys.add(column="island", bytes_value=b"Biscoe")
    sliced.metric_keys_and_values.add().key.name = "sparse_categorical_accuracy"
    directory.mkdir(parents=True)
    (directory / "metrics-00000-of-00001.tfrecord").write_bytes(
        b"".join(request_log.frame(m.SerializeToString()) for m in (sliced, overall)))


def _stored(store, uri: str):
    [artifact] = store.get_artifacts_by_uri(uri)
    return artifact


def _push_run(store, tmp_path: Path, run_id: str, span: int, version: int, accuracy: float, window=None) -> None:
    """ExampleGen -> Transform -> Trainer -> Evaluator -> Pusher, linked as TFX links them (with `window`,
    the Examples Transform reads are ExamplesWindow's, recording the spans they hold)."""
    run = mlmd_records.start_run(store, run_id)
    root = tmp_path / "pipeline_root" / run_id
    a = mlmd_records.artifact
    # TFX 1.16 declares `span` on the Examples type; later releases record it as a custom property.
    examples = (a("Examples", f"{root}/examples", properties={"span": span}) if span % 2
                else a("Examples", f"{root}/examples", span=span))
    if window is not None:
        examples.custom_properties[validation_report.WINDOW_SPANS_PROPERTY].string_value = json.dumps(window)
    mlmd_records.record(store, run, "CsvExampleGen", outputs={"examples": examples})
    mlmd_records.record(store, run, "Transform", inputs={"examples": _stored(store, f"{root}/examples")},
                        outputs={"transformed_examples": a("Examples", f"{root}/transformed")})
    mlmd_records.record(store, run, "Trainer", inputs={"examples": _stored(store, f"{root}/transformed")},
                        outputs={"model": a("Model", f"{root}/model")})
    _metrics_file(root / "evaluation", accuracy)
    mlmd_records.record(store, run, "Evaluator", inputs={"model": _stored(store, f"{root}/model")},
                        outputs={"evaluation": a("ModelEvaluation", f"{root}/evaluation"),
                                 "blessing": a("ModelBlessing", f"{root}/blessing", blessed=1)})
    mlmd_records.record(store, run, "Pusher",
                        inputs={"model": _stored(store, f"{root}/model"),
                                "model_blessing": _stored(store, f"{root}/blessing")},
                        outputs={"pushed_model": a("PushedModel", f"{root}/pushed", pushed=1,
                                                   pushed_version=str(version),
                                                   pushed_destination=f"/serving/penguin/{version}")})


@pytest.fixture
def workdir(tmp_path):
    """runs/penguin-like: versions 1 and 2 pushed from spans 1 and 2, with a metadata store."""
    for version in (1, 2):
        (tmp_path / "serving_model" / "penguin" / str(version)).mkdir(parents=True)
    store = mlmd_records.writable_store(tmp_path / "metadata.sqlite")
    _push_run(store, tmp_path, "run-1", span=1, version=1, accuracy=0.91)
    _push_run(store, tmp_path, "run-2", span=2, version=2, accuracy=0.95)
    del store
    return tmp_path


def _serving(workdir: Path) -> Path:
    return workdir / "serving_model"


def test_pushed_versions_carry_span_blessing_metrics_and_labels(workdir):
    config = model_versions.default_config_path(_serving(workdir))
    version_labels.set_labels(str(config), "penguin", str(_serving(workdir) / "penguin"), {"stable": 2})
    versions = model_versions.pushed_versions(_serving(workdir), "penguin", workdir / "metadata.sqlite", config)
    assert [(v.version, v.spans, v.blessed, v.labels) for v in versions] == [
        (1, (1,), True, ()), (2, (2,), True, ("stable",))]
    assert versions[1].metrics == {"example_count": 60.0, "sparse_categorical_accuracy": 0.95}
    assert versions[0].pushed_at <= versions[1].pushed_at


def test_a_version_trained_on_a_window_lists_the_window_spans(workdir):
    (workdir / "serving_model" / "penguin" / "3").mkdir()
    store = mlmd_records.writable_store(workdir / "metadata.sqlite")
    _push_run(store, workdir, "run-3", span=4, version=3, accuracy=0.96, window=[2, 4])
    del store
    config = model_versions.default_config_path(_serving(workdir))
    versions = model_versions.pushed_versions(_serving(workdir), "penguin", workdir / "metadata.sqlite", config)
    assert [v.spans for v in versions] == [(1,), (2,), (2, 4)]


def test_without_a_metadata_store_versions_come_from_the_files(workdir):
    (workdir / "metadata.sqlite").unlink()
    versions = model_versions.pushed_versions(_serving(workdir), "penguin", workdir / "metadata.sqlite")
    assert [(v.version, v.spans, v.blessed, dict(v.metrics)) for v in versions] == [(1, (), None, {}), (2, (), None, {})]


def test_rollback_points_stable_and_canary_at_the_previous_version_and_keeps_both_loaded(workdir):
    serving, config = _serving(workdir), _serving(workdir) / "models.config"
    change = model_versions.rollback(serving, "penguin", config)
    assert (dict(change.before), dict(change.after), change.loaded) == ({}, {"stable": 1, "canary": 1}, (1,))
    [parsed] = model_config.model_configs(model_config.read_model_server_config(str(config)))
    assert parsed.base_path == str((serving / "penguin").resolve())
    assert parsed.version_policy == model_config.VersionPolicy("specific", versions=(1,))
    assert dict(parsed.version_labels) == {"stable": 1, "canary": 1}
    with pytest.raises(VersionError, match="version 1 is the oldest pushed version"):
        model_versions.rollback(serving, "penguin", config)
    forward = model_versions.promote(serving, "penguin", config)  # a later good run rolls forward
    assert dict(forward.after) == {"stable": 2, "canary": 2} and forward.loaded == (1, 2)
    back = model_versions.rollback(serving, "penguin", config)
    assert dict(back.after) == {"stable": 1, "canary": 1} and back.loaded == (1, 2)
    with pytest.raises(VersionError, match="version 7 of penguin is not pushed"):
        model_versions.rollback(serving, "penguin", config, to=7)


def test_promoting_keeps_the_rollback_target_loaded(workdir):
    """So that the next rollback is a label move onto a loaded version, as TF Serving requires."""
    serving, config = _serving(workdir), _serving(workdir) / "models.config"
    change = model_versions.promote(serving, "penguin", config)
    assert dict(change.after) == {"stable": 2, "canary": 2} and change.loaded == (1, 2)


def test_canary_then_stable(workdir):
    serving, config = _serving(workdir), _serving(workdir) / "models.config"
    canary = model_versions.promote(serving, "penguin", config, canary=True)
    assert dict(canary.after) == {"stable": 1, "canary": 2} and canary.loaded == (1, 2)
    stable = model_versions.promote(serving, "penguin", config, version=2)
    assert dict(stable.after) == {"stable": 2, "canary": 2} and stable.loaded == (1, 2)


def test_an_existing_config_keeps_its_other_models_and_settings(workdir):
    config = _serving(workdir) / "models.config"
    config.write_text("""model_config_list {
  config { name: 'other' base_path: '/models/other' model_platform: 'tensorflow' }
  config { name: 'penguin' base_path: '/models/penguin' model_platform: 'tensorflow'
           model_version_policy { latest { num_versions: 2 } }
           logging_config { log_collector_config { filename_prefix: '/logs/penguin' }
                            sampling_config { sampling_rate: 0.1 } } }
}""")
    model_versions.rollback(_serving(workdir), "penguin", config, to=1)
    configs = {c.name: c for c in model_config.model_configs(model_config.read_model_server_config(str(config)))}
    assert configs["other"].base_path == "/models/other"
    penguin = configs["penguin"]
    assert penguin.base_path == "/models/penguin"  # where the server sees the models (e.g. a pod's mount)
    assert penguin.request_log == model_config.RequestLogConfig("/logs/penguin", pytest.approx(0.1))
    assert dict(penguin.version_labels) == {"stable": 1, "canary": 1}
    assert list(config.parent.glob(".models.config.*")) == []  # written via a renamed temporary file


def test_models_and_rollback_commands(workdir, tmp_path):
    from pipeline.cli import main

    common = ["--config", str(ROOT / "configs/penguin.yaml"), "--workdir", str(workdir)]
    listing = CliRunner().invoke(main, ["models", *common])
    assert listing.exit_code == 0, listing.output
    assert "sparse_categorical_accuracy 0.95" in listing.output and "no labels in" in listing.output
    rolled = CliRunner().invoke(main, ["rollback", *common])
    assert rolled.exit_code == 0, rolled.output
    assert "canary - -> 1" in rolled.output and "stable - -> 1" in rolled.output
    after = CliRunner().invoke(main, ["models", *common])
    assert "canary, stable" in after.output
    elsewhere = tmp_path / "k8s" / "models.config"
    promoted = CliRunner().invoke(main, ["promote", *common, "--canary", "--model_config_file", str(elsewhere)])
    assert promoted.exit_code == 0 and version_labels.read_labels(str(elsewhere), "penguin") == {"stable": 1, "canary": 2}
    refused = CliRunner().invoke(main, ["rollback", *common, "--to", "9"])
    assert refused.exit_code == 1 and "version 9 of penguin is not pushed" in refused.output


def test_version_commands_import_neither_tensorflow_nor_tfx(workdir):
    code = ("import sys; from pathlib import Path; from pipeline import versions_cli, model_versions; "
            f"w = Path({str(workdir)!r}); "
            "v = model_versions.pushed_versions(w / 'serving_model', 'penguin', w / 'metadata.sqlite'); "
            "assert v[-1].metrics, v; "
            "print(sorted(m for m in ('tensorflow', 'tfx', 'tensorflow_model_analysis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
