"""The exported model's contract: signature names, method names, input and output keys, file names.

One module, free of TensorFlow, owns every name that crosses the boundary between the trainer that
exports a SavedModel and whatever consumes it: TF Serving and our own model server, the REST/gRPC
client, the TFMA Evaluator configuration, the warm-up records, `serve-check` and the tests. A name
changes here or nowhere. The method names, the Classify/Regress output keys and the warm-up file
location are TF Serving's own API (`tensorflow_serving/servables/tensorflow/*_signature*`); the rest
are ours.
"""
from __future__ import annotations

import os

# --- Signatures the trainer exports -----------------------------------------------------------------

#: Raw, JSON-friendly features in (one `[None]` tensor per configured feature), predictions out.
SERVING_SIGNATURE = "serving_default"
#: Serialized tf.Examples in (`CLASSIFY_INPUTS`), TF Serving's Classify API out.
CLASSIFY_SIGNATURE = "classification"
#: Serialized tf.Examples in (`REGRESS_INPUTS`), TF Serving's Regress API out.
REGRESS_SIGNATURE = "regression"
#: Serialized tf.Examples in (`TRANSFORM_INPUTS`), every transformed feature out (TFMA, skew checks).
TRANSFORM_SIGNATURE = "transform_features"

# --- TF Serving's method names (SignatureDef.method_name) -------------------------------------------

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

# --- Input keys ---------------------------------------------------------------------------------------

#: The serialized-tf.Example input of the Classify and Regress signatures (TF Serving's own key).
CLASSIFY_INPUTS = "inputs"
REGRESS_INPUTS = "inputs"
#: The serialized-tf.Example input of `transform_features`.
TRANSFORM_INPUTS = "examples"

# --- Output keys --------------------------------------------------------------------------------------

#: float32 [N, K]: class probabilities (classification), aligned with `CLASSES`.
SCORES = "scores"
#: string [N, K]: the class names, repeated on every row (TF Serving's Classify layout).
CLASSES = "classes"
#: string [N]: the most probable class of each row (`serving_default` only).
PREDICTED_CLASS = "predicted_class"
#: float32 [N]: the predicted value of each row (regression; TF Serving's Regress output key).
REGRESS_OUTPUTS = "outputs"

# --- Transformed features -----------------------------------------------------------------------------

#: Suffix of every key `preprocessing_fn` emits; keeps raw and transformed names apart.
TRANSFORMED_SUFFIX = "_xf"


def transformed_name(name: str) -> str:
    """The key `preprocessing_fn` emits (and the model reads) for raw column `name`."""
    return name + TRANSFORMED_SUFFIX


# --- Files inside the SavedModel ----------------------------------------------------------------------

#: TF Serving replays the PredictionLog records in this file when it loads a version.
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


# --- TF Serving's own protocol names (what any TF-Serving-compatible server reads) ------------------

#: The signature a request gets when it names none (tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY);
#: the trainer exports its raw-features signature under this key for that reason.
DEFAULT_SIGNATURE = SERVING_SIGNATURE
#: The MetaGraphDef tag TF Serving loads (tf.saved_model.SERVING).
SERVING_TAG = "serve"
#: TF Serving refuses a model whose warm-up file holds more records than this (warmup_util.cc).
MAX_WARMUP_RECORDS = 1000
#: The GetModelMetadata field TF Serving serves: the SignatureDefMap (also the REST metadata key).
SIGNATURE_DEF_METADATA_FIELD = "signature_def"
#: REST outputs whose alias ends so are string tensors written as {"b64": ...} (json_tensor.cc).
BYTES_OUTPUT_SUFFIX = "_bytes"
