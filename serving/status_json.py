"""Model status and metadata as TF Serving's protos, and as the JSON its REST API prints for them.

Status JSON is the proto's JSON mapping with default values printed (`model_version_status`,
`version` as a string, `state` "AVAILABLE"/"LOADING"/"END"..., `status` {error_code, error_message});
metadata JSON is `{"model_spec": ..., "metadata": {"signature_def": <SignatureDefMap>}}` with proto
field names, as http_rest_api_util.cc assembles it.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from serving import protos
from serving.version_manager import VersionStatus
from trainer.contract import SIGNATURE_DEF_METADATA_FIELD


def status_proto(statuses: Sequence[VersionStatus]) -> Any:
    apis = protos.load()
    response = apis.get_model_status_pb2.GetModelStatusResponse()
    state_enum = apis.get_model_status_pb2.ModelVersionStatus.State
    for status in statuses:
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = state_enum.Value(status.state)
        entry.status.SetInParent()  # TF Serving always reports the status, OK included
        if status.error is not None:
            entry.status.error_code = int(status.error.code)
            entry.status.error_message = status.error.message
    return response


def status_json(response: Any) -> bytes:
    """A GetModelStatusResponse as TF Serving's REST API prints it."""
    from google.protobuf import json_format

    text = json_format.MessageToJson(response, indent=1, **_print_defaults())
    return text.encode("utf-8")


def _print_defaults() -> dict[str, bool]:
    """MessageToJson's "print fields left at their default" flag: protobuf 5.26 renamed it (and 6 dropped
    the old name), and both stacks must print TF Serving's defaults (`"version": "0"`, empty status)."""
    import inspect

    from google.protobuf import json_format

    if "always_print_fields_with_no_presence" in inspect.signature(json_format.MessageToJson).parameters:
        return {"always_print_fields_with_no_presence": True}
    return {"including_default_value_fields": True}


def metadata_proto(servable: Any) -> Any:
    """GetModelMetadataResponse with the `signature_def` metadata TF Serving returns."""
    apis = protos.load()
    response = apis.get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signature_map = apis.get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in servable.meta_graph.signature_def.items():
        signature_map.signature_def[key].CopyFrom(signature_def)
    response.metadata[SIGNATURE_DEF_METADATA_FIELD].Pack(signature_map)
    return response


def metadata_json(response: Any) -> bytes:
    """A GetModelMetadataResponse (from `metadata_proto`) as TF Serving's REST API prints it."""
    from google.protobuf import json_format

    signature_map = protos.load().get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_METADATA_FIELD].Unpack(signature_map)
    options = dict(preserving_proto_field_name=True, **_print_defaults())
    document = {
        "model_spec": json.loads(json_format.MessageToJson(response.model_spec, **options)),
        "metadata": {SIGNATURE_DEF_METADATA_FIELD: json.loads(json_format.MessageToJson(signature_map, **options))},
    }
    return json.dumps(document, indent=1).encode("utf-8")
