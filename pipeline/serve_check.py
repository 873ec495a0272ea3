"""Serve the model a run pushed and query it once over REST and once over gRPC.

This is the last step of `make run`: proof that the pushed SavedModel loads in a TF-Serving-compatible
server and answers raw-feature requests on both protocols, using the same client a user would.
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
    row: dict[str, Any]
    rest_prediction: Any
    grpc_prediction: Any
    version: int


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
    with ModelServer(options) as server:
        with client.RestClient(f"http://127.0.0.1:{server.rest_port}", model_name) as rest:
            rest_prediction = rest.predict([row], signature_name=contract.SERVING_SIGNATURE)[0]
        with client.GrpcClient(f"127.0.0.1:{server.grpc_port}", model_name) as grpc_client:
            grpc_prediction = grpc_client.predict([row], signature_name=contract.SERVING_SIGNATURE)[0]
    return ServeCheck(row=row, rest_prediction=rest_prediction, grpc_prediction=grpc_prediction, version=versions[-1])
