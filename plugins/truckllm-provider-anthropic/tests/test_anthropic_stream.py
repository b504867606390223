"""``transform_stream``: the translator's edges, mid-stream errors and the Anthropic pass-through."""

from __future__ import annotations

import json
from typing import Any

import pytest
from truckllm_provider_anthropic.response import translate_message
from truckllm_provider_anthropic.stream import AnthropicPassthrough, AnthropicStream

from truckllm.errors import UpstreamFailure


def ev(name: str, data: dict[str, Any]) -> bytes:
    """One Anthropic SSE event."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


START = ev(
    "message_start",
    {
        "type": "message_start",
        "message": {"id": "msg_01S", "model": "claude-x", "usage": {"input_tokens": 4, "output_tokens": 1}},
    },
)
TEXT = (
    ev(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    + ev(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    )
    + ev("content_block_stop", {"type": "content_block_stop", "index": 0})
)
END = ev(
    "message_delta",
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}},
) + ev("message_stop", {"type": "message_stop"})


def test_hook_transform_stream_builds_a_translator_with_limits(kit: Any) -> None:
    headers = {"anthropic-ratelimit-requests-limit": "10", "anthropic-ratelimit-requests-remaining": "9"}
    translator = kit.translator(headers=headers)
    assert isinstance(translator, AnthropicStream) and translator.dialect == "openai"
    assert translator.limits is not None and translator.limits.remaining_requests == 9
    assert translator.usage is None
    passthrough = kit.translator(
        {"model": "c", "max_tokens": 5, "messages": [], "stream": True}, dialect="anthropic"
    )
    assert isinstance(passthrough, AnthropicPassthrough) and passthrough.dialect == "anthropic"


def test_role_chunk_comes_first_and_ids_are_shared(kit: Any) -> None:
    translator = kit.translator()
    first = translator.feed(START)
    chunk = json.loads(first[len(b"data: ") :])
    assert chunk["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunk["id"] == "chatcmpl-01S" and chunk["model"] == "claude-x"
    rest = translator.feed(TEXT + END) + translator.close()
    ids = {json.loads(f[6:])["id"] for f in rest.split(b"\n\n") if f.startswith(b"data: {")}
    created = {
        json.loads(f[6:])["created"] for f in (first + rest).split(b"\n\n") if f.startswith(b"data: {")
    }
    assert ids == {"chatcmpl-01S"} and len(created) == 1
    assert rest.endswith(b"data: [DONE]\n\n") and rest.count(b'"finish_reason":"stop"') == 1


def test_a_tool_block_without_an_id_gets_the_same_id_streamed_whole_or_cut_and_not_streamed(
    kit: Any, parse_chunks: Any
) -> None:
    """Found by the corrupted-streams property: the made-up id was random, so the same stream
    read in two cuts gave two answers. It is derived from the message id and the block index."""
    tool = ev(
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "name": "f"}},
    ) + ev("content_block_stop", {"type": "content_block_stop", "index": 1})
    raw = START + TEXT + tool + END

    def tool_ids(pieces: list[bytes]) -> list[str]:
        translator = kit.translator()
        out = b"".join(translator.feed(piece) for piece in pieces) + translator.close()
        return [
            call["id"]
            for chunk in parse_chunks(out)
            if chunk != "[DONE]"
            for choice in chunk["choices"]
            for call in choice["delta"].get("tool_calls", [])
            if "id" in call
        ]

    assert tool_ids([raw]) == tool_ids([raw[i : i + 1] for i in range(len(raw))]) == ["toolu_01S_1"]
    message = {
        "id": "msg_01S",
        "type": "message",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "name": "f", "input": {}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 4, "output_tokens": 6},
    }
    answer = translate_message(
        json.dumps(message).encode(), endpoint="chat", json_tool=False, fallback_model="claude-x"
    )
    assert json.loads(answer)["choices"][0]["message"]["tool_calls"][0]["id"] == "toolu_01S_1"


@pytest.mark.parametrize(
    ("etype", "kind", "status"),
    [
        ("overloaded_error", "overloaded", 503),
        ("rate_limit_error", "rate_limit", 429),
        ("api_error", "server", 500),
        ("timeout_error", "timeout", 504),
        ("invalid_request_error", "stream", 502),
        ("something_new", "stream", 502),
    ],
)
def test_error_events_raise_classified_failures(kit: Any, etype: str, kind: str, status: int) -> None:
    translator = kit.translator()
    translator.feed(START)
    error = ev("error", {"type": "error", "error": {"type": etype, "message": "boom"}, "request_id": "req_1"})
    with pytest.raises(UpstreamFailure) as info:
        translator.feed(error)
    assert (info.value.error.kind, info.value.error.status) == (kind, status)
    assert "boom" in info.value.error.message and "req_1" in info.value.error.message
    assert info.value.error.retryable


def test_frames_decoded_before_an_error_in_the_same_chunk_are_pending(kit: Any, parse_chunks: Any) -> None:
    translator = kit.translator()
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
    with pytest.raises(UpstreamFailure) as info:
        translator.feed(START + TEXT + error)
    deltas = [c["choices"][0]["delta"] for c in parse_chunks(info.value.pending)]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hi"}]
    cut = kit.translator()
    with pytest.raises(UpstreamFailure) as info:
        cut.feed(START)
        cut.close()
    assert info.value.pending == b""


def test_error_before_anything_else_fails_the_attempt(kit: Any) -> None:
    translator = kit.translator()
    with pytest.raises(UpstreamFailure):
        translator.feed(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n')


@pytest.mark.parametrize(
    "raw",
    [
        b"event: content_block_delta\ndata: {not json\n\n",
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":"zero"}\n\n',
        b"data: [DONE]\n\n",
    ],
)
def test_unreadable_events_fail_the_stream(kit: Any, raw: bytes) -> None:
    translator = kit.translator()
    translator.feed(START)
    with pytest.raises(UpstreamFailure) as info:
        translator.feed(raw)
    assert info.value.error.kind == "bad_response"


def test_raw_json_error_line_fails_the_stream(kit: Any) -> None:
    translator = kit.translator()
    translator.feed(START)
    with pytest.raises(UpstreamFailure) as info:
        translator.feed(b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
    assert info.value.error.kind == "overloaded"
    garbage = kit.translator()  # text that is neither an event nor an error is not an Anthropic stream
    with pytest.raises(UpstreamFailure) as info:
        garbage.feed(b"<html>proxy banner</html>\n\n")
    assert info.value.error.kind == "bad_response" and info.value.pending == b""


def test_empty_stream_is_a_failure(kit: Any) -> None:
    translator = kit.translator()
    assert translator.feed(b"") == b""
    with pytest.raises(UpstreamFailure):
        translator.close()


def test_last_event_without_blank_line_still_counts(kit: Any, parse_chunks: Any) -> None:
    translator = kit.translator()
    raw = START + TEXT + END
    out = translator.feed(raw.rstrip(b"\n")) + translator.close()
    assert parse_chunks(out)[-1] == "[DONE]"


def test_events_after_message_stop_are_ignored(kit: Any) -> None:
    translator = kit.translator()
    out = translator.feed(START + TEXT + END)
    assert translator.feed(TEXT + b'event: error\ndata: {"type":"error"}\n\n') == b""
    assert translator.close() == b""
    assert out.endswith(b"data: [DONE]\n\n")


def test_missing_message_start_still_starts_with_the_role_chunk(kit: Any, parse_chunks: Any) -> None:
    translator = kit.translator()
    chunks = parse_chunks(translator.feed(TEXT + END) + translator.close())
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[0]["model"] == "claude"  # the client's model as a fallback
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert chunks[-2]["usage"]["completion_tokens"] == 6


def test_unknown_blocks_and_deltas_are_ignored(kit: Any, parse_chunks: Any) -> None:
    extra = (
        ev(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
            },
        )
        + ev(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "{}"},
            },
        )
        + ev(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}},
        )
        + ev("content_block_stop", {"type": "content_block_stop", "index": 1})
        + ev("mystery_event", {"type": "mystery_event"})
    )
    translator = kit.translator()
    chunks = parse_chunks(translator.feed(START + TEXT + extra + END) + translator.close())
    deltas = [c["choices"][0]["delta"] for c in chunks if c != "[DONE]" and c["choices"]]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hi"}, {}]


def test_tool_whose_start_carries_the_input(kit: Any, parse_chunks: Any) -> None:
    block = {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": 1}}
    raw = (
        START
        + ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
        + END
    )
    translator = kit.translator()
    chunks = parse_chunks(translator.feed(raw) + translator.close())
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-3]]
    assert calls[0]["id"] == "toolu_9" and calls[1]["function"]["arguments"] == '{"a":1}'


def test_json_mode_text_before_the_tool_is_dropped_and_without_tool_is_flushed(
    kit: Any, parse_chunks: Any
) -> None:
    request = {
        "model": "c",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "response_format": {"type": "json_object"},
    }
    tool = (
        ev(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "t", "name": "json_tool_call", "input": {}},
            },
        )
        + ev(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"ok":true}'},
            },
        )
        + ev("content_block_stop", {"type": "content_block_stop", "index": 1})
    )
    translator = kit.translator(request)
    chunks = parse_chunks(translator.feed(START + TEXT + tool + END) + translator.close())
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text == '{"ok":true}'
    translator = kit.translator(request)
    chunks = parse_chunks(translator.feed(START + TEXT + END) + translator.close())
    assert [c["choices"][0]["delta"] for c in chunks[1:-1]] == [{"content": "Hi"}, {}]


def test_completions_stream_ignores_tools_and_thinking(kit: Any, parse_chunks: Any) -> None:
    thinking = (
        ev(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "thinking", "thinking": "hmm"},
            },
        )
        + ev(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "thinking_delta", "thinking": "more"},
            },
        )
        + ev("content_block_stop", {"type": "content_block_stop", "index": 1})
        + ev(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
            },
        )
        + ev(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": "{}"},
            },
        )
    )
    end = ev(
        "message_delta",
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 6}},
    ) + ev("message_stop", {"type": "message_stop"})
    translator = kit.translator({"model": "c", "prompt": "x", "stream": True}, endpoint="completions")
    chunks = parse_chunks(translator.feed(START + TEXT + thinking + end) + translator.close())
    assert [c["choices"] for c in chunks[:-1]] == [
        [{"text": "Hi", "index": 0, "logprobs": None, "finish_reason": None}],
        [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}],
    ]
    assert all(c["object"] == "text_completion" and "usage" not in c for c in chunks[:-1])


def test_passthrough_forwards_frames_unchanged_and_reads_usage(kit: Any) -> None:
    raw = START + b": keepalive\n\n" + TEXT + END
    translator = kit.translator(
        {"model": "c", "max_tokens": 5, "messages": [], "stream": True}, dialect="anthropic"
    )
    out = b"".join(translator.feed(raw[i : i + 5]) for i in range(0, len(raw), 5)) + translator.close()
    assert out == START + TEXT + END
    assert translator.usage.prompt_tokens == 4 and translator.usage.completion_tokens == 6


def test_passthrough_detects_errors_and_truncation(kit: Any) -> None:
    request = {"model": "c", "max_tokens": 5, "messages": [], "stream": True}
    translator = kit.translator(request, dialect="anthropic")
    translator.feed(START)
    with pytest.raises(UpstreamFailure):
        translator.feed(
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"x"}}\n\n'
        )
    translator = kit.translator(request, dialect="anthropic")
    assert translator.feed(START + TEXT) == START + TEXT
    with pytest.raises(UpstreamFailure):
        translator.close()
    translator = kit.translator(request, dialect="anthropic")
    out = translator.feed((START + TEXT + END).rstrip(b"\n")) + translator.close()
    assert out == START + TEXT + END  # the last frame gets its blank line back
