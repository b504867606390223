"""The trust boundary of the Anthropic provider (issue 13): hostile clients, hostile upstreams.

Each test holds one class of rule, over the whole space where hypothesis can search it, with the
instances the issue names as explicit cases:

- a client string never reaches the upstream URL, and reaches a header (``anthropic-beta``) only
  as checked feature names; anything else is refused (``UnsupportedRequest``, the header named);
- upstream error text reaches the kernel whole (it scrubs, then cuts), and only ``message``
  carries it: ``type``, ``code`` and ``param`` are the plugin's own words, mid-stream too;
- a 2xx answer is a valid answer of the client's dialect or ``bad_response``; a stream gives valid
  frames then ``UpstreamFailure``, never the bytes of an invalid event, never another exception;
- numbers from upstream (token counts, retry hints, rate-limit headers) are read defensively.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from typing import Any
from urllib.parse import urlsplit

import pytest
import truckllm_provider_anthropic as plugin
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from truckllm_provider_anthropic.errors import classify_error, parse_ratelimits, parse_reset
from truckllm_provider_anthropic.headers import FEATURE, MAX_FEATURES
from truckllm_provider_anthropic.numbers import MAX_TOKENS, retry_after

from truckllm._internal.scrub import MIN_FRAGMENT, Scrubber, scrub_error
from truckllm.errors import UnsupportedRequest, UpstreamFailure
from truckllm.types import ChatRequest, UpstreamResponse, Usage

SETTINGS = settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KEY = "sk-ant-api03-hostile-upstream-echoes-this-key-0123456789"
BASE = "https://api.anthropic.com"
OPENAI_BODY = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_BODY = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
SENT_HEADERS = {"content-type", "accept", "anthropic-version", "x-api-key", "anthropic-beta"}
BETA_ATTACKS = [
    "a\r\nx-api-key: evil",
    "a\nb",
    "a\rb",
    "a\x00b",
    "a b",
    "a;b",
    '"quoted"',
    "é",
    "x" * 65,
    ",".join(f"f{i}" for i in range(MAX_FEATURES + 1)),
    "-leading-dash",
    "a=b",
]
BETA_OK = [
    ("prompt-caching-2024-07-31", "prompt-caching-2024-07-31"),
    (" a , b ,, a ", "a,b"),
    (
        "interleaved-thinking-2025-05-14,context-1m-2025-08-07",
        "interleaved-thinking-2025-05-14,context-1m-2025-08-07",
    ),
    ("x" * 64, "x" * 64),
    (",".join(f"f{i}" for i in range(MAX_FEATURES)), ",".join(f"f{i}" for i in range(MAX_FEATURES))),
    ("", None),
]


def _request(kit: Any, dialect: str, endpoint: str = "chat", beta: str | None = None) -> ChatRequest:
    body = ANTHROPIC_BODY if dialect == "anthropic" else OPENAI_BODY
    headers = {"anthropic-beta": beta} if beta is not None else {}
    request: ChatRequest = kit.request(body, endpoint=endpoint, dialect=dialect, headers=headers)
    return request


def _beta_is_valid(value: str) -> bool:
    """The oracle: a comma-separated list of at most MAX_FEATURES feature names."""
    features = [f.strip() for f in value.split(",") if f.strip()]
    return len(features) <= MAX_FEATURES and all(FEATURE.fullmatch(f) for f in features)


def _build(kit: Any, model: str, request: ChatRequest, beta: tuple[str, ...] = ()) -> Any:
    return plugin.transform_request(
        provider=kit.provider(beta=list(beta)), model=model, request=request, api_key=KEY
    )


def _check_upstream(kit: Any, model: str, dialect: str, endpoint: str, beta: str | None) -> bool:
    """Build the upstream call; ``False`` when refused, else check its URL and headers whole."""
    request = _request(kit, dialect, endpoint, beta)
    try:
        upstream = _build(kit, model, request, beta=("configured-2025-01-01",))
    except UnsupportedRequest as exc:
        assert exc.param == "anthropic-beta"
        assert dialect == "anthropic" and beta is not None and not _beta_is_valid(beta)
        return False
    assert upstream is not None
    path = "/v1/messages/count_tokens" if endpoint == "count_tokens" else "/v1/messages"
    assert upstream.url == BASE + path  # no client input is part of the URL
    parts = urlsplit(upstream.url)
    assert (parts.query, parts.fragment) == ("", "")
    assert set(upstream.headers) <= SENT_HEADERS
    for name, value in upstream.headers.items():
        assert value.isascii() and value.isprintable(), (name, value)
    features = upstream.headers["anthropic-beta"].split(",")
    assert features[0] == "configured-2025-01-01" and all(FEATURE.fullmatch(f) for f in features)
    assert len(features) == len(set(features))
    assert json.loads(upstream.body)["model"] == model  # the model travels in the JSON body only
    return True


header_text = (
    st.text(max_size=30)
    | st.text(alphabet="abc-_.09 ,;=\r\n\x00\"'é", max_size=30)
    | st.lists(st.from_regex(FEATURE, fullmatch=True), max_size=40).map(",".join)
)


@SETTINGS
@given(
    model=st.text(max_size=30),
    beta=st.none() | header_text,
    dialect=st.sampled_from(["openai", "anthropic"]),
    endpoint=st.sampled_from(["chat", "count_tokens"]),
)
@example(model="x?key=evil&", beta="a\r\nx-api-key: evil", dialect="anthropic", endpoint="chat")
@example(model="gem/../../zzz#", beta=None, dialect="openai", endpoint="chat")
def test_client_strings_never_shape_the_url_and_reach_headers_only_checked(
    kit: Any, model: str, beta: str | None, dialect: str, endpoint: str
) -> None:
    """Class: no client string reaches an upstream URL or header unchecked (finding 3)."""
    _check_upstream(kit, model, dialect, endpoint, beta)


@pytest.mark.parametrize("beta", BETA_ATTACKS)
def test_named_header_attacks_are_refused(kit: Any, beta: str) -> None:
    assert _check_upstream(kit, "claude-sonnet-4-5", "anthropic", "chat", beta) is False


@pytest.mark.parametrize(("beta", "sent"), BETA_OK)
def test_valid_beta_features_are_forwarded_once(kit: Any, beta: str, sent: str | None) -> None:
    upstream = _build(kit, "claude-sonnet-4-5", _request(kit, "anthropic", beta=beta))
    assert upstream.headers.get("anthropic-beta") == sent


def test_an_openai_client_cannot_send_beta_features(kit: Any) -> None:
    upstream = _build(kit, "claude-sonnet-4-5", _request(kit, "openai", beta="a\r\nb"))
    assert "anthropic-beta" not in upstream.headers


# --- upstream error text -------------------------------------------------------------------------


def _no_fragment(text: str | None) -> bool:
    if text is None:
        return True
    return not any(KEY[i : i + MIN_FRAGMENT] in text for i in range(len(KEY) - MIN_FRAGMENT + 1))


def _error_body(field: str, text: str, etype: str) -> bytes:
    error: dict[str, Any] = {"type": etype, "message": "m", "details": {"error_code": "x"}}
    body: dict[str, Any] = {"type": "error", "error": error, "request_id": "req_1"}
    if field == "message":
        error["message"] = text
    elif field == "type":
        error["type"] = text
    elif field == "details":
        error["details"] = {"error_code": text, "param": text}
    else:
        body["request_id"] = text
    return json.dumps(body).encode()


ERROR_TYPES = [
    "invalid_request_error",
    "authentication_error",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
]
FIELDS = ["message", "type", "details", "request_id"]


def _check_error(error: Any, whole_in_message: bool) -> None:
    if whole_in_message:
        assert KEY in error.message  # whole: never cut before the kernel scrubs
    for name in ("type", "code", "param"):  # the plugin's vocabulary, never upstream text
        value = getattr(error, name)
        assert value is None or (KEY not in value and len(value) <= 40), (name, value)
    scrub_error(error, Scrubber([KEY]))
    for name in ("message", "type", "code", "param"):
        assert _no_fragment(getattr(error, name)), name


@SETTINGS
@given(
    pad=st.integers(0, 1200),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
    field=st.sampled_from(FIELDS),
    etype=st.sampled_from(ERROR_TYPES),
    status=st.sampled_from([200, 400, 401, 403, 404, 413, 429, 500, 529]),
)
@example(pad=290, before="", after="", field="message", etype="invalid_request_error", status=400)
def test_no_upstream_error_field_carries_the_key_past_the_scrubber(
    pad: int, before: str, after: str, field: str, etype: str, status: int
) -> None:
    """Class: upstream error text reaches the kernel whole, in ``message`` only (finding 2)."""
    text = "p" * pad + before + KEY + after
    error = classify_error(status, {"request-id": "req_h"}, _error_body(field, text, etype))
    _check_error(error, whole_in_message=field in ("message", "request_id"))


@SETTINGS
@given(pad=st.integers(0, 1200), before=st.text(max_size=20), after=st.text(max_size=20))
def test_a_plain_error_body_is_passed_whole(pad: int, before: str, after: str) -> None:
    text = "p" * pad + before + KEY + after
    error = classify_error(502, {}, text.encode())
    _check_error(error, whole_in_message=not text.strip().startswith("<"))


def test_the_key_straddling_byte_300_is_not_cut_before_the_scrubber() -> None:
    message = "invalid x-api-key: " + "x" * 271 + KEY
    assert message.index(KEY) < 300 < message.index(KEY) + len(KEY)
    for body in (_error_body("message", message, "authentication_error"), message.encode()):
        _check_error(classify_error(401, {}, body), whole_in_message=True)


@SETTINGS
@given(
    pad=st.integers(0, 600),
    field=st.sampled_from(FIELDS),
    etype=st.sampled_from(ERROR_TYPES),
    dialect=st.sampled_from(["openai", "anthropic"]),
)
def test_a_mid_stream_error_reaches_the_client_only_through_the_kernel(
    kit: Any, pad: int, field: str, etype: str, dialect: str
) -> None:
    """An ``event: error`` is raised, never written into a client frame by the translator."""
    translator = _translator(kit, dialect)
    out = translator.feed(START)
    raw = b"event: error\ndata: " + _error_body(field, "p" * pad + KEY, etype) + b"\n\n"
    with pytest.raises(UpstreamFailure) as info:
        translator.feed(raw)
    assert KEY.encode() not in out + info.value.pending
    _check_error(info.value.error, whole_in_message=field in ("message", "request_id"))


# --- answers that are not what they claim --------------------------------------------------------

DEEP = b"[" * 5000 + b"]" * 5000
GARBAGE: list[bytes] = [
    DEEP,
    b'{"type": "message", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": ' + DEEP + b"}]}",
    b'{"type": "message", "content": [], "usage": {"input_tokens": ' + DEEP + b"}}",
    b'{"type": "error", "error": {"type": "server_error", "message": "HOSTILE"}}',  # no Anthropic type
    b'{"type": "error", "error": "HOSTILE"}',
    b"<!DOCTYPE html><html><body>Welcome to nginx</body></html>",
    b"\x00\xff\xfe garbage",
    b"",
    b"[]",
    b"{}",
    b"null",
    b'"a string"',
    b'{"foo": 1}',
    b'{"content": []}',  # no type
    b'{"type": "completion", "content": []}',
    b'{"type": "message"}',  # no content
    b'{"type": "message", "content": "text"}',
    b'{"type": "message", "content": [{"type": 1}]}',
    b'{"type": "message", "content": [{"type": "text", "text": 5}]}',
    b'{"type": "message", "content": [{"type": "text", "text": "cut',
    b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": []}',
    b'{"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}',
    b'{"input_tokens": "many"}',
]
ANSWER_TARGETS = [
    ("chat", "openai"),
    ("completions", "openai"),
    ("chat", "anthropic"),
    ("count_tokens", "anthropic"),
    ("count_tokens", "openai"),
]


def _respond(kit: Any, body: bytes, endpoint: str, dialect: str) -> Any:
    if dialect == "openai":
        return kit.respond(body, endpoint=endpoint)
    return plugin.transform_response(
        provider=kit.provider(),
        request=_request(kit, "anthropic", endpoint),
        response=UpstreamResponse(status=200, headers={}, body=body),
    )


def _valid_client_answer(body: bytes, endpoint: str, dialect: str) -> None:
    decoded = json.loads(body)
    assert isinstance(decoded, dict)
    if dialect == "anthropic" and endpoint == "count_tokens":
        assert type(decoded["input_tokens"]) is int
    elif endpoint == "count_tokens":
        assert set(decoded) == {"object", "input_tokens"} and type(decoded["input_tokens"]) is int
        assert decoded["object"] == "response.input_tokens" and decoded["input_tokens"] >= 0
    elif dialect == "anthropic":
        assert decoded["type"] == "message" and isinstance(decoded["content"], list)
        assert all(
            isinstance(block, dict) and isinstance(block.get("type"), str) for block in decoded["content"]
        )
    elif endpoint == "completions":
        assert decoded["object"] == "text_completion" and isinstance(decoded["choices"][0]["text"], str)
    else:
        assert (
            decoded["object"] == "chat.completion" and decoded["choices"][0]["message"]["role"] == "assistant"
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "error", "other"])},
    optional={
        "content": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "tool_use", "thinking", "redacted_thinking", "x"])},
                optional={"text": json_values, "id": json_values, "name": json_values, "input": json_values},
            ),
            max_size=3,
        )
        | json_values,
        "usage": st.dictionaries(st.sampled_from(["input_tokens", "output_tokens"]), json_values, max_size=2),
        "stop_reason": json_values,
    },
)


@SETTINGS
@given(
    body=st.binary(max_size=60)
    | st.sampled_from(GARBAGE)
    | json_values.map(lambda v: json.dumps(v).encode())
    | messages.map(lambda v: json.dumps(v).encode()),
    target=st.sampled_from(ANSWER_TARGETS),
)
def test_a_2xx_is_a_valid_answer_or_bad_response(kit: Any, body: bytes, target: tuple[str, str]) -> None:
    """Class: an upstream answer is a valid answer of its dialect or a 502 that counts (finding 5)."""
    endpoint, dialect = target
    result = _respond(kit, body, endpoint, dialect)
    if result.error is None:
        _valid_client_answer(result.body, endpoint, dialect)
        return
    if b'"error"' not in body:
        assert (result.error.status, result.error.kind, result.error.type) == (
            502,
            "bad_response",
            "server_error",
        )


@pytest.mark.parametrize("body", GARBAGE)
@pytest.mark.parametrize("target", ANSWER_TARGETS, ids="-".join)
def test_named_garbage_is_a_bad_response(kit: Any, body: bytes, target: tuple[str, str]) -> None:
    result = _respond(kit, body, *target)
    if result.error is None:  # only a body that truly is this endpoint's answer passes
        _valid_client_answer(result.body, *target)
        return
    assert (result.error.status, result.error.kind, result.error.type) == (
        502,
        "bad_response",
        "server_error",
    )


# --- streams -------------------------------------------------------------------------------------


def ev(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


START = ev("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "claude-x"}})
TEXT = (
    ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    + ev(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
    )
    + ev("content_block_stop", {"type": "content_block_stop", "index": 0})
)
END = ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}) + ev(
    "message_stop", {"type": "message_stop"}
)
BAD_EVENTS = [
    b"event: content_block_delta\ndata: " + DEEP + b"\n\n",  # nested deeper than any decoder follows
    b'event: content_block_start\ndata: {"type": "content_block_start", "index": 1, "content_block": '
    b'{"type": "tool_use", "id": "t", "name": "f", "input": ' + DEEP + b"}}\n\n",
    b'{"type": "error", "error": {"type": "server_error", "message": "HOSTILE"}}\n\n',  # raw, no known type
    b"<html><body>HOSTILE</body></html>\n\n",  # text that is not SSE
    b"event: content_block_delta\ndata: HOSTILE not json\n\n",
    b"data: [1, 2, 3]\n\n",  # JSON of the wrong shape
    b'data: {"HOSTILE": 1}\n\n',  # an event without a type
    b'event: message_stop\ndata: {"type": "content_block_delta", "HOSTILE": 1}\n\n',  # name and type differ
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": "HOSTILE"}\n\n',
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": "HOSTILE"}\n\n',
    b'event: content_block_start\ndata: {"type": "content_block_start", "content_block": '
    b'{"type": "tool_use", "name": "f", "input": [HOSTILE]}}\n\n',
    b'event: message_delta\ndata: {"type": "message_delta", "delta": {"text": "HOSTILE"\n\n',  # cut JSON
]


def _translator(kit: Any, dialect: str) -> Any:
    if dialect == "anthropic":
        return kit.translator({**ANTHROPIC_BODY, "stream": True}, dialect="anthropic")
    return kit.translator()


def _run(translator: Any, raw: bytes, cuts: list[int]) -> tuple[bytes, UpstreamFailure | None]:
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(raw)}), len(raw)]
    out: list[bytes] = []
    try:
        for start, end in itertools.pairwise(bounds):
            out.append(translator.feed(raw[start:end]))
        out.append(translator.close())
    except UpstreamFailure as failure:
        out.append(failure.pending)
        return b"".join(out), failure
    return b"".join(out), None


def _anthropic_frames(raw: bytes) -> list[dict[str, Any]]:
    """Anthropic SSE, strictly: ``event: <type>\\ndata: <json of that type>\\n\\n`` frames."""
    assert raw.endswith(b"\n\n") or not raw
    events = []
    for frame in raw.split(b"\n\n")[:-1]:
        name, data = frame.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: "), frame
        event = json.loads(data[6:])
        assert event["type"] == name[7:].decode() and event["type"] != "error"
        events.append(event)
    return events


def _openai_frames(raw: bytes) -> list[Any]:
    frames: list[Any] = []
    for frame in raw.split(b"\n\n"):
        if not frame:
            continue
        assert frame.startswith(b"data: ") and b"\n" not in frame, frame
        frames.append("[DONE]" if frame == b"data: [DONE]" else json.loads(frame[6:]))
    assert all(
        isinstance(f, dict) and f["object"] == "chat.completion.chunk" for f in frames if f != "[DONE]"
    )
    return frames


stream_soup = st.lists(
    st.sampled_from(
        [START, TEXT, END, *BAD_EVENTS, b": ping\n\n", b'event: ping\ndata: {"type": "ping"}\n\n']
    )
    | st.binary(max_size=30),
    max_size=6,
)


@SETTINGS
@given(
    chunks=stream_soup,
    cuts=st.lists(st.integers(1, 400), max_size=6),
    dialect=st.sampled_from(["openai", "anthropic"]),
)
def test_any_stream_gives_valid_frames_then_at_most_a_failure(
    kit: Any, chunks: list[bytes], cuts: list[int], dialect: str
) -> None:
    """Class: no byte of an invalid event reaches the client; nothing but UpstreamFailure escapes."""
    raw = b"".join(chunks)
    out, failure = _run(_translator(kit, dialect), raw, cuts)
    assert b"HOSTILE" not in out
    if dialect == "anthropic":
        _anthropic_frames(out)
    else:
        frames = _openai_frames(out)
        if failure is None:
            assert frames[-1] == "[DONE]"
    if failure is not None:
        assert failure.error.status >= 400


@pytest.mark.parametrize("bad", BAD_EVENTS)
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_an_invalid_event_after_valid_ones_is_bad_response_and_never_sent(
    kit: Any, bad: bytes, dialect: str
) -> None:
    raw = START + TEXT + bad + END
    for cuts in ([], [len(START + TEXT)], list(range(1, len(raw)))):
        out, failure = _run(_translator(kit, dialect), raw, cuts)
        assert failure is not None and failure.error.kind == "bad_response" and failure.error.status == 502
        assert b"HOSTILE" not in out and b"ok" in out  # the valid events before it were delivered


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_a_stream_with_no_event_is_bad_response(kit: Any, dialect: str) -> None:
    for raw in (b"", b": keep-alive\n\n", b"\n\n"):
        out, failure = _run(_translator(kit, dialect), raw, [])
        assert out == b"" and failure is not None and failure.error.kind == "bad_response"


@pytest.mark.parametrize(
    ("etype", "kind", "status"),
    [
        ("overloaded_error", "overloaded", 503),
        ("rate_limit_error", "rate_limit", 429),
        ("api_error", "server", 500),
        ("server_error", "bad_response", 502),
        (None, "bad_response", 502),
    ],
)
def test_an_error_object_in_a_200_is_an_anthropic_error_or_bad_response(
    kit: Any, etype: str | None, kind: str, status: int
) -> None:
    """An error type Anthropic defines keeps its meaning (``overloaded_error`` is still
    ``overloaded``); any other error object where an answer was expected is not an answer."""
    body = json.dumps({"type": "error", "error": {"type": etype, "message": "HOSTILE"}}).encode()
    for dialect in ("openai", "anthropic"):
        result = _respond(kit, body, "chat", dialect)
        assert (result.error.kind, result.error.status) == (kind, status)
        out, failure = _run(_translator(kit, dialect), START + TEXT + body + b"\n\n", [])
        assert failure is not None and (failure.error.kind, failure.error.status) == (kind, status)
        assert b"HOSTILE" not in out and b"ok" in out


def test_deep_json_in_an_error_body_is_read_not_a_crash() -> None:
    error = classify_error(500, {}, b'{"type": "error", "error": ' + DEEP + b"}")
    assert error.status == 500 and error.kind == "server"


def test_deep_client_json_is_refused_not_a_crash(kit: Any) -> None:
    deep = "[" * 5000 + "]" * 5000
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": ' + deep + "}"}}
    body = {
        "model": "claude",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
    }
    with pytest.raises(UnsupportedRequest):
        _build(kit, "claude-sonnet-4-5", kit.request(body))


def test_passthrough_rebuilds_each_event(kit: Any) -> None:
    translator = _translator(kit, "anthropic")
    raw = b'id: 7\nretry: 999999\nevent: message_stop\ndata: {"type":\ndata: "message_stop"}\n\n'
    assert (
        translator.feed(raw) + translator.close()
        == b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    )


# --- numbers -------------------------------------------------------------------------------------

TOKEN_VALUES: list[Any] = [-1_000_000, -1, 0, 7, 10**18, 10**30, 1.5, 1e30, -0.5, "12", None, True, [], {}]
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _sane(usage: Any) -> None:
    assert usage is not None
    for name in usage.__struct_fields__:
        count = getattr(usage, name)
        assert type(count) is type(getattr(Usage(), name)) and 0 <= count <= 4 * MAX_TOKENS, (name, count)  # ints, and seconds a float


@pytest.mark.parametrize("value", TOKEN_VALUES, ids=repr)
def test_hostile_token_counts_become_sane(kit: Any, value: Any) -> None:
    usage = {name: value for name in USAGE_FIELDS} | {"output_tokens_details": {"thinking_tokens": value}}
    message = {"type": "message", "id": "msg_1", "content": [{"type": "text", "text": "ok"}], "usage": usage}
    body = json.dumps(message).encode()
    assert kit.respond(body).error is None
    request = _request(kit, "openai")
    _sane(plugin.parse_usage(provider=kit.provider(), request=request, body=body))
    for dialect in ("openai", "anthropic"):
        start = ev("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": usage}})
        delta = ev(
            "message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}
        )
        translator = _translator(kit, dialect)
        out, failure = _run(
            translator, start + TEXT + delta + ev("message_stop", {"type": "message_stop"}), []
        )
        assert failure is None and b"ok" in out
        _sane(translator.usage)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "99999999999"}, 99999999999.0),  # as given: the kernel caps it
        ({"retry-after": "-5"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "1e999"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "0x10"}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "inf"}, None),
        ({"retry-after-ms": "1e999"}, None),
        ({"retry-after-ms": "-1000"}, None),
        ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
    ],
)
def test_retry_after_is_finite_non_negative_or_none(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers) == expected
    error = classify_error(
        429, headers, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}'
    )
    assert error.retry_after == expected


@SETTINGS
@given(value=st.text(max_size=40) | st.floats().map(str) | st.integers().map(str))
def test_any_wait_header_is_finite_non_negative_or_none(value: str) -> None:
    for headers in ({"retry-after": value}, {"retry-after-ms": value}):
        wait = retry_after(headers)
        assert wait is None or (math.isfinite(wait) and wait >= 0)
    reset = parse_reset(value)
    assert reset is None or (math.isfinite(reset) and reset >= 0)


@pytest.mark.parametrize("value", ["-5", "1e3", "nan", "9" * 30, " ", "0x10", "+3", "٣"])
def test_garbage_rate_limit_counts_are_unknown(value: str) -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": value,
        "anthropic-ratelimit-requests-limit": value,
        "anthropic-ratelimit-tokens-remaining": "5",
    }
    limits = parse_ratelimits(headers)
    assert limits is not None and limits.remaining_requests is None and limits.limit_requests is None
    assert limits.remaining_tokens == 5
