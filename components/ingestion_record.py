"""What our ExampleGen records on its Examples artifact about the rows it read (names and reader).

Written by `components.tabular_example_gen` and read by `pipeline.run_outcome` (the run summary,
`tfxpipe report`). This module imports nothing heavy, so read-only commands can use it.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

#: Examples custom properties: rows read from the input files, and rows dropped because their label was missing.
ROWS_READ_PROPERTY = "rows_read"
UNLABELED_ROWS_PROPERTY = "unlabeled_rows_dropped"


@dataclasses.dataclass(frozen=True)
class Ingestion:
    """How many rows ExampleGen read, and how many it dropped for a missing label."""

    rows_read: int
    unlabeled_rows_dropped: int


def read(artifact) -> Optional[Ingestion]:
    """The record on an MLMD Examples artifact, or None (stock ExampleGens, e.g. TFRecord input, keep none)."""
    rows = artifact.custom_properties.get(ROWS_READ_PROPERTY)
    if rows is None:
        return None
    dropped = artifact.custom_properties.get(UNLABELED_ROWS_PROPERTY)
    return Ingestion(rows_read=rows.int_value, unlabeled_rows_dropped=dropped.int_value if dropped else 0)
