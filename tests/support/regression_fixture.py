"""A hand-written `regression` signature added to a model the trainer exported, for Regress API tests.

Why hand-written: the trainer exports a classifier (serving_default, classification,
transform_features) and has no regression head yet; exporting one is a later issue. The model server
still implements TF Serving's Regress API (REST `:regress`, gRPC `Regress`), and the tests that send
Regress requests need a signature with method `tensorflow/serving/regress`. Everything else in the
model stays the trainer's own export: this module re-saves it with one extra signature that feeds
the serialized examples to the exported `classification` signature and returns the first class's
score as `outputs`, so it parses examples exactly as the exported model does. Delete this module
when `trainer.export` exports a Regress signature itself.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from trainer import contract


def add_regression_signature(exported_dir: Path, target_dir: Path) -> Path:
    """Writes `exported_dir`'s SavedModel plus a `regression` signature to `target_dir`; returns it."""
    import tensorflow as tf

    from trainer.export import set_signature_method_name

    loaded = tf.saved_model.load(str(exported_dir))
    classify = loaded.signatures[contract.CLASSIFY_SIGNATURE]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.REGRESS_INPUTS)])
    def regress(inputs):
        scores = classify(**{contract.CLASSIFY_INPUTS: inputs})[contract.SCORES]
        return {contract.REGRESS_OUTPUTS: scores[:, 0]}

    signatures = dict(loaded.signatures)
    signatures[contract.REGRESS_SIGNATURE] = regress
    tf.saved_model.save(loaded, str(target_dir), signatures=signatures)
    set_signature_method_name(str(target_dir), contract.CLASSIFY_SIGNATURE, contract.CLASSIFY_METHOD)
    set_signature_method_name(str(target_dir), contract.REGRESS_SIGNATURE, contract.REGRESS_METHOD)
    warmup = Path(exported_dir) / contract.WARMUP_FILE
    (Path(target_dir) / contract.WARMUP_FILE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(warmup, Path(target_dir) / contract.WARMUP_FILE)
    return Path(target_dir)
