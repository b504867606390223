"""What the openai provider does with a hostile upstream: answers that are not OpenAI's, broken
streams, error text carrying the key, absurd numbers; and options that reach headers or the URL."""

from __future__ import annotations

import json
import math
import os

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_provider_openai import OpenAIStream, Options, read_error, transform_response, transform_stream

from truckllm._internal.openai_wire import parse_ratelimit_headers, parse_retry_after, upstream_error
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import UpstreamFailure
from truckllm.types import ChatRequest, Provider, UpstreamResponse

EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "200"))
PROVIDER = Provider(name="oa", type="openai", base_url="https://api.example/v1", options=Options())
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def request(endpoint: str = "chat", stream: bool = False) -> ChatRequest:
    raw = json.dumps({**CHAT, "stream": stream}).encode()
    return ChatRequest(
        endpoint=endpoint,
        body=raw,
        model="m",
        stream=stream,
        typed=msgspec.json.decode(raw, type=ChatCompletionRequest),
    )


def answer(endpoint: str, body: bytes, status: int = 200) -> object:
    result = transform_response(
        provider=PROVIDER,
        request=request(endpoint),
        response=UpstreamResponse(status=status, headers={}, body=body),
        model="m",
    )
    assert result is not None
    return result


VALID = {
    "chat": b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}',
    "completions": b'{"id":"c","object":"text_completion","choices":[{"text":"hi","index":0}]}',
    "embeddings": b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}]}',
}
ANTHROPIC = b'{"id":"msg","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}]}'
GARBAGE = {
    "html": b"<!DOCTYPE html><html><body>It works</body></html>",
    "bytes": bytes(range(256)),
    "empty": b"",
    "spaces": b" \r\n ",
    "truncated": VALID["chat"][:40],
    "array": b"[]",
    "string": b'"chat.completion"',
    "number": b"1",
    "null": b"null",
    "wrong object": b'{"foo": 1}',
    "anthropic": ANTHROPIC,
    "error in a 200": b'{"error": {"message": "boom", "type": "server_error"}}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "deep inside": b'{"choices":[{"message":{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}}]}",
    "choices not a list": b'{"object":"chat.completion","choices":{"message":{}}}',
    "choice not an object": b'{"object":"chat.completion","choices":["hi"]}',
    "invalid utf-8": b'{"object":"chat.completion","choices":[{"message":{"content":"\xff"}}]}',
}


@pytest.mark.parametrize("endpoint", sorted(VALID))
def test_valid_answers_pass_through_untouched(endpoint: str) -> None:
    result = answer(endpoint, VALID[endpoint])
    assert result.error is None and result.body is VALID[endpoint]  # type: ignore[attr-defined]


@pytest.mark.parametrize("endpoint", sorted(VALID))
@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_a_2xx_that_is_not_the_endpoints_answer_is_bad_response(endpoint: str, name: str) -> None:
    body = GARBAGE[name]
    for status in (200, 201, 204):
        error = answer(endpoint, body, status).error  # type: ignore[attr-defined]
        assert error is not None, f"{name} passed as an OpenAI {endpoint} answer"
        assert (error.kind, error.status, error.type) == ("bad_response", 502, "server_error")
        assert "<html>" not in error.message and len(error.message) < 400


def test_an_answer_of_another_endpoint_is_refused() -> None:
    for endpoint, body in VALID.items():
        for other in VALID:
            if other != endpoint:
                assert answer(other, body).error is not None, f"a {endpoint} answer passed as {other}"  # type: ignore[attr-defined]


def test_an_error_in_a_200_names_the_upstreams_message() -> None:
    error = answer("chat", GARBAGE["error in a 200"]).error  # type: ignore[attr-defined]
    assert error is not None and "boom" in error.message


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.recursive(st.none() | st.integers() | st.text(max_size=5),
       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
           ["choices", "message", "object", "data", "text", "embedding", "error"]), inner, max_size=3),
       max_leaves=12).map(lambda v: json.dumps(v).encode())))  # fmt: skip
def test_any_2xx_body_is_an_answer_or_bad_response_never_a_crash(body: bytes) -> None:
    for endpoint in VALID:
        result = answer(endpoint, body)
        error = result.error  # type: ignore[attr-defined]
        if error is None:
            value = json.loads(body)
            listed = value["data"] if endpoint == "embeddings" else value["choices"]
            assert isinstance(listed, list) and all(isinstance(item, dict) for item in listed)
        else:
            assert error.kind == "bad_response"


# --- streams -----------------------------------------------------------------------------------------

FRAMES = [
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"b"}}]}\n\n',
]
INVALID_FRAMES = {
    "html line": b"<html><body>502 Bad Gateway</body></html>\n\n",
    "not json": b"data: hello there\n\n",
    "array": b"data: []\n\n",
    "string": b'data: "x"\n\n',
    "number": b"data: 1\n\n",
    "truncated": b'data: {"id":"c","choi\n\n',
    "deep": b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n",
    "deep object": b'data: {"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n\n",
    "invalid utf-8": b'data: {"id":"\xff"}\n\n',
    "unknown field": b"colour: red\n\n",
}


@pytest.mark.parametrize("name", sorted(INVALID_FRAMES))
@pytest.mark.parametrize("before", [0, 1, 2])
def test_an_invalid_frame_is_refused_before_any_byte_of_it_is_sent(name: str, before: int) -> None:
    bad = INVALID_FRAMES[name]
    translator = OpenAIStream(True, None)
    sent = b""
    with pytest.raises(UpstreamFailure) as failure:
        for chunk in [*FRAMES[:before], bad]:
            sent += translator.feed(chunk)
    sent += failure.value.pending
    assert failure.value.error.kind == "bad_response"
    assert sent == b"".join(FRAMES[:before]), "an invalid frame (or part of it) was forwarded"


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.integers(min_value=0, max_value=2),
    st.sampled_from(sorted(INVALID_FRAMES)),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_any_split_of_a_stream_with_an_invalid_frame_forwards_only_the_valid_ones(
    before: int, name: str, cuts: list[int]
) -> None:
    data = b"".join(FRAMES[:before]) + INVALID_FRAMES[name] + b"data: [DONE]\n\n"
    translator = OpenAIStream(True, None)
    sent = b""
    last = 0
    with pytest.raises(UpstreamFailure) as failure:
        for cut in [*sorted(c for c in set(cuts) if c < len(data)), len(data)]:
            sent += translator.feed(data[last:cut])
            last = cut
        sent += translator.close()
    assert sent + failure.value.pending == b"".join(FRAMES[:before])


def test_a_frame_that_never_ends_is_refused_once_over_the_limit() -> None:
    translator = OpenAIStream(True, None)
    translator.max_frame_bytes = 1000
    translator.feed(FRAMES[0])
    translator.feed(b"data: " + b"x" * 500)
    with pytest.raises(UpstreamFailure) as failure:
        translator.feed(b"x" * 600)
    assert failure.value.error.kind == "bad_response"


def test_an_empty_stream_is_bad_response_and_a_cut_one_a_stream_failure() -> None:
    with pytest.raises(UpstreamFailure) as empty:
        OpenAIStream(True, None).close()
    assert empty.value.error.kind == "bad_response"
    cut = OpenAIStream(True, None)
    cut.feed(FRAMES[0])
    with pytest.raises(UpstreamFailure) as failure:
        cut.close()
    assert failure.value.error.kind == "stream"


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("text/event-stream", True),
        ("text/event-stream; charset=utf-8", True),
        ("Text/Event-Stream", True),
        (None, True),
        ("application/json", False),
        ("text/html; charset=utf-8", False),
        ("text/plain", False),
    ],
)
def test_a_stream_answer_must_be_an_event_stream(content_type: str | None, ok: bool) -> None:
    headers = {"content-type": content_type} if content_type is not None else {}
    response = UpstreamResponse(status=200, headers=headers)
    if ok:
        assert (
            transform_stream(provider=PROVIDER, request=request(stream=True), response=response, model="m")
            is not None
        )
        return
    with pytest.raises(UpstreamFailure) as failure:
        transform_stream(provider=PROVIDER, request=request(stream=True), response=response, model="m")
    assert failure.value.error.kind == "bad_response"


def test_a_proxys_error_object_in_place_of_a_stream_is_bad_response_with_its_message() -> None:
    translator = OpenAIStream(True, None)
    with pytest.raises(UpstreamFailure) as failure:
        translator.feed(b'{"error": {"message": "quota gone", "type": "x"}}\n')
        translator.close()
    assert failure.value.error.kind == "bad_response" and "quota gone" in failure.value.error.message


# --- error text and numbers ----------------------------------------------------------------------------

KEY = "hk-abcdefghijklmnopqrstuvwxyz0123"


@pytest.mark.parametrize(
    "body",
    [
        ("x" * (300 - len(KEY) // 2) + KEY + " tail").encode(),
        json.dumps({"error": {"message": "y" * (300 - len(KEY) // 2) + KEY + " tail"}}).encode(),
        json.dumps({"error": {"message": "z" * 5000 + KEY}}).encode(),
    ],
    ids=["text", "json", "long"],
)
def test_error_text_is_kept_whole_for_the_kernels_scrubber(body: bytes) -> None:
    """A cut before the kernel scrubs would leave a key straddling the cut partly visible."""
    error = read_error(400, {}, body)
    assert KEY in error.message and error.message.endswith(("tail", KEY))


def test_every_string_field_of_an_upstream_error_is_read_as_text() -> None:
    body = {"error": {"message": KEY, "type": KEY, "param": {"nested": KEY}, "code": 12}}
    error = read_error(400, {}, json.dumps(body).encode())
    assert error.message == KEY and KEY in (error.param or "") and error.code == "12"


RETRY_AFTER = [
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
    ({"retry-after-ms": "inf", "retry-after": "3"}, 3.0),
    ({"retry-after-ms": "-5", "retry-after": "3"}, 3.0),
    ({"retry-after": "-5"}, None),
    ({"retry-after": "-0.001"}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "inf"}, None),
    ({"retry-after": "-inf"}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": ""}, None),
    ({"retry-after": "0x10"}, None),
    ({"retry-after": "Mon, 99 Foo 2024 99:99:99 GMT"}, None),
    ({"retry-after": "99999999999"}, 99999999999.0),  # the kernel caps it (max_retry_after)
    ({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),
]


@pytest.mark.parametrize(("headers", "expected"), RETRY_AFTER)
def test_retry_after_is_a_non_negative_finite_number_or_none(
    headers: dict[str, str], expected: float | None
) -> None:
    assert parse_retry_after(headers) == expected


def test_a_retry_after_date_far_in_the_future_is_a_finite_number() -> None:
    seconds = parse_retry_after({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"})
    assert seconds is not None and math.isfinite(seconds) and seconds > 0


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_any_retry_after_header_is_none_or_a_non_negative_finite_number(seconds: str, ms: str) -> None:
    for headers in (
        {"retry-after": seconds},
        {"retry-after-ms": ms},
        {"retry-after": seconds, "retry-after-ms": ms},
    ):
        value = parse_retry_after(headers)
        assert value is None or (math.isfinite(value) and value >= 0)


def test_the_retry_hint_in_a_429_message_is_read_but_never_negative() -> None:
    body = json.dumps({"error": {"message": "Please try again in 1.5s.", "code": "rate_limit_exceeded"}})
    assert read_error(429, {}, body.encode()).retry_after == 1.5
    body = json.dumps({"error": {"message": "Please try again in -1.5s.", "code": "rate_limit_exceeded"}})
    assert read_error(429, {}, body.encode()).retry_after is None


def test_absurd_rate_limit_headers_are_unknown() -> None:
    limits = parse_ratelimit_headers(
        {
            "x-ratelimit-limit-requests": "-5",
            "x-ratelimit-limit-tokens": "99999999999999999999999999",
            "x-ratelimit-remaining-requests": "-1000000",
            "x-ratelimit-remaining-tokens": "12",
            "x-ratelimit-reset-requests": "99999999h",
            "x-ratelimit-reset-tokens": "-5s",
        }
    )
    assert limits is not None
    assert (limits.limit_requests, limits.limit_tokens, limits.remaining_requests) == (None, None, None)
    assert (limits.remaining_tokens, limits.reset_requests, limits.reset_tokens) == (12, None, None)


@pytest.mark.parametrize("status", [0, 200, 204, 302, 399, 600, 99999, -1])
def test_a_status_that_is_not_an_http_error_is_bad_response(status: int) -> None:
    error = upstream_error(status, "odd")
    assert (error.kind, error.status) == ("bad_response", 502)


@pytest.mark.parametrize("retry_after", [float("nan"), float("inf"), -1.0])
def test_upstream_error_drops_a_retry_after_that_is_not_a_duration(retry_after: float) -> None:
    assert upstream_error(429, "slow", retry_after=retry_after).retry_after is None


# --- options that reach a header or the URL --------------------------------------------------------------

BAD_OPTIONS = [
    {"auth_header": "api-key\r\nx-injected: 1"},
    {"auth_header": "api key"},
    {"auth_header": ""},
    {"organization": "org\r\nx-injected: 1"},
    {"organization": "org\n"},
    {"project": "p\x00"},
    {"project": " leading-space"},
    {"query": {"api version": "1"}},
    {"query": {"v": "1\r\n"}},
    {"query": {"": "1"}},
    {"reasoning_models": "(unclosed"},
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=[json.dumps(o) for o in BAD_OPTIONS])
def test_options_that_would_break_a_header_or_the_url_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert(options, Options)
    for value in options.values():
        for text in value.values() if isinstance(value, dict) else [value]:
            if isinstance(text, str) and len(text) > 3:
                assert text not in str(refused.value), "the problem quotes the refused value"


def test_good_options_are_kept() -> None:
    options = msgspec.convert(
        {"auth_header": "api-key", "organization": "org-1 x", "query": {"api-version": "2024-10-21"}}, Options
    )
    assert options.auth_header == "api-key" and options.query == {"api-version": "2024-10-21"}
