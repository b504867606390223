"""The hostile upstream of the test kit does what each of its acts says, in each dialect.

Every act of :data:`truckllm_testing.hostile.ACTS` has a row here (a new act without one fails
``test_every_act_has_a_check``), checked over raw HTTP for the three dialects, whole and streamed
where the act applies.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from truckllm_testing.hostile import (
    ACTS,
    MARKER,
    METADATA_URL,
    STREAM_ACTS,
    Hostile,
    HostileUpstream,
    key_fragments,
)

KEY = "hk-TestKey-abcdefghijklmnop0123"
DIALECTS = ("openai", "anthropic", "gemini")
PATHS = {
    ("openai", False): "/v1/chat/completions",
    ("openai", True): "/v1/chat/completions",
    ("anthropic", False): "/v1/messages",
    ("anthropic", True): "/v1/messages",
    ("gemini", False): "/v1beta/models/gem-1:generateContent",
    ("gemini", True): "/v1beta/models/gem-1:streamGenerateContent?alt=sse",
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    cut: bool = False

    def json(self) -> Any:
        return json.loads(self.body)

    def frames(self) -> list[bytes]:
        """The SSE frames (blank-line separated), the last one possibly incomplete."""
        return [f for f in re.split(rb"\r\n\r\n|\n\n", self.body) if f]


@pytest.fixture(scope="module")
def server() -> Iterator[HostileUpstream]:
    with HostileUpstream().running() as hostile:
        yield hostile


@pytest.fixture
def hostile(server: HostileUpstream) -> HostileUpstream:
    server.reset()
    return server


def send(
    hostile: HostileUpstream,
    dialect: str,
    stream: bool,
    *,
    path: str | None = None,
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Reply:
    target = path or PATHS[(dialect, stream)]
    payload = (
        body if body is not None else {"model": "gem-1", "messages": [{"role": "user", "content": "hi"}]}
    )
    if stream and dialect != "gemini":
        payload = {**payload, "stream": True}
    conn = http.client.HTTPConnection("127.0.0.1", hostile.port, timeout=10)
    try:
        conn.request(
            "POST", target, body=json.dumps(payload), headers=headers or {"authorization": f"Bearer {KEY}"}
        )
        response = conn.getresponse()
        head = {k.lower(): v for k, v in response.getheaders()}
        try:
            data = response.read()
            cut = False
        except http.client.IncompleteRead as exc:
            data, cut = exc.partial, True
        return Reply(response.status, head, data, cut)
    finally:
        conn.close()


def strings(value: Any) -> list[str]:
    """Every string leaf of a decoded JSON value (``@type`` names and Anthropic's ``"type":
    "error"`` discriminator excluded)."""
    if isinstance(value, str):
        return [] if value == "error" else [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "@type" for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def is_answer(dialect: str, value: Any) -> bool:
    """A valid whole chat answer of ``dialect``."""
    if dialect == "openai":
        return value["object"] == "chat.completion" and value["choices"][0]["message"]["content"]
    if dialect == "anthropic":
        return value["type"] == "message" and value["content"][0]["text"]
    return bool(value["candidates"][0]["content"]["parts"][0]["text"])


def valid_events(dialect: str, frames: list[bytes]) -> int:
    """How many leading frames are valid events of ``dialect``."""
    count = 0
    for frame in frames:
        lines = frame.replace(b"\r\n", b"\n").split(b"\n")
        if dialect == "anthropic" and lines[0].startswith(b"event: "):
            lines = lines[1:]
        if len(lines) != 1 or not lines[0].startswith(b"data: "):
            break
        data = lines[0][6:]
        if data == b"[DONE]":
            count += 1
            continue
        try:
            value = json.loads(data)
        except ValueError:
            break
        if (
            not isinstance(value, dict)
            or "error" in value
            or (dialect == "anthropic" and value["type"] == "error")
        ):
            break
        count += 1
    return count


def usage_numbers(dialect: str, value: Any) -> list[Any]:
    if dialect == "openai":
        return list(value["usage"].values())
    if dialect == "anthropic":
        return list(value["usage"].values())
    return list(value["usageMetadata"].values())


# --- one check per act ------------------------------------------------------------------------------


def check_valid(hostile: HostileUpstream, dialect: str) -> None:
    whole = send(hostile, dialect, False)
    assert whole.status == 200 and is_answer(dialect, whole.json())
    streamed = send(hostile, dialect, True)
    assert streamed.status == 200 and streamed.headers["content-type"] == "text/event-stream"
    frames = streamed.frames()
    assert valid_events(dialect, frames) == len(frames) >= 4
    last = frames[-1]
    assert {"openai": b"[DONE]", "anthropic": b"message_stop", "gemini": b'"finishReason":"STOP"'}[
        dialect
    ] in last


def check_redirect(hostile: HostileUpstream, dialect: str) -> None:
    for status in (301, 302, 307, 308):
        hostile.script(Hostile("redirect", status=status))
        reply = send(hostile, dialect, False)
        assert (reply.status, reply.headers["location"]) == (status, METADATA_URL)
    hostile.script(Hostile("redirect", value="http://127.0.0.1:1/elsewhere"))
    reply = send(hostile, dialect, True)
    assert (reply.status, reply.headers["location"]) == (302, "http://127.0.0.1:1/elsewhere")


def _whole_garbage(act: str, check: Callable[[Reply, str], None]) -> Callable[[HostileUpstream, str], None]:
    def run(hostile: HostileUpstream, dialect: str) -> None:
        for stream in (False, True):
            hostile.script(Hostile(act))
            reply = send(hostile, dialect, stream)
            assert reply.status == 200
            assert reply.headers["content-type"] == ("text/event-stream" if stream else "application/json")
            check(reply, dialect)
            assert hostile.requests[-1].act == act

    return run


def _not_json(reply: Reply) -> bool:
    try:
        json.loads(reply.body)
    except ValueError:
        return True
    return False


def _other(reply: Reply, dialect: str) -> None:
    value = reply.json()
    other = "anthropic" if dialect == "openai" else "openai"
    assert is_answer(other, value)
    with pytest.raises((KeyError, TypeError, IndexError)):
        is_answer(dialect, value)


def _deep(reply: Reply, dialect: str) -> None:
    assert reply.body == b"[" * 100_000 + b"]" * 100_000


def check_deep_json_size(hostile: HostileUpstream, dialect: str) -> None:
    hostile.script(Hostile("deep_json", size=7))
    assert send(hostile, dialect, False).body == b"[[[[[[[]]]]]]]"


def check_huge_body(hostile: HostileUpstream, dialect: str) -> None:
    hostile.script(Hostile("huge_body"))
    reply = send(hostile, dialect, False)
    assert reply.status == 200 and len(reply.body) == 2 * 1024 * 1024 + 1 and MARKER in reply.json()["id"]
    hostile.script(Hostile("huge_body", size=5000))
    assert len(send(hostile, dialect, False).body) == 5000


def check_wrong_content_type(hostile: HostileUpstream, dialect: str) -> None:
    hostile.script(Hostile("wrong_content_type"))
    whole = send(hostile, dialect, False)  # a whole request never takes a stream act
    assert whole.headers["content-type"] == "application/json" and hostile.pending == 1
    reply = send(hostile, dialect, True)
    assert reply.headers["content-type"] == "application/json" and is_answer(dialect, reply.json())
    assert hostile.pending == 0


def _sse(
    act: str, after: int, tail: Callable[[Reply, list[bytes]], None]
) -> Callable[[HostileUpstream, str], None]:
    def run(hostile: HostileUpstream, dialect: str) -> None:
        hostile.script(Hostile(act, after=after, chunk_delay=0.001))
        assert send(hostile, dialect, False).status == 200 and hostile.pending == 1  # not for whole requests
        reply = send(hostile, dialect, True)
        frames = reply.frames()
        expected = 0 if act == "sse_invalid_first" else after
        assert reply.status == 200 and valid_events(dialect, frames) == expected
        tail(reply, frames[expected:])

    return run


def _invalid_line(reply: Reply, rest: list[bytes]) -> None:
    assert rest and rest[0].startswith(b"<!DOCTYPE html>") and MARKER.encode() in rest[0]


def _non_json(reply: Reply, rest: list[bytes]) -> None:
    assert rest == [b"data: " + MARKER.encode() + b" this is not JSON"]


def _wrong_shape(reply: Reply, rest: list[bytes]) -> None:
    assert rest == [b"data: []"]


def _cut(reply: Reply, rest: list[bytes]) -> None:
    assert rest == [] and reply.cut, "the connection was not cut before the stream's end"


def _error_event(reply: Reply, rest: list[bytes]) -> None:
    (frame,) = rest
    text = frame.decode()
    start = text.index("{")
    assert all(KEY in s for s in strings(json.loads(text[start:]))), "the key is not in every field"


def _huge_frame(reply: Reply, rest: list[bytes]) -> None:
    (frame,) = rest
    assert frame.startswith(b"data: " + MARKER.encode()) and len(frame) > 2 * 1024 * 1024


def _echo_fields(hostile: HostileUpstream, dialect: str) -> tuple[Reply, list[str]]:
    reply = send(hostile, dialect, False)
    return reply, strings(reply.json())


def check_echo_key(hostile: HostileUpstream, dialect: str) -> None:
    for status in (400, 401, 429, 500):
        hostile.script(Hostile("echo_key", status=status))
        reply, fields = _echo_fields(hostile, dialect)
        assert reply.status == status and len(fields) >= 5
        assert all(KEY in s for s in fields if not s.isdigit()), fields
        assert reply.headers["x-echo-key"] == KEY
    hostile.script(Hostile("echo_key"))
    assert KEY in send(hostile, dialect, False, headers={"x-api-key": KEY}).body.decode()


def check_echo_key_fragments(hostile: HostileUpstream, dialect: str) -> None:
    hostile.script(Hostile("echo_key_fragments"))
    _, fields = _echo_fields(hostile, dialect)
    pieces = set(key_fragments(KEY))
    carrying = [s for s in fields if any(p in s for p in pieces)]
    assert len(carrying) >= 4 and not any(KEY in s for s in fields), fields


def check_echo_key_straddle(hostile: HostileUpstream, dialect: str) -> None:
    hostile.script(Hostile("echo_key_straddle"))
    _, fields = _echo_fields(hostile, dialect)
    (message,) = [s for s in fields if KEY in s]
    start = message.encode().index(KEY.encode())
    assert start < 300 < start + len(KEY)


def check_retry_after(hostile: HostileUpstream, dialect: str) -> None:
    hostile.script(Hostile("retry_after", value="99999999999"))
    reply = send(hostile, dialect, False)
    assert reply.status == 429 and reply.headers["retry-after"] == "99999999999"
    assert "99999999999s" in reply.body.decode()
    hostile.script(Hostile("retry_after", status=503, value="Fri, 31 Dec 9999 23:59:59 GMT"))
    reply = send(hostile, dialect, False)
    assert reply.status == 503 and reply.headers["retry-after"] == "Fri, 31 Dec 9999 23:59:59 GMT"


def check_retry_after_ms(hostile: HostileUpstream, dialect: str) -> None:
    hostile.script(Hostile("retry_after_ms", value="-1000"))
    reply = send(hostile, dialect, False)
    assert (
        reply.status == 429
        and reply.headers["retry-after-ms"] == "-1000"
        and "retry-after" not in reply.headers
    )


def check_ratelimit_headers(hostile: HostileUpstream, dialect: str) -> None:
    hostile.script(Hostile("ratelimit_headers"))
    reply = send(hostile, dialect, False)
    assert is_answer(dialect, reply.json())
    assert reply.headers["x-ratelimit-remaining-requests"] == "-1000000"
    assert reply.headers["anthropic-ratelimit-requests-reset"] == "9999-12-31T23:59:59Z"


def check_usage(hostile: HostileUpstream, dialect: str) -> None:
    for tokens in (-1_000_000, 10**18, 1.5, "12", None):
        hostile.script(Hostile("usage", tokens=tokens))
        reply = send(hostile, dialect, False)
        assert is_answer(dialect, reply.json())
        assert tokens in usage_numbers(dialect, reply.json())
    hostile.script(Hostile("usage", tokens=-7))
    reply = send(hostile, dialect, True)
    assert b"-7" in reply.body and valid_events(dialect, reply.frames()) == len(reply.frames())


CHECKS: dict[str, Callable[[HostileUpstream, str], None]] = {
    "valid": check_valid,
    "redirect": check_redirect,
    "html": _whole_garbage(
        "html", lambda r, d: MARKER.encode() in r.body and r.body.startswith(b"<!DOCTYPE html>")
    ),
    "random_bytes": _whole_garbage("random_bytes", lambda r, d: _not_json(r) and MARKER.encode() in r.body),
    "empty": _whole_garbage("empty", lambda r, d: r.body == b""),
    "truncated_json": _whole_garbage("truncated_json", lambda r, d: _not_json(r) and r.body.startswith(b"{")),
    "json_array": _whole_garbage("json_array", lambda r, d: r.json() == []),
    "wrong_object": _whole_garbage("wrong_object", lambda r, d: r.json() == {"foo": 1, "marker": MARKER}),
    "other_dialect": _whole_garbage("other_dialect", _other),
    "error_in_200": _whole_garbage("error_in_200", lambda r, d: "error" in r.json()),
    "deep_json": _whole_garbage("deep_json", _deep),
    "huge_body": check_huge_body,
    "wrong_content_type": check_wrong_content_type,
    "sse_invalid_first": _sse("sse_invalid_first", 3, _invalid_line),
    "sse_invalid_after": _sse("sse_invalid_after", 2, _invalid_line),
    "sse_non_json": _sse("sse_non_json", 1, _non_json),
    "sse_wrong_shape": _sse("sse_wrong_shape", 2, _wrong_shape),
    "sse_cut": _sse("sse_cut", 2, _cut),
    "sse_error_event": _sse("sse_error_event", 2, _error_event),
    "sse_huge_frame": _sse("sse_huge_frame", 1, _huge_frame),
    "echo_key": check_echo_key,
    "echo_key_fragments": check_echo_key_fragments,
    "echo_key_straddle": check_echo_key_straddle,
    "retry_after": check_retry_after,
    "retry_after_ms": check_retry_after_ms,
    "ratelimit_headers": check_ratelimit_headers,
    "usage": check_usage,
}


def test_every_act_has_a_check() -> None:
    assert set(CHECKS) == set(ACTS)
    assert {a for a in ACTS if a.startswith("sse_")} | {"wrong_content_type"} == STREAM_ACTS


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("act", sorted(ACTS))
def test_act(act: str, dialect: str, hostile: HostileUpstream) -> None:
    CHECKS[act](hostile, dialect)
    assert hostile.pending == 0


def test_deep_json_levels_are_configurable(hostile: HostileUpstream) -> None:
    check_deep_json_size(hostile, "openai")


# --- recording and matching ---------------------------------------------------------------------------


def test_the_raw_request_target_is_recorded_undecoded(hostile: HostileUpstream) -> None:
    send(hostile, "gemini", False, path="/v1beta/models/a%2Fb%3Fc:generateContent?alt=sse&alt=json&x=%20")
    (seen,) = hostile.requests
    assert seen.target == "/v1beta/models/a%2Fb%3Fc:generateContent?alt=sse&alt=json&x=%20"
    assert (seen.path, seen.query) == ("/v1beta/models/a%2Fb%3Fc:generateContent", "alt=sse&alt=json&x=%20")
    assert seen.params == [("alt", "sse"), ("alt", "json"), ("x", " ")]
    assert (seen.dialect, seen.endpoint, seen.model, seen.stream) == (
        "gemini",
        "generateContent",
        "a/b?c",
        False,
    )


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        ({"authorization": f"Bearer {KEY}"}, None),
        ({"x-api-key": KEY}, None),
        ({"x-goog-api-key": KEY}, None),
        ({"api-key": KEY}, None),
        ({}, f"/v1/chat/completions?key={KEY}"),
    ],
)
def test_the_key_is_read_from_every_place_a_provider_puts_it(
    headers: dict[str, str], path: str | None, hostile: HostileUpstream
) -> None:
    send(hostile, "openai", False, headers=headers, path=path)
    assert hostile.requests[-1].api_key == KEY


def test_body_model_and_stream_are_recorded(hostile: HostileUpstream) -> None:
    send(hostile, "anthropic", True, body={"model": "claude-x", "messages": []})
    (seen,) = hostile.requests
    assert (seen.dialect, seen.endpoint, seen.model, seen.stream) == (
        "anthropic",
        "messages",
        "claude-x",
        True,
    )
    assert seen.json() == {"model": "claude-x", "messages": [], "stream": True}
    assert seen.headers["authorization"] == f"Bearer {KEY}"


def test_acts_match_key_model_path_dialect_and_count(hostile: HostileUpstream) -> None:
    hostile.script(Hostile("empty", key="other-key", times=-1))
    hostile.script(Hostile("json_array", model="m2"))
    hostile.script(Hostile("html", dialect="gemini", times=2))
    hostile.script(Hostile("wrong_object", path="/v1/messages"))
    assert send(hostile, "openai", False).status == 200 and hostile.requests[-1].act == "valid"
    assert send(hostile, "openai", False, body={"model": "m2"}).body == b"[]"
    assert send(hostile, "anthropic", False).json()["foo"] == 1
    assert send(hostile, "gemini", False).body.startswith(b"<!DOCTYPE")
    assert send(hostile, "gemini", True).body.startswith(b"<!DOCTYPE")
    assert send(hostile, "gemini", False).status == 200 and hostile.requests[-1].act == "valid"
    assert send(hostile, "openai", False, headers={"authorization": "Bearer other-key"}).body == b""
    assert hostile.pending == 1  # the forever act stays


def test_unknown_acts_and_paths(hostile: HostileUpstream) -> None:
    with pytest.raises(ValueError, match="unknown hostile act"):
        Hostile("teapot")
    reply = send(hostile, "openai", False, path="/v1/teapot")
    assert reply.status == 404 and hostile.requests[-1].act == "unknown_path"
    assert hostile.requests[-1].dialect is None


async def test_async_mode_and_base_urls() -> None:
    async with HostileUpstream() as hostile:
        assert hostile.base_url("openai") == hostile.origin + "/v1"
        assert hostile.base_url("anthropic") == hostile.origin
        assert hostile.base_url("gemini") == hostile.origin + "/v1beta"
        hostile.script(Hostile("redirect", status=308))
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                hostile.base_url() + "/chat/completions", json={"model": "m"}, allow_redirects=False
            ) as response,
        ):
            assert response.status == 308 and response.headers["location"] == METADATA_URL
    with pytest.raises(RuntimeError, match="not started"):
        _ = HostileUpstream().port


def test_the_kit_fixture_serves_a_hostile_upstream(hostile_upstream: HostileUpstream) -> None:
    hostile_upstream.script(Hostile("json_array"))
    assert send(hostile_upstream, "openai", False).body == b"[]"
    assert [r.act for r in hostile_upstream.requests] == ["json_array"]
