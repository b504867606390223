"""Gemini's OpenAPI-subset ``Schema`` (``parameters``, ``responseSchema``) → JSON Schema.

Gemini writes types in upper case (``"STRING"``), marks nullable values with ``nullable: true``
and gives integer limits as strings (proto ``int64``). OpenAI and Anthropic want JSON Schema:
lower-case types, ``["string", "null"]``, numbers. ``example`` becomes ``examples``,
``propertyOrdering`` is dropped (JSON objects keep their order), ``defs``/``ref`` become
``$defs``/``$ref``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec

from .schema import Schema, given

__all__ = ["SCHEMA_TYPES", "json_schema", "schema_problems"]

SCHEMA_TYPES = {
    "STRING": "string",
    "NUMBER": "number",
    "INTEGER": "integer",
    "BOOLEAN": "boolean",
    "ARRAY": "array",
    "OBJECT": "object",
    "NULL": "null",
    "TYPE_UNSPECIFIED": None,
}
"""Gemini's ``Type`` enum (case-insensitive on input) → the JSON Schema type."""

_PACKAGE = "type.googleapis.com/google.ai.generativelanguage.v1beta"
_MAX_DEPTH = 64
_JSON = msgspec.json.Decoder()


def _int(value: int | str) -> int | str:
    """Proto ``int64`` limits come as JSON strings; JSON Schema wants numbers."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def schema_problems(node: Schema | None, at: str, depth: int = 0) -> list[str]:
    """What Gemini rejects in a schema: unknown types, ``required`` naming undefined properties."""
    problems: list[str] = []
    if node is None:
        return problems
    if depth > _MAX_DEPTH:
        return [f"* {at}: the schema is nested too deeply"]
    if node.type is not None and node.type.upper() not in SCHEMA_TYPES:
        where = at.split(".", 1)[1] if at[:1].isupper() and "." in at else at
        problems.append(
            f"Invalid value at '{where}.type' ({_PACKAGE}.Type), {msgspec.json.encode(node.type).decode()}"
        )
    for k, name in enumerate(node.required or ()):
        if name not in (node.properties or {}):
            problems.append(f"* {at}.required[{k}]: property is not defined")
    for name, sub in (node.properties or {}).items():
        problems.extend(schema_problems(sub, f"{at}.properties[{name}]", depth + 1))
    problems.extend(schema_problems(node.items, f"{at}.items", depth + 1))
    for k, sub in enumerate(node.any_of or ()):
        problems.extend(schema_problems(sub, f"{at}.any_of[{k}]", depth + 1))
    for name, sub in (node.defs or {}).items():
        problems.extend(schema_problems(sub, f"{at}.defs[{name}]", depth + 1))
    return problems


def json_schema(node: Schema, depth: int = 0) -> dict[str, Any]:
    """The JSON Schema for one (checked) Gemini schema node."""
    out: dict[str, Any] = {}
    if depth > _MAX_DEPTH:
        return out
    kind = SCHEMA_TYPES.get(node.type.upper()) if node.type else None
    if kind is not None:
        out["type"] = [kind, "null"] if node.nullable and kind != "null" else kind
    for name, value in (
        ("title", node.title),
        ("description", node.description),
        ("format", node.format),
        ("pattern", node.pattern),
        ("minimum", node.minimum),
        ("maximum", node.maximum),
    ):
        if value is not None:
            out[name] = value
    if node.enum is not None:
        out["enum"] = [*node.enum, None] if node.nullable and kind is not None else list(node.enum)
    for name, limit in (
        ("minItems", node.min_items),
        ("maxItems", node.max_items),
        ("minLength", node.min_length),
        ("maxLength", node.max_length),
        ("minProperties", node.min_properties),
        ("maxProperties", node.max_properties),
    ):
        if limit is not None:
            out[name] = _int(limit)
    if node.properties is not None:
        out["properties"] = {name: json_schema(sub, depth + 1) for name, sub in node.properties.items()}
    if node.required is not None:
        out["required"] = list(node.required)
    if node.items is not None:
        out["items"] = json_schema(node.items, depth + 1)
    if node.any_of is not None:
        choices = [json_schema(sub, depth + 1) for sub in node.any_of]
        if node.nullable and kind is None:
            choices.append({"type": "null"})
        out["anyOf"] = choices
    if given(node.additional_properties):
        extra = _JSON.decode(node.additional_properties)
        if isinstance(extra, dict):
            with contextlib.suppress(msgspec.ValidationError):
                extra = json_schema(msgspec.convert(extra, Schema), depth + 1)
        out["additionalProperties"] = extra
    if node.defs is not None:
        out["$defs"] = {name: json_schema(sub, depth + 1) for name, sub in node.defs.items()}
    if node.ref is not None:
        out["$ref"] = node.ref.replace("#/defs/", "#/$defs/")
    if given(node.example):
        out["examples"] = [_JSON.decode(node.example)]
    if given(node.default):
        out["default"] = _JSON.decode(node.default)
    return out
