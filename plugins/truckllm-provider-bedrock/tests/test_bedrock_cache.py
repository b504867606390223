"""Prompt caching on Converse: OpenAI-format ``cache_control`` marks become ``cachePoint`` blocks
right after the marked block, and the translation never reorders tools or a schema's keys (a
reordering changes the prompt prefix and so misses the provider's cache)."""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
import truckllm_provider_bedrock as plugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truckllm_provider_bedrock.options import Options

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.types import ChatRequest, Provider

SETTINGS = settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROVIDER = Provider(
    name="br",
    type="bedrock",
    base_url="https://bedrock-runtime.us-east-1.amazonaws.com",
    options=Options(region="us-east-1"),
)
POINT = {"cachePoint": {"type": "default"}}
EPHEMERAL = {"type": "ephemeral"}


CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def _send(body: dict[str, Any], dialect: str = "openai", model: str = CLAUDE) -> bytes:
    raw = json.dumps(body).encode()
    request = ChatRequest(
        endpoint="chat",
        dialect=dialect,
        body=raw,
        model="alias",
        typed=msgspec.json.decode(raw, type=ChatCompletionRequest),
    )
    up = plugin.transform_request(provider=PROVIDER, model=model, request=request, api_key="AKID:secret")
    assert up is not None
    return up.body


def _converse(body: dict[str, Any], dialect: str = "openai") -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(_send(body, dialect))
    return decoded


def _user(content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **extra}


def test_no_marks_no_cache_points() -> None:
    body = _converse({"model": "m", "messages": [{"role": "system", "content": "s"}, _user("hi")]})
    assert "cachePoint" not in json.dumps(body)
    assert body["system"] == [{"text": "s"}]


def test_a_marked_message_gets_a_cache_point_after_its_last_block() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    body = _converse({"model": "m", "messages": [_user(parts, cache_control=EPHEMERAL)]})
    assert body["messages"][0]["content"] == [{"text": "a"}, {"text": "b"}, POINT]


def test_a_marked_system_string_gets_a_cache_point() -> None:
    system = {"role": "system", "content": "rules", "cache_control": EPHEMERAL}
    body = _converse({"model": "m", "messages": [system, _user("q")]})
    assert body["system"] == [{"text": "rules"}, POINT]


def test_a_marked_assistant_part_keeps_its_place_after_reordering() -> None:
    messages = [
        _user("q"),
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "thinking aloud", "cache_control": EPHEMERAL}],
        },
        _user("next"),
    ]
    body = _converse({"model": "m", "messages": messages})
    assert body["messages"][1]["content"] == [{"text": "thinking aloud"}, POINT]


def test_models_without_prompt_caching_get_no_cache_points() -> None:
    body = {"model": "m", "messages": [_user("q", cache_control=EPHEMERAL)]}
    assert "cachePoint" not in _send(body, model="meta.llama3-3-70b-instruct-v1:0").decode()
    assert "cachePoint" in _send(body, model="us.amazon.nova-pro-v1:0").decode()


def test_marks_of_other_dialects_are_read_from_the_typed_form_not_the_body() -> None:
    raw = json.dumps({"model": "m", "messages": [_user("q", cache_control=EPHEMERAL)]}).encode()
    marked = msgspec.json.decode(raw, type=ChatCompletionRequest)  # as a dialect's translation sets it
    plain = msgspec.json.decode(
        json.dumps({"model": "m", "messages": [_user("q")]}), type=ChatCompletionRequest
    )
    for typed, expected in ((marked, [{"text": "q"}, POINT]), (plain, [{"text": "q"}])):
        request = ChatRequest(endpoint="chat", dialect="responses", body=raw, model="alias", typed=typed)
        up = plugin.transform_request(provider=PROVIDER, model=CLAUDE, request=request, api_key="AKID:secret")
        assert up is not None and json.loads(up.body)["messages"][0]["content"] == expected


def test_only_the_last_four_cache_points_are_sent() -> None:
    """Bedrock refuses a fifth cache point (a Responses conversation keeps every turn's)."""
    turns = []
    for i in range(4):
        turns += [
            _user([{"type": "text", "text": f"t{i}", "cache_control": EPHEMERAL}]),
            {"role": "assistant", "content": "ok"},
        ]
    tools = [{"type": "function", "function": {"name": "f"}, "cache_control": EPHEMERAL}]
    sent = _converse(
        {
            "model": "m",
            "messages": [{"role": "system", "content": "s", "cache_control": EPHEMERAL}, *turns, _user("q")],
            "tools": tools,
        }
    )
    assert sent["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
    ]
    assert sent["system"] == [{"text": "s"}]
    assert [m["content"] for m in sent["messages"] if m["role"] == "user"] == [
        *([{"text": f"t{i}"}, POINT] for i in range(4)),
        [{"text": "q"}],
    ]


names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=6, unique=True)
keys = st.lists(st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,6}", fullmatch=True), max_size=5, unique=True)


def _pairs(text: bytes | str) -> Any:
    return json.loads(text, object_pairs_hook=lambda pairs: [list(p) for p in pairs])


@SETTINGS
@given(
    names=names,
    props=st.lists(keys, min_size=6, max_size=6),
    where=st.integers(0, 2),
    marked=st.sets(st.integers(0, 5)),
)
def test_tools_and_schema_keys_keep_their_order(
    names: list[str], props: list[list[str]], where: int, marked: set[int]
) -> None:
    tools = []
    for i, (name, prop_keys) in enumerate(zip(names, props, strict=False)):
        members: list[tuple[str, Any]] = [
            ("properties", {k: {"type": "string"} for k in prop_keys}),
            ("required", prop_keys),
        ]
        members.insert(where, ("type", "object"))
        tool: dict[str, Any] = {"type": "function", "function": {"name": name, "parameters": dict(members)}}
        if i in marked:
            tool["cache_control"] = EPHEMERAL
        tools.append(tool)
    sent = dict(_pairs(_send({"model": "m", "messages": [_user("q")], "tools": tools})))
    specs = [dict(entry) for entry in dict(sent["toolConfig"])["tools"]]
    assert [dict(s["toolSpec"])["name"] for s in specs if "toolSpec" in s] == names
    points = [i - 1 for i, s in enumerate(specs) if "cachePoint" in s]
    marked_names = [n for i, n in enumerate(names) if i in marked]
    assert [dict(specs[p]["toolSpec"])["name"] for p in points] == marked_names[-4:]  # at most four
    for spec, original in zip([s for s in specs if "toolSpec" in s], tools, strict=True):
        schema = dict(dict(spec["toolSpec"])["inputSchema"])["json"]
        assert schema == _pairs(json.dumps(original["function"]["parameters"]))
