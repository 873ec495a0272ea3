"""pipeline.tfma_results reads TFMA's metrics without TensorFlow, and agrees with TFMA's own reader."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline import tfma_results
from serving import request_log

ROOT = Path(__file__).resolve().parents[2]


def test_the_generated_metrics_module_is_where_we_load_it_from():
    """Fails when a TFMA upgrade moves the file: tfma_results then falls back to the slow public import."""
    assert tfma_results.metrics_module_file().endswith("tensorflow_model_analysis/proto/metrics_for_slice_pb2.py")


def test_reading_metrics_does_not_import_tensorflow(tmp_path):
    code = ("import sys; from pipeline import tfma_results; tfma_results.metrics_for_slice_class(); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def _write(directory: Path, records) -> None:
    directory.mkdir()
    (directory / "metrics-00000-of-00001").write_bytes(b"".join(request_log.frame(r.SerializeToString()) for r in records))


def test_metrics_by_slice_names_slices_and_classes_as_tfma_does(tmp_path):
    import tensorflow_model_analysis as tfma

    metrics_class = tfma_results.metrics_for_slice_class()
    overall, sliced = metrics_class(), metrics_class()
    for name, value, model, class_id in (("accuracy", 0.9, "", None), ("accuracy", 0.5, "baseline", None),
                                         ("recall", 0.25, "", 2)):
        entry = overall.metric_keys_and_values.add()
        entry.key.name, entry.key.model_name = name, model
        if class_id is not None:
            entry.key.sub_key.class_id.value = class_id
        entry.value.double_value.value = value
    sliced.slice_key.single_slice_keys.add(column="island", bytes_value=b"Biscoe")
    sliced.slice_key.single_slice_keys.add(column="year", int64_value=2008)
    entry = sliced.metric_keys_and_values.add()
    entry.key.name = "accuracy"
    entry.value.double_value.value = 0.75
    _write(tmp_path / "evaluation", [sliced, overall])

    result = tfma_results.metrics_by_slice(str(tmp_path / "evaluation"))
    assert list(result) == ["Overall", "island_X_year:Biscoe_X_2008"]
    assert result["Overall"] == {"accuracy": 0.9, "recall/class_2": 0.25}
    expected = tfma.slicer.stringify_slice_key(tfma.slicer.deserialize_slice_key(sliced.slice_key))
    assert tfma_results.slice_name(sliced.slice_key) == expected


def test_headline_metrics_keep_a_binary_models_positive_class_metrics_and_drop_per_class_ones():
    binary = {"example_count": 60.0, "auc/class_1": 0.97, "precision/class_1": 0.9}
    assert tfma_results.headline_metrics(binary) == {"auc": 0.97, "example_count": 60.0, "precision": 0.9}
    multiclass = {"sparse_categorical_accuracy": 0.98, "precision/class_0": 1.0, "precision/class_1": 0.9,
                  "precision/class_2": 0.95}
    assert tfma_results.headline_metrics(multiclass) == {"sparse_categorical_accuracy": 0.98}
