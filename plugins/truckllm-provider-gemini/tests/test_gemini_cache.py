"""Prompt caching: the translation never reorders tools, a schema's properties or its ``required``
list, and sends the same request the same way every time (a reordering or a varying body changes
the prompt prefix and so misses Gemini's implicit cache); in ``json_schema`` mode a tool's schema is
sent byte for byte. Cached content is reported as cached tokens (``cachedContentTokenCount``)."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=6, unique=True)
keys = st.lists(
    st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,6}", fullmatch=True), min_size=1, max_size=5, unique=True
)


def _pairs(text: bytes | str) -> Any:
    return json.loads(text, object_pairs_hook=lambda pairs: [list(p) for p in pairs])


def _tools(names: list[str], props: list[list[str]], where: int) -> list[dict[str, Any]]:
    tools = []
    for name, prop_keys in zip(names, props, strict=False):
        members: list[tuple[str, Any]] = [
            ("properties", {k: {"type": "string", "description": k} for k in prop_keys}),
            ("required", list(reversed(prop_keys))),
        ]
        members.insert(where, ("type", "object"))
        tools.append({"type": "function", "function": {"name": name, "parameters": dict(members)}})
    return tools


def _body(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "q"}], "tools": tools}


@SETTINGS
@given(names=names, props=st.lists(keys, min_size=6, max_size=6), where=st.integers(0, 2))
def test_tools_properties_and_required_keep_their_order(
    gx: Any, names: list[str], props: list[list[str]], where: int
) -> None:
    tools = _tools(names, props, where)
    sent = gx.upstream(_body(tools)).body
    assert gx.upstream(_body(tools)).body == sent  # deterministic
    declarations = json.loads(sent)["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == names
    for declaration, prop_keys in zip(declarations, props, strict=False):
        parameters = declaration["parameters"]
        assert list(parameters["properties"]) == prop_keys
        assert parameters["required"] == list(reversed(prop_keys))


@SETTINGS
@given(names=names, props=st.lists(keys, min_size=6, max_size=6), where=st.integers(0, 2))
def test_json_schema_mode_sends_schemas_with_their_key_order(
    gx: Any, names: list[str], props: list[list[str]], where: int
) -> None:
    tools = _tools(names, props, where)
    sent = dict(_pairs(gx.upstream(_body(tools), schema_mode="json_schema").body))
    declarations = [dict(d) for d in dict(sent["tools"][0])["functionDeclarations"]]
    assert [d["name"] for d in declarations] == names
    for declaration, tool in zip(declarations, tools, strict=True):
        assert declaration["parametersJsonSchema"] == _pairs(json.dumps(tool["function"]["parameters"]))


def test_cached_content_is_reported_as_cached_tokens(gx: Any) -> None:
    answer = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 750,
            "candidatesTokenCount": 5,
            "totalTokenCount": 1005,
        },
    }
    body = gx.respond_json(gx.request({"model": "m", "messages": [{"role": "user", "content": "q"}]}), answer)
    assert body["usage"]["prompt_tokens"] == 1000
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 750
