"""Properties of the Responses API readers and of the chat → Responses translation.

- A stream split at any byte (every single split point, one byte at a time, or any set of split
  points) gives the same client bytes, usage and outcome as the stream read whole: for the
  pass-through relay and for the translation to chat chunks, on every golden stream.
- The relay gives back any well-formed event stream byte for byte.
- Any chat request the kernel accepts either translates (every message's text, every tool call
  and tool result reaches the Responses input, nothing is stored upstream) or is refused naming
  the chat parameter at fault; never another error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from truckllm_provider_openai import (
    ResponsesPassthrough,
    ResponsesToChat,
    parse_usage,
    transform_request,
    transform_response,
)

from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_schemas import ChatCompletionRequest
from truckllm.types import UpstreamResponse

EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOLDEN = Path(__file__).parent / "golden" / "streams"
STREAMS = sorted(p.name[: -len(".sse")] for p in GOLDEN.glob("*.sse"))
TRANSLATORS = {
    "relay": lambda: ResponsesPassthrough(None),
    "chat": lambda: ResponsesToChat(True, "fallback", None),
}


def _read(kit: Any, kind: str, chunks: list[bytes]) -> tuple[bytes, Any, Any]:
    translator = TRANSLATORS[kind]()
    sent, failure = kit.run_stream(translator, chunks)
    outcome = None if failure is None else (failure.error.kind, failure.error.message)
    return sent, translator.usage, outcome


def _split(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({p for p in points if 0 < p < len(data)})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("kind", sorted(TRANSLATORS))
@pytest.mark.parametrize("case", STREAMS)
def test_a_stream_split_at_every_byte_reads_the_same(kit: Any, kind: str, case: str) -> None:
    data = (GOLDEN / f"{case}.sse").read_bytes()
    whole = _read(kit, kind, [data])
    assert whole[2] is None and whole[0]
    assert _read(kit, kind, [data[i : i + 1] for i in range(len(data))]) == whole
    for point in range(1, len(data)):
        assert _read(kit, kind, [data[:point], data[point:]]) == whole, point


@SETTINGS
@given(
    kind=st.sampled_from(sorted(TRANSLATORS)),
    case=st.sampled_from(STREAMS),
    points=st.lists(st.integers(min_value=1, max_value=20_000), max_size=40),
    cut=st.integers(min_value=0, max_value=20_000) | st.none(),
)
def test_a_stream_split_anywhere_reads_the_same(
    kit: Any, kind: str, case: str, points: list[int], cut: int | None
) -> None:
    """Any split points, and the same stream cut short anywhere: the same as reading it whole."""
    data = (GOLDEN / f"{case}.sse").read_bytes()
    if cut is not None:
        data = data[: cut % len(data)]
    assert _read(kit, kind, _split(data, points)) == _read(kit, kind, [data])


EVENT_TYPES = st.sampled_from(
    ["response.output_text.delta", "response.output_item.added", "response.web_search_call.searching", "x.y"]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@SETTINGS
@given(
    events=st.lists(
        st.tuples(EVENT_TYPES, st.dictionaries(st.sampled_from(["delta", "item", "z", "é"]), JSON_VALUES)),
        max_size=6,
    ),
    usage=st.integers(min_value=0, max_value=10**6),
)
def test_the_relay_gives_back_any_event_stream_byte_for_byte(
    kit: Any, events: list[tuple[str, dict[str, Any]]], usage: int
) -> None:
    frames = []
    for n, (kind, fields) in enumerate(events):
        payload = json.dumps({**fields, "type": kind, "sequence_number": n}, ensure_ascii=False)
        frames.append(f"event: {kind}\ndata: {payload}\n\n".encode())
    done = {
        "type": "response.completed",
        "response": {"object": "response", "usage": {"input_tokens": usage}},
    }
    frames.append(b"event: response.completed\ndata: " + json.dumps(done).encode() + b"\n\n")
    sent, failure = kit.run_stream(ResponsesPassthrough(None), frames)
    assert failure is None and sent == b"".join(frames)


# --- the request translation --------------------------------------------------------------------

TEXT = st.text(min_size=1, max_size=12)
CALL_ID = st.from_regex(r"call_[A-Za-z0-9]{1,8}", fullmatch=True)
TOOL_CALL = st.fixed_dictionaries(
    {
        "id": CALL_ID,
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["f", "get_weather"]), "arguments": st.sampled_from(["{}", '{"a": 1}'])}
        ),
    }
)
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries({"url": st.just("https://x/i.png")}),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("input_audio"), "input_audio": st.just({"data": "AA", "format": "wav"})}
    ),
)
MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer"]), "content": TEXT}),
    st.fixed_dictionaries(
        {"role": st.just("user"), "content": TEXT | st.lists(PART, min_size=1, max_size=3)}
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": TEXT | st.none()},
        optional={"tool_calls": st.lists(TOOL_CALL, min_size=1, max_size=2)},
    ),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": CALL_ID, "content": TEXT}),
    st.fixed_dictionaries({"role": st.just("function"), "name": st.just("f"), "content": TEXT}),
)
OPTIONAL = {
    "n": st.integers(1, 3),
    "logprobs": st.booleans(),
    "stop": st.just(["###"]),
    "presence_penalty": st.sampled_from([0, 0.5]),
    "logit_bias": st.just({"50256": -100}),
    "max_tokens": st.integers(1, 4096),
    "temperature": st.floats(0, 2),
    "tools": st.just([{"type": "function", "function": {"name": "f"}}]) | st.just([{"type": "custom", "custom": {"name": "c"}}]),
    "tool_choice": st.sampled_from(["auto", "none", "required"]),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    "reasoning_effort": st.sampled_from(["low", "high"]),
    "seed": st.integers(0, 9),
}  # fmt: skip
REFUSABLE = {"n", "logprobs", "stop", "presence_penalty", "logit_bias", "tools"}


@SETTINGS
@given(
    messages=st.lists(MESSAGE, min_size=1, max_size=6),
    extra=st.fixed_dictionaries({}, optional=OPTIONAL),
    stream=st.booleans(),
)
def test_a_chat_request_translates_whole_or_is_refused_by_name(
    kit: Any, messages: list[dict[str, Any]], extra: dict[str, Any], stream: bool
) -> None:
    body = {"model": "alias", "messages": messages, **extra, "stream": stream}
    try:
        msgspec.json.decode(json.dumps(body).encode(), type=ChatCompletionRequest)
    except msgspec.ValidationError:
        event("invalid")
        return  # the kernel answers 400 before any provider sees it
    request = kit.chat_request(body)
    try:
        upstream = transform_request(
            provider=kit.provider(api="responses"), model="gpt-4o", request=request, api_key="k"
        )
    except UnsupportedRequest as refused:
        event("refused")
        assert refused.param is not None
        root = refused.param.split("[")[0].split(".")[0]
        assert root in REFUSABLE | {"messages"}
        return
    event("translated")
    assert upstream is not None and upstream.url.endswith("/responses")
    sent = json.loads(upstream.body)
    assert sent["store"] is False and sent.get("stream", False) is stream and sent["model"] == "gpt-4o"
    text = json.dumps(sent["input"], ensure_ascii=False) + json.dumps(
        sent.get("instructions", ""), ensure_ascii=False
    )
    for message in messages:
        content = message.get("content")
        for piece in [content] if isinstance(content, str) else [p.get("text") for p in content or ()]:
            if piece:
                assert json.dumps(piece, ensure_ascii=False)[1:-1] in text
    calls = [c["id"] for m in messages for c in m.get("tool_calls", ())]
    results = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert [i["call_id"] for i in sent["input"] if i["type"] == "function_call"] == calls
    assert [i["call_id"] for i in sent["input"] if i["type"] == "function_call_output"] == results


HOSTILE_EVENT = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "response.created", "response.output_text.delta", "response.output_text.done",
                "response.refusal.delta", "response.reasoning_summary_text.delta",
                "response.output_item.added", "response.output_item.done",
                "response.function_call_arguments.delta", "response.function_call_arguments.done",
                "response.completed", "response.incomplete", "response.failed", "error", "other",
            ]
        )
    },
    optional={
        "delta": JSON_VALUES,
        "text": JSON_VALUES,
        "arguments": JSON_VALUES,
        "output_index": JSON_VALUES,
        "item_id": JSON_VALUES,
        "content_index": JSON_VALUES,
        "item": JSON_VALUES | st.fixed_dictionaries(
            {"type": st.just("function_call")},
            optional={"id": JSON_VALUES, "call_id": JSON_VALUES, "name": JSON_VALUES, "arguments": JSON_VALUES},
        ),
        "response": JSON_VALUES | st.fixed_dictionaries(
            {},
            optional={
                "id": JSON_VALUES, "model": JSON_VALUES, "created_at": JSON_VALUES | st.floats(),
                "status": JSON_VALUES, "usage": JSON_VALUES, "error": JSON_VALUES,
                "incomplete_details": JSON_VALUES,
            },
        ),
        "code": JSON_VALUES,
        "message": JSON_VALUES,
    },
)  # fmt: skip


@SETTINGS
@given(events=st.lists(HOSTILE_EVENT, max_size=8), include_usage=st.booleans())
def test_any_event_sequence_gives_chat_chunks_or_a_classified_failure(
    kit: Any, events: list[dict[str, Any]], include_usage: bool
) -> None:
    """Whatever a hostile upstream sends, the relay gives it back or fails classified, and the
    chat client gets valid chat chunks (one id throughout) ending with ``[DONE]`` or an upstream
    failure; nothing else is raised."""
    raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    relayed, relay_failure = kit.run_stream(ResponsesPassthrough(None), [raw])
    if relay_failure is not None:
        assert relay_failure.error.status in (400, 429, 502) and relay_failure.error.message
    else:  # every event relayed as OpenAI writes it, up to the one that ended the stream
        end = next(
            i for i, e in enumerate(events) if e["type"] in ("response.completed", "response.incomplete")
        )
        assert relayed == b"".join(
            f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events[: end + 1]
        )
    sent, failure = kit.run_stream(ResponsesToChat(include_usage, "fallback"), [raw])
    frames = kit.data_frames(sent)
    chunks = [f for f in frames if f != "[DONE]"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) <= 1
    assert (frames[-1:] == ["[DONE]"]) is (failure is None)
    if failure is not None:
        assert failure.error.status in (400, 429, 502) and failure.error.message


HOSTILE_RESPONSE = st.fixed_dictionaries(
    {"object": st.sampled_from(["response", "chat.completion"]) | JSON_VALUES},
    optional={
        "id": JSON_VALUES,
        "model": JSON_VALUES,
        "created_at": JSON_VALUES | st.floats(allow_nan=False),
        "status": st.sampled_from(["completed", "incomplete", "failed"]) | JSON_VALUES,
        "error": JSON_VALUES,
        "incomplete_details": JSON_VALUES,
        "usage": JSON_VALUES
        | st.fixed_dictionaries({}, optional={k: st.integers(-5, 10**12) for k in ("input_tokens", "output_tokens")}),
        "output": JSON_VALUES
        | st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["message", "function_call", "reasoning"]) | JSON_VALUES},
                optional={"content": JSON_VALUES, "summary": JSON_VALUES, "name": JSON_VALUES, "arguments": JSON_VALUES},
            ),
            max_size=3,
        ),
    },
)  # fmt: skip


@SETTINGS
@given(answer=HOSTILE_RESPONSE)
def test_any_whole_answer_gives_a_chat_completion_or_a_classified_failure(
    kit: Any, answer: dict[str, Any]
) -> None:
    """A hostile 2xx answer to a translated chat request: a valid chat completion or an upstream
    error; the usage recorded is never negative; nothing else is raised."""
    body = json.dumps(answer).encode()
    result = transform_response(
        provider=kit.provider(api="responses"),
        request=kit.chat_request({"model": "alias", "messages": [{"role": "user", "content": "hi"}]}),
        response=UpstreamResponse(status=200, body=body),
        model="gpt-4o",
    )
    assert result is not None
    if result.error is not None:
        assert result.error.status in (400, 429, 502) and result.error.message
        return
    chat = json.loads(result.body)
    assert chat["object"] == "chat.completion" and chat["id"].startswith("chatcmpl-")
    assert chat["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls", "content_filter")
    usage = parse_usage(
        provider=kit.provider(),
        request=kit.chat_request({"model": "a", "messages": [{"role": "user", "content": "x"}]}),
        body=body,
    )
    if usage is not None:
        assert min(msgspec.structs.asdict(usage).values()) >= 0
