"""`tfxpipe predict` output: classes with scores for classifiers, the value for regressors."""
from __future__ import annotations

import json

from serving import cli, client

CLASSIFIED = client.Prediction({"scores": [0.2, 0.8], "classes": ["benign", "malignant"], "predicted_class": "malignant"})
REGRESSED = client.Prediction({"outputs": 151.25})


def test_table_shows_classes_and_scores_or_values(capsys):
    cli._print([CLASSIFIED], "table")
    out = capsys.readouterr().out
    assert "malignant" in out and "0.800" in out and "benign" in out
    cli._print([REGRESSED, client.Prediction({"outputs": 75.0})], "table")
    out = capsys.readouterr().out
    assert "value" in out and "151.2" in out and "75" in out and "predicted class" not in out


def test_jsonl_has_the_value_for_regressors_and_classes_for_classifiers(capsys):
    cli._print([REGRESSED, CLASSIFIED], "jsonl")
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == {"value": 151.25, "outputs": {"outputs": 151.25}}
    assert second["predicted_class"] == "malignant" and second["scores"] == {"benign": 0.2, "malignant": 0.8}
