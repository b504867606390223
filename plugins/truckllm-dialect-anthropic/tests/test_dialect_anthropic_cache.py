"""``cache_control`` marks in the typed form: each Anthropic mark on the struct built from its block,
so that providers with prompt caching of their own (Bedrock, the Responses API) put their cache
points at the same places; an unmarked request has none."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from truckllm_dialect_anthropic.request import read_request

MARK = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
PNG = "iVBORw0KGgo="
SCHEMA = {"type": "object", "properties": {}}


def _typed(**body: Any) -> dict[str, Any]:
    full = {"model": "claude", "max_tokens": 10, **body}
    decoded: dict[str, Any] = json.loads(
        msgspec.json.encode(read_request(json.dumps(full).encode(), "chat").typed)
    )
    return decoded


def _image(**extra: Any) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}, **extra}


def test_marked_user_blocks_mark_their_parts() -> None:
    content = [
        {"type": "text", "text": "doc", "cache_control": MARK},
        _image(cache_control=HOUR),
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
        {"type": "text", "text": "question"},
    ]
    (user,) = _typed(messages=[{"role": "user", "content": content}])["messages"]
    assert [part.get("cache_control") for part in user["content"]] == [MARK, HOUR, None, None]
    assert "cache_control" not in user


def test_a_marked_document_marks_its_last_part() -> None:
    document = {
        "type": "document",
        "source": {
            "type": "content",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        },
        "cache_control": MARK,
    }
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        "cache_control": HOUR,
    }
    (user,) = _typed(messages=[{"role": "user", "content": [document, pdf]}])["messages"]
    assert [(p["type"], p.get("cache_control")) for p in user["content"]] == [
        ("text", None),
        ("text", MARK),
        ("file", HOUR),
    ]


def test_a_single_marked_text_stays_a_part() -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": MARK}]}
    (user,) = _typed(messages=[message])["messages"]
    assert user["content"] == [{"type": "text", "text": "hi", "cache_control": MARK}]
    plain = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    assert _typed(messages=[plain])["messages"] == [{"role": "user", "content": "hi"}]


def test_marked_system_blocks_keep_one_part_each() -> None:
    system = [{"type": "text", "text": "rules"}, {"type": "text", "text": "tools doc", "cache_control": MARK}]
    typed = _typed(system=system, messages=[{"role": "user", "content": "q"}])
    assert typed["messages"][0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "rules"},
            {"type": "text", "text": "tools doc", "cache_control": MARK},
        ],
    }
    unmarked = [{"type": "text", "text": "rules"}, {"type": "text", "text": "tools doc"}]
    typed = _typed(system=unmarked, messages=[{"role": "user", "content": "q"}])
    assert typed["messages"][0] == {"role": "system", "content": "rules\n\ntools doc"}


def test_marked_tools_and_tool_results() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "looking", "cache_control": MARK},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}, "cache_control": HOUR},
                {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "sunny", "cache_control": MARK},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": [{"type": "text", "text": "rain"}, _image(cache_control=HOUR)],
                },
            ],
        },
    ]
    tools = [
        {"name": "f", "input_schema": SCHEMA},
        {"name": "g", "input_schema": SCHEMA, "cache_control": MARK},
    ]
    typed = _typed(messages=messages, tools=tools)
    assert [tool.get("cache_control") for tool in typed["tools"]] == [None, MARK]
    _, assistant, first, second, media = typed["messages"]
    assert assistant["content"] == [{"type": "text", "text": "looking", "cache_control": MARK}]
    assert assistant["cache_control"] == HOUR  # a marked tool_use: the message carrying the call
    assert (first["role"], first["cache_control"]) == ("tool", MARK)
    assert second["role"] == "tool" and "cache_control" not in second
    assert media["role"] == "user" and media["content"][0]["cache_control"] == HOUR  # the image, moved


def test_a_mark_inside_a_tool_result_marks_the_tool_message() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "sunny", "cache_control": MARK}],
                }
            ],
        },
    ]
    tool = _typed(messages=messages, tools=[{"name": "f", "input_schema": SCHEMA}])["messages"][-1]
    assert tool == {"role": "tool", "tool_call_id": "t1", "content": "sunny", "cache_control": MARK}


def test_an_unmarked_request_has_no_marks() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, _image()]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "b"},
                {"type": "tool_use", "id": "t", "name": "f", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "c"}]},
    ]
    typed = _typed(
        system=[{"type": "text", "text": "s"}],
        messages=messages,
        tools=[{"name": "f", "input_schema": SCHEMA}],
    )
    assert "cache_control" not in json.dumps(typed)


def test_a_mark_that_is_not_an_object_is_left_out() -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": None}]}
    assert _typed(messages=[message])["messages"] == [{"role": "user", "content": "hi"}]
