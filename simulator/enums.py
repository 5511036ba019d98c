"""Numeric enums for the gRPC-transcoded APIs, as Google answers the generated REST clients.

The generated (GAPIC) REST transports send the system parameter `$alt=json;enum-encoding=int`, and
Google's front end then writes every enum as its number (`"state": 4`, `"logType": 2`), so the raw
evidence a collector records from Batch, KMS, Org Policy or Resource Manager holds numbers, not
names. Handlers keep producing names; the app converts a response when the request asked for it,
walking the message's proto descriptor (from the installed client library) so that only real enum
fields change and unknown fields pass through untouched.
"""

from __future__ import annotations

import copy
import importlib
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_SKIP_PREFIX = "google.protobuf."   # Struct, Any, Timestamp, Duration...: no enums to convert


def wants_numeric_enums(alt: str | None) -> bool:
    return alt is not None and "enum-encoding=int" in alt.replace(" ", "")


@cache
def descriptor(type_ref: str) -> Descriptor:
    """`"google.cloud.batch_v1.types:Job"` (proto-plus) or `"google.iam.v1.policy_pb2:Policy"` (pb2)."""
    module_name, _, attribute = type_ref.partition(":")
    message = getattr(importlib.import_module(module_name), attribute)
    pb = message.pb() if hasattr(message, "pb") else message
    return pb.DESCRIPTOR


def to_numeric_enums(body: Any, type_ref: str) -> Any:
    """A copy of `body` (REST JSON of message `type_ref`) with enum names replaced by numbers."""
    result = copy.deepcopy(body)
    _convert(result, descriptor(type_ref))
    return result


def _enum_value(field: FieldDescriptor, value: Any) -> Any:
    if isinstance(value, str) and value in field.enum_type.values_by_name:
        return field.enum_type.values_by_name[value].number
    return value


def _convert(value: Any, message: Descriptor) -> None:
    if not isinstance(value, dict) or message.full_name.startswith(_SKIP_PREFIX):
        return
    fields = {f.json_name: f for f in message.fields}
    fields.update({f.name: f for f in message.fields})
    for key, item in list(value.items()):
        field = fields.get(key)
        if field is None:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            map_value = field.message_type.fields_by_name["value"]
            if isinstance(item, dict):
                for map_key, map_item in list(item.items()):
                    if map_value.enum_type is not None:
                        item[map_key] = _enum_value(map_value, map_item)
                    elif map_value.message_type is not None:
                        _convert(map_item, map_value.message_type)
        elif field.enum_type is not None:
            value[key] = [_enum_value(field, v) for v in item] if isinstance(item, list) else _enum_value(field, item)
        elif field.message_type is not None:
            for element in item if isinstance(item, list) else [item]:
                _convert(element, field.message_type)
