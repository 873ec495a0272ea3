"""A TF-Serving-compatible model server and its clients.

`tfxpipe serve` takes `tensorflow_model_server`'s flags and serves the SavedModels the pipeline pushes
(`<base_path>/<version>/saved_model.pb`) over TF Serving's REST API (`/v1/models/...`) and gRPC services
(`tensorflow.serving.PredictionService`, `ModelService`), so clients and probes written for
tensorflow/serving work unchanged; `tfxpipe predict` and `serving.client` are such clients.

Modules (library first; the CLI is thin):

- `server`: `ModelServer` - wires the pieces below, graceful shutdown; `options`: `ServerOptions` (the flags
  and their defaults, which `tfxpipe serve` shows).
- `model_config`: flag and text-proto config files -> `ModelConfig`, `VersionPolicy`, `BatchingOptions`.
- `version_manager`: `ModelVersionManager` polls a base path, loads and warms versions, swaps safely.
- `model_registry`: `ModelRegistry` - all models, version labels, config reloads, request resolution.
- `servable`: one loaded version: signatures, TF Serving's input checks, the model call.
- `batching`: `DynamicBatcher` - concurrent requests merged into one model call.
- `inference`: `InferenceService`, the one path of predict/classify/regress/metadata/status for both
  protocols (and warm-up); a `ModelCall` is awaited on the event loop or waited for on a thread.
- `rest`, `json_request` (JSON -> arrays, tf.Examples), `json_response` (arrays -> JSON), `status_json`,
  `http_protocol`: the REST API; `grpc_service`: the gRPC API; `api_protos`: results as TF Serving's
  response messages (gRPC answers, request log records).
- `request_log`: `logging_config` -> sampled `PredictionLog` TFRecord files (bounded queue, writer thread),
  and their reader; `version_labels`: `stable`/`canary` labels in a model config file (rollback).
- `openapi.yaml` (package data): the REST API as OpenAPI 3.0, which tests/integration/test_serving_fuzz_rest.py
  fuzzes the server against.
- `warmup`: replays `assets.extra/tf_serving_warmup_requests`; `metrics`: Prometheus.
- `client`: `RestClient`, `GrpcClient`, `connect` - no TensorFlow import; `protos`, `tensors`: TF-free protos.

Conformance tests (tests/integration/test_serving_conformance.py, marker `conformance`) run against
this server, or against a real TF Serving when `TFSERVING_REST_URL` and/or `TFSERVING_GRPC_TARGET` are
set (model name from `TFSERVING_MODEL_NAME`, default `penguin`).
"""
