"""numpy outputs -> TF Serving's REST response JSON, following tensorflow_serving/util/json_tensor.cc.

Predict: `predictions` (row format) or `outputs` (columnar), whichever the request used; classify and
regress: `results`. Floats are written the way TF Serving writes them (shortest six-digit form when it
round-trips, `NaN`, `Infinity`, whole numbers with `.0`); string outputs whose alias ends in `_bytes`
are base64-encoded. Errors are `{"error": message}`. The request direction is `serving.json_request`.
"""
from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any, Mapping

import numpy as np

from serving import errors
from serving.json_request import COLUMNAR
from trainer.contract import BYTES_OUTPUT_SUFFIX

_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def predict_response(outputs: Mapping[str, np.ndarray], request_format: str) -> bytes:
    if not outputs:
        raise errors.invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if request_format == COLUMNAR:
        if len(names) == 1:
            body = _encode_tensor(outputs[names[0]], names[0])
        else:
            body = "{" + ", ".join(f"{_encode_string(n)}: {_encode_tensor(outputs[n], n)}" for n in names) + "}"
        return ('{"outputs": ' + body + "}").encode("utf-8")
    batch = None
    for name in names:
        value = outputs[name]
        if value.ndim == 0:
            raise errors.invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch is not None and value.shape[0] != batch:
            raise errors.invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {value.shape[0]} expecting: {batch}"
            )
        batch = value.shape[0]
    rows_by_name = {name: _encode_rows(outputs[name], name) for name in names}
    if len(names) == 1:
        rows = rows_by_name[names[0]]
    else:
        keys = [_encode_string(name) for name in names]
        rows = ["{" + ", ".join(f"{k}: {rows_by_name[n][i]}" for k, n in zip(keys, names)) + "}" for i in range(batch)]
    return ('{"predictions": [' + ", ".join(rows) + "]}").encode("utf-8")


def classify_response(classes: np.ndarray | None, scores: np.ndarray | None) -> bytes:
    reference = classes if classes is not None else scores
    if reference is None or reference.shape[0] == 0:
        raise errors.invalid_argument("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for i in range(reference.shape[0]):
        pairs = []
        for c in range(reference.shape[1]):
            label = _text(classes[i, c]) if classes is not None else '""'
            score = format_float32(float(scores[i, c])) if scores is not None else "0.0"
            pairs.append(f"[{label}, {score}]")
        rows.append("[" + ", ".join(pairs) + "]")
    return ('{"results": [' + ", ".join(rows) + "]}").encode("utf-8")


def regress_response(values: np.ndarray) -> bytes:
    if values.size == 0:
        raise errors.invalid_argument("Cannot convert empty RegressionResults to JSON")
    return ('{"results": [' + ", ".join(format_float32(float(v)) for v in values.tolist()) + "]}").encode("utf-8")


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}, ensure_ascii=False).encode("utf-8")


def _encode_tensor(value: Any, name: str) -> str:
    array = np.asarray(value)
    return _nested(array.tolist(), _scalar_writer(array, name))


def _encode_rows(array: np.ndarray, name: str) -> list[str]:
    """Each row (0th-dimension slice) of `array` as JSON text."""
    scalar = _scalar_writer(array, name)
    return [_nested(row, scalar) for row in array.tolist()]


def _scalar_writer(array: np.ndarray, name: str):
    if array.dtype.kind in "OSU":
        return _b64_text if name.endswith(BYTES_OUTPUT_SUFFIX) else _text
    if array.dtype == np.float32 or array.dtype == np.float16:
        return format_float32
    if array.dtype.kind == "f":
        return format_float64
    if array.dtype == np.bool_:
        return _bool_text
    return str


def _bool_text(value: Any) -> str:
    return "true" if value else "false"


def _nested(value: Any, scalar) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_nested(v, scalar) for v in value) + "]"
    return scalar(value)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return _encode_string(str(value))


def _b64_text(value: Any) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return '{"b64": "' + base64.b64encode(raw).decode("ascii") + '"}'


def format_float32(value: float) -> str:
    """absl::StrCat's six significant digits when they round-trip to the same float, else %.9g."""
    special = _special(value)
    if special:
        return special
    text = "%g" % value
    if struct.unpack("f", struct.pack("f", float(text)))[0] != value:
        text = "%.9g" % value
    return text if ("." in text or "e" in text) else text + ".0"


def format_float64(value: float) -> str:
    special = _special(value)
    if special:
        return special
    text = "%g" % value
    if float(text) != value:
        text = "%.17g" % value
    return text if ("." in text or "e" in text) else text + ".0"


def _special(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return None
