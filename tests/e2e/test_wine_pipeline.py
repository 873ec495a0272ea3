"""A second dataset is a second YAML: the wine config, on TFX's BeamDagRunner, to a pushed model."""
from pathlib import Path

import pytest

from pipeline import config, runners

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_wine_pipeline_on_beam_runner_pushes_a_blessed_model(tmp_path):
    loaded = config.load(ROOT / "configs/wine.yaml")
    result = runners.run_local(loaded, workdir=tmp_path, runner="beam", show_progress=False)
    assert result.succeeded, result.error
    states = {c.node_id: c.state for c in result.components}
    assert states["SchemaGen"] == "complete", "no curated schema: the schema is inferred"
    assert "[ok]   skew (train vs eval split)" in result.validation_report
    assert result.metrics["Overall"]["sparse_categorical_accuracy"] >= 0.8
    assert result.blessed is True
    assert Path(result.pushed_path).parent == tmp_path / "serving_model" / "wine"
    assert (Path(result.pushed_path) / "saved_model.pb").is_file()
