"""The stream translator (OpenAI chunks → Anthropic events) and the dialect's other methods."""

from __future__ import annotations

import json
from typing import Any

import pytest
from truckllm_dialect_anthropic import AnthropicDialect
from truckllm_dialect_anthropic.errors import error_body, error_type, stream_error

from truckllm.errors import GatewayError, UpstreamFailure
from truckllm.types import ChatRequest

REQUEST = ChatRequest(endpoint="chat", dialect="anthropic", body=b"{}", model="claude-alias", stream=True)


def _translate(frames: bytes) -> tuple[bytes, bytes]:
    translator = AnthropicDialect().stream(REQUEST, "openai")
    return translator.feed(frames), translator.close()


def _tool(
    index: int, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index}
    if id is not None:
        call.update(id=id, type="function")
    function = {k: v for k, v in (("name", name), ("arguments", args)) if v is not None}
    if function:
        call["function"] = function
    return call


def test_usage_after_finish_is_waited_for(kit: Any) -> None:
    translator = AnthropicDialect().stream(REQUEST, "openai")
    head = translator.feed(kit.openai_frames(kit.chunk({"role": "assistant", "content": "Hi"})))
    assert [n for n, _ in kit.events(head)] == ["message_start", "content_block_start", "content_block_delta"]
    finish = translator.feed(kit.openai_frames(kit.chunk({}, "stop")))
    assert [n for n, _ in kit.events(finish)] == ["content_block_stop"]  # held: no message_delta yet
    usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    tail = translator.feed(kit.openai_frames(kit.chunk(None, usage=usage)))
    (delta, stop) = kit.events(tail)
    assert delta == (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {
                "input_tokens": 7,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 2,
            },
        },
    )
    assert stop == ("message_stop", {"type": "message_stop"})
    assert translator.feed(kit.openai_frames("[DONE]")) == b"" and translator.close() == b""


def test_never_an_empty_text_block_and_never_end_turn_on_a_tool_call(kit: Any) -> None:
    frames = kit.openai_frames(
        kit.chunk({"role": "assistant", "content": ""}),
        kit.chunk({"content": "", "tool_calls": [_tool(0, "call_1", "f", "")]}),
        kit.chunk({"tool_calls": [_tool(0, args='{"a": 1}')]}),
        kit.chunk({}, "stop"),
        "[DONE]",
    )
    got = kit.events(b"".join(_translate(frames)))
    starts = [d["content_block"] for n, d in got if n == "content_block_start"]
    assert starts == [{"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]
    assert got[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_whitespace_alone_opens_no_text_block(kit: Any) -> None:
    frames = kit.openai_frames(
        kit.chunk({"role": "assistant", "content": "\n"}),
        kit.chunk({"content": " ", "tool_calls": [_tool(0, "call_1", "f", "{}")]}),
        kit.chunk({"content": "\n\n"}),
        kit.chunk({"content": "Done."}),
        kit.chunk({"content": " "}),
        kit.chunk({"tool_calls": [_tool(1, "call_2", "g", "{}")]}),
        kit.chunk({"content": "\n"}),
        kit.chunk({}, "tool_calls"),
        "[DONE]",
    )
    got = kit.events(b"".join(_translate(frames)))
    blocks = [d["content_block"]["type"] for n, d in got if n == "content_block_start"]
    assert blocks == ["tool_use", "text", "tool_use"]
    texts = [d["delta"]["text"] for n, d in got if n == "content_block_delta" and "text" in d["delta"]]
    assert texts == ["\n \n\nDone.", " "]  # spaces kept when some text comes with them
    dialect = AnthropicDialect()
    body = {
        "choices": [{"message": {"content": "\n\n", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}}]
    }
    message = json.loads(dialect.response(REQUEST, json.dumps(body).encode(), "openai"))
    assert [b["type"] for b in message["content"]] == ["tool_use"] and message["stop_reason"] == "tool_use"


def test_arguments_are_never_dropped_or_replaced(kit: Any) -> None:
    pieces = ['{"pa', 'th": "/tmp/a b', '.txt", "content": "line\\n', '"}']
    frames = kit.openai_frames(
        kit.chunk({"role": "assistant", "tool_calls": [_tool(0, "call_w", "Write")]}),
        *[kit.chunk({"tool_calls": [_tool(0, args=p)]}) for p in pieces],
        kit.chunk({}, "tool_calls"),
        "[DONE]",
    )
    got = kit.events(b"".join(_translate(frames)))
    partial = [d["delta"]["partial_json"] for n, d in got if n == "content_block_delta"]
    assert partial == pieces
    assert json.loads("".join(partial)) == {"path": "/tmp/a b.txt", "content": "line\n"}


def test_parallel_calls_get_their_own_blocks_closed_in_order(kit: Any) -> None:
    frames = kit.openai_frames(
        kit.chunk({"content": "Both."}),
        kit.chunk({"tool_calls": [_tool(0, "c0", "a", '{"x":'), _tool(1, "c1", "b", "")]}),
        kit.chunk({"tool_calls": [_tool(1, args='{"y":2}')]}),
        kit.chunk({}, "tool_calls"),
        "[DONE]",
    )
    got = kit.events(b"".join(_translate(frames)))
    assert [(n, d.get("index")) for n, d in got] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),  # "" first, as Anthropic sends it
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]


def test_an_interleaved_fragment_of_an_earlier_call_is_still_sent(kit: Any) -> None:
    frames = kit.openai_frames(
        kit.chunk({"tool_calls": [_tool(0, "c0", "a", '{"x"')]}),
        kit.chunk({"tool_calls": [_tool(1, "c1", "b", "{}")]}),
        kit.chunk({"tool_calls": [_tool(0, args=":1}")]}),
        "[DONE]",
    )
    got = kit.events(b"".join(_translate(frames)))
    json_by_index: dict[int, str] = {}
    for name, data in got:
        if name == "content_block_delta":
            json_by_index[data["index"]] = (
                json_by_index.get(data["index"], "") + data["delta"]["partial_json"]
            )
    assert json_by_index == {0: '{"x":1}', 1: "{}"}


def test_a_stream_without_finish_or_usage_still_ends_properly(kit: Any) -> None:
    head, tail = _translate(kit.openai_frames(kit.chunk({"content": "partial"})))
    names = [n for n, _ in kit.events(head + tail)]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kit.events(tail)[-2][1]["usage"] == {"output_tokens": 0}


def test_empty_stream_is_a_complete_empty_message(kit: Any) -> None:
    head, tail = _translate(b"")
    assert head == b""
    assert [n for n, _ in kit.events(tail)] == ["message_start", "message_delta", "message_stop"]


def test_error_chunk_raises_with_the_frames_before_it(kit: Any) -> None:
    translator = AnthropicDialect().stream(REQUEST, "openai")
    frames = kit.openai_frames(
        kit.chunk({"content": "Hi"}), {"error": {"message": "boom", "type": "server_error"}}
    )
    with pytest.raises(UpstreamFailure) as info:
        translator.feed(frames)
    assert info.value.error.message == "boom"
    assert [n for n, _ in kit.events(info.value.pending)][-1] == "content_block_delta"


def test_junk_is_skipped(kit: Any) -> None:
    frames = b"data: {not json}\n\n: keep-alive\n\nnot sse at all\n\n" + kit.openai_frames(
        kit.chunk({"content": 5}), kit.chunk({"content": "ok"}), "[DONE]"
    )
    got = kit.events(b"".join(_translate(frames)))
    assert [d["delta"]["text"] for n, d in got if n == "content_block_delta"] == ["ok"]


def test_other_choices_are_ignored(kit: Any) -> None:
    second = kit.chunk({"content": "other"})
    second["choices"][0]["index"] = 1
    got = kit.events(
        b"".join(_translate(kit.openai_frames(second, kit.chunk({"content": "mine"}), "[DONE]")))
    )
    assert [d["delta"]["text"] for n, d in got if n == "content_block_delta"] == ["mine"]


def test_anthropic_frames_pass_through(dialect: AnthropicDialect) -> None:
    frames = b'event: ping\ndata: {"type": "ping"}\n\n'
    translator = dialect.stream(REQUEST, "anthropic")
    assert translator.feed(frames) == frames and translator.close() == b""
    assert dialect.response(REQUEST, b'{"any": "thing"}', "anthropic") == b'{"any": "thing"}'


def test_answers_of_other_dialects_are_refused(dialect: AnthropicDialect) -> None:
    for call in (
        lambda: dialect.response(REQUEST, b"{}", "gemini"),
        lambda: dialect.stream(REQUEST, "gemini"),
    ):
        with pytest.raises(GatewayError) as info:
            call()
        assert info.value.status == 502


def test_unreadable_answer_is_a_502(dialect: AnthropicDialect) -> None:
    with pytest.raises(GatewayError) as info:
        dialect.response(REQUEST, b"<html>", "openai")
    assert info.value.status == 502
    count = ChatRequest(endpoint="count_tokens", dialect="anthropic", body=b"{}", model="m")
    with pytest.raises(GatewayError):
        dialect.response(count, b'{"tokens": "many"}', "openai")
    assert dialect.response(count, b'{"totalTokens": 9}', "openai") == b'{"input_tokens":9}'


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"x-api-key": "k1"}, "k1"),
        ({"authorization": "Bearer k2"}, "k2"),
        ({"x-api-key": "k1", "authorization": "Bearer k2"}, "k1"),
        ({"authorization": "Basic xyz"}, None),
        ({}, None),
    ],
)
def test_credentials(dialect: AnthropicDialect, headers: dict[str, str], key: str | None) -> None:
    assert dialect.credentials(headers, {}) == key


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (599, "api_error"),
    ],
)
def test_error_types_by_status(status: int, kind: str) -> None:
    assert error_type(status) == kind
    body = json.loads(error_body(GatewayError(status, "went wrong", headers={"retry-after": "3"})))
    assert body == {"type": "error", "error": {"type": kind, "message": "went wrong"}}


def test_key_errors_speak_of_x_api_key() -> None:
    missing = GatewayError(401, "You didn't provide an API key. Pass it as ...", code="invalid_api_key")
    wrong = GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")
    assert json.loads(error_body(missing))["error"]["message"] == "x-api-key header is required"
    assert json.loads(error_body(wrong))["error"]["message"] == "invalid x-api-key"


def test_stream_error_frame(dialect: AnthropicDialect) -> None:
    frame = stream_error(GatewayError(503, "Overloaded"))
    assert frame == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    assert dialect.stream_error(GatewayError(503, "Overloaded")) == frame
    assert dialect.stream_content_type(REQUEST) == "text/event-stream"
