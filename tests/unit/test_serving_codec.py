"""REST JSON codecs (TF Serving's json_tensor.cc behaviour) and TensorProto conversion, without TensorFlow."""
import base64
import json
import math

import numpy as np
import pytest

from serving import json_request, json_response, tensors
from serving.errors import Code, ServingError
from serving.servable import TensorSpec

SPECS = {
    "x": TensorSpec(tensors.DT_FLOAT, (-1,)),
    "name": TensorSpec(tensors.DT_STRING, (-1,)),
}


def _error(call, *args) -> ServingError:
    with pytest.raises(ServingError) as caught:
        call(*args)
    assert caught.value.code == Code.INVALID_ARGUMENT
    return caught.value


def test_row_format_builds_one_batched_tensor_per_input():
    fmt, inputs = json_request.predict_inputs({"instances": [{"x": 1, "name": "a"}, {"x": 2.5, "name": "b"}]}, SPECS)
    assert fmt == json_request.ROW
    assert inputs["x"].dtype == np.float32 and inputs["x"].tolist() == [1.0, 2.5]
    assert inputs["name"].tolist() == [b"a", b"b"]


def test_row_format_single_input_plain_list_and_nested_tensors():
    specs = {"t": TensorSpec(tensors.DT_INT32, (-1, 1, 2))}
    _, inputs = json_request.predict_inputs({"instances": [[[1, 2]], [[3, 4]]]}, specs)
    assert inputs["t"].shape == (2, 1, 2) and inputs["t"].dtype == np.int32


def test_columnar_format_and_b64():
    doc = {"inputs": {"x": [1.0, 2.0], "name": [{"b64": base64.b64encode(b"\x00\xff").decode()}, "z"]}}
    fmt, inputs = json_request.predict_inputs(doc, SPECS)
    assert fmt == json_request.COLUMNAR
    assert inputs["name"].tolist() == [b"\x00\xff", b"z"]


def test_columnar_ignores_keys_outside_the_signature_like_tf_serving():
    _, inputs = json_request.predict_inputs({"inputs": {"x": [1.0], "name": ["a"], "other": [1]}}, SPECS)
    assert set(inputs) == {"x", "name"}


@pytest.mark.parametrize("doc, message", [
    ({"instances": [{"x": True, "name": "a"}]},
     "Failed to process element: 0 key: x of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: true Type: True is not of expected type: float"),
    ({"instances": [{"x": 1, "name": "a"}, [1]]}, "Expecting object but got list at item 1 of input list"),
    ({"instances": [{"x": 1, "name": "a"}, {"x": 1}]},
     "Failed to process element: 1 of 'instances' list. JSON object: {\"x\":1} keys must be equal to: name,x"),
    ({"instances": [{"x": [1, 2], "name": "a"}, {"x": [1], "name": "b"}]},
     "Failed to process element: 1 key: x of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 2 but got: 1"),
    ({"instances": "nope"}, 'JSON Value: {"instances":"nope"} Expecting \'instances\' to be an list/array'),
    ({"inputs": [1.0]}, "inputs is a plain value/list, but expecting an object as multiple input tensors required as per tensorinfo_map"),
    ({"inputs": {"x": [1.0], "name": [{"b64": "!!"}]}}, "Unable to base64 decode"),
    ({"inputs": {"x": [[1.0], 2.0], "name": ["a"]}}, "JSON Value: 2.0 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
])
def test_request_errors_carry_tf_serving_messages(doc, message):
    assert message in _error(json_request.predict_inputs, doc, SPECS).message


def test_integer_inputs_reject_floats_and_out_of_range_values():
    specs = {"n": TensorSpec(tensors.DT_INT32, (-1,))}
    assert "is not of expected type: int32" in _error(json_request.predict_inputs, {"inputs": [1.5]}, specs).message
    assert "is not of expected type: int32" in _error(json_request.predict_inputs, {"inputs": [2**40]}, specs).message


def test_parse_document_accepts_nan_and_reports_parse_errors():
    doc = json_request.parse_document(b'{"inputs": {"x": [NaN, Infinity, -Infinity], "name": ["a", "b", "c"]}}')
    _, inputs = json_request.predict_inputs(doc, SPECS)
    assert math.isnan(inputs["x"][0]) and inputs["x"][1] == np.inf
    assert _error(json_request.parse_document, b"").message == "JSON Parse error: The document is empty"
    assert _error(json_request.parse_document, b"{oops").message.startswith("JSON Parse error: ")
    assert _error(json_request.parse_document, b"3").message == "JSON Value: 3 Is not object"


def test_stdlib_parse_reads_numbers_and_surrogates_like_rapidjson():
    # NaN makes orjson refuse these documents: they take the stdlib parser.
    doc = json_request.parse_document(b'{"n": NaN, "big": 100000000000000000000, "low": -9223372036854775809, '
                                    b'"u": 18446744073709551615, "pair": "\\ud83d\\ude00", "text": "\\\\ud800"}')
    assert type(doc["big"]) is float and doc["big"] == 1e20 and type(doc["low"]) is float
    assert doc["u"] == 2**64 - 1 and doc["pair"] == "\U0001f600" and doc["text"] == "\\ud800"
    for body in (b'{"n": NaN, "x": 1e400}', b'{"n": NaN, "x": ' + b"9" * 5000 + b"}"):
        message = _error(json_request.parse_document, body).message
        assert message == "JSON Parse error: Number too big to be stored in double."
    for body in (b'{"n": NaN, "s": "\\ud800"}', b'{"n": NaN, "\\udc00": 1}', b'{"n": [NaN, ["x\\uDBFF"]]}'):
        message = _error(json_request.parse_document, body).message
        assert message == "JSON Parse error: The surrogate pair in string is invalid."


@pytest.mark.parametrize("dtype, accepted, lossy", [
    (tensors.DT_FLOAT, [2**24 - 1, -(2**24 - 1), 3.4028234663852886e38, math.inf, math.nan], [2**24, 3.5e38, -1e39]),
    (tensors.DT_DOUBLE, [2**53 - 1, 1e308, -math.inf], [2**53, -(2**63)]),
])
def test_decimal_inputs_must_convert_without_loss_like_tf_serving(dtype, accepted, lossy):
    specs = {"x": TensorSpec(dtype, (-1,))}
    _, inputs = json_request.predict_inputs({"inputs": accepted}, specs)
    assert len(inputs["x"]) == len(accepted)
    name = tensors.dtype_name(dtype)
    for value in lossy:
        message = _error(json_request.predict_inputs, {"inputs": [value]}, specs).message
        assert message == f"Cannot convert JSON value: {json.dumps(value)} to {name} without loss of precision."
    message = _error(json_request.serialized_examples, {"examples": [{"f": 1e39}]}).message
    assert message == "Cannot convert JSON value: 1e+39 to float without loss of precision."


def test_row_response_is_list_of_objects_or_values():
    outputs = {"scores": np.array([[0.5, 0.25]], np.float32), "label": np.array([b"a"], object)}
    assert json.loads(json_response.predict_response(outputs, json_request.ROW)) == {
        "predictions": [{"label": "a", "scores": [0.5, 0.25]}]}
    single = json_response.predict_response({"y": np.array([1.0, 2.0], np.float32)}, json_request.ROW)
    assert json.loads(single) == {"predictions": [1.0, 2.0]}


def test_columnar_response_and_bytes_outputs():
    outputs = {"image_bytes": np.array([b"\x00\x01"], object), "n": np.array([3], np.int64)}
    body = json.loads(json_response.predict_response(outputs, json_request.COLUMNAR))
    assert body == {"outputs": {"image_bytes": [{"b64": "AAE="}], "n": [3]}}


def test_row_response_rejects_inconsistent_batch_sizes():
    outputs = {"a": np.zeros([2]), "b": np.zeros([3])}
    assert "inconsistent batch size: 3 expecting: 2" in _error(json_response.predict_response, outputs, json_request.ROW).message


@pytest.mark.parametrize("value, text", [
    (0.2, "0.2"), (1.0, "1.0"), (1e6, "1e+06"), (0.123456789, "0.123456791"), (-3.0, "-3.0"),
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
])
def test_floats_are_written_like_tf_serving(value, text):
    assert json_response.format_float32(float(np.float32(value))) == text


def test_classify_examples_with_context_and_kinds():
    from serving import protos

    doc = {"context": {"c": 1}, "examples": [{"f": 1.5, "s": "x", "b": {"b64": "AAE="}, "l": [1, 2]}]}
    serialized = json_request.serialized_examples(doc)
    example = protos.load().example_pb2.Example.FromString(serialized[0])
    features = example.features.feature
    assert list(features["c"].int64_list.value) == [1]
    assert list(features["f"].float_list.value) == [1.5]
    assert list(features["b"].bytes_list.value) == [b"\x00\x01"]
    assert list(features["l"].int64_list.value) == [1, 2]


@pytest.mark.parametrize("doc, message", [
    ({}, "When method is classify, key 'examples' is expected and was not found"),
    ({"examples": []}, "'examples' value is an empty array"),
    ({"examples": [3]}, "Example must be JSON object but got JSON Number"),
    ({"examples": [{"f": [1, "a"]}]}, "Unexpected element type in feature: f expecting type: int64"),
    ({"examples": [{"f": None}]}, "Feature: f has element with unexpected JSON type: Null"),
])
def test_classify_request_errors(doc, message):
    assert message in _error(json_request.serialized_examples, doc).message


def test_classify_and_regress_responses():
    classes = np.array([[b"a", b"b"]], object)
    scores = np.array([[0.75, 0.25]], np.float32)
    assert json.loads(json_response.classify_response(classes, scores)) == {"results": [[["a", 0.75], ["b", 0.25]]]}
    assert json.loads(json_response.regress_response(np.array([1.5, 2.0], np.float32))) == {"results": [1.5, 2.0]}


@pytest.mark.parametrize("array", [
    np.array([[1.5, -2.0]], np.float32), np.array([1, 2, 3], np.int64), np.array([True, False]),
    np.array([b"a", b""], object), np.array(7, np.int32), np.array([1.0, 2.0], np.float16),
])
@pytest.mark.parametrize("as_content", [False, True])
def test_tensor_proto_round_trip(array, as_content):
    from serving import protos

    proto = tensors.fill_proto(protos.load().tensor_pb2.TensorProto(), array, as_content=as_content)
    back = tensors.to_ndarray(proto)
    assert back.shape == array.shape and back.tolist() == array.tolist()


def test_tensor_proto_single_value_is_broadcast():
    from serving import protos

    proto = protos.load().tensor_pb2.TensorProto(dtype=tensors.DT_FLOAT)
    proto.tensor_shape.dim.add().size = 3
    proto.float_val.append(2.0)
    assert tensors.to_ndarray(proto).tolist() == [2.0, 2.0, 2.0]
