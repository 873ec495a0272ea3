"""Mutations of serialized protobuf messages that keep their wire format valid, for byte-level fuzzing.

Random edits of the bytes almost always break a length prefix, so the message no longer parses and only
gRPC's deserializer is exercised. These edit one field anywhere in the message (found by reading the
wire format, no schema needed) and re-encode every enclosing length: a field dropped or repeated, a
varint replaced by an extreme value, bits flipped or bytes cut or added inside a string or packed field.
The result usually still parses, so the request reaches the server's own decoding.
"""
from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_EXTREME_VARINTS = (0, 1, 2**7, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1, 2**64 - 2**31)
_MAX_DEPTH = 12


@dataclasses.dataclass
class WireField:
    key: int  # field number << 3 | wire type
    payload: bytes  # the value's bytes, without the length prefix of a length-delimited field
    children: list["WireField"] | None = None  # when the payload parses as a message

    @property
    def wire_type(self) -> int:
        return self.key & 7


def parse_fields(data: bytes, depth: int = 0) -> list[WireField] | None:
    """The fields of a serialized message, nested where a payload parses as one; None if `data` does not."""
    fields, pos = [], 0
    try:
        while pos < len(data):
            key, pos = _read_varint(data, pos)
            wire_type = key & 7
            if wire_type == _VARINT:
                _, end = _read_varint(data, pos)
            elif wire_type in (_FIXED64, _FIXED32):
                end = pos + (8 if wire_type == _FIXED64 else 4)
            elif wire_type == _LENGTH_DELIMITED:
                size, pos = _read_varint(data, pos)
                end = pos + size
            else:
                return None  # groups: not in TF Serving's messages
            if end > len(data) or key >> 3 == 0:
                return None
            payload = data[pos:end]
            nested = wire_type == _LENGTH_DELIMITED and depth < _MAX_DEPTH
            children = parse_fields(payload, depth + 1) if nested else None
            fields.append(WireField(key, payload, children))
            pos = end
    except IndexError:
        return None
    return fields


def encode_fields(fields: list[WireField]) -> bytes:
    out = bytearray()
    for field in fields:
        out += encode_varint(field.key)
        payload = encode_fields(field.children) if field.children is not None else field.payload
        if field.wire_type == _LENGTH_DELIMITED:
            out += encode_varint(len(payload))
        out += payload
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]  # IndexError when truncated
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80 or shift > 63:
            return value, pos
        shift += 7


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _containers(fields: list[WireField]) -> list[list[WireField]]:
    """Every list of fields in the tree: the message's own and each nested message's."""
    found = [fields]
    for field in fields:
        if field.children is not None:
            found += _containers(field.children)
    return found


@st.composite
def wire_mutation(draw, seed: bytes) -> bytes:
    """`seed` (a serialized message) with one field somewhere in it dropped, repeated or altered."""
    fields = parse_fields(seed)
    assert fields is not None, "the seed must be a serialized message"
    containers = [c for c in _containers(fields) if c]
    if not containers:
        return seed
    container = draw(st.sampled_from(containers))
    index = draw(st.integers(0, len(container) - 1))
    field = container[index]
    edit = draw(st.sampled_from(("drop", "repeat", "alter")))
    if edit == "drop":
        del container[index]
    elif edit == "repeat":
        container.insert(index, dataclasses.replace(field, children=None, payload=_encoded_payload(field)))
    else:
        container[index] = dataclasses.replace(field, children=None, payload=draw(_altered_payload(field)))
    return encode_fields(fields)


def _encoded_payload(field: WireField) -> bytes:
    return encode_fields(field.children) if field.children is not None else field.payload


def _altered_payload(field: WireField) -> st.SearchStrategy[bytes]:
    payload = _encoded_payload(field)
    if field.wire_type == _VARINT:
        return st.one_of(st.sampled_from(_EXTREME_VARINTS), st.integers(0, 2**64 - 1)).map(encode_varint)
    if field.wire_type != _LENGTH_DELIMITED:
        return st.binary(min_size=len(payload), max_size=len(payload))

    def edited(edit: tuple[str, int, bytes]) -> bytes:
        kind, where, extra = edit
        at = where % (len(payload) + 1)
        if kind == "flip" and at < len(payload):
            return payload[:at] + bytes([payload[at] ^ 1 << extra[0] % 8]) + payload[at + 1:]
        if kind == "cut":
            return payload[:at]
        return payload[:at] + extra + payload[at:]

    return st.tuples(st.sampled_from(("flip", "cut", "add")), st.integers(0, 2**16),
                     st.binary(min_size=1, max_size=16)).map(edited)
