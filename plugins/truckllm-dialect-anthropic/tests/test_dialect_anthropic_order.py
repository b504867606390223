"""The Anthropic dialect never reorders tools or a tool schema's keys when it builds the typed
request (a reordering changes the prompt prefix other providers cache), and an Anthropic
deployment gets the body, ``cache_control`` and all, byte for byte."""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_dialect_anthropic.request import read_request

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
        tools.append({"name": name, "input_schema": dict(members), "cache_control": {"type": "ephemeral"}})
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}],
            }
        ],
        "tools": tools,
    }
    raw = json.dumps(body).encode()
    typed = read_request(raw, "chat").typed
    assert typed is not None and isinstance(typed.tools, list)
    assert [t.function.name for t in typed.tools if t.function is not msgspec.UNSET] == names
    for tool, original in zip(typed.tools, tools, strict=True):
        assert tool.function is not msgspec.UNSET and isinstance(tool.function.parameters, msgspec.Raw)
        assert _pairs(bytes(tool.function.parameters)) == _pairs(json.dumps(original["input_schema"]))
