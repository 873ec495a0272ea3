"""serving.client without a server: tf.Examples typed like TF Serving's REST `examples`, and the
Prediction view of classifier and regressor outputs."""
from __future__ import annotations

import pytest

from serving import client, protos


def _examples(rows):
    request = protos.load().classification_pb2.ClassificationRequest()
    client.fill_examples(request.input.example_list.examples, rows)
    return [example.features.feature for example in request.input.example_list.examples]


def test_ints_floats_and_text_get_their_tf_example_list_types():
    (features,) = _examples([{"body_mass_g": 4200, "bill": 39.5, "island": "Dream", "sex": None, "tags": [1, 2.5]}])
    assert list(features["body_mass_g"].int64_list.value) == [4200]
    assert list(features["bill"].float_list.value) == [39.5]
    assert list(features["island"].bytes_list.value) == [b"Dream"]
    assert "sex" not in features, "None is a missing feature"
    assert list(features["tags"].float_list.value) == [1.0, 2.5]


def test_values_that_are_neither_numbers_nor_text_are_refused():
    with pytest.raises(ValueError, match=r"example 0: feature x=\{"):
        _examples([{"x": {"nested": 1}}])


def test_prediction_of_a_regressor_has_a_value_and_no_classes():
    prediction = client.Prediction({"outputs": 151.25})
    assert prediction.value == 151.25 and prediction.predicted_class is None
    assert prediction.summary() == "151.2"
    assert client.Prediction({"outputs": [3.5]}).value == 3.5


def test_prediction_of_a_classifier_summarises_class_and_scores():
    prediction = client.Prediction({"scores": [0.2, 0.8], "classes": ["benign", "malignant"],
                                    "predicted_class": "malignant"})
    assert prediction.value is None
    assert prediction.summary() == "malignant  (benign 0.200, malignant 0.800)"


def test_rest_predict_names_a_single_unnamed_output_after_the_signature():
    """TF Serving's row format answers a one-output signature with bare values: [216.5, ...]."""
    import json

    import httpx

    metadata = {"metadata": {"signature_def": {"signature_def": {"serving_default": {
        "inputs": {"age": {"dtype": "DT_FLOAT"}}, "outputs": {"outputs": {"dtype": "DT_FLOAT"}}}}}}}

    def answer(request):
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=metadata)
        if request.url.path.endswith(":regress"):
            assert json.loads(request.content)["examples"] == [{"age": 59}]
            return httpx.Response(200, json={"results": [151.5]})
        return httpx.Response(200, json={"predictions": [216.5]})

    with client.RestClient("http://model", "diabetes", transport=httpx.MockTransport(answer)) as rest:
        (prediction,) = rest.predict([{"age": 59.0}])
        assert prediction.outputs == {"outputs": 216.5} and prediction.value == 216.5
        assert rest.regress([{"age": 59}]) == [151.5]
