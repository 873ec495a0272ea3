"""Serve the model a run pushed and query it once over REST and once over gRPC.

This is the last step of `make run`: proof that the pushed SavedModel loads in a TF-Serving-compatible
server and answers on both protocols, using the same client a user would: raw features through the
Predict API (`serving_default`), and the same row as a tf.Example through the task's own API —
Classify for classifiers, Regress for regressors.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any, Optional

from pipeline.config import ConfigError, LoadedConfig
from pipeline.preflight import data_files
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
    """The first row of the run's CSV data with every configured feature present, typed for JSON."""
    files = data_files(loaded) if loaded.cfg.data.format == "csv" else []
    for path in files:
        with path.open(newline="") as f:
            for raw in csv.DictReader(f):
                if all(raw.get(feature.name) for feature in loaded.cfg.features):
                    return {f.name: float(raw[f.name]) if f.type == "numeric" else raw[f.name]
                            for f in loaded.cfg.features}
    raise ConfigError(f"data.path: no CSV row in {loaded.data_path!r} has every feature; pass a row to query")


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
