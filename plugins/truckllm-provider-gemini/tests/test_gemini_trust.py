"""The trust boundary of the Gemini provider (issue 13): hostile clients, hostile upstreams.

Each test holds one class of rule, over the whole space where hypothesis can search it, with the
instances the issue names as explicit cases:

- a client string never shapes the upstream URL: the model is one encoded path segment of a known
  collection, or the request is refused (``UnsupportedRequest``, param ``model``);
- upstream error text reaches the kernel whole (it scrubs, then cuts), and only ``message``
  carries it: ``type``, ``code`` and ``param`` are the plugin's own words;
- a 2xx answer is a valid answer of the client's dialect or ``bad_response``; a stream gives valid
  frames then ``UpstreamFailure``, never the bytes of an invalid event, never another exception;
- numbers from upstream (token counts, retry hints) are read defensively.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx2 as httpx
import pytest
import truckllm_provider_gemini as gemini
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from truckllm_provider_gemini.errors import parse_duration, read_error
from truckllm_provider_gemini.numbers import MAX_TOKENS
from truckllm_provider_gemini.urls import NAME_PATTERN

from truckllm._internal.scrub import MIN_FRAGMENT, Scrubber, scrub_error
from truckllm.errors import UnsupportedRequest, UpstreamFailure
from truckllm.types import ChatRequest, UpstreamResponse, Usage
from truckllm_testing.fakes import FakeGemini
from truckllm_testing.server import GatewayServer

SETTINGS = settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KEY = "AIzaSyD-hostile-upstream-echoes-this-key-0123"
CHAT = {"model": "a", "messages": [{"role": "user", "content": "hi"}]}
CONTENTS = [{"role": "user", "parts": [{"text": "hi"}]}]

# (endpoint, client dialect, client body, the Gemini method the URL must name)
TARGETS: list[tuple[str, str, dict[str, Any], str]] = [
    ("chat", "openai", CHAT, "generateContent"),
    ("chat", "openai", {**CHAT, "stream": True}, "streamGenerateContent"),
    ("completions", "openai", {"model": "a", "prompt": "hi"}, "generateContent"),
    ("embeddings", "openai", {"model": "a", "input": ["x", "y"]}, "batchEmbedContents"),
    ("chat", "gemini", {"contents": CONTENTS}, "generateContent"),
    ("chat", "gemini", {"contents": CONTENTS, "stream": True}, "streamGenerateContent"),
    ("embeddings", "gemini", {"content": {"parts": [{"text": "x"}]}}, "embedContent"),
    (
        "embeddings",
        "gemini",
        {"requests": [{"model": "models/a", "content": {"parts": [{"text": "x"}]}}]},
        "batchEmbedContents",
    ),
    ("count_tokens", "gemini", {"contents": CONTENTS}, "countTokens"),
    ("count_tokens", "gemini", {"generateContentRequest": {"contents": CONTENTS}}, "countTokens"),
    ("count_tokens", "openai", CHAT, "countTokens"),
]
ATTACKS = [
    "gem/../../zzz#",  # finding 3: another path, the method cut off by a fragment
    "x?key=evil&",  # finding 3: a query string of the client's own, sent with our key
    "../../v1/files",
    "models/../../x",
    "tunedModels/../x",
    "models/a/b",
    "a/b",
    "x#frag",
    "x:streamGenerateContent?alt=json&",
    "x%2F..%2Fy",
    "x%3Fkey%3Devil",
    "x\r\nHost: evil.test",
    "x\x00y",
    " x",
    "x y",
    ".",
    "..",
    ".hidden",
    "",
    "models/",
    "https://evil.test/x",
    "//evil.test/x",
    "\\..\\x",
    "ｘ",  # a fullwidth letter
    "a" * 257,
]
LEGIT = [
    ("gemini-2.5-flash", "models", "gemini-2.5-flash"),
    ("models/gemini-2.5-flash", "models", "gemini-2.5-flash"),
    ("tunedModels/my-model-abc123", "tunedModels", "my-model-abc123"),
    ("gemini-1.5-pro-002", "models", "gemini-1.5-pro-002"),
    ("gemini-embedding-001", "models", "gemini-embedding-001"),
    ("claude-3-5-sonnet-v2@20241022", "models", "claude-3-5-sonnet-v2@20241022"),
    ("a" * 256, "models", "a" * 256),
]


def _request(gx: Any, endpoint: str, dialect: str, body: dict[str, Any]) -> ChatRequest:
    request: ChatRequest = gx.request(body, endpoint, dialect=dialect)
    return request


def _expected(model: str) -> tuple[str, str]:
    collection, sep, name = model.partition("/")
    return (collection, name) if sep else ("models", model)


def _check_url(gx: Any, model: str, target: tuple[str, str, dict[str, Any], str]) -> bool:
    """Build the upstream call for ``model``; ``False`` when refused, else check it whole."""
    endpoint, dialect, body, method = target
    request = _request(gx, endpoint, dialect, body)
    try:
        upstream = gemini.transform_request(provider=gx.provider(), model=model, request=request, api_key=KEY)
    except UnsupportedRequest as exc:
        assert exc.param == "model"
        assert len(exc.message) < 250  # the client's text is echoed bounded
        return False
    assert upstream is not None
    parts = urlsplit(upstream.url)
    assert (parts.scheme, parts.netloc, parts.fragment) == ("https", "gemini.test", "")
    stream = bool(body.get("stream"))
    assert parse_qsl(parts.query, keep_blank_values=True) == ([("alt", "sse")] if stream else [])
    assert parts.path.startswith("/v1beta/")
    collection, _, rest = parts.path.removeprefix("/v1beta/").partition("/")
    segment, colon, called = rest.rpartition(":")
    assert colon and called == method
    name = unquote(segment)
    assert quote(name, safe="") == segment  # exactly one percent-encoded segment
    assert name not in ("", ".", "..")
    assert (collection, name) == _expected(model)
    # no header is built from client input; the key goes only to the provider's own base URL
    assert set(upstream.headers) == {"content-type", "accept", "x-goog-api-key"}
    if dialect == "gemini" and "requests" in body:  # batchEmbedContents names the model in the body
        sent = json.loads(upstream.body)
        assert {item["model"] for item in sent["requests"]} == {f"{collection}/{name}"}
    if endpoint == "count_tokens" and (dialect == "openai" or "generateContentRequest" in body):
        assert json.loads(upstream.body)["generateContentRequest"]["model"] == f"{collection}/{name}"
    return True


models_text = st.text(max_size=40) | st.text(alphabet="./?#%&=:@+~ \\\r\n\x00ab09-_", max_size=20)
collections = st.sampled_from(["", "models/", "tunedModels/", "other/", "models/models/"])


@SETTINGS
@given(prefix=collections, model=models_text, target=st.sampled_from(TARGETS))
@example(prefix="", model="gem/../../zzz#", target=TARGETS[0])
@example(prefix="", model="x?key=evil&", target=TARGETS[1])
def test_any_model_is_one_encoded_url_segment_or_refused(
    gx: Any, prefix: str, model: str, target: tuple[str, str, dict[str, Any], str]
) -> None:
    """Class: no client string ever shapes the upstream URL (finding 3)."""
    _check_url(gx, prefix + model, target)


name_text = st.from_regex(NAME_PATTERN, fullmatch=True).filter(lambda n: len(n) <= 256)


@SETTINGS
@given(
    prefix=st.sampled_from(["", "models/", "tunedModels/"]), name=name_text, target=st.sampled_from(TARGETS)
)
def test_every_model_name_is_served(
    gx: Any, prefix: str, name: str, target: tuple[str, str, dict[str, Any], str]
) -> None:
    """The refusal is not a blanket one: every name of the documented form is served, encoded."""
    assert _check_url(gx, prefix + name, target)


@pytest.mark.parametrize("model", ATTACKS)
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t[0]}-{t[1]}-{t[3]}")
def test_named_url_attacks_are_refused(
    gx: Any, model: str, target: tuple[str, str, dict[str, Any], str]
) -> None:
    assert _check_url(gx, model, target) is False


@pytest.mark.parametrize(("model", "collection", "name"), LEGIT)
def test_real_model_names_build_the_usual_url(gx: Any, model: str, collection: str, name: str) -> None:
    request = _request(gx, "chat", "openai", CHAT)
    upstream = gemini.transform_request(provider=gx.provider(), model=model, request=request, api_key=KEY)
    assert upstream is not None
    assert upstream.url == f"{gx.base_url}/{collection}/{quote(name, safe='')}:generateContent"


# --- upstream error text -------------------------------------------------------------------------

FIELDS = ("message", "status", "reason", "domain", "quotaId", "retryDelay", "extra")


def _status_body(code: int, values: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "error": {
                "code": code,
                "message": values["message"],
                "status": values["status"],
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": values["reason"],
                        "domain": values["domain"],
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [{"quotaId": values["quotaId"]}],
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": values["retryDelay"]},
                    {"@type": values["extra"]},
                ],
            }
        }
    ).encode()


def _no_fragment(text: str | None, secret: str) -> bool:
    if text is None:
        return True
    return not any(secret[i : i + MIN_FRAGMENT] in text for i in range(len(secret) - MIN_FRAGMENT + 1))


@SETTINGS
@given(
    pad=st.integers(0, 1200),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    field=st.sampled_from(FIELDS),
    status=st.sampled_from([400, 401, 403, 404, 429, 500, 503]),
)
@example(pad=290, before="", after="", field="message", status=400)  # the key across byte 300
def test_no_upstream_error_field_carries_the_key_past_the_scrubber(
    gx: Any, pad: int, before: str, after: str, field: str, status: int
) -> None:
    """Class: upstream error text reaches the kernel whole, in ``message`` only (finding 2)."""
    values = {name: "v" for name in FIELDS}
    values["retryDelay"] = "1s"
    values[field] = "p" * pad + before + KEY + after
    error = read_error(status, _status_body(status, values))
    if field == "message":
        assert KEY in error.message  # whole: never cut before the kernel scrubs
    for name in ("type", "code", "param"):  # the plugin's vocabulary, never upstream text
        value = getattr(error, name)
        assert value is None or (KEY not in value and len(value) <= 40)
    scrub_error(error, Scrubber([KEY]))
    for name in ("message", "type", "code", "param"):
        assert _no_fragment(getattr(error, name), KEY), name


@SETTINGS
@given(pad=st.integers(0, 1200), before=st.text(max_size=30), after=st.text(max_size=30))
def test_a_plain_error_body_is_passed_whole(gx: Any, pad: int, before: str, after: str) -> None:
    body = ("p" * pad + before + KEY + after).encode()
    error = read_error(502, body)
    assert KEY in error.message
    scrub_error(error, Scrubber([KEY]))
    assert _no_fragment(error.message, KEY)


def test_a_deep_error_body_is_read_not_a_crash() -> None:
    error = read_error(500, b'{"error": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert error.status == 500 and error.kind == "server"


def test_the_key_straddling_byte_300_is_not_cut_before_the_scrubber() -> None:
    message = "Please check your request: " + "x" * 263 + KEY + " is not valid"
    assert message.index(KEY) < 300 < message.index(KEY) + len(KEY)
    for body in (
        json.dumps({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}).encode(),
        message.encode(),
    ):
        error = read_error(400, body)
        assert KEY in error.message
        scrub_error(error, Scrubber([KEY]))
        assert _no_fragment(error.message, KEY)


# --- answers that are not what they claim --------------------------------------------------------

ANSWER_TARGETS = [target for target in TARGETS if not target[2].get("stream")]
DEEP = b"[" * 5000 + b"]" * 5000
GARBAGE: list[bytes] = [
    DEEP,
    b'{"error": ' + DEEP + b"}",
    b'{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": '
    + DEEP
    + b"}}}]}}]}",
    b'{"usageMetadata": {"totalTokenCount": ' + DEEP + b'}, "candidates": [{"finishReason": "STOP"}]}',
    b'{"error": {"code": 200, "message": "HOSTILE", "status": "server_error"}}',  # an error of no status
    b'{"error": "HOSTILE"}',
    b"<!DOCTYPE html><html><body>Welcome to nginx</body></html>",
    b"\x00\xff\xfe garbage",
    b"",
    b"[]",
    b"{}",
    b"null",
    b'"a string"',
    b'{"foo": 1}',
    b'{"candidates": "x"}',
    b'{"candidates": []}',
    b'{"candidates": [{"content": {"parts": [{"text": 5}]}}]}',
    b'{"candidates": [{"content": {"parts": [{"text": "cut',
    b'{"embeddings": [{"values": ["a"]}]}',
    b'{"embedding": 7}',
    b'{"totalTokens": "many"}',
    b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": []}',
    b'{"type": "message", "content": []}',
]


def _valid_client_answer(request: ChatRequest, body: bytes) -> None:
    """``body`` is a valid answer of the client's dialect for the endpoint called."""
    decoded = json.loads(body)
    assert isinstance(decoded, dict)
    if request.dialect == "gemini":
        if request.endpoint == "chat":
            assert decoded.get("candidates") or (decoded.get("promptFeedback") or {}).get("blockReason")
        elif request.endpoint == "count_tokens":
            assert isinstance(decoded.get("totalTokens", 0), int)
        elif "requests" in request.fields():
            assert isinstance(decoded.get("embeddings"), list)
        else:
            assert isinstance(decoded.get("embedding", {}).get("values"), list)
        return
    if request.endpoint == "count_tokens":
        assert set(decoded) == {"object", "input_tokens"} and decoded["object"] == "response.input_tokens"
        assert type(decoded["input_tokens"]) is int and decoded["input_tokens"] >= 0
        return
    expected = {"chat": "chat.completion", "completions": "text_completion", "embeddings": "list"}
    assert decoded.get("object") == expected[request.endpoint]
    if request.endpoint == "embeddings":
        assert all(isinstance(item["embedding"], list | str) for item in decoded["data"])
    else:
        assert decoded["choices"]


@SETTINGS
@given(
    body=st.binary(max_size=60)
    | st.sampled_from(GARBAGE)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=4),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
        max_leaves=8,
    ).map(lambda v: json.dumps(v).encode()),
    target=st.sampled_from(ANSWER_TARGETS),
)
def test_a_2xx_is_a_valid_answer_or_bad_response(gx: Any, body: bytes, target: Any) -> None:
    """Class: an upstream answer is a valid answer of its dialect or a 502 that counts (finding 5)."""
    endpoint, dialect, client, _ = target
    request = _request(gx, endpoint, dialect, client)
    result = gx.respond(request, body, 200)
    if result.error is not None:
        assert result.error.status >= 400
        if not body.lstrip().startswith(b"{") or b'"error"' not in body:
            assert result.error.kind == "bad_response" and result.error.status == 502
        return
    _valid_client_answer(request, result.body)


@pytest.mark.parametrize("body", GARBAGE)
@pytest.mark.parametrize("target", ANSWER_TARGETS, ids=lambda t: f"{t[0]}-{t[1]}-{t[3]}")
def test_named_garbage_is_a_bad_response(gx: Any, body: bytes, target: Any) -> None:
    endpoint, dialect, client, _ = target
    request = _request(gx, endpoint, dialect, client)
    result = gx.respond(request, body, 200)
    if result.error is None:  # only a body that is truly this method's answer passes
        _valid_client_answer(request, result.body)
        return
    assert (result.error.status, result.error.kind, result.error.type) == (
        502,
        "bad_response",
        "server_error",
    )


# --- streams -------------------------------------------------------------------------------------

VALID_EVENT = b'data: {"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}}]}\r\n\r\n'
FINISH_EVENT = (
    b'data: {"candidates": [{"finishReason": "STOP"}], "usageMetadata": {"totalTokenCount": 3}}\r\n\r\n'
)
BAD_EVENTS = [
    b"data: " + DEEP + b"\r\n\r\n",  # nested deeper than any decoder follows
    DEEP + b"\r\n\r\n",
    b'{"error": {"code": 200, "message": "HOSTILE", "status": "server_error"}}\r\n\r\n',
    b"<html><body>HOSTILE</body></html>\r\n\r\n",  # text that is not SSE
    b"data: <html>HOSTILE</html>\r\n\r\n",  # not JSON
    b"data: [1, 2, 3]\r\n\r\n",  # JSON of the wrong shape
    b'data: {"candidates": "HOSTILE"}\r\n\r\n',
    b'data: {"candidates": [{"content": {"parts": [{"text": 5}]}}]}\r\n\r\n',
    b'[{"candidates": [{"content": {"parts": [{"text": "HOSTILE"}]}}]}\r\n',  # the JSON-array form, broken
    b'data: {"candidates": [{"content": {"parts": [{"text": "HOSTILE"\r\n\r\n',  # cut JSON
    b'data: {"usageMetadata": {"totalTokenCount": "HOSTILE"}, "candidates": [{"index": "x"}]}\r\n\r\n',
]


def _run(gx: Any, request: ChatRequest, raw: bytes, cuts: list[int]) -> tuple[bytes, UpstreamFailure | None]:
    translator = gemini.transform_stream(
        provider=gx.provider(), request=request, response=UpstreamResponse(status=200, headers={})
    )
    assert translator is not None
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


def _gemini_frames(raw: bytes) -> list[dict[str, Any]]:
    """A Gemini SSE stream, strictly: ``data: <GenerateContentResponse>\\r\\n\\r\\n`` frames."""
    assert raw.endswith(b"\r\n\r\n") or not raw
    events = []
    for frame in raw.split(b"\r\n\r\n")[:-1]:
        assert frame.startswith(b"data: ") and b"\n" not in frame and b"\r" not in frame, frame
        event = json.loads(frame[6:])
        assert isinstance(event, dict) and "error" not in event
        events.append(event)
    return events


stream_soup = st.lists(
    st.sampled_from([VALID_EVENT, FINISH_EVENT, *BAD_EVENTS, b": ping\r\n\r\n", b"\r\n"])
    | st.binary(max_size=30),
    max_size=6,
)


@SETTINGS
@given(
    chunks=stream_soup,
    cuts=st.lists(st.integers(1, 300), max_size=6),
    dialect=st.sampled_from(["openai", "gemini"]),
)
def test_any_stream_gives_valid_frames_then_at_most_a_failure(
    gx: Any, chunks: list[bytes], cuts: list[int], dialect: str
) -> None:
    """Class: no byte of an invalid event reaches the client; nothing but UpstreamFailure escapes."""
    body = {**CHAT, "stream": True} if dialect == "openai" else {"contents": CONTENTS, "stream": True}
    request = _request(gx, "chat", dialect, body)
    raw = b"".join(chunks)
    out, failure = _run(gx, request, raw, cuts)
    assert b"HOSTILE" not in out
    if dialect == "gemini":
        _gemini_frames(out)
    else:
        frames = gx.frames(out)
        assert all(isinstance(f, dict) and f["object"] == "chat.completion.chunk" for f in frames[:-1])
        if failure is None:
            assert frames[-1] == "[DONE]"
    if failure is not None:
        assert failure.error.status >= 400


@pytest.mark.parametrize("bad", BAD_EVENTS)
@pytest.mark.parametrize("dialect", ["openai", "gemini"])
def test_an_invalid_event_after_valid_ones_is_bad_response_and_never_sent(
    gx: Any, bad: bytes, dialect: str
) -> None:
    body = {**CHAT, "stream": True} if dialect == "openai" else {"contents": CONTENTS, "stream": True}
    request = _request(gx, "chat", dialect, body)
    raw = VALID_EVENT + bad + FINISH_EVENT
    for cuts in ([], [len(VALID_EVENT)], list(range(1, len(raw)))):
        out, failure = _run(gx, request, raw, cuts)
        assert failure is not None and failure.error.kind == "bad_response" and failure.error.status == 502
        assert b"HOSTILE" not in out and b"ok" in out  # the valid event before it was delivered


@pytest.mark.parametrize("dialect", ["openai", "gemini"])
def test_a_stream_with_no_event_is_bad_response(gx: Any, dialect: str) -> None:
    body = {**CHAT, "stream": True} if dialect == "openai" else {"contents": CONTENTS, "stream": True}
    for raw in (b"", b": keep-alive\r\n\r\n", b"\r\n\r\n"):
        out, failure = _run(gx, _request(gx, "chat", dialect, body), raw, [])
        assert out == b"" and failure is not None and failure.error.kind == "bad_response"


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        ({"code": 503, "message": "busy", "status": "UNAVAILABLE"}, "overloaded", 503),
        ({"message": "slow down", "status": "RESOURCE_EXHAUSTED"}, "rate_limit", 429),
        ({"code": 200, "message": "HOSTILE", "status": "server_error"}, "bad_response", 502),
        ({"code": "500", "message": "HOSTILE"}, "bad_response", 502),
        ({"message": "HOSTILE"}, "bad_response", 502),
    ],
)
def test_an_error_object_in_a_200_is_a_gemini_error_or_bad_response(
    gx: Any, error: dict[str, Any], kind: str, status: int
) -> None:
    """An error Gemini defines keeps its meaning (a 503 is still ``overloaded``); any other error
    object where an answer was expected is not a Gemini answer: whole or mid-stream."""
    body = json.dumps({"error": error}).encode()
    result = gx.respond(_request(gx, "chat", "openai", CHAT), body, 200)
    assert (result.error.kind, result.error.status) == (kind, status)
    out, failure = _run(
        gx, _request(gx, "chat", "openai", {**CHAT, "stream": True}), VALID_EVENT + body + b"\n", []
    )
    assert failure is not None and (failure.error.kind, failure.error.status) == (kind, status)
    assert b"HOSTILE" not in out and b"ok" in out


def test_deep_client_json_is_refused_not_a_crash(gx: Any) -> None:
    deep = "[" * 5000 + "]" * 5000
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": ' + deep + "}"}}
    body = {
        "model": "a",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": deep},
        ],
    }
    with pytest.raises(UnsupportedRequest):
        gemini.transform_request(
            provider=gx.provider(),
            model="gemini-2.5-flash",
            request=_request(gx, "chat", "openai", body),
            api_key=KEY,
        )


def test_gemini_passthrough_rebuilds_each_event() -> None:
    request = ChatRequest(endpoint="chat", dialect="gemini", body=b"{}", model="a", stream=True)
    translator = gemini.transform_stream(
        provider=gemini_provider(), request=request, response=UpstreamResponse(status=200, headers={})
    )
    assert translator is not None
    raw = b'id: 7\r\nretry: 999999\r\nevent: x\r\ndata: {"candidates":\r\ndata: [{"finishReason": "STOP"}]}\r\n\r\n'
    out = translator.feed(raw) + translator.close()
    assert out == b'data: {"candidates": [{"finishReason": "STOP"}]}\r\n\r\n'


def gemini_provider() -> Any:
    from truckllm.types import Provider

    return Provider(name="gem", type="gemini", base_url="https://gemini.test/v1beta")


# --- numbers -------------------------------------------------------------------------------------

TOKEN_VALUES: list[Any] = [-1_000_000, -1, 0, 7, 10**18, 10**30, 1.5, 1e30, -0.5, "12", None, True, [], {}]


@pytest.mark.parametrize("value", TOKEN_VALUES, ids=repr)
@pytest.mark.parametrize("stream", [False, True])
def test_hostile_token_counts_become_sane(gx: Any, value: Any, stream: bool) -> None:
    usage = {name: value for name in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
                                       "cachedContentTokenCount", "toolUsePromptTokenCount", "totalTokenCount")}  # fmt: skip
    answer = {
        "candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
        "usageMetadata": usage,
    }
    if stream:
        request = _request(gx, "chat", "openai", {**CHAT, "stream": True})
        out, failure = _run(gx, request, b"data: " + json.dumps(answer).encode() + b"\r\n\r\n", [])
        assert failure is None and b"[DONE]" in out
        translator_usage = _stream_usage(gx, request, answer)
    else:
        request = _request(gx, "chat", "openai", CHAT)
        result = gx.respond(request, json.dumps(answer).encode(), 200)
        assert result.error is None
        translator_usage = gemini.parse_usage(
            provider=gx.provider(), request=request, body=json.dumps(answer).encode()
        )
    assert translator_usage is not None
    for name in translator_usage.__struct_fields__:
        count = getattr(translator_usage, name)
        assert type(count) is type(getattr(Usage(), name)) and 0 <= count <= 6 * MAX_TOKENS, (name, count)  # ints, and seconds a float


def _stream_usage(gx: Any, request: ChatRequest, answer: dict[str, Any]) -> Any:
    translator = gemini.transform_stream(
        provider=gx.provider(), request=request, response=UpstreamResponse(status=200, headers={})
    )
    assert translator is not None
    translator.feed(b"data: " + json.dumps(answer).encode() + b"\r\n\r\n")
    translator.close()
    return translator.usage


@pytest.mark.parametrize(
    ("delay", "expected"),
    [("47s", 47.0), ("0.5s", 0.5), ("-5s", None), ("nans", None), ("infs", None), ("1e400s", None),
     ("99999999999s", 99999999999.0), ("soon", None), (7, None), (None, None)],
)  # fmt: skip
def test_retry_delays_are_finite_non_negative_or_none(delay: Any, expected: float | None) -> None:
    assert parse_duration(delay) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [("Please retry in 1.5s.", 1.5), ("Please retry in 250ms", 0.25), ("retry in " + "9" * 400 + "s", None)],
)
def test_retry_hints_in_messages_are_finite_or_none(message: str, expected: float | None) -> None:
    body = json.dumps({"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}).encode()
    assert read_error(429, body).retry_after == expected


# --- end to end: the gateway, a real server on loopback ------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(keys=["test-key"]).running() as server:
        yield server


def _config(base_url: str) -> str:
    hostile = "\n".join(
        f"  bad{i}: {{strategy: first, deployments: [{{provider: gem, model: {json.dumps(model)}}}]}}"
        for i, model in enumerate(ATTACKS[:3])
    )
    return f"""
providers:
  gem: {{type: gemini, base_url: {base_url}, keys: [{{name: k1, value: test-key}}]}}
models:
  good: {{strategy: first, deployments: [{{provider: gem, model: gemini-2.5-flash}}]}}
{hostile}
routing: {{retries: 0, cooldown: {{failures: 1}}}}
keys:
  - {{name: team, value: gw-key}}
"""


@pytest.mark.parametrize("alias", ["bad0", "bad1", "bad2", "gem/gem/../../zzz#", "gem/x?key=evil&"])
def test_e2e_a_hostile_model_never_reaches_the_upstream(fake: FakeGemini, alias: str) -> None:
    """The gateway answers 4xx (400 refused by the provider, or 403/404 when ``provider/model``
    addressing is off), the fake Gemini receives nothing, and the key is not blamed: the next
    request on the same key succeeds."""
    fake.reset()
    with GatewayServer(_config(fake.base_url)) as gw:
        headers = {"authorization": "Bearer gw-key"}
        body = {"model": alias, "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
        assert answer.status_code in (400, 403, 404), answer.text
        assert fake.requests == []
        good = httpx.post(
            gw.url + "/v1/chat/completions", json={**body, "model": "good"}, headers=headers, timeout=10
        )
        assert good.status_code == 200, good.text
        assert [r.path for r in fake.requests] == ["/v1beta/models/gemini-2.5-flash:generateContent"]
