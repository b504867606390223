"""The Responses dialect never reorders tools or a tool schema's keys when it builds the chat form
(a reordering changes the prompt prefix the provider caches)."""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_dialect_responses.request import read_request, to_chat

SETTINGS = settings(max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "100")), deadline=None)
names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=6, unique=True)
keys = st.lists(st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,6}", fullmatch=True), max_size=5, unique=True)


def _pairs(text: bytes | str) -> Any:
    return json.loads(text, object_pairs_hook=lambda pairs: [list(p) for p in pairs])


@SETTINGS
@given(names=names, props=st.lists(keys, min_size=6, max_size=6), where=st.integers(0, 2))
def test_tools_and_schema_keys_keep_their_order(names: list[str], props: list[list[str]], where: int) -> None:
    tools = []
    for name, prop_keys in zip(names, props, strict=False):
        members: list[tuple[str, Any]] = [
            ("properties", {k: {"type": "string"} for k in prop_keys}),
            ("required", prop_keys),
        ]
        members.insert(where, ("type", "object"))
        tools.append({"type": "function", "name": name, "parameters": dict(members)})
    parsed = read_request(json.dumps({"model": "alias", "input": "q", "tools": tools}).encode())
    typed = to_chat(parsed, parsed.input)
    assert isinstance(typed.tools, list)
    assert [t.function.name for t in typed.tools if t.function is not msgspec.UNSET] == names
    for tool, original in zip(typed.tools, tools, strict=True):
        assert tool.function is not msgspec.UNSET and isinstance(tool.function.parameters, msgspec.Raw)
        assert _pairs(bytes(tool.function.parameters)) == _pairs(json.dumps(original["parameters"]))
