"""Blessing on real runs: small slices do not veto, a gating slice refuses, a worse model loses to its baseline.

Three runs share one work directory, as a user's successive runs would: a short-trained penguin model
(blessed, pushed), the same model under a stricter per-slice gate (only the Evaluator runs again), then a
barely-trained candidate compared with the blessed one. The summary is the one `tfxpipe run` prints,
rendered from what the Evaluator recorded in ML Metadata.
"""
import io
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from pipeline import config, report, runners

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

ACCURACY = "sparse_categorical_accuracy"
#: A bound no slice can meet, so which island slices fail does not depend on training: every one does.
UNREACHABLE = 1.01


def _loaded(tmp_path: Path, name: str, evaluation: dict, model: dict) -> config.LoadedConfig:
    raw = yaml.safe_load((ROOT / "configs/penguin.yaml").read_text())
    raw["data"]["path"] = str(ROOT / "data/penguins")
    raw["validation"]["schema_path"] = str(ROOT / "configs/schemas/penguin.pbtxt")
    raw["evaluation"] = evaluation
    raw["model"].update(model)
    raw["serving"] = {"infra_validation": False}  # not what these tests check (~30 s a run)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return config.load(path)


def _island_gate(min_examples: int) -> dict:
    return {"slices": [["island"]], "thresholds": {ACCURACY: {"lower_bound": 0.8, "max_decrease": 0.05}},
            "slice_thresholds": [{"slice": ["island"], "metric": ACCURACY, "lower_bound": UNREACHABLE,
                                  "min_examples": min_examples}]}


def _run(tmp_path: Path, workdir: Path, name: str, evaluation: dict, model: dict):
    result = runners.run_local(_loaded(tmp_path, name, evaluation, model), workdir=workdir, show_progress=False)
    out = io.StringIO()
    report.print_run_summary(result, Console(file=out, width=250))
    return result, out.getvalue()


def _versions(workdir: Path) -> list[str]:
    model_dir = workdir / "serving_model" / "penguin"
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


def _island_counts(result) -> dict[str, int]:
    return {name: int(values["example_count"]) for name, values in result.metrics.items() if name.startswith("island:")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("blessing")


@pytest.fixture(scope="module")
def small_slices_run(workdir, tmp_path_factory):
    """Every island slice fails its gate, but each has fewer examples than min_examples; overall passes."""
    return _run(tmp_path_factory.mktemp("cfg"), workdir, "small", _island_gate(min_examples=1000), {"epochs": 20})


def test_failures_on_small_slices_are_reported_and_do_not_veto(small_slices_run, workdir):
    result, summary = small_slices_run
    assert result.succeeded, result.error
    assert result.metrics["Overall"][ACCURACY] >= 0.8
    assert result.blessed is True and result.pushed_path
    assert "Model blessed: yes" in summary
    assert "Reported, not gating" in summary
    for island, count in _island_counts(result).items():
        value = result.metrics[island][ACCURACY]
        assert (f"  reported  {island}: {ACCURACY} {value:.4g}, bound >= {UNREACHABLE:g} "
                f"({count} example{'s' * (count != 1)}; gates from 1000)") in summary
    assert "FAILED" not in summary
    assert "No blessed baseline yet" in summary
    assert not result.blessing.has_baseline
    assert len(_versions(workdir)) == 1


def test_a_gating_slice_that_fails_refuses_the_model_and_is_named(small_slices_run, workdir, tmp_path):
    counts = _island_counts(small_slices_run[0])
    min_examples = max(counts.values())  # the largest island gates; smaller ones are reported
    before = _versions(workdir)
    result, summary = _run(tmp_path, workdir, "gated", _island_gate(min_examples), {"epochs": 20})
    states = {c.node_id: c.state for c in result.components}
    assert states["Trainer"] == "cached" and states["Evaluator"] == "complete"
    assert result.blessed is False
    assert "Model blessed: no - " in summary
    for island, count in counts.items():
        value = result.metrics[island][ACCURACY]
        label = "FAILED  " if count >= min_examples else "reported"
        assert (f"  {label}  {island}: {ACCURACY} {value:.4g}, bound >= {UNREACHABLE:g} "
                f"({count} examples; gates from {min_examples})") in summary, summary
    assert "Compared with the last blessed model:" in summary
    assert "Pushed to:" not in summary
    assert _versions(workdir) == before


def test_a_candidate_clearly_worse_than_its_baseline_is_refused_by_max_decrease(small_slices_run, workdir, tmp_path):
    before = _versions(workdir)
    evaluation = {"thresholds": {ACCURACY: {"lower_bound": 0.0, "max_decrease": 0.05}}}  # only the change can refuse
    result, summary = _run(tmp_path, workdir, "worse", evaluation, {"epochs": 1, "learning_rate": 1e-5})
    assert result.blessed is False
    [check] = result.blessing.refusals
    baseline_accuracy = small_slices_run[0].metrics["Overall"][ACCURACY]
    assert check.slice == "Overall" and check.is_change
    assert check.baseline_value == pytest.approx(baseline_accuracy)
    assert check.value == pytest.approx(result.metrics["Overall"][ACCURACY])
    assert check.value < baseline_accuracy - 0.05
    assert (f"FAILED    Overall: {ACCURACY} {check.value:.4g} vs baseline {check.baseline_value:.4g} "
            f"(change {check.value - check.baseline_value:+.4g}; allowed to worsen by at most 0.05)") in summary
    assert _versions(workdir) == before
