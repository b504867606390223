"""Prompt caching: OpenAI-format ``cache_control`` marks become Anthropic cache breakpoints, and the
translation never reorders tools or the keys of a tool's schema (a reordering changes the prompt
prefix and so misses the provider's cache).
"""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truckllm.kit.openai_schemas import ChatCompletionRequest

SETTINGS = settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
EPHEMERAL = {"type": "ephemeral"}


def _user(content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **extra}


def test_no_marks_keep_the_system_prompt_a_string(kit: Any) -> None:
    body = kit.translate({"model": "m", "messages": [{"role": "system", "content": "be brief"}, _user("hi")]})
    assert body["system"] == "be brief"
    assert "cache_control" not in json.dumps(body)


def test_a_marked_string_message_marks_its_only_block(kit: Any) -> None:
    body = kit.translate({"model": "m", "messages": [_user("long context", cache_control=EPHEMERAL)]})
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "long context", "cache_control": EPHEMERAL}
    ]


def test_a_marked_part_marks_its_own_block_only(kit: Any) -> None:
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}, "cache_control": EPHEMERAL},
        {"type": "text", "text": "b"},
    ]
    blocks = kit.translate({"model": "m", "messages": [_user(parts)]})["messages"][0]["content"]
    assert ["cache_control" in b for b in blocks] == [False, True, False]
    assert blocks[1]["type"] == "image"


def test_a_marked_system_part_sends_the_system_prompt_as_blocks(kit: Any) -> None:
    system = {
        "role": "system",
        "content": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    }
    body = kit.translate(
        {"model": "m", "messages": [system, {"role": "developer", "content": "more"}, _user("q")]}
    )
    assert body["system"] == [
        {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "more"},
    ]


def test_unknown_cache_control_shapes_are_not_sent(kit: Any) -> None:
    parts = [{"type": "text", "text": "a", "cache_control": {"type": "persistent"}}]
    body = kit.translate({"model": "m", "messages": [_user(parts), _user("b", cache_control="yes")]})
    assert "cache_control" not in json.dumps(body)


def test_a_mark_on_the_function_object_marks_the_tool(kit: Any) -> None:
    tools = [
        {"type": "function", "function": {"name": "a"}},
        {"type": "function", "function": {"name": "b", "cache_control": EPHEMERAL}},
    ]
    body = kit.translate({"model": "m", "messages": [_user("q")], "tools": tools})
    assert [t.get("cache_control") for t in body["tools"]] == [None, EPHEMERAL]


def test_marks_are_read_from_openai_bodies_and_other_dialects_typed_forms(kit: Any) -> None:
    from truckllm_provider_anthropic.cache import cache_marks

    raw = {"model": "m", "messages": [_user("q", cache_control=EPHEMERAL)]}
    assert cache_marks(kit.request(raw)).messages == {0: EPHEMERAL}
    other = kit.request(raw, dialect="gemini")  # no typed form: the body is not read
    assert not cache_marks(other).messages
    typed = msgspec.json.decode(json.dumps(raw), type=ChatCompletionRequest)
    assert cache_marks(msgspec.structs.replace(other, typed=typed)).messages == {0: EPHEMERAL}
    ttl = {
        "model": "m",
        "messages": [
            _user(
                [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral", "ttl": "1h", "x": 1}}]
            )
        ],
    }
    typed = msgspec.json.decode(json.dumps(ttl), type=ChatCompletionRequest)
    marks = cache_marks(msgspec.structs.replace(other, typed=typed))
    assert marks.parts == {(0, 0): {"type": "ephemeral", "ttl": "1h"}}


names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=6, unique=True)
keys = st.lists(st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,6}", fullmatch=True), max_size=5, unique=True)


def test_only_the_last_four_marks_are_sent(kit: Any) -> None:
    """Anthropic refuses a fifth breakpoint (a Responses conversation keeps every turn's)."""
    turns = [_user([{"type": "text", "text": f"t{i}", "cache_control": EPHEMERAL}]) for i in range(5)]
    tools = [{"type": "function", "function": {"name": "f"}, "cache_control": EPHEMERAL}]
    body = kit.translate({"model": "m", "messages": turns, "tools": tools})
    assert "cache_control" not in body["tools"][0]
    marked = [b["text"] for m in body["messages"] for b in m["content"] if "cache_control" in b]
    assert marked == ["t1", "t2", "t3", "t4"]


def _pairs(text: str) -> Any:
    return json.loads(text, object_pairs_hook=lambda pairs: [list(p) for p in pairs])


@SETTINGS
@given(names=names, props=st.lists(keys, min_size=6, max_size=6), where=st.integers(0, 5))
def test_tools_and_schema_keys_keep_their_order(
    kit: Any, names: list[str], props: list[list[str]], where: int
) -> None:
    tools: list[dict[str, Any]] = []
    for name, prop_keys in zip(names, props, strict=False):
        members: list[tuple[str, Any]] = [
            ("properties", {k: {"type": "string"} for k in prop_keys}),
            ("required", prop_keys),
        ]
        members.insert(min(where, len(members)), ("type", "object"))
        tools.append({"type": "function", "function": {"name": name, "parameters": dict(members)}})
    body = kit.upstream({"model": "m", "messages": [_user("q")], "tools": tools}).body
    sent = _pairs(body)
    sent_tools = next(value for key, value in sent if key == "tools")
    assert [dict(t)["name"] for t in sent_tools] == names
    for tool, original in zip(sent_tools, tools, strict=True):
        schema = dict(tool)["input_schema"]
        assert schema == _pairs(json.dumps(original["function"]["parameters"]))
