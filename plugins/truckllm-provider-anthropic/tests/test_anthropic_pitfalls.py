"""One named test per translation pitfall of PROVIDERS.md §5 that concerns Anthropic.

(Items 3, 13 and 18 are Gemini-only.)
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from truckllm.errors import UnsupportedRequest, UpstreamFailure

USER = {"role": "user", "content": "hi"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    """Anthropic SSE bytes for these (name, data) events."""
    return b"".join(
        f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
        for name, data in events
    )


def message_start(input_tokens: int = 10, **usage: int) -> tuple[str, dict[str, Any]]:
    """A ``message_start`` event."""
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01P",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
            },
        },
    )


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A ``content_block_start`` event."""
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A ``content_block_delta`` event."""
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int) -> tuple[str, dict[str, Any]]:
    """A ``content_block_stop`` event."""
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(reason: str | None, **usage: int) -> tuple[str, dict[str, Any]]:
    """A ``message_delta`` event with cumulative usage."""
    return (
        "message_delta",
        {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage},
    )


STOP = ("message_stop", {"type": "message_stop"})
TEXT_STREAM = sse(
    message_start(),
    block_start(0, {"type": "text", "text": ""}),
    block_delta(0, {"type": "text_delta", "text": "Hi"}),
    block_stop(0),
    message_delta("end_turn", output_tokens=3),
    STOP,
)


def run(translator: Any, raw: bytes, step: int | None = None) -> bytes:
    """Feed ``raw`` (whole, or ``step`` bytes at a time) then close."""
    if step is None:
        return bytes(translator.feed(raw)) + bytes(translator.close())
    out = b"".join(translator.feed(raw[i : i + step]) for i in range(0, len(raw), step))
    return out + bytes(translator.close())


def tool_arguments(chunks: list[Any]) -> dict[int, str]:
    """Concatenated tool-call arguments per index."""
    args: dict[int, str] = {}
    for chunk in chunks:
        if chunk == "[DONE]" or not chunk["choices"]:
            continue
        for call in chunk["choices"][0]["delta"].get("tool_calls", []):
            args[call["index"]] = args.get(call["index"], "") + call["function"].get("arguments", "")
    return args


# --- 1. Streamed tool arguments are partial JSON ------------------------------------------------


def test_pitfall_01_partial_json_fragments_concatenate_per_index(kit: Any, parse_chunks: Any) -> None:
    raw = sse(
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
        block_delta(0, {"type": "input_json_delta", "partial_json": ""}),
        block_delta(0, {"type": "input_json_delta", "partial_json": '{"ci'}),
        block_delta(0, {"type": "input_json_delta", "partial_json": 'ty": "Pa'}),
        block_delta(0, {"type": "input_json_delta", "partial_json": 'ris"}'}),
        block_stop(0),
        message_delta("tool_use", output_tokens=9),
        STOP,
    )
    chunks = parse_chunks(run(kit.translator(), raw, step=7))
    fragments = [
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        for c in chunks
        if c != "[DONE]" and c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert fragments == ["", '{"ci', 'ty": "Pa', 'ris"}']  # the first carries id and name
    assert json.loads(tool_arguments(chunks)[0]) == {"city": "Paris"}


# --- 2. Tools without arguments stream as "" ----------------------------------------------------


def test_pitfall_02_tool_with_only_empty_fragments_ends_with_empty_object(
    kit: Any, parse_chunks: Any
) -> None:
    raw = sse(
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}),
        block_delta(0, {"type": "input_json_delta", "partial_json": ""}),
        block_stop(0),
        message_delta("tool_use", output_tokens=4),
        STOP,
    )
    chunks = parse_chunks(run(kit.translator(), raw))
    assert tool_arguments(chunks) == {0: "{}"}
    # and back: "" arguments in history are sent as {} (not a JSON parse error upstream)
    body = kit.translate(
        {
            "model": "claude",
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "t", "arguments": ""}}
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "12:00"},
            ],
        }
    )
    assert body["messages"][1]["content"][0]["input"] == {}


# --- 4. Tool-call ids crossing to Anthropic ------------------------------------------------------


def test_pitfall_04_foreign_tool_ids_are_made_anthropic_safe_consistently(kit: Any) -> None:
    call_id = "functions.get_time:0"  # e.g. from another provider's history
    body = kit.translate(
        {
            "model": "claude",
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": call_id, "type": "function", "function": {"name": "t", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": call_id, "content": "ok"},
            ],
        }
    )
    use = body["messages"][1]["content"][0]
    result = body["messages"][2]["content"][0]
    assert use["id"] == result["tool_use_id"] == "functions_get_time_0"


# --- 5. Parallel tool results must be grouped ---------------------------------------------------


def test_pitfall_05_parallel_results_in_one_user_message_in_call_order(kit: Any) -> None:
    calls = [
        {"id": f"call_{n}", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        for n in range(3)
    ]
    body = kit.translate(
        {
            "model": "claude",
            "messages": [
                USER,
                {"role": "assistant", "content": "checking", "tool_calls": calls},
                {"role": "tool", "tool_call_id": "call_2", "content": "c"},
                {"role": "user", "content": "and hurry"},
                {"role": "tool", "tool_call_id": "call_0", "content": "a"},
                {"role": "tool", "tool_call_id": "call_1", "content": "b"},
            ],
            "tools": [WEATHER],
        }
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    blocks = body["messages"][2]["content"]
    assert [b.get("tool_use_id") for b in blocks] == ["call_0", "call_1", "call_2", None]
    assert blocks[3] == {"type": "text", "text": "and hurry"}


# --- 6. Consecutive same-role messages ----------------------------------------------------------


def test_pitfall_06_same_role_turns_are_merged_without_filler(kit: Any) -> None:
    body = kit.translate(
        {
            "model": "claude",
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": "d"},
                {"role": "user", "content": "e"},
            ],
        }
    )
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["a", "b"]


# --- 7. Empty content is rejected ---------------------------------------------------------------


def test_pitfall_07_empty_text_is_dropped_and_empty_tool_result_gets_a_placeholder(kit: Any) -> None:
    body = kit.translate(
        {
            "model": "claude",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "go"}]},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "t", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": ""},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": ""},
                {"role": "user", "content": "next"},
            ],
        }
    )
    for message in body["messages"]:
        assert message["content"], message
        for block in message["content"]:
            if block["type"] == "text":
                assert block["text"]
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "c1", "name": "t", "input": {}}]
    assert body["messages"][2]["content"][0]["content"] == "(empty)"
    assert body["messages"][2]["content"][1] == {"type": "text", "text": "next"}


def test_pitfall_07_a_conversation_with_nothing_left_is_refused(kit: Any) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        kit.translate(
            {
                "model": "claude",
                "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": ""}],
            }
        )
    assert info.value.param == "messages"


# --- 8. Multiple and mid-conversation system messages -------------------------------------------


def test_pitfall_08_system_and_developer_messages_anywhere_are_hoisted_in_order(kit: Any) -> None:
    body = kit.translate(
        {
            "model": "claude",
            "messages": [
                {"role": "developer", "content": "first"},
                USER,
                {"role": "system", "content": [{"type": "text", "text": "second"}]},
                {"role": "assistant", "content": "ok"},
                {"role": "system", "content": "third"},
                {"role": "user", "content": "more"},
            ],
        }
    )
    assert body["system"] == "first\n\nsecond\n\nthird"
    assert all(m["role"] in ("user", "assistant") for m in body["messages"])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


# --- 9. Missing usage in streams ----------------------------------------------------------------


def test_pitfall_09_usage_chunk_only_when_asked_but_usage_always_recorded(
    kit: Any, parse_chunks: Any
) -> None:
    asked = kit.translator()
    chunks = parse_chunks(run(asked, TEXT_STREAM))
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:-2])
    silent = kit.translator({"model": "claude", "messages": [USER], "stream": True})
    chunks = parse_chunks(run(silent, TEXT_STREAM))
    assert all("usage" not in c for c in chunks if c != "[DONE]")
    assert all(c["choices"] for c in chunks if c != "[DONE]")
    assert silent.usage is not None and silent.usage.total_tokens == 13


# --- 10. Summing cumulative usage ----------------------------------------------------------------


def test_pitfall_10_cumulative_usage_last_value_wins_and_cache_counts_join_prompt(kit: Any) -> None:
    raw = sse(
        message_start(input_tokens=20, cache_read_input_tokens=300, cache_creation_input_tokens=50),
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "x"}),
        message_delta(None, output_tokens=5),
        message_delta("end_turn", output_tokens=8),
        STOP,
    )
    translator = kit.translator()
    run(translator, raw)
    usage = translator.usage
    assert usage.completion_tokens == 8  # not 5 + 8
    assert usage.prompt_tokens == 370 and usage.cached_tokens == 300 and usage.cache_write_tokens == 50
    assert usage.total_tokens == 378
    body = json.dumps(
        {
            "type": "message",
            "content": [],
            "usage": {"input_tokens": 20, "cache_read_input_tokens": 300, "output_tokens": 8},
        }
    ).encode()
    from truckllm_provider_anthropic import parse_usage

    parsed = parse_usage(
        provider=kit.provider(), request=kit.request({"model": "c", "messages": [USER]}), body=body
    )
    assert parsed is not None
    assert (parsed.prompt_tokens, parsed.cached_tokens, parsed.completion_tokens) == (320, 300, 8)


# --- 11. Length parameters ------------------------------------------------------------------------


def test_pitfall_11_max_tokens_is_always_sent_and_stays_above_the_thinking_budget(kit: Any) -> None:
    assert kit.translate({"model": "c", "messages": [USER]})["max_tokens"] == 4096
    assert kit.translate({"model": "c", "messages": [USER]}, max_tokens=1234)["max_tokens"] == 1234
    assert kit.translate({"model": "c", "messages": [USER], "max_tokens": 77})["max_tokens"] == 77
    both = {"model": "c", "messages": [USER], "max_tokens": 77, "max_completion_tokens": 88}
    assert kit.translate(both)["max_tokens"] == 88
    body = kit.translate({"model": "c", "messages": [USER], "reasoning_effort": "medium", "max_tokens": 1000})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] > body["thinking"]["budget_tokens"] >= 1024
    body = kit.translate({"model": "c", "messages": [USER], "reasoning_effort": "low", "max_tokens": 8000})
    assert body["max_tokens"] == 8000 and body["thinking"]["budget_tokens"] == 1024


# --- 12. Sampling constraints ---------------------------------------------------------------------


def test_pitfall_12_sampling_is_clamped_or_dropped_per_anthropic_rules(kit: Any) -> None:
    body = kit.translate({"model": "c", "messages": [USER], "temperature": 2.0})
    assert body["temperature"] == 1.0
    body = kit.translate({"model": "c", "messages": [USER], "temperature": 0.5, "top_p": 0.9})
    assert body["temperature"] == 0.5 and "top_p" not in body
    body = kit.translate({"model": "c", "messages": [USER], "top_p": 0.9})
    assert body["top_p"] == 0.9
    body = kit.translate(
        {"model": "c", "messages": [USER], "temperature": 0.5, "top_p": 0.9}, temperature_with_top_p=True
    )
    assert body["temperature"] == 0.5 and body["top_p"] == 0.9
    thinking = kit.translate(
        {
            "model": "c",
            "messages": [USER],
            "reasoning_effort": "low",
            "temperature": 0.2,
            "top_p": 0.5,
            "top_k": 5,
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }
    )
    assert not {"temperature", "top_p", "top_k"} & set(thinking)
    assert thinking["tool_choice"] == {"type": "auto"}


# --- 14. JSON mode on Anthropic --------------------------------------------------------------------


JSON_REQUEST = {
    "model": "claude",
    "messages": [USER],
    "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}},
}


def test_pitfall_14_json_mode_uses_a_hidden_forced_tool(kit: Any, parse_chunks: Any) -> None:
    body = kit.translate(JSON_REQUEST)
    assert body["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    answer = {
        "id": "msg_1",
        "type": "message",
        "model": "claude-x",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "json_tool_call", "input": {"a": [1, 2]}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    result = json.loads(kit.respond(answer, JSON_REQUEST).body)
    choice = result["choices"][0]
    assert choice["message"]["content"] == '{"a":[1,2]}'
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "stop"
    stream_request = {**JSON_REQUEST, "stream": True}
    raw = sse(
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "json_tool_call", "input": {}}),
        block_delta(0, {"type": "input_json_delta", "partial_json": ""}),
        block_delta(0, {"type": "input_json_delta", "partial_json": '{"a": ['}),
        block_delta(0, {"type": "input_json_delta", "partial_json": "1, 2]}"}),
        block_stop(0),
        message_delta("tool_use", output_tokens=5),
        STOP,
    )
    chunks = parse_chunks(run(kit.translator(stream_request), raw))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert json.loads(text) == {"a": [1, 2]}
    assert not any("tool_calls" in c["choices"][0]["delta"] for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


# --- 15. Reasoning state must round-trip -----------------------------------------------------------


def test_pitfall_15_thinking_blocks_are_returned_and_resent_unmodified_first(kit: Any) -> None:
    thinking = {"type": "thinking", "thinking": "Use the tool.", "signature": "Eq+/sig=="}
    redacted = {"type": "redacted_thinking", "data": "opaque=="}
    answer = {
        "id": "msg_1",
        "type": "message",
        "model": "claude-x",
        "content": [
            thinking,
            redacted,
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    message = json.loads(kit.respond(answer).body)["choices"][0]["message"]
    assert message["thinking_blocks"] == [thinking, redacted]
    assert message["reasoning_content"] == "Use the tool."
    history = {
        "model": "claude",
        "reasoning_effort": "low",
        "tools": [WEATHER],
        "messages": [
            USER,
            {k: message[k] for k in ("role", "content", "tool_calls", "thinking_blocks")},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "21C"},
        ],
    }
    sent = kit.upstream(history).body
    body = json.loads(sent)
    assert body["messages"][1]["content"][:2] == [thinking, redacted]
    assert body["messages"][1]["content"][2]["type"] == "tool_use"
    assert json.dumps(thinking).encode() in sent  # byte for byte as the client sent it


# --- 16. Errors after the 200 response -------------------------------------------------------------


def test_pitfall_16_error_event_mid_stream_raises_and_never_finishes(kit: Any, parse_chunks: Any) -> None:
    head = sse(
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "par"}),
    )
    error = (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    translator = kit.translator()
    sent = translator.feed(head)
    assert all(c["choices"][0]["finish_reason"] is None for c in parse_chunks(sent))
    with pytest.raises(UpstreamFailure) as info:
        translator.feed(error)
    assert info.value.error.kind == "overloaded" and info.value.error.status == 503
    assert info.value.error.retryable


def test_pitfall_16_truncated_stream_without_message_stop_is_an_error(kit: Any) -> None:
    cut = TEXT_STREAM[: TEXT_STREAM.index(b"event: message_delta")]
    translator = kit.translator()
    out = translator.feed(cut)
    assert b'finish_reason":"stop' not in out and b"[DONE]" not in out
    with pytest.raises(UpstreamFailure) as info:
        translator.close()
    assert info.value.error.kind == "stream"


# --- 17. SSE framing robustness ------------------------------------------------------------------


def test_pitfall_17_sse_framing_variants_give_identical_chunks(kit: Any, parse_chunks: Any) -> None:
    expected = parse_chunks(run(kit.translator(), TEXT_STREAM))
    crlf = TEXT_STREAM.replace(b"\n", b"\r\n")
    commented = b": keep-alive\n\n" + TEXT_STREAM.replace(
        b"event: content_block_stop", b": comment\nevent: content_block_stop"
    )
    no_event_lines = b"\n".join(line for line in TEXT_STREAM.split(b"\n") if not line.startswith(b"event:"))
    multiline = TEXT_STREAM.replace(
        b'data: {"type":"content_block_stop","index":0}',
        b'data: {"type":"content_block_stop",\ndata: "index":0}',
    )
    for variant in (crlf, commented, no_event_lines, multiline):
        for step in (None, 1, 3, 64):
            assert parse_chunks(run(kit.translator(), variant, step)) == expected
    assert b"[DONE]" not in TEXT_STREAM  # Anthropic never sends it; the translator adds it


# --- 19. Image and media conversion --------------------------------------------------------------


def test_pitfall_19_data_uris_become_base64_blocks_and_other_types_are_refused(kit: Any) -> None:
    data = base64.b64encode(PNG).decode()
    body = kit.translate(
        {
            "model": "c",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}],
                }
            ],
        }
    )
    source = body["messages"][0]["content"][0]["source"]
    assert source == {"type": "base64", "media_type": "image/png", "data": data}
    for url in (
        "data:image/bmp;base64,Qk0=",
        "data:image/svg+xml;base64,PHN2Zz4=",
        "ftp://x/y.png",
        "data:image/png,raw",
    ):
        with pytest.raises(UnsupportedRequest) as info:
            kit.translate(
                {
                    "model": "c",
                    "messages": [
                        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
                    ],
                }
            )
        assert info.value.param == "messages[0].content[0]"


def test_pitfall_19_requests_over_32_mb_are_refused_before_sending(kit: Any) -> None:
    big = "data:image/png;base64," + "A" * (33 * 1024 * 1024)
    with pytest.raises(UnsupportedRequest) as info:
        kit.translate(
            {
                "model": "c",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": big}}]}],
            }
        )
    assert "32 MB" in info.value.message


# --- 20. Error semantics and limits that differ by provider ------------------------------------------


def test_pitfall_20_529_is_a_retryable_503_and_rfc3339_resets_become_retry_after(kit: Any) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = kit.respond(overloaded, status=529).error
    assert (error.status, error.kind, error.retryable) == (503, "overloaded", True)
    reset = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-remaining": "1000",
        "anthropic-ratelimit-tokens-reset": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    limited = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    result = kit.respond(limited, status=429, headers=headers)
    assert result.error.kind == "rate_limit" and result.error.status == 429
    assert 25 < result.error.retry_after <= 30
    assert result.limits.remaining_requests == 0 and 25 < result.limits.reset_requests <= 30
    with pytest.raises(UnsupportedRequest) as info:
        kit.translate({"model": "c", "messages": [USER], "n": 2})
    assert info.value.param == "n"
