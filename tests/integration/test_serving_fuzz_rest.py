"""Fuzzes the REST API against its OpenAPI description (serving/openapi.yaml) for a bounded time.

One in-process server (set up as in test_serving_hostile.py, plus a `stable` label so label paths reach
the model) is fuzzed in three passes that share the budget `TFXPIPE_FUZZ_SECONDS` (default 20):

1. every operation of the shipped spec with schemathesis, schema-conforming and schema-violating
   ("negative") data: random model names, versions, labels and bodies;
2. the same spec narrowed to the served model: path parameters that exist and request bodies built from
   the model's signatures, so that most requests reach the model and 200 responses are checked too;
3. JSON beyond any schema (hypothesis): valid requests with one value replaced by arbitrary JSON, and
   arbitrary documents; NaN, Infinity, integers past 64 bits and lone surrogates included.

Every response must be documented (status code, content type, body schema: `{"error": str}` for
errors), never 5xx, and schema-violating requests must be rejected; a request that hangs fails the test
(client timeout). After each pass a valid predict still answers. With `TFXPIPE_FUZZ_REPORT=<path>` the
counts (requests, statuses, failures, seconds; in total and per pass) are written there as JSON, for a
benchmark to print. The inputs the fuzzer broke the server with follow as fixed regression cases.
"""
from __future__ import annotations

import collections
import copy
import dataclasses
import importlib.resources
import json
import math
import os
import time

import pytest

from tests.support.serving_fixtures import (
    EXAMPLE_ROW, INTEGER_FEATURES, NUMERIC_FEATURES, PENGUIN_ROW, ModelStore, start_server,
)

pytestmark = pytest.mark.slow

SECONDS_ENV, REPORT_ENV = "TFXPIPE_FUZZ_SECONDS", "TFXPIPE_FUZZ_REPORT"
DEFAULT_SECONDS = 20.0
BUDGET_SHARES = {"spec": 0.35, "served_model": 0.35, "raw_json": 0.30}
ROUND_EXAMPLES = 25  # examples per hypothesis run; runs repeat until the pass's share of the budget is spent
REQUEST_TIMEOUT = 10.0
MAX_BODY = 256 * 1024
SERVED = {"model_name": "penguin", "version": 1, "label": "stable"}
FLOAT32_MAX = 3.4028234663852886e38
SCALARS = {  # JSON values TF Serving converts to each dtype without error
    "DT_FLOAT": {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
    "DT_DOUBLE": {"type": "number"},
    "DT_INT64": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "DT_INT32": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "DT_BOOL": {"type": "boolean"},
    "DT_STRING": {"anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/Base64"}]},
}
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "negative_data_rejection")
# Left out: positive_data_acceptance (a request can match the schema and still not fit the model's
# signature: 400 is right), unsupported_method / allow_header_conformance (TF Serving answers 400
# "Malformed request" to other methods, not 405), auth and resource checks (the API has neither).


@dataclasses.dataclass
class Tally:
    """What the passes sent: response statuses, failed checks and time, in total and per pass."""

    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    failures: int = 0
    passes: dict = dataclasses.field(default_factory=dict)  # pass name -> {"requests": n, "seconds": s}
    current: str = ""

    def record(self, status: int) -> None:
        self.statuses[status] += 1
        self.passes.setdefault(self.current, {"requests": 0, "seconds": 0.0})["requests"] += 1

    def report(self) -> dict:
        return {"requests": sum(self.statuses.values()), "failures": self.failures,
                "seconds": round(sum(p["seconds"] for p in self.passes.values()), 2),
                "statuses": {str(code): count for code, count in sorted(self.statuses.items())},
                "passes": {name: {**p, "seconds": round(p["seconds"], 2)} for name, p in self.passes.items()}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_rest")
    base = root / "models" / "penguin"
    base.mkdir(parents=True)
    ModelStore().push(base, 1, include_regression=True)
    config = root / "models.config"
    config.write_text(f"model_config_list {{ config {{ name: 'penguin' base_path: '{base}' model_platform: "
                      "'tensorflow' version_labels { key: 'stable' value: 1 } } }\n")
    server = start_server(model_config_file=str(config), allow_version_labels_for_unavailable_models=True,
                          rest_api_max_body_bytes=MAX_BODY, enable_model_warmup=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def base_url(server):
    return f"http://127.0.0.1:{server.rest_port}"


@pytest.fixture(scope="module")
def session():
    import requests

    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def tally():
    tally = Tally()
    yield tally
    if os.environ.get(REPORT_ENV):
        with open(os.environ[REPORT_ENV], "w") as f:
            json.dump(tally.report(), f, indent=1)


def spec_document() -> dict:
    import yaml

    return yaml.safe_load(importlib.resources.files("serving").joinpath("openapi.yaml").read_text())


def load_schema(document: dict, base_url: str):
    import schemathesis
    from schemathesis.config import SchemathesisConfig

    schema = schemathesis.openapi.from_dict(document, config=SchemathesisConfig())  # no schemathesis.toml lookup
    schema.config.update(base_url=base_url)
    return schema


def fuzz_for(pass_name: str, strategy, check, tally: Tally) -> None:
    """Runs `check` on examples of `strategy` for the pass's share of the budget (rounds of ROUND_EXAMPLES).

    Hypothesis has no time budget of its own; each round is a fresh random run (no example database: no
    examples are stored in or replayed from .hypothesis/). A failure is shrunk and raised as usual.
    """
    from hypothesis import HealthCheck, Phase, given, settings

    started = time.monotonic()
    deadline = started + float(os.environ.get(SECONDS_ENV, DEFAULT_SECONDS)) * BUDGET_SHARES[pass_name]

    failed = []

    def until_deadline(example):
        # On a loaded machine a round can be slow: stop sending when time is up, unless hypothesis is
        # shrinking a failure (an example that stopped failing would be reported as flaky).
        if failed or time.monotonic() < deadline:
            try:
                check(example)
            except Exception:
                failed.append(example)
                raise

    rounds = settings(max_examples=ROUND_EXAMPLES, deadline=None, database=None, print_blob=False,
                      suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink))
    run = rounds(given(strategy)(until_deadline))
    tally.current, tally.passes[pass_name] = pass_name, {"requests": 0, "seconds": 0.0}
    try:
        while time.monotonic() < deadline:
            run()
    finally:
        tally.passes[pass_name]["seconds"] = time.monotonic() - started


def validate(case, response, tally: Tally) -> None:
    import schemathesis.checks
    from schemathesis.errors import FailureGroup

    response = schemathesis.Response.from_any(response)
    tally.record(response.status_code)
    _replace_non_finite_literals(response)
    try:
        case.validate_response(response, checks=[getattr(schemathesis.checks, name) for name in CHECKS])
    except FailureGroup as failures:  # a BaseExceptionGroup: hypothesis would not shrink the example
        tally.failures += 1
        raise AssertionError(str(failures)) from None


def _replace_non_finite_literals(response) -> None:
    """TF Serving writes NaN and ±Infinity as bare literals (the spec says so), which JSON Schema validators
    read as null: for validation only, they become 0.0."""
    if b"NaN" not in response.content and b"Infinity" not in response.content:
        return
    try:
        document = json.loads(response.content, parse_constant=lambda literal: 0.0)
    except ValueError:
        return  # not JSON at all: the content type and schema checks report it
    response.content = json.dumps(document).encode()
    response.clear_cache()


def call_and_validate(case, session, tally: Tally) -> None:
    validate(case, case.call(session=session, timeout=REQUEST_TIMEOUT), tally)


def assert_alive(session, base_url: str) -> None:
    response = session.post(f"{base_url}/v1/models/penguin:predict", json={"instances": [PENGUIN_ROW]},
                            timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    assert "predicted_class" in response.json()["predictions"][0]


# --- pass 1: the whole spec ---------------------------------------------------------------------------

def test_every_operation_answers_as_documented(base_url, session, tally):
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    schema = load_schema(spec_document(), base_url)
    strategy = st.one_of(schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         schema.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    fuzz_for("spec", strategy, lambda case: call_and_validate(case, session, tally), tally)
    assert_alive(session, base_url)


# --- pass 2: the spec narrowed to the served model ----------------------------------------------------

def test_requests_for_the_served_model_answer_as_documented(base_url, session, tally):
    signature_defs = session.get(f"{base_url}/v1/models/penguin/metadata", timeout=REQUEST_TIMEOUT).json()
    document = narrowed_to_model(spec_document(), signature_defs["metadata"]["signature_def"]["signature_def"])
    schema = load_schema(document, base_url)
    fuzz_for("served_model", served_model_cases(schema),
             lambda case: call_and_validate(case, session, tally), tally)
    assert_alive(session, base_url)


def served_model_cases(schema):
    """Cases for every operation with the served model's name, version and label, positive or negative."""
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        served = {parameter.name: SERVED[parameter.name] for parameter in operation.path_parameters}
        strategies += [operation.as_strategy(generation_mode=mode, path_parameters=served)
                       for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    return st.one_of(strategies)


def narrowed_to_model(document: dict, signature_defs: dict) -> dict:
    """The spec with request bodies the served model accepts, as far as JSON Schema can say it.

    Predict bodies follow the signatures' inputs (from the model's metadata); classify/regress examples
    carry the fixture's tf.Example features. Unknown top-level keys and unknown columnar inputs stay
    allowed: TF Serving ignores them.
    """
    document = copy.deepcopy(document)
    bodies = document["components"]["requestBodies"]
    bodies["Predict"]["content"]["application/json"]["schema"] = {
        "anyOf": [variant for name, signature in sorted(signature_defs.items())
                  for variant in _predict_bodies(name, signature)]}
    example = {"type": "object", "properties": {name: _feature(name) for name in EXAMPLE_ROW}}
    bodies["Examples"]["content"]["application/json"]["schema"] = {
        "type": "object", "required": ["signature_name", "examples"],
        "properties": {"signature_name": {"enum": ["classification", "regression"]}, "context": example,
                       "examples": {"type": "array", "minItems": 1, "items": example}}}
    return document


def _predict_bodies(name: str, signature: dict) -> list[dict]:
    """Row and columnar request bodies for one signature."""
    rows = {alias: _tensor(info, batched=False) for alias, info in signature["inputs"].items()}
    columns = {alias: _tensor(info, batched=True) for alias, info in signature["inputs"].items()}
    names = [name, ""] if name == "serving_default" else [name]
    required = [] if name == "serving_default" else ["signature_name"]
    instance = {"type": "object", "required": sorted(rows), "properties": rows, "additionalProperties": False}
    instances = {"type": "array", "minItems": 1, "items": instance}
    return [
        {"type": "object", "required": [*required, "instances"],
         "properties": {"signature_name": {"enum": names}, "instances": instances}},
        {"type": "object", "required": [*required, "inputs"],
         "properties": {"signature_name": {"enum": names},
                        "inputs": {"type": "object", "required": sorted(columns), "properties": columns}}},
    ]


def _tensor(info: dict, batched: bool) -> dict:
    """JSON Schema of one input's value: nested lists of its dtype, one level per dimension."""
    schema = SCALARS.get(info["dtype"], {})
    rank = len(info["tensor_shape"].get("dim", []))
    for _ in range(rank if batched else rank - 1):
        schema = {"type": "array", "items": schema}
    return schema


def _feature(name: str) -> dict:
    """One feature of the fixture's tf.Examples: a value of its kind or a list of them (booleans are int64)."""
    if name in INTEGER_FEATURES:
        kind = {"anyOf": [SCALARS["DT_INT64"], SCALARS["DT_BOOL"]]}
    else:
        kind = SCALARS["DT_FLOAT"] if name in NUMERIC_FEATURES else SCALARS["DT_STRING"]
    return {"anyOf": [kind, {"type": "array", "items": kind}]}


# --- pass 3: JSON beyond the schema -------------------------------------------------------------------

EDGE_NUMBERS = [2**24 + 1, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**400, -(10**400),
                3.5e38, 1.7e308, 5e-324, -0.0, float("nan"), float("inf"), float("-inf")]
EDGE_CHARACTERS = ["\ud800", "\udbff", "\udc00", "\udfff", "\x00", "\ufeff", "\U0010ffff"]
VALID_REQUESTS = [
    ("predict", {"instances": [PENGUIN_ROW, PENGUIN_ROW]}),
    ("predict", {"signature_name": "serving_default", "inputs": {k: [v] for k, v in PENGUIN_ROW.items()}}),
    ("classify", {"signature_name": "classification", "examples": [EXAMPLE_ROW]}),
    ("regress", {"signature_name": "regression", "context": EXAMPLE_ROW, "examples": [{"sex": "MALE"}]}),
]
ROUTES = {  # path prefix sent -> its template in the spec
    "/v1/models/penguin": "/v1/models/{model_name}",
    "/v1/models/penguin/versions/1": "/v1/models/{model_name}/versions/{version}",
    "/v1/models/penguin/labels/stable": "/v1/models/{model_name}/labels/{label}",
}


def json_values():
    """Any JSON value, with the numbers and strings parsers get wrong (lone surrogates included)."""
    from hypothesis import strategies as st

    # st.text() would all but drop the surrogates: joined lists of characters keep them.
    characters = st.characters(exclude_categories=()) | st.sampled_from(EDGE_CHARACTERS)
    strings = st.lists(characters, max_size=8).map("".join)
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(EDGE_NUMBERS) | strings
    return st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(strings, children, max_size=4), max_leaves=12)


def raw_requests():
    """((api, document), path prefix): a valid request with one value replaced, or an arbitrary object."""
    from hypothesis import strategies as st

    @st.composite
    def mutated(draw):
        api, document = draw(st.sampled_from(VALID_REQUESTS))
        document = copy.deepcopy(document)
        container, key = draw(st.sampled_from(list(_slots(document))))
        container[key] = draw(json_values())
        return api, document

    keys = st.sampled_from(["instances", "inputs", "signature_name", "examples", "context"]) | st.text(max_size=8)
    arbitrary = st.tuples(st.sampled_from(["predict", "classify", "regress"]), st.dictionaries(keys, json_values()))
    return st.tuples(mutated() | arbitrary, st.sampled_from(sorted(ROUTES)))


def _slots(value):
    """Every (container, key) in a JSON document, for replacing one value."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        yield value, key
        if isinstance(item, (dict, list)):
            yield from _slots(item)


def test_any_json_body_is_answered_200_or_4xx_as_documented(base_url, session, tally):
    schema = load_schema(spec_document(), base_url)

    def check(request):
        (api, document), prefix = request
        operation = schema[f"{ROUTES[prefix]}:{api}"]["POST"]
        body = json.dumps(document, allow_nan=True).encode()  # NaN/Infinity literals, \ud800 escapes
        response = session.post(f"{base_url}{prefix}:{api}", data=body, timeout=REQUEST_TIMEOUT,
                                headers={"Content-Type": "application/json"})
        served = {parameter.name: SERVED[parameter.name] for parameter in operation.path_parameters}
        validate(operation.Case(path_parameters=served, body=body, media_type="application/json"), response, tally)

    fuzz_for("raw_json", raw_requests(), check, tally)
    assert_alive(session, base_url)


# --- what the fuzzer found ------------------------------------------------------------------------------

def _row(**changes) -> str:
    return json.dumps({"instances": [{**PENGUIN_ROW, **changes}]})


def _examples(signature: str, **changes) -> str:
    return json.dumps({"signature_name": signature, "examples": [{**EXAMPLE_ROW, **changes}]})


@pytest.mark.parametrize("api, body, message", [
    # Unpaired surrogate escapes (json.loads takes them, orjson does not): 500 where a string was encoded.
    pytest.param("predict", _row(island="\ud800"), "JSON Parse error: The surrogate pair in string is invalid.",
                 id="surrogate-in-input"),
    pytest.param("regress", _examples("regression", island="x\udfff"), "The surrogate pair in string is invalid.",
                 id="surrogate-in-feature"),
    pytest.param("classify", json.dumps({"inputs": {"\udc00": 1}}), "The surrogate pair in string is invalid.",
                 id="surrogate-in-echoed-key"),  # was a plain-text 500: the error message itself failed to encode
    pytest.param("predict", json.dumps({"signature_name": "\udbff", "instances": [1]}), "The surrogate pair",
                 id="surrogate-in-signature-name"),
    # Numbers past a double or 64 bits, read by the stdlib parser (NaN elsewhere makes orjson refuse the document).
    pytest.param("predict", _row(bill_length_mm=10**400, bill_depth_mm=math.nan),
                 "Number too big to be stored in double.", id="integer-past-double"),
    pytest.param("predict", _row(bill_length_mm=0.5, bill_depth_mm=math.nan).replace("0.5", "9" * 5000),
                 "Number too big to be stored in double.", id="integer-past-int-digit-limit"),
    # Decimals a float32 input cannot hold (TF Serving's IsLosslessDecimal): were inf or rounded, then 200.
    pytest.param("predict", _row(bill_length_mm=3.5e38),
                 "Cannot convert JSON value: 3.5e+38 to float without loss of precision.", id="float32-overflow"),
    pytest.param("predict", _row(bill_length_mm=2**24 + 1),
                 "Cannot convert JSON value: 16777217 to float without loss", id="float32-inexact-integer"),
    pytest.param("classify", _examples("classification", bill_length_mm=1e39),
                 "Cannot convert JSON value: 1e+39 to float", id="float-feature-overflow"),
    # A TensorFlow error quoting binary input surfaced as UnicodeDecodeError (500).
    pytest.param("predict", json.dumps({"signature_name": "transform_features",
                                        "instances": [{"examples": {"b64": "gA=="}}]}),
                 "Could not parse example input", id="tf-error-quoting-binary-input"),
])
def test_inputs_the_fuzzer_broke_the_server_with_are_400(session, base_url, api, body, message):
    response = session.post(f"{base_url}/v1/models/penguin:{api}", data=body.encode(), timeout=REQUEST_TIMEOUT)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    assert_alive(session, base_url)


def test_a_feature_integer_past_int64_is_sent_as_a_float_and_answered(session, base_url):
    """TF Serving's REST API makes a float feature of an integer past int64 (the fuzzer once got a 500 for it);
    the model's tf.Example signatures read a numeric column sent as int64 or float alike (issue 10)."""
    body = _examples("classification", body_mass_g=-(10**20), bill_length_mm=math.nan).encode()
    response = session.post(f"{base_url}/v1/models/penguin:classify", data=body, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 1
    assert_alive(session, base_url)


def _nan_scoring_model(export_dir: str) -> None:
    """A Classify model whose first score is NaN for every example. A trained model's answer to an inf
    feature depends on the CPU's kernels (inf * w sums to NaN on some machines and not on others), so the
    NaN comes from the model itself."""
    import tensorflow as tf

    from trainer import contract
    from trainer.export import set_signature_method_name

    class NaNScores(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.CLASSIFY_INPUTS)])
        def classify(self, inputs):
            rows = tf.shape(inputs)[0]
            scores = tf.tile(tf.constant([[math.nan, 0.5]], tf.float32), [rows, 1])
            classes = tf.tile(tf.constant([["Adelie", "Gentoo"]]), [rows, 1])
            return {contract.SCORES: scores, contract.CLASSES: classes}

    module = NaNScores()
    tf.saved_model.save(module, export_dir, signatures={contract.CLASSIFY_SIGNATURE: module.classify})
    set_signature_method_name(export_dir, contract.CLASSIFY_SIGNATURE, contract.CLASSIFY_METHOD)


def test_nan_in_results_is_written_as_tf_serving_writes_it_and_passes_the_checks(session, tmp_path):
    _nan_scoring_model(str(tmp_path / "nan_scores" / "1"))
    config = tmp_path / "models.config"
    config.write_text(f"model_config_list {{ config {{ name: 'nan_scores' base_path: '{tmp_path / 'nan_scores'}' "
                      "model_platform: 'tensorflow' } }\n")
    server = start_server(model_config_file=str(config), enable_model_warmup=False)
    try:
        base_url = f"http://127.0.0.1:{server.rest_port}"
        body = _examples("classification").encode()
        response = session.post(f"{base_url}/v1/models/nan_scores:classify", data=body, timeout=REQUEST_TIMEOUT)
        assert response.status_code == 200 and b'["Adelie", NaN]' in response.content, response.text
        operation = load_schema(spec_document(), base_url)["/v1/models/{model_name}:classify"]["POST"]
        validate(operation.Case(path_parameters={"model_name": "nan_scores"}, body=body,
                                media_type="application/json"), response, Tally())
    finally:
        server.stop()
