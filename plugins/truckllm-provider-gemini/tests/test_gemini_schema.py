"""JSON Schema cleaning on real-world schemas (MCP servers, Pydantic v1/v2, zod-to-json-schema).

Every cleaned schema must pass the fake Gemini's checks (which reject, like Gemini, ``$schema``,
``additionalProperties``, ``const``, ``$ref``, type arrays, non-string enum values and
``required`` names without a property), and keep the meaning it can express.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from truckllm_provider_gemini.schema import MAX_DEPTH, MAX_NODES, to_gemini_schema

from truckllm_testing.fakes import FakeGemini

# @modelcontextprotocol/server-filesystem, edit_file (zod-to-json-schema, draft-07)
MCP_FILESYSTEM_EDIT = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "edits": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "oldText": {"type": "string", "description": "Text to search for - must match exactly"},
                    "newText": {"type": "string", "description": "Text to replace with"},
                },
                "required": ["oldText", "newText"],
                "additionalProperties": False,
            },
        },
        "dryRun": {
            "type": "boolean",
            "default": False,
            "description": "Preview changes using git-style diff format",
        },
    },
    "required": ["path", "edits"],
    "additionalProperties": False,
    "$schema": "http://json-schema.org/draft-07/schema#",
}

# a GitHub-style MCP tool: nullable strings, string arrays, enums, free-form objects
MCP_GITHUB_ISSUE = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "owner": {"type": "string"},
        "repo": {"type": "string"},
        "title": {"type": "string", "minLength": 1},
        "body": {"type": ["string", "null"]},
        "labels": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "state": {"type": "string", "enum": ["open", "closed"], "default": "open"},
        "milestone": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "extra": {"type": "object", "additionalProperties": True},
        "page": {"type": "integer", "minimum": 1, "maximum": 100, "multipleOf": 1},
    },
    "required": ["owner", "repo", "title"],
    "additionalProperties": False,
}

# Pydantic 2.x: Person.model_json_schema() with Optional[Model], Enum, discriminated union,
# dict[str, int], set[str], tuple[float, float] | None, UUID, datetime, constrained types
PYDANTIC_PERSON = json.loads(
    r"""{"$defs": {"Address": {"properties": {"street": {"title": "Street", "type": "string"}, "zip": {"pattern":
 "^\\d{5}$", "title": "Zip", "type": "string"}}, "required": ["street", "zip"], "title": "Address", "type": "object"},
 "Cat": {"properties": {"kind": {"const": "cat", "title": "Kind", "type": "string"}, "lives": {"default": 9,
 "maximum": 9, "minimum": 0, "title": "Lives", "type": "integer"}}, "required": ["kind"], "title": "Cat", "type":
 "object"}, "Color": {"enum": ["red", "green"], "title": "Color", "type": "string"}, "Dog": {"properties": {"kind":
 {"const": "dog", "title": "Kind", "type": "string"}, "good": {"default": true, "title": "Good", "type": "boolean"}},
 "required": ["kind"], "title": "Dog", "type": "object"}}, "description": "A person.", "properties": {"id": {"format":
 "uuid", "title": "Id", "type": "string"}, "name": {"description": "Full name", "maxLength": 64, "title": "Name",
 "type": "string"}, "born": {"format": "date-time", "title": "Born", "type": "string"}, "address": {"anyOf": [{"$ref":
 "#/$defs/Address"}, {"type": "null"}], "default": null}, "favorite": {"$ref": "#/$defs/Color", "default": "red"},
 "pets": {"default": [], "items": {"discriminator": {"mapping": {"cat": "#/$defs/Cat", "dog": "#/$defs/Dog"},
 "propertyName": "kind"}, "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]}, "title": "Pets", "type":
 "array"}, "scores": {"additionalProperties": {"type": "integer"}, "default": {}, "title": "Scores", "type": "object"},
 "tags": {"default": [], "items": {"type": "string"}, "title": "Tags", "type": "array", "uniqueItems": true}, "point":
 {"anyOf": [{"maxItems": 2, "minItems": 2, "prefixItems": [{"type": "number"}, {"type": "number"}], "type": "array"},
 {"type": "null"}], "default": null, "title": "Point"}}, "required": ["id", "name", "born"], "title": "Person", "type":
 "object"}"""
)

# Pydantic 2.x recursive model: the root itself is a $ref
PYDANTIC_TREE = {
    "$defs": {
        "Node": {
            "properties": {
                "value": {"title": "Value", "type": "integer"},
                "children": {
                    "default": [],
                    "items": {"$ref": "#/$defs/Node"},
                    "title": "Children",
                    "type": "array",
                },
            },
            "required": ["value"],
            "title": "Node",
            "type": "object",
        }
    },
    "$ref": "#/$defs/Node",
}

# Pydantic 1.x: "definitions", and allOf wrapping a $ref to carry a description
PYDANTIC_V1 = {
    "title": "Order",
    "type": "object",
    "properties": {
        "item": {"title": "Item", "description": "What to buy", "allOf": [{"$ref": "#/definitions/Item"}]},
        "quantity": {"title": "Quantity", "default": 1, "exclusiveMinimum": 0, "type": "integer"},
    },
    "required": ["item"],
    "definitions": {
        "Item": {
            "title": "Item",
            "type": "object",
            "properties": {
                "sku": {"title": "Sku", "type": "string"},
                "price": {"title": "Price", "type": "number"},
            },
            "required": ["sku"],
        }
    },
}

# JSON Schema 2020-12 keywords Gemini's subset lacks
EXOTIC = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://example.com/exotic",
    "$comment": "kitchen sink",
    "type": "object",
    "properties": {
        "anything": {},
        "always": True,
        "only_null": {"type": "null"},
        "tuple": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        "mixed": {
            "type": ["string", "integer", "array"],
            "items": {"type": "string"},
            "description": "a or b",
        },
        "conditional": {
            "type": "object",
            "if": {"properties": {"a": {"const": 1}}},
            "then": {"required": ["b"]},
        },
        "not_string": {"not": {"type": "string"}},
        "pattern_props": {"type": "object", "patternProperties": {"^x-": {"type": "string"}}},
        "deps": {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "dependentRequired": {"a": ["b"]},
        },
        "examples": {"type": "string", "examples": ["x"], "contentMediaType": "text/plain", "readOnly": True},
        "email": {"type": "string", "format": "email"},
        "ratio": {"type": "number", "format": "float", "exclusiveMaximum": 1},
        "count": {"type": "integer", "format": "int64"},
        "implicit_object": {
            "description": "no type",
            "properties": {"id": {"type": "string"}},
            "required": ["id", "gone"],
        },
        "bool_enum": {"enum": [True, False, None]},
        "str_props_on_string": {"type": "string", "properties": {"x": {"type": "string"}}, "required": ["x"]},
    },
    "required": ["anything", "missing"],
    "additionalProperties": False,
}

REAL_WORLD = {
    "mcp_filesystem_edit": MCP_FILESYSTEM_EDIT,
    "mcp_github_issue": MCP_GITHUB_ISSUE,
    "pydantic_person": PYDANTIC_PERSON,
    "pydantic_tree": PYDANTIC_TREE,
    "pydantic_v1": PYDANTIC_V1,
    "exotic": EXOTIC,
}

_FORBIDDEN = ("$schema", "$ref", "$defs", "definitions", "additionalProperties", "propertyNames", "const", "allOf",
              "oneOf", "not", "if", "then", "patternProperties", "prefixItems", "examples", "$id", "$comment",
              "uniqueItems", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "discriminator")  # fmt: skip


def gemini_problems(schema: dict[str, Any]) -> list[str]:
    """What the fake Gemini (field names and semantic checks) says about one ``Schema``."""
    fake = FakeGemini()
    problems = fake._walk(schema, "Schema", "parameters") + fake._check_schema(schema, "parameters")
    return [p.message for p in problems]


def walk(node: Any) -> list[dict[str, Any]]:
    """Every schema node."""
    if not isinstance(node, dict):
        return []
    out = [node]
    for sub in (node.get("properties") or {}).values():
        out += walk(sub)
    out += walk(node.get("items"))
    for sub in node.get("anyOf") or []:
        out += walk(sub)
    return out


@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_real_world_schema_is_accepted(name: str) -> None:
    original = REAL_WORLD[name]
    before = copy.deepcopy(original)
    cleaned = to_gemini_schema(original)
    assert original == before  # the input is not changed
    assert gemini_problems(cleaned) == []
    for node in walk(cleaned):
        assert not set(node) & set(_FORBIDDEN), node
        if "properties" in node or "required" in node:
            assert node.get("type") == "OBJECT" and node["properties"]
        if "items" in node or node.get("type") == "ARRAY":
            assert node.get("type") == "ARRAY" and "items" in node
        if "enum" in node:
            assert node["type"] == "STRING" and all(isinstance(v, str) for v in node["enum"])
        assert not isinstance(node.get("type"), list)


def test_mcp_filesystem_structure_is_kept() -> None:
    cleaned = to_gemini_schema(MCP_FILESYSTEM_EDIT)
    assert cleaned == {
        "type": "OBJECT",
        "properties": {
            "path": {"type": "STRING"},
            "edits": {
                "type": "ARRAY",
                "items": {
                    "type": "OBJECT",
                    "properties": {
                        "oldText": {
                            "type": "STRING",
                            "description": "Text to search for - must match exactly",
                        },
                        "newText": {"type": "STRING", "description": "Text to replace with"},
                    },
                    "required": ["oldText", "newText"],
                },
            },
            "dryRun": {
                "type": "BOOLEAN",
                "description": "Preview changes using git-style diff format",
                "default": False,
            },
        },
        "required": ["path", "edits"],
    }


def test_github_issue_nullable_and_enum() -> None:
    props = to_gemini_schema(MCP_GITHUB_ISSUE)["properties"]
    assert props["body"] == {"type": "STRING", "nullable": True}
    assert props["state"] == {
        "type": "STRING",
        "format": "enum",
        "enum": ["open", "closed"],
        "default": "open",
    }
    assert props["milestone"] == {"type": "NUMBER", "nullable": True}
    assert props["extra"] == {"type": "OBJECT"}  # free-form: no (empty) properties map
    assert props["page"] == {"type": "INTEGER", "minimum": 1, "maximum": 100}
    assert props["title"] == {"type": "STRING", "minLength": 1}


def test_pydantic_refs_inlined_and_unions_kept() -> None:
    cleaned = to_gemini_schema(PYDANTIC_PERSON)
    props = cleaned["properties"]
    assert cleaned["description"] == "A person." and cleaned["required"] == ["id", "name", "born"]
    assert props["address"]["type"] == "OBJECT" and props["address"]["nullable"] is True
    assert props["address"]["properties"]["zip"] == {"type": "STRING", "title": "Zip", "pattern": r"^\d{5}$"}
    assert props["favorite"]["enum"] == ["red", "green"] and props["favorite"]["default"] == "red"
    assert props["born"] == {"type": "STRING", "format": "date-time", "title": "Born"}
    assert props["id"] == {"type": "STRING", "title": "Id"}  # uuid is not a Gemini format
    pets = props["pets"]["items"]["anyOf"]
    assert [p["properties"]["kind"]["enum"] for p in pets] == [["cat"], ["dog"]]
    assert pets[0]["properties"]["lives"] == {
        "type": "INTEGER",
        "title": "Lives",
        "minimum": 0,
        "maximum": 9,
        "default": 9,
    }
    assert props["point"]["type"] == "ARRAY" and props["point"]["nullable"] is True
    assert props["point"]["items"] == {"type": "NUMBER"}


def test_recursive_refs_are_cut() -> None:
    cleaned = to_gemini_schema(PYDANTIC_TREE)
    assert cleaned["type"] == "OBJECT" and cleaned["required"] == ["value"]
    child = cleaned["properties"]["children"]["items"]
    assert child == {"type": "OBJECT"}  # the recursion point: a bare object
    root_ref = to_gemini_schema(
        {"type": "object", "properties": {"self": {"$ref": "#"}, "n": {"type": "string"}}}
    )
    assert root_ref["properties"]["self"] == {"type": "OBJECT"}


def test_pydantic_v1_definitions_and_allof() -> None:
    cleaned = to_gemini_schema(PYDANTIC_V1)
    item = cleaned["properties"]["item"]
    assert item["description"] == "What to buy" and item["type"] == "OBJECT"
    assert item["properties"] == {
        "sku": {"type": "STRING", "title": "Sku"},
        "price": {"type": "NUMBER", "title": "Price"},
    }
    assert item["required"] == ["sku"]
    assert cleaned["properties"]["quantity"] == {"type": "INTEGER", "title": "Quantity", "default": 1}


def test_exotic_keywords() -> None:
    props = to_gemini_schema(EXOTIC)["properties"]
    assert props["anything"] == {} and props["always"] == {}
    assert props["only_null"] == {"nullable": True}
    assert props["tuple"] == {"type": "ARRAY", "items": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}}
    assert props["mixed"] == {
        "description": "a or b",
        "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}, {"type": "ARRAY", "items": {"type": "STRING"}}],
    }
    assert props["email"] == {"type": "STRING"}
    assert props["ratio"] == {"type": "NUMBER", "format": "float"}
    assert props["count"] == {"type": "INTEGER", "format": "int64"}
    assert props["implicit_object"] == {
        "type": "OBJECT",
        "description": "no type",
        "properties": {"id": {"type": "STRING"}},
        "required": ["id"],
    }
    assert props["bool_enum"] == {
        "type": "STRING",
        "format": "enum",
        "enum": ["true", "false"],
        "nullable": True,
    }
    assert props["str_props_on_string"] == {"type": "STRING"}  # properties only on OBJECT
    assert to_gemini_schema(EXOTIC)["required"] == ["anything"]


def test_const_and_non_string_enums_become_strings() -> None:
    assert to_gemini_schema({"const": 3}) == {"type": "STRING", "format": "enum", "enum": ["3"]}
    assert to_gemini_schema({"type": "integer", "enum": [1, 2]}) == {
        "type": "STRING",
        "format": "enum",
        "enum": ["1", "2"],
    }
    assert to_gemini_schema({"enum": [{"a": 1}, "x"]})["enum"] == ['{"a":1}', "x"]


def test_depth_is_bounded() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"next": schema}}
    cleaned = to_gemini_schema(schema)
    depth = 0
    node = cleaned
    while "properties" in node:
        node = node["properties"]["next"]
        depth += 1
    assert depth == MAX_DEPTH + 1
    assert node == {"type": "OBJECT"}
    assert gemini_problems(cleaned) == []


def test_exponential_refs_are_bounded() -> None:
    defs = {
        f"D{i}": {"type": "object", "properties": {k: {"$ref": f"#/$defs/D{i + 1}"} for k in "abcdefgh"}}
        for i in range(12)
    }
    defs["D12"] = {"type": "string"}
    cleaned = to_gemini_schema({"$defs": defs, "$ref": "#/$defs/D0"})
    assert len(json.dumps(cleaned)) < 2_000_000
    assert len(walk(cleaned)) <= MAX_NODES + 100  # past the budget, siblings are cut to bare nodes
    assert gemini_problems(cleaned) == []


@pytest.mark.parametrize("garbage", [None, 3, "x", [], True, {"type": 5}, {"properties": [1]}, {"$ref": "#/nope"},
                                     {"$ref": "http://remote/x"}, {"allOf": [1, {"type": "string"}]},
                                     {"items": [True]}, {"enum": "x"}, {"required": "abc", "properties": {"a": {}}}])  # fmt: skip
def test_garbage_does_not_crash(garbage: Any) -> None:
    cleaned = to_gemini_schema(garbage)
    assert isinstance(cleaned, dict)
    assert gemini_problems(cleaned) == []
