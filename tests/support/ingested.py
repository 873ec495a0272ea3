"""The tf.Examples and TFDV statistics a pipeline run gets from a CSV file, without running the pipeline.

Reads with ExampleGen's own reader (`components.tabular_input`, the penguin config's options: `NA` is
missing, numeric features are floats, only configured columns) and encodes with its encoder, so tests
that compute statistics or compare examples see exactly what ExampleGen would write.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence

from tests.support.trainer_configs import PROJECT_ROOT


def penguin_read_options(header: Optional[Sequence[str]] = None):
    """The penguin config's read options, narrowed to the configured columns `header` has (all by default)."""
    from pipeline import config, preflight

    options = preflight.read_options(config.load(PROJECT_ROOT / "configs/penguin.yaml").cfg)
    if header is None:
        return options
    return dataclasses.replace(options, numeric=tuple(c for c in options.numeric if c in header),
                               text=tuple(c for c in options.text if c in header))


def examples(csv_path: Path, header: Optional[Sequence[str]] = None) -> list[bytes]:
    """Serialized tf.Examples of every row (unlabeled rows kept), in file order."""
    from tfx_bsl.coders import example_coder

    from components import tabular_input
    from components.tabular_example_gen import encode

    encoder = example_coder.RecordBatchToExamplesEncoder()
    return [example for _, batch in tabular_input.read_batches(str(csv_path), "csv", penguin_read_options(header))
            for example in encode(batch, encoder)]


def statistics(csv_path: Path, header: Optional[Sequence[str]] = None):
    """TFDV statistics of the examples (written beside the CSV as a TFRecord file)."""
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    records = csv_path.with_suffix(".tfrecord")
    with tf.io.TFRecordWriter(str(records)) as writer:
        for example in examples(csv_path, header):
            writer.write(example)
    return tfdv.generate_statistics_from_tfrecord(str(records))
