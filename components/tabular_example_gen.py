"""ExampleGen for CSV and Parquet files, read as the config describes them (`components.tabular_input`).

Stock CsvExampleGen infers each column's type from the data and knows no missing-value markers, so a
column of numbers with `NA` in it becomes text, and a file whose integer column has gaps (pandas writes
float64) disagrees with a schema saying INT. This executor reads the configured columns with the types
the config declares, turns missing-value markers into missing values, drops rows without a label
(counting them), and writes the same artifact stock ExampleGens write: gzipped TFRecords of tf.Example,
hash-split into train and eval. It is a `FileBasedExampleGen` custom executor, as TFX's own Parquet
executor is, so spans (`{SPAN}` patterns, range_config), caching and every runner (Beam, Kubeflow with
Dataflow) work unchanged.

Each file is read in blocks (a 10-million-row file is never in memory at once), and each block is
encoded to tf.Examples by tfx_bsl's C++ RecordBatchToExamplesEncoder. How many rows were read and how
many were dropped for a missing label are Beam counters, recorded as custom properties of the Examples
artifact (`components.ingestion_record`) for the run summary.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterator

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components import ingestion_record, tabular_input

_NAMESPACE = "tfxpipe.ExampleGen"
#: custom_config key holding the ReadOptions (as plain data) and the data format.
_OPTIONS_KEY, _FORMAT_KEY = "read_options", "format"


def custom_config(data_format: str, read_options: Dict[str, Any]) -> example_gen_pb2.CustomConfig:
    """ExampleGen's custom_config for `tabular_example_gen(...)`: the format and how to read it."""
    struct = struct_pb2.Struct()
    struct.update({_FORMAT_KEY: data_format, _OPTIONS_KEY: read_options})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def _parse_custom_config(exec_properties: Dict[str, Any]) -> tuple[str, tabular_input.ReadOptions]:
    config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY], config)
    struct = struct_pb2.Struct()
    config.custom_config.Unpack(struct)
    raw = json_format.MessageToDict(struct)
    return raw[_FORMAT_KEY], tabular_input.ReadOptions.from_dict(raw[_OPTIONS_KEY])


def input_files(input_base: str, split_pattern: str, data_format: str) -> list[str]:
    """The files a split pattern matches: a named file as is, a wildcard's data files only."""
    pattern = os.path.join(input_base, split_pattern)
    if not any(c in split_pattern for c in "*?["):
        return [pattern]
    return sorted(path for path in fileio.glob(pattern)
                  if not fileio.isdir(path) and tabular_input.is_data_file(path, data_format))


class _ReadFile(beam.DoFn):
    """One file -> typed, labelled record batches, counting what was read and dropped."""

    def __init__(self, data_format: str, options: tabular_input.ReadOptions):
        self._format, self._options = data_format, options
        self._read = beam.metrics.Metrics.counter(_NAMESPACE, ingestion_record.ROWS_READ_PROPERTY)
        self._dropped = beam.metrics.Metrics.counter(_NAMESPACE, ingestion_record.UNLABELED_ROWS_PROPERTY)

    def process(self, path: str) -> Iterator:
        for first_row, batch in tabular_input.read_batches(path, self._format, self._options):
            self._read.inc(batch.num_rows)
            labelled, dropped = tabular_input.drop_unlabeled(batch, self._options, path, first_row)
            self._dropped.inc(dropped)
            if labelled.num_rows:
                yield labelled


def encode(batch, encoder) -> list[bytes]:
    """A typed record batch as serialized tf.Examples: tfx_bsl's C++ encoder (`encoder`, a
    RecordBatchToExamplesEncoder), then re-serialized deterministically. The encoder writes the feature map
    in a per-process hash order, and ExampleGen assigns train/eval by hashing these bytes: canonical bytes
    keep a row in the same split on every run, as stock CsvExampleGen's deterministic protos do."""
    from tensorflow.core.example import example_pb2

    return [example_pb2.Example.FromString(example).SerializeToString(deterministic=True)
            for example in encoder.encode(tabular_input.as_lists(batch))]


class _EncodeExamples(beam.DoFn):
    """Record batch -> serialized tf.Examples (`encode`)."""

    def setup(self):
        from tfx_bsl.coders import example_coder

        self._encoder = example_coder.RecordBatchToExamplesEncoder()

    def process(self, batch) -> Iterator[bytes]:
        yield from encode(batch, self._encoder)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _TabularToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],  # noqa: N802 - TFX's naming
                      split_pattern: str) -> beam.pvalue.PCollection:
    data_format, options = _parse_custom_config(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = input_files(input_base, split_pattern, data_format)
    if not files:
        raise tabular_input.InputDataError(
            f"no {data_format} files match {os.path.join(input_base, split_pattern)!r}; file names must end in "
            f"{', '.join(tabular_input.DATA_FILE_SUFFIXES[data_format])}")
    return (pipeline
            | "ListFiles" >> beam.Create(files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFiles" >> beam.ParDo(_ReadFile(data_format, options))
            | "EncodeExamples" >> beam.ParDo(_EncodeExamples()))


class Executor(BaseExampleGenExecutor):
    """Stock ExampleGen executor (splits, output files) over our reader; records the row counts."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 - TFX's interface
        return _TabularToExample

    def _make_beam_pipeline(self) -> beam.Pipeline:
        self._pipeline = super()._make_beam_pipeline()  # its `result` holds the counters once it ran
        return self._pipeline

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 - TFX's interface
        super().Do(input_dict, output_dict, exec_properties)
        counters = self._pipeline.result.metrics().query(MetricsFilter().with_namespace(_NAMESPACE))["counters"]
        totals = {name: 0 for name in (ingestion_record.ROWS_READ_PROPERTY, ingestion_record.UNLABELED_ROWS_PROPERTY)}
        for counter in counters:
            totals[counter.key.metric.name] += counter.committed if counter.committed is not None else counter.attempted
        for artifact in output_dict[standard_component_specs.EXAMPLES_KEY]:
            for name, value in totals.items():
                artifact.set_int_custom_property(name, int(value))


def tabular_example_gen(data_format: str, read_options: Dict[str, Any], **kwargs) -> FileBasedExampleGen:
    """A FileBasedExampleGen running `Executor` (`kwargs`: input_base, input_config, output_config, range_config).

    Its id is CsvExampleGen or ParquetExampleGen, as the stock components' were, so metadata stores and
    readers keyed on it carry over.
    """
    return FileBasedExampleGen(
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
        custom_config=custom_config(data_format, read_options), **kwargs,
    ).with_id({"csv": "CsvExampleGen", "parquet": "ParquetExampleGen"}[data_format])

