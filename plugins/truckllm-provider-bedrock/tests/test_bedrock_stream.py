"""The AWS event-stream decoder and the ConverseStream translator: any split gives the same
answer; any corruption or truncation is a clean :class:`UpstreamFailure`, never a hang (hypothesis)."""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_provider_bedrock.eventstream import EventDecoder, EventStreamError
from truckllm_provider_bedrock.passthrough import InvokeStream, invoke_body
from truckllm_provider_bedrock.stream import ConverseStream

from truckllm.errors import UpstreamFailure
from truckllm.types import ChatRequest
from truckllm_testing.fakes.bedrock_wire import event_frame, exception_frame, frame

EVENTS: list[bytes] = [
    event_frame("messageStart", {"role": "assistant", "p": "abc"}),
    event_frame(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "think"}}}
    ),
    event_frame(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}
    ),
    event_frame("contentBlockStop", {"contentBlockIndex": 0}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hello "}}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "wörld"}}),
    event_frame("contentBlockStop", {"contentBlockIndex": 1}),
    event_frame(
        "contentBlockStart", {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tu1", "name": "f"}}}
    ),
    event_frame("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"a":'}}}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "1}"}}}),
    event_frame("contentBlockStop", {"contentBlockIndex": 2}),
    event_frame("messageStop", {"stopReason": "tool_use"}),
    event_frame(
        "metadata",
        {
            "usage": {
                "inputTokens": 3,
                "outputTokens": 7,
                "totalTokens": 15,
                "cacheReadInputTokens": 4,
                "cacheWriteInputTokens": 1,
            },
            "metrics": {"latencyMs": 5},
        },
    ),
]
STREAM = b"".join(EVENTS)


def _chunks(data: bytes) -> list[dict[str, Any]]:
    out = []
    for line in data.split(b"\n\n"):
        if line.startswith(b"data: {"):
            chunk = json.loads(line[6:])
            chunk.pop("id"), chunk.pop("created")
            out.append(chunk)
    return out


def _run(pieces: list[bytes], include_usage: bool = True) -> tuple[bytes, ConverseStream]:
    stream = ConverseStream(model="alias", include_usage=include_usage)
    out = b"".join(stream.feed(p) for p in pieces) + stream.close()
    return out, stream


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def test_the_whole_stream() -> None:
    out, stream = _run([STREAM])
    chunks = _chunks(out)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "think"
    assert {"thinking_blocks": [{"type": "thinking", "thinking": "think", "signature": "sig"}]} in deltas
    assert "".join(d.get("content", "") for d in deltas) == "Hello wörld"
    calls = [c for d in deltas for c in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "tu1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert "".join(c["function"].get("arguments", "") for c in calls) == '{"a":1}'
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 8
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert out.endswith(b"data: [DONE]\n\n")
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.cached_tokens, stream.usage.cache_write_tokens) == (
        8,
        4,
        1,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_gives_the_same_answer(cuts: list[int]) -> None:
    whole, _ = _run([STREAM])
    pieces, _ = _run(_split(STREAM, cuts))
    assert _chunks(pieces) == _chunks(whole)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0),
    st.integers(min_value=1, max_value=255),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_any_corrupted_byte_is_a_clean_failure(at: int, flip: int, cuts: list[int]) -> None:
    data = bytearray(STREAM)
    data[at % len(data)] ^= flip
    with pytest.raises(UpstreamFailure) as info:
        _run(_split(bytes(data), cuts))
    assert info.value.error.status == 502 and info.value.error.kind in ("bad_response", "stream")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.lists(st.integers(min_value=0), max_size=8))
def test_any_truncation_is_a_clean_failure(length: int, cuts: list[int]) -> None:
    data = STREAM[: length % len(STREAM)]
    with pytest.raises(UpstreamFailure):
        _run(_split(data, cuts))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_never_hang(data: bytes, cuts: list[int]) -> None:
    """Garbage ends in a failure at once or at close: the decoder never waits for more than a
    message's declared length, and a declared length is checked first."""
    stream = ConverseStream(model="alias", include_usage=False)
    with pytest.raises(UpstreamFailure):
        for piece in _split(data, cuts):
            stream.feed(piece)
        stream.close()


def test_impossible_lengths_fail_at_once() -> None:
    decoder = EventDecoder()
    with pytest.raises(EventStreamError, match="impossible"):
        good = frame({":event-type": "x"}, b"{}")
        huge = bytearray(good)
        huge[0:4] = (2**31).to_bytes(4, "big")
        import binascii

        huge[8:12] = binascii.crc32(bytes(huge[:8])).to_bytes(4, "big")
        decoder.feed(bytes(huge[:12]))


def test_an_exception_message_is_classified_and_keeps_the_frames_before_it() -> None:
    stream = ConverseStream(model="alias", include_usage=False)
    data = EVENTS[0] + EVENTS[4] + exception_frame("throttlingException", "Too many tokens")
    with pytest.raises(UpstreamFailure) as info:
        stream.feed(data)
    error = info.value.error
    assert (error.kind, error.status) == ("rate_limit", 429)
    assert error.message == "ThrottlingException: Too many tokens"
    assert [c["choices"][0]["delta"] for c in _chunks(info.value.pending)] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello "},
    ]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("validationException", "bad_request"),
        ("serviceUnavailableException", "overloaded"),
        ("internalServerException", "server"),
        ("modelStreamErrorException", "server"),
    ],
)
def test_stream_exceptions(name: str, kind: str) -> None:
    with pytest.raises(UpstreamFailure) as info:
        ConverseStream(model="alias", include_usage=False).feed(exception_frame(name, "boom"))
    assert info.value.error.kind == kind


def test_a_stream_without_metadata_is_cut_short() -> None:
    stream = ConverseStream(model="alias", include_usage=False)
    stream.feed(b"".join(EVENTS[:-1]))
    with pytest.raises(UpstreamFailure) as info:
        stream.close()
    assert info.value.error.kind == "stream"


def test_an_event_of_the_wrong_shape_is_a_bad_response() -> None:
    with pytest.raises(UpstreamFailure) as info:
        ConverseStream(model="alias", include_usage=False).feed(
            event_frame("contentBlockDelta", {"contentBlockIndex": "zero", "delta": {"text": 1}})
        )
    assert info.value.error.kind == "bad_response"


def test_unknown_events_are_skipped_and_usage_is_not_sent_unasked() -> None:
    extra = event_frame("somethingNew", {"x": 1})
    out, stream = _run([EVENTS[0], extra, *EVENTS[4:7], *EVENTS[-2:]], include_usage=False)
    chunks = _chunks(out)
    assert all(c["choices"] for c in chunks)
    assert stream.usage is not None and stream.usage.completion_tokens == 7


# --- InvokeModel streams (Anthropic clients of Claude) ------------------------------------------------

_ANTHROPIC: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "content": [],
            "usage": {"input_tokens": 5, "cache_read_input_tokens": 2, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 5}},
]


def _invoke_stream(events: list[dict[str, Any]]) -> bytes:
    import base64

    return b"".join(
        event_frame("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode()}) for e in events
    )


INVOKE = _invoke_stream(_ANTHROPIC)


def test_invoke_stream_is_reframed_as_anthropic_sse() -> None:
    stream = InvokeStream()
    out = b"".join(stream.feed(INVOKE[i : i + 5]) for i in range(0, len(INVOKE), 5)) + stream.close()
    frames = [f for f in out.split(b"\n\n") if f]
    assert [f.split(b"\n")[0] for f in frames] == [b"event: " + e["type"].encode() for e in _ANTHROPIC]
    assert b"amazon-bedrock" not in out
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.cached_tokens, stream.usage.completion_tokens) == (
        7,
        2,
        4,
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_invoke_stream_corruption_is_a_clean_failure(at: int, flip: int) -> None:
    data = bytearray(INVOKE)
    data[at % len(data)] ^= flip
    stream = InvokeStream()
    with pytest.raises(UpstreamFailure):
        stream.feed(bytes(data))
        stream.close()


def test_invoke_stream_error_event_and_cut() -> None:
    with pytest.raises(UpstreamFailure, match="overloaded"):
        InvokeStream().feed(
            _invoke_stream([_ANTHROPIC[0], {"type": "error", "error": {"message": "overloaded"}}])
        )
    stream = InvokeStream()
    stream.feed(_invoke_stream(_ANTHROPIC[:3]))
    with pytest.raises(UpstreamFailure):
        stream.close()
    with pytest.raises(UpstreamFailure):
        InvokeStream().feed(event_frame("chunk", {"bytes": "not base64!"}))


def test_invoke_body_drops_what_bedrock_refuses() -> None:
    raw = json.dumps({"model": "claude", "stream": True, "max_tokens": 5, "messages": []}).encode()
    request = ChatRequest(
        endpoint="chat",
        dialect="anthropic",
        body=raw,
        model="claude",
        stream=True,
        headers={"anthropic-beta": "a, b"},
    )
    assert json.loads(invoke_body(request)) == {
        "max_tokens": 5,
        "messages": [],
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["a", "b"],
    }


# --- messages whose framing and CRCs are valid but whose headers or payloads are anything ---------


def _framed(head: bytes, payload: bytes) -> bytes:
    """One message with good lengths and CRCs around raw header bytes (a header section the
    CRCs cannot catch: only the header parser and the translators stand between it and a crash)."""
    prelude = struct.pack("!II", 12 + len(head) + len(payload) + 4, len(head))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack("!I", binascii.crc32(message))


def _readers() -> list[ConverseStream | InvokeStream]:
    return [ConverseStream(model="alias", include_usage=True), InvokeStream()]


def _clean(reader: ConverseStream | InvokeStream, data: bytes) -> None:
    """Frames or :class:`UpstreamFailure`, nothing else (a ``KeyError`` would be a crash)."""
    try:
        reader.feed(data)
        reader.close()
    except UpstreamFailure:
        pass


_MEMBERS = [
    "contentBlockIndex",
    "start",
    "delta",
    "toolUse",
    "toolUseId",
    "name",
    "input",
    "text",
    "reasoningContent",
    "signature",
    "redactedContent",
    "stopReason",
    "usage",
    "inputTokens",
    "outputTokens",
    "cacheReadInputTokens",
    "bytes",
    "type",
    "message",
    "input_tokens",
    "output_tokens",
    "error",
    "index",
]
"""Member names Converse events and Anthropic stream events use, for payloads close to real ones."""
_EVENT_TYPES = [
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "chunk",
    "other",
]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_MEMBERS), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=60)), max_size=4))
def test_any_header_bytes_in_a_well_framed_message_are_clean(messages: list[tuple[bytes, bytes]]) -> None:
    data = b"".join(_framed(head, payload) for head, payload in messages)
    for reader in _readers():
        _clean(reader, data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_EVENT_TYPES),
            st.sampled_from(["event", "exception", "error", "other"]),
            _JSON,
            st.booleans(),
        ),
        max_size=6,
    )
)
def test_any_payload_of_any_event_is_clean(messages: list[tuple[str, str, Any, bool]]) -> None:
    """Payloads of every shape (an ``InvokeModel`` chunk with no ``bytes`` was a ``KeyError``)."""
    data = b""
    for name, kind, payload, wrapped in messages:
        body = {"bytes": base64.b64encode(json.dumps(payload).encode()).decode()} if wrapped else payload
        data += frame({":event-type": name, ":message-type": kind}, json.dumps(body).encode())
    for reader in _readers():
        _clean(reader, data)


def test_a_chunk_without_bytes_is_a_bad_stream() -> None:
    with pytest.raises(UpstreamFailure, match="not an Anthropic stream event"):
        InvokeStream().feed(event_frame("chunk", {}))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_of_an_invoke_stream_gives_the_same_frames(cuts: list[int]) -> None:
    whole = InvokeStream()
    expected = whole.feed(INVOKE) + whole.close()
    split = InvokeStream()
    assert b"".join(split.feed(p) for p in _split(INVOKE, cuts)) + split.close() == expected


def _header(name: str, kind: int, value: bytes) -> bytes:
    return struct.pack("!B", len(name)) + name.encode() + struct.pack("!B", kind) + value


def test_every_header_value_type_is_read_and_only_strings_are_kept() -> None:
    """AWS's nine header value types (bool true/false, byte, short, int, long, bytes, string,
    timestamp, uuid): the fixed-size ones skipped by their size, the length-prefixed ones by theirs."""
    head = b"".join(
        [
            _header("t", 0, b""),
            _header("f", 1, b""),
            _header("b", 2, b"\x01"),
            _header("s", 3, b"\x00\x02"),
            _header("i", 4, b"\x00\x00\x00\x03"),
            _header("l", 5, b"\x00" * 8),
            _header("raw", 6, struct.pack("!H", 3) + b"\xff\x00\xfe"),
            _header(":event-type", 7, struct.pack("!H", 12) + b"messageStart"),
            _header("ts", 8, b"\x00" * 8),
            _header("id", 9, b"\x11" * 16),
        ]
    )
    (message,) = EventDecoder().feed(_framed(head, b'{"role":"assistant"}'))
    assert message.headers == {":event-type": "messageStart"}
    assert message.payload == b'{"role":"assistant"}'
    with pytest.raises(EventStreamError, match="unknown header value type"):
        EventDecoder().feed(_framed(_header("x", 10, b""), b""))
    with pytest.raises(EventStreamError, match="runs past"):
        EventDecoder().feed(_framed(_header("x", 5, b"\x00" * 3), b""))
