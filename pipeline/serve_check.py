"""Serve the model a run pushed and query it once over REST and once over gRPC.

This is the last step of `make run`: proof that the pushed SavedModel loads in a TF-Serving-compatible
server and answers on both protocols, using the same client a user would: raw features through the
Predict API (`serving_default`), and the same row as a tf.Example through the task's own API —
Classify for classifiers, Regress for regressors.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator, Optional

from pipeline.config import ConfigError, LoadedConfig
from pipeline.preflight import data_files, read_options
from trainer import contract


@dataclasses.dataclass(frozen=True)
class ServeCheck:
    """What the served model answered: `Prediction`s (Predict API) and the Classify ({class: score})
    or Regress (value) result for the same row, per protocol."""

    row: dict[str, Any]
    rest_prediction: Any
    grpc_prediction: Any
    version: int
    rest_examples_result: Any = None
    grpc_examples_result: Any = None


def sample_row(loaded: LoadedConfig) -> dict[str, Any]:
    """The first row of the run's data (CSV, Parquet or tf.Example TFRecords) with every configured
    feature present, typed for JSON; CSV and Parquet are read as ExampleGen reads them (missing-value
    markers, configured types)."""
    features = loaded.cfg.features
    if loaded.cfg.data.format != "tfrecord":
        row = _tabular_row(loaded)
        if row is not None:
            return row
    for path in data_files(loaded) if loaded.cfg.data.format == "tfrecord" else []:
        for raw in _tfrecord_rows(path, [f.name for f in features]):
            if all(raw.get(f.name) not in (None, "") for f in features):
                return {f.name: float(raw[f.name]) if f.type == "numeric" else raw[f.name] for f in features}
    raise ConfigError(f"data.path: no {loaded.cfg.data.format} row in {loaded.data_path!r} has every feature; "
                      "pass a row to query")


def _tabular_row(loaded: LoadedConfig) -> Optional[dict[str, Any]]:
    """The first complete CSV or Parquet row, numbers as their shortest float32 text (39.1, not 39.099998...)."""
    import functools

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from components.tabular_input import read_batches

    names = [feature.name for feature in loaded.cfg.features]
    for path in data_files(loaded):
        for _, batch in read_batches(str(path), loaded.cfg.data.format, read_options(loaded.cfg)):
            table = pa.Table.from_batches([batch]).select(names)
            complete = functools.reduce(pc.and_, [pc.is_valid(column) for column in table.columns])
            rows = table.filter(complete).slice(0, 1).to_pylist()
            if rows:
                return {name: float(np.format_float_positional(np.float32(value))) if isinstance(value, float) else value
                        for name, value in rows[0].items()}
    return None


def _tfrecord_rows(path: Path, columns: list[str]) -> Iterator[dict[str, Any]]:
    """Each tf.Example's first value per feature (bytes decoded); a feature with no value is left out."""
    from serving import protos
    from serving.request_log import read_records

    example_class = protos.load().example_pb2.Example
    for record in read_records(str(path)):
        row = {}
        for name, feature in example_class.FromString(record).features.feature.items():
            kind = feature.WhichOneof("kind")
            values = getattr(feature, kind).value if kind else []
            if values:
                row[name] = values[0].decode("utf-8", "replace") if kind == "bytes_list" else values[0]
        yield row


def serve_and_query(loaded: LoadedConfig, serving_dir: Path, row: Optional[dict[str, Any]] = None) -> ServeCheck:
    """Start a local model server on free ports over `serving_dir`, query it over REST and gRPC, stop it."""
    import portpicker

    from serving import client
    from serving.server import ModelServer, ServerOptions

    model_name = loaded.cfg.model_name
    base_path = serving_dir / model_name
    versions = sorted(int(p.name) for p in base_path.iterdir() if p.name.isdigit()) if base_path.exists() else []
    if not versions:
        raise ConfigError(f"no pushed model under {base_path}; run `tfxpipe run` until a model is blessed and pushed")
    row = row or sample_row(loaded)
    options = ServerOptions(port=portpicker.pick_unused_port(), rest_api_port=portpicker.pick_unused_port(),
                            model_name=model_name, model_base_path=str(base_path.resolve()), host="127.0.0.1")
    regression = loaded.cfg.task == "regression"
    results = {}
    with ModelServer(options) as server:
        with client.RestClient(f"http://127.0.0.1:{server.rest_port}", model_name) as rest, \
                client.GrpcClient(f"127.0.0.1:{server.grpc_port}", model_name) as grpc_client:
            for protocol, connection in (("rest", rest), ("grpc", grpc_client)):
                prediction = connection.predict([row], signature_name=contract.SERVING_SIGNATURE)[0]
                examples = connection.regress([row]) if regression else connection.classify([row])
                results[protocol] = (prediction, examples[0])
    return ServeCheck(row=row, rest_prediction=results["rest"][0], grpc_prediction=results["grpc"][0],
                      version=versions[-1], rest_examples_result=results["rest"][1],
                      grpc_examples_result=results["grpc"][1])
