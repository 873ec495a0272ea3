"""serving/openapi.yaml, the REST API's description: a valid OpenAPI document shipped in the `serving` package."""
import importlib.resources

import yaml

STATUS = ["/v1/models/{model_name}", "/v1/models/{model_name}/versions/{version}",
          "/v1/models/{model_name}/labels/{label}"]
ERROR_RESPONSE = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _spec_text() -> str:
    return importlib.resources.files("serving").joinpath("openapi.yaml").read_text()


def test_spec_is_a_valid_openapi_document_with_every_route():
    import schemathesis
    from schemathesis.config import SchemathesisConfig

    schema = schemathesis.openapi.from_file(_spec_text(), config=SchemathesisConfig())
    schema.validate()  # against the OpenAPI 3.0 meta-schema
    labels = {result.ok().label for result in schema.get_all_operations()}  # ok() raises for a broken operation
    assert labels == ({f"GET {path}" for path in STATUS} | {f"GET {path}/metadata" for path in STATUS}
                      | {f"POST {path}:{api}" for path in STATUS for api in ("predict", "classify", "regress")})


def test_every_error_is_documented_as_the_error_object():
    spec = yaml.safe_load(_spec_text())
    responses = spec["components"]["responses"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status != "200":
                    resolved = responses[response["$ref"].rsplit("/", 1)[1]]
                    assert {"content": resolved["content"]} == ERROR_RESPONSE, (method, path, status)
    assert spec["components"]["schemas"]["Error"] == {
        "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
        "additionalProperties": False}
