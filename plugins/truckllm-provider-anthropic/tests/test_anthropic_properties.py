"""Property tests (hypothesis): no input makes the translation crash, hang or depend on framing.

- Arbitrary (valid and invalid) OpenAI chat requests into ``transform_request``: a valid
  Anthropic body or :class:`UnsupportedRequest`, never another exception.
- Arbitrary upstream bodies and statuses into ``transform_response``: always a result.
- Arbitrary Anthropic SSE streams, valid or corrupted, split at arbitrary byte boundaries into
  the stream translator: no exception but :class:`UpstreamFailure`, and the same outcome for
  every split.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
from typing import Any

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from truckllm_provider_anthropic.request import IMAGE_TYPES

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import UnsupportedRequest, UpstreamFailure

SETTINGS = settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TOOL_ID = re.compile(r"^[A-Za-z0-9_-]+$")
PNG_URI = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n\x00").decode()

texts = st.one_of(st.just(""), st.just("  "), st.text(max_size=12))
ids = st.one_of(st.sampled_from(["call_1", "call_2", "toolu_01A"]), st.text(max_size=8))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
arguments = st.one_of(
    st.just(""),
    st.just("{}"),
    st.dictionaries(st.text(max_size=4), json_values, max_size=3).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=10),
)
image_urls = st.one_of(
    st.just(PNG_URI),
    st.just("https://example.com/a.png"),
    st.sampled_from(["image/jpeg", "image/jpg", "image/bmp", "text/plain", ""]).map(
        lambda t: f"data:{t};base64,QUJD"
    ),
    st.text(min_size=1, max_size=12),
)
text_parts = st.builds(lambda t: {"type": "text", "text": t}, texts)
user_parts = st.one_of(
    text_parts,
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, image_urls),
    st.just({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
    st.just({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg=="}}),
    st.just({"type": "refusal", "refusal": "no"}),
)
thinking_blocks = st.lists(
    st.one_of(
        st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, texts, texts),
        st.builds(lambda d: {"type": "redacted_thinking", "data": d}, texts),
        st.dictionaries(st.text(max_size=4), json_values, max_size=2),
    ),
    max_size=2,
)
tool_calls = st.lists(
    st.builds(
        lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": a}},
        ids,
        st.sampled_from(["get_weather", "get_time", "json_tool_call"]),
        arguments,
    ),
    max_size=3,
)


def _assistant(
    content: Any, calls: list[Any], blocks: list[Any] | None, refusal: str | None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    if blocks is not None:
        message["thinking_blocks"] = blocks
    if refusal is not None:
        message["refusal"] = refusal
    return message


messages = st.lists(
    st.one_of(
        st.builds(
            lambda r, c: {"role": r, "content": c},
            st.sampled_from(["system", "developer"]),
            texts | st.lists(text_parts, max_size=2),
        ),
        st.builds(lambda c: {"role": "user", "content": c}, texts | st.lists(user_parts, max_size=3)),
        st.builds(
            _assistant,
            st.none() | texts | st.lists(text_parts, max_size=2),
            tool_calls,
            st.none() | thinking_blocks,
            st.none() | texts,
        ),
        st.builds(
            lambda i, c: {"role": "tool", "tool_call_id": i, "content": c},
            ids,
            texts | st.lists(text_parts, max_size=2),
        ),
        st.just({"role": "function", "name": "f", "content": "x"}),
        st.dictionaries(st.sampled_from(["role", "content"]), json_values, max_size=2),
    ),
    min_size=0,
    max_size=7,
)
tools = st.lists(
    st.one_of(
        st.builds(
            lambda n, p: {
                "type": "function",
                "function": {"name": n, **({"parameters": p} if p is not None else {})},
            },
            st.sampled_from(["get_weather", "get_time", "json_tool_call", "bad name!"]),
            st.none()
            | st.just({"type": "object", "properties": {"a": {"type": "string"}}})
            | st.just({})
            | st.just({"type": "array"})
            | json_values,
        ),
        st.just({"type": "custom", "custom": {"name": "c"}}),
    ),
    max_size=3,
)
optional = {
    "temperature": st.floats(-1, 3, allow_nan=False),
    "top_p": st.floats(0, 1.2, allow_nan=False),
    "top_k": st.integers(-1, 50),
    "max_tokens": st.integers(-1, 20000),
    "max_completion_tokens": st.integers(0, 20000),
    "n": st.integers(0, 3),
    "stop": st.one_of(texts, st.lists(texts, max_size=5)),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(0, 3),
    "logit_bias": st.dictionaries(st.sampled_from(["1", "2"]), st.floats(-100, 100), max_size=1),
    "seed": st.integers(0, 10),
    "user": texts,
    "safety_identifier": texts,
    "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh", "max"]),
    "tools": tools,
    "tool_choice": st.one_of(
        st.sampled_from(["auto", "none", "required", "sometimes"]),
        st.builds(
            lambda n: {"type": "function", "function": {"name": n}}, st.sampled_from(["get_time", "nope"])
        ),
        st.just({"type": "allowed_tools"}),
    ),
    "parallel_tool_calls": st.booleans(),
    "response_format": st.one_of(
        st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
        st.builds(
            lambda s: {
                "type": "json_schema",
                "json_schema": {"name": "out", **({"schema": s} if s is not None else {})},
            },
            st.none() | st.just({"type": "object"}) | st.just({"type": "string"}),
        ),
    ),
    "stream": st.booleans(),
}
valid_optional = {
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "top_k": st.integers(0, 50),
    "max_tokens": st.integers(0, 20000),
    "max_completion_tokens": st.integers(0, 20000),
    "stop": st.one_of(texts, st.lists(texts, max_size=4)),
    "seed": st.integers(0, 10),
    "user": texts,
    "reasoning_effort": st.sampled_from(["none", "low", "medium", "high"]),
    "tools": st.lists(
        st.builds(
            lambda n, d: {"type": "function", "function": {"name": n, **({"description": d} if d else {})}},
            st.sampled_from(["get_weather", "get_time", "lookup"]),
            texts,
        ),
        max_size=2,
    ),
    "tool_choice": st.sampled_from(["auto", "none"]),
    "parallel_tool_calls": st.booleans(),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    "stream": st.booleans(),
}
valid_tool_calls = st.lists(
    st.builds(
        lambda i, a: {"id": i, "type": "function", "function": {"name": "get_time", "arguments": a}},
        st.sampled_from(["call_1", "call_2", "call:3", "toolu_01A"]),
        st.one_of(st.just(""), st.dictionaries(st.text(max_size=4), json_values, max_size=3).map(json.dumps)),
    ),
    max_size=3,
)
valid_messages = st.lists(
    st.one_of(
        st.builds(lambda c: {"role": "system", "content": c}, texts),
        st.builds(lambda c: {"role": "user", "content": c}, texts | st.lists(text_parts, max_size=2)),
        st.builds(
            lambda c: {"role": "user", "content": c},
            st.lists(
                st.one_of(
                    text_parts,
                    st.sampled_from([PNG_URI, "https://example.com/x.gif"]).map(
                        lambda u: {"type": "image_url", "image_url": {"url": u}}
                    ),
                ),
                min_size=1,
                max_size=3,
            ),
        ),
        st.builds(_assistant, st.none() | texts, valid_tool_calls, st.none(), st.none()),
        st.builds(
            lambda i, c: {"role": "tool", "tool_call_id": i, "content": c},
            st.sampled_from(["call_1", "call_2", "call:3", "toolu_01A"]),
            texts,
        ),
    ),
    min_size=1,
    max_size=8,
)
requests = st.one_of(
    st.builds(
        lambda msgs, extra: {"model": "claude", "messages": msgs, **extra},
        valid_messages,
        st.fixed_dictionaries({}, optional=valid_optional),
    ),
    st.builds(
        lambda msgs, extra: {"model": "claude", "messages": msgs, **extra},
        messages,
        st.fixed_dictionaries({}, optional=optional),
    ),
)
option_sets = st.fixed_dictionaries(
    {},
    optional={
        "temperature_with_top_p": st.booleans(),
        "json_mode": st.sampled_from(["tool", "output_config"]),
        "max_tokens": st.integers(1, 10000),
    },
)


def _check_body(body: dict[str, Any], options: dict[str, Any]) -> None:
    """What FakeAnthropic (and the real API) would reject, the translation must never produce."""
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] >= 0
    turns = body["messages"]
    assert turns
    for previous, turn in itertools.pairwise(turns):
        assert previous["role"] != turn["role"]
    calls: list[str] = []
    for turn in turns:
        assert turn["role"] in ("user", "assistant") and turn["content"]
        seen_other = False
        for block in turn["content"]:
            kind = block.get("type")
            if kind == "text":
                assert block["text"].strip()
            if kind == "tool_result":
                assert not seen_other and block["content"] and TOOL_ID.match(block["tool_use_id"])
            else:
                seen_other = True
            if kind == "tool_use":
                assert TOOL_ID.match(block["id"]) and isinstance(block["input"], dict)
                calls.append(block["id"])
            if kind == "image" and block["source"]["type"] == "base64":
                assert block["source"]["media_type"] in IMAGE_TYPES
                assert not block["source"]["data"].startswith("data:")
    last = turns[-1]
    if last["role"] == "assistant" and last["content"][-1].get("type") == "text":
        assert last["content"][-1]["text"] == last["content"][-1]["text"].rstrip()
    if "temperature" in body:
        assert 0 <= body["temperature"] <= 1
        if not options.get("temperature_with_top_p"):
            assert "top_p" not in body
    for tool in body.get("tools", []):
        assert tool["input_schema"]["type"] == "object"
    thinking = body.get("thinking")
    if thinking is not None:
        assert 1024 <= thinking["budget_tokens"] < body["max_tokens"]
        assert not {"temperature", "top_p", "top_k"} & set(body)
        assert body.get("tool_choice", {}).get("type") not in ("any", "tool")
    if "tool_choice" in body:
        assert body.get("tools")


@SETTINGS
@given(requests, option_sets)
def test_property_request_translation_never_crashes(
    kit: Any, body: dict[str, Any], options: dict[str, Any]
) -> None:
    raw = json.dumps(body).encode()
    try:
        msgspec.json.decode(raw, type=ChatCompletionRequest)
    except msgspec.ValidationError:
        event("invalid OpenAI request")
        return  # the kernel answers 400 before any provider sees it
    try:
        upstream = kit.upstream(body, **options)
    except UnsupportedRequest as exc:
        assert exc.message
        event(f"unsupported: {exc.param}")
        return
    event("translated")
    _check_body(json.loads(upstream.body), options)


@SETTINGS
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6))
def test_property_arbitrary_json_requests(kit: Any, body: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **body}
    try:
        msgspec.json.decode(json.dumps(body).encode(), type=ChatCompletionRequest)
    except msgspec.ValidationError:
        return
    with contextlib.suppress(UnsupportedRequest):
        kit.upstream(body)


blocks = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, texts),
    st.builds(
        lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a},
        ids,
        st.sampled_from(["f", "json_tool_call"]),
        json_values,
    ),
    st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, texts, texts),
    st.builds(lambda d: {"type": "redacted_thinking", "data": d}, texts),
    st.dictionaries(
        st.sampled_from(["type", "text", "id", "name", "input", "thinking"]), json_values, max_size=4
    ),
)
answers = st.one_of(
    st.builds(
        lambda c, s, u, extra: {
            "id": "msg_1",
            "type": "message",
            "content": c,
            "stop_reason": s,
            "usage": u,
            **extra,
        },
        st.lists(blocks, max_size=4),
        st.none() | st.sampled_from(["end_turn", "tool_use", "max_tokens", "refusal", "pause_turn", "weird"]),
        st.none()
        | st.dictionaries(
            st.sampled_from(["input_tokens", "output_tokens", "cache_read_input_tokens"]),
            st.none() | st.integers(0, 99),
            max_size=3,
        ),
        st.dictionaries(st.sampled_from(["model", "type", "id"]), json_values, max_size=2),
    ),
    st.builds(
        lambda t, m: {"type": "error", "error": {"type": t, "message": m}},
        st.text(max_size=20),
        st.none() | texts,
    ),
    json_values,
)


@st.composite
def corrupted_answers(draw: st.DrawFn) -> bytes:
    """A JSON answer with one byte replaced (invalid UTF-8 inside strings included)."""
    raw = json.dumps(draw(answers), ensure_ascii=False).encode()
    position = draw(st.integers(0, max(0, len(raw) - 1)))
    return raw[:position] + bytes([draw(st.integers(0x80, 0xFF))]) + raw[position + 1 :]


@SETTINGS
@given(
    st.one_of(answers.map(lambda a: json.dumps(a).encode()), corrupted_answers(), st.binary(max_size=64)),
    st.sampled_from([200, 201, 204, 301, 400, 401, 402, 403, 404, 413, 429, 500, 503, 504, 529, 599]),
    st.sampled_from(["chat", "completions"]),
    st.booleans(),
)
def test_property_any_upstream_body_gives_a_result(
    kit: Any, body: bytes, status: int, endpoint: str, json_mode: bool
) -> None:
    request = (
        {"model": "m", "prompt": "x"}
        if endpoint == "completions"
        else {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            **({"response_format": {"type": "json_object"}} if json_mode else {}),
        }
    )
    headers = {
        "retry-after": "1",
        "anthropic-ratelimit-requests-reset": "garbage",
        "anthropic-ratelimit-requests-remaining": "0",
    }
    result = kit.respond(body, request, status=status, headers=headers, endpoint=endpoint)
    if result.error is None:
        decoded = json.loads(result.body)
        assert decoded["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls", "content_filter")
    else:
        assert result.error.message and 400 <= result.error.status < 600
    from truckllm_provider_anthropic import parse_usage

    parse_usage(provider=kit.provider(), request=kit.request(request, endpoint=endpoint), body=body)


# --- streams ------------------------------------------------------------------------------------


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


@st.composite
def valid_streams(draw: st.DrawFn) -> bytes:
    """A well-formed Anthropic stream with random blocks, fragments, pings and usage."""
    out = [
        _event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "model": "claude",
                    "usage": {"input_tokens": draw(st.integers(0, 50)), "output_tokens": 1},
                },
            },
        )
    ]
    for index in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "tool_use", "thinking", "redacted_thinking"]))
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": t} for t in draw(st.lists(st.text(max_size=6), max_size=4))
            ]
        elif kind == "tool_use":
            start = {
                "type": "tool_use",
                "id": f"toolu_{index}",
                "name": draw(st.sampled_from(["f", "json_tool_call"])),
                "input": {},
            }
            text = json.dumps(draw(st.dictionaries(st.text(max_size=3), json_values, max_size=3)))
            cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=4)))
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            if draw(st.booleans()):
                pieces = [""]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": t}
                for t in draw(st.lists(st.text(max_size=6), max_size=3))
            ]
            deltas.append({"type": "signature_delta", "signature": "sig"})
        else:
            start = {"type": "redacted_thinking", "data": "opaque"}
            deltas = []
        out.append(
            _event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
            )
        )
        for delta in deltas:
            if draw(st.booleans()):
                out.append(b'event: ping\ndata: {"type": "ping"}\n\n')
            out.append(
                _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            )
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    for _ in range(draw(st.integers(1, 2))):
        out.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": draw(st.sampled_from(["end_turn", "tool_use", "max_tokens"]))},
                    "usage": {"output_tokens": draw(st.integers(0, 99))},
                },
            )
        )
    out.append(_event("message_stop", {"type": "message_stop"}))
    raw = b"".join(out)
    return raw.replace(b"\n", b"\r\n") if draw(st.booleans()) else raw


@st.composite
def corrupted_streams(draw: st.DrawFn) -> bytes:
    """A valid stream cut short, with bytes flipped or deleted, or with an error event inserted."""
    raw = draw(valid_streams())
    how = draw(st.sampled_from(["cut", "flip", "delete", "error", "garbage"]))
    if how == "cut":
        return raw[: draw(st.integers(0, len(raw)))]
    if how == "garbage":
        return draw(st.binary(max_size=200))
    position = draw(st.integers(0, max(0, len(raw) - 1)))
    if how == "flip":
        return raw[:position] + bytes([draw(st.integers(0, 255))]) + raw[position + 1 :]
    if how == "delete":
        return raw[:position] + raw[position + draw(st.integers(1, 20)) :]
    frames = raw.split(b"\n\n")
    at = draw(st.integers(0, len(frames)))
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    return b"\n\n".join([*frames[:at], error, *frames[at:]])


def _chunks(out: bytes) -> list[Any]:
    chunks: list[Any] = []
    for frame in out.split(b"\n\n"):
        if not frame:
            continue
        payload = frame[len(b"data: ") :]
        if payload == b"[DONE]":
            chunks.append("[DONE]")
            continue
        chunk = json.loads(payload)
        chunk.pop("id"), chunk.pop("created")
        chunks.append(chunk)
    return chunks


def _outcome(translator: Any, pieces: list[bytes]) -> Any:
    """The client's chunks, or (failed, kind, the chunks sent before the error event)."""
    out = b""
    try:
        for piece in pieces:
            out += translator.feed(piece)
        out += translator.close()
    except UpstreamFailure as failure:
        return ("failed", failure.error.kind, _chunks(out + failure.pending))
    return _chunks(out)


def _split(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


STREAM_REQUESTS = [
    {
        "model": "c",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    {
        "model": "c",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "response_format": {"type": "json_object"},
    },
]


@SETTINGS
@given(valid_streams(), st.lists(st.integers(0, 10_000), max_size=12), st.sampled_from(STREAM_REQUESTS))
def test_property_valid_streams_translate_identically_for_any_split(
    kit: Any, raw: bytes, cuts: list[int], request: dict[str, Any]
) -> None:
    whole = _outcome(kit.translator(request), [raw])
    assert isinstance(whole, list)
    assert whole[-1] == "[DONE]"
    finishes = [
        c["choices"][0]["finish_reason"]
        for c in whole[:-1]
        if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert len(finishes) == 1
    assert whole[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert _outcome(kit.translator(request), _split(raw, cuts)) == whole
    args: dict[int, str] = {}
    for chunk in whole[:-1]:
        for call in chunk["choices"][0]["delta"].get("tool_calls", []) if chunk["choices"] else []:
            args[call["index"]] = args.get(call["index"], "") + call["function"].get("arguments", "")
    for text in args.values():
        assert isinstance(json.loads(text), dict)  # never "" (pitfall 2), always whole JSON (pitfall 1)


@SETTINGS
@given(
    corrupted_streams(),
    st.lists(st.integers(0, 10_000), max_size=12),
    st.sampled_from(["chat", "completions", "anthropic"]),
)
def test_property_corrupted_streams_fail_cleanly_and_identically(
    kit: Any, raw: bytes, cuts: list[int], mode: str
) -> None:
    def make() -> Any:
        if mode == "anthropic":
            return kit.translator(
                {"model": "c", "max_tokens": 5, "messages": [], "stream": True}, dialect="anthropic"
            )
        if mode == "completions":
            return kit.translator({"model": "c", "prompt": "x", "stream": True}, endpoint="completions")
        return kit.translator()

    if mode == "anthropic":

        def outcome(pieces: list[bytes]) -> Any:
            translator = make()
            out = b""
            try:
                for piece in pieces:
                    out += translator.feed(piece)
                return out + translator.close()
            except UpstreamFailure as failure:
                return ("failed", failure.error.kind, out + failure.pending)

        assert outcome([raw]) == outcome(_split(raw, cuts))
        return
    whole = _outcome(make(), [raw])
    event("failed" if isinstance(whole, tuple) else "translated")
    assert whole == _outcome(make(), _split(raw, cuts))
