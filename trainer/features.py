"""Names the Transform output shares with its readers (model builder, run_fn, warm-up writer).

The names that cross the exported model's boundary (`<name>_xf`, signature and output keys) live in
`trainer.contract`; the typed config and its per-feature answers in `trainer.trainer_config`. What is
left here is internal to the trainer: how a categorical feature's vocabulary file is named, so
`run_fn` can read its size back, and which value stands for a missing category.
"""
from __future__ import annotations

#: Value a missing categorical cell is mapped to before the vocabulary is computed, so that
#: "missing" is a category of its own (learned from training data) rather than an OOV bucket.
MISSING_CATEGORY = "__missing__"


def vocabulary_file_name(name: str) -> str:
    """Vocabulary file name of a categorical feature, readable back with
    `TFTransformOutput.vocabulary_by_name` / `vocabulary_size_by_name`."""
    return name
