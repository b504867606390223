"""JSON Schema → the OpenAPI 3.0 subset Gemini's ``parameters`` and ``responseSchema`` accept.

MCP servers and Pydantic produce schemas that Gemini rejects with "Unknown name ..." or "Proto
field is not repeating" (PROVIDERS.md §5 item 13). :func:`to_gemini_schema` rewrites them:

- ``$ref`` is inlined from ``$defs`` / ``definitions`` (a recursive reference becomes a bare
  node of the referenced type), ``allOf`` is merged, ``oneOf`` becomes ``anyOf``;
- ``type`` arrays become one type plus ``nullable`` (several types: ``anyOf``), an ``anyOf`` with a
  ``null`` branch becomes ``nullable``;
- ``const`` becomes a one-value ``enum``; ``enum`` values become strings (and the type ``STRING``);
- ``required`` keeps only names that ``properties`` defines, an empty ``properties`` map is left out
  and every array gets ``items`` (``{}`` when none was given): Gemini rejects both;
- ``format`` is kept only where Gemini knows it (``enum``/``date-time`` on strings,
  ``int32``/``int64``, ``float``/``double``);
- every other keyword (``$schema``, ``additionalProperties``, ``propertyNames``,
  ``patternProperties``, ``not``, ``if``...) is dropped, and nesting is cut at :data:`MAX_DEPTH`.

Type names are sent upper-case, as Google's SDKs send them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NODES", "to_gemini_schema"]

MAX_DEPTH = 16
"""Schema nesting kept; deeper nodes are cut to their bare type."""

MAX_NODES = 5000
"""Nodes written per schema (inlined ``$ref`` can multiply them); past it, nodes are cut too."""

_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
_FORMATS = {
    "STRING": {"enum", "date-time"},
    "INTEGER": {"int32", "int64"},
    "NUMBER": {"float", "double"},
}
_COPIED = (
    "title",
    "description",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "example",
    "default",
)
_UNION_KEYS = ("type", "anyOf", "oneOf", "nullable", "title", "description")


def _bare(gemini_type: str | None) -> dict[str, Any]:
    """A node cut short: its type alone (an array keeps the ``items`` Gemini requires)."""
    if gemini_type is None:
        return {}
    if gemini_type == "ARRAY":
        return {"type": "ARRAY", "items": {}}
    return {"type": gemini_type}


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _Cleaner:
    """One cleaning run over one root schema (it owns the ``$defs`` and the ``$ref`` stack)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        defs: dict[str, Any] = {}
        for key in ("definitions", "$defs"):
            value = root.get(key)
            if isinstance(value, Mapping):
                defs.update(value)
        self.defs = defs
        self.root = root
        self.refs: list[str] = ["#"]  # the $refs inlined on the path from the root to this node
        self.nodes = 0

    def resolve(self, ref: str) -> Any:
        """The schema a local ``$ref`` points at, or ``None``."""
        if ref == "#":
            return self.root
        if not ref.startswith("#/"):
            return None
        node: Any = self.root
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                short = ref.rsplit("/", 1)[-1]
                return self.defs.get(short)
        return node

    def clean(self, schema: Any, depth: int) -> dict[str, Any]:
        """The Gemini form of one schema node."""
        if not isinstance(schema, Mapping):
            return {}  # `true`, `false` or garbage: no constraint Gemini can express
        flat, pushed = self._flatten(schema)
        self.refs.extend(pushed)
        try:
            self.nodes += 1
            if depth > MAX_DEPTH or self.nodes > MAX_NODES:
                return _bare(self._type_of(flat))
            return self._clean(flat, depth)
        finally:
            if pushed:
                del self.refs[-len(pushed) :]

    def _clean(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        nullable = schema.get("nullable") is True

        # --- the type: one name, or a list (a "null" in it becomes nullable) ---
        raw_type = schema.get("type")
        names = raw_type if isinstance(raw_type, list) else [raw_type]
        types = [t for t in dict.fromkeys(n.lower() for n in names if isinstance(n, str)) if t in _TYPES]
        if "null" in types:
            nullable = True
            types.remove("null")

        # --- anyOf / oneOf (a null branch becomes nullable; empty branches constrain nothing) ---
        branches = schema.get("anyOf")
        if not isinstance(branches, list):
            one_of = schema.get("oneOf")
            branches = one_of if isinstance(one_of, list) else []
        any_of: list[dict[str, Any]] = []
        for branch in branches:
            if isinstance(branch, Mapping) and self._is_null(branch):
                nullable = True
                continue
            cleaned_branch = self.clean(branch, depth + 1)
            if cleaned_branch and cleaned_branch not in any_of:
                any_of.append(cleaned_branch)

        # several types: one branch per type, each with the type's own keywords
        if len(types) > 1:
            base = {k: v for k, v in schema.items() if k not in _UNION_KEYS}
            any_of = [self.clean({**base, "type": t}, depth + 1) for t in types] + any_of
            return self._union(schema, any_of, nullable)
        structural = any(k in schema for k in ("properties", "items", "prefixItems", "enum", "const"))
        if any_of and not types and not structural:
            return self._union(schema, any_of, nullable)

        # --- enum / const (Gemini enums are strings) ---
        enum: list[str] | None = None
        if "const" in schema:
            enum = [_scalar_text(schema["const"])]
        elif isinstance(schema.get("enum"), list):
            values = schema["enum"]
            if any(v is None for v in values):
                nullable = True
            enum = list(dict.fromkeys(_scalar_text(v) for v in values if v is not None))

        gemini_type: str | None = types[0].upper() if types else None
        if enum is not None:
            if gemini_type in (None, "STRING", "INTEGER", "NUMBER", "BOOLEAN") and enum:
                gemini_type = "STRING"
            else:
                enum = None
        if gemini_type is None:
            gemini_type = self._infer(schema)
        out: dict[str, Any] = {}
        if gemini_type is not None:
            out["type"] = gemini_type

        fmt = schema.get("format")
        if enum:
            out["format"] = "enum"
            out["enum"] = enum
        elif isinstance(fmt, str) and gemini_type in _FORMATS and fmt in _FORMATS[gemini_type]:
            out["format"] = fmt
        if nullable:
            out["nullable"] = True

        for key in _COPIED:
            value = schema.get(key)
            if value is None or not self._fits(key, value, gemini_type):
                continue
            out[key] = value

        if any_of:
            out["anyOf"] = any_of

        properties = schema.get("properties")
        if isinstance(properties, Mapping) and gemini_type == "OBJECT":
            cleaned = {str(name): self.clean(sub, depth + 1) for name, sub in properties.items()}
            if cleaned:  # Gemini rejects an empty properties map ("should be non-empty")
                out["properties"] = cleaned
                required = schema.get("required")
                if isinstance(required, list):
                    names = [
                        r for r in dict.fromkeys(r for r in required if isinstance(r, str)) if r in cleaned
                    ]
                    if names:
                        out["required"] = names

        if gemini_type == "ARRAY":  # Gemini requires items ("items: missing field"); {} is any item
            items = self._items(schema)
            out["items"] = self.clean(items, depth + 1) if items is not None else {}
        return out

    def _union(
        self, schema: Mapping[str, Any], any_of: list[dict[str, Any]], nullable: bool
    ) -> dict[str, Any]:
        """A node that is only a union: one branch is merged in, several stay an ``anyOf``."""
        out: dict[str, Any]
        if len(any_of) == 1:
            out = any_of[0]
            for key, value in self._annotations(schema).items():
                out.setdefault(key, value)
        else:
            out = self._annotations(schema)
            if any_of:
                out["anyOf"] = any_of
        if nullable:
            out["nullable"] = True
        return out

    @staticmethod
    def _items(schema: Mapping[str, Any]) -> Any:
        items = schema.get("items")
        if not isinstance(items, Mapping | list):
            items = schema.get("prefixItems")  # a tuple: any of its item schemas
        if isinstance(items, list):
            items = {"anyOf": items} if len(items) > 1 else (items[0] if items else None)
        return items if isinstance(items, Mapping) else None

    @staticmethod
    def _fits(key: str, value: Any, gemini_type: str | None) -> bool:
        if key in ("title", "description"):
            return isinstance(value, str)
        if key == "pattern":
            return isinstance(value, str) and gemini_type == "STRING"
        if key in ("minLength", "maxLength"):
            return _count(value) and gemini_type == "STRING"
        if key in ("minItems", "maxItems"):
            return _count(value) and gemini_type == "ARRAY"
        if key in ("minProperties", "maxProperties"):
            return _count(value) and gemini_type == "OBJECT"
        if key in ("minimum", "maximum"):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            return number and gemini_type in ("NUMBER", "INTEGER")
        return True  # example, default

    # --- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _annotations(schema: Mapping[str, Any]) -> dict[str, Any]:
        return {k: schema[k] for k in ("title", "description") if isinstance(schema.get(k), str)}

    @staticmethod
    def _is_null(schema: Mapping[str, Any]) -> bool:
        kind = schema.get("type")
        return kind == "null" and not schema.get("properties") and "enum" not in schema

    @staticmethod
    def _infer(schema: Mapping[str, Any]) -> str | None:
        """The type an untyped node implies by its keywords (``None``: any type)."""
        if any(k in schema for k in ("properties", "required", "minProperties", "maxProperties")):
            return "OBJECT"
        if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
            return "ARRAY"
        if any(k in schema for k in ("enum", "const", "pattern", "format", "minLength", "maxLength")):
            return "STRING"
        if any(k in schema for k in ("minimum", "maximum")):
            return "NUMBER"
        return None

    def _type_of(self, schema: Mapping[str, Any]) -> str | None:
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((t for t in kind if isinstance(t, str) and t != "null"), None)
        if isinstance(kind, str) and kind.lower() in _TYPES - {"null"}:
            return kind.upper()
        return self._infer(schema)

    def _flatten(self, schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[str]]:
        """Inline ``$ref`` and merge ``allOf`` at this node (not below); also the refs inlined."""
        pushed: list[str] = []
        for _ in range(MAX_DEPTH):
            ref = schema.get("$ref")
            all_of = schema.get("allOf")
            if isinstance(ref, str):
                target = self.resolve(ref)
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                if not isinstance(target, Mapping) or ref in self.refs or ref in pushed:
                    bare = self._type_of(target) if isinstance(target, Mapping) else None
                    schema = {**rest, "type": bare.lower()} if bare else rest
                    continue
                pushed.append(ref)
                # siblings of $ref (Pydantic puts description/default there) override the target
                schema = {**target, **rest}
                continue
            if isinstance(all_of, list):
                merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
                for part in all_of:
                    if not isinstance(part, Mapping):
                        continue
                    part, more = self._flatten(part)
                    pushed.extend(r for r in more if r not in pushed)
                    for key, value in part.items():
                        if key == "properties" and isinstance(value, Mapping):
                            known = merged.get("properties")
                            props = dict(known) if isinstance(known, Mapping) else {}
                            for name, sub in value.items():
                                props.setdefault(name, sub)
                            merged["properties"] = props
                        elif key == "required" and isinstance(value, list):
                            known = merged.get("required")
                            merged["required"] = [*(known if isinstance(known, list) else []), *value]
                        else:
                            merged.setdefault(key, value)
                schema = merged
                continue
            break
        if "$ref" in schema or "allOf" in schema:
            schema = {k: v for k, v in schema.items() if k not in ("$ref", "allOf")}
        return schema, pushed


def to_gemini_schema(schema: Any) -> dict[str, Any]:
    """The OpenAPI-subset form of a JSON Schema (a new object; the input is not changed).

    :param schema: a decoded JSON Schema (normally an ``object`` schema).
    :returns: a schema using only fields Gemini's ``Schema`` message knows.
    """
    if not isinstance(schema, Mapping):
        return {}
    return _Cleaner(schema).clean(schema, 0)
