"""The Responses API front door at the trust boundary: hostile clients, state abuse, hostile upstreams.

Real gateways on loopback (``GatewayServer``) with the project's fakes, the kit's
``HostileUpstream`` (translated: Anthropic and Gemini deployments) and a hostile ``/v1/responses``
server (:mod:`tests.e2e.responses_liar`, pass-through: OpenAI deployments). The rules held here:

1. every route answers any client input with a 4xx in OpenAI's error shape naming the field or
   parameter (never a 500), and every request that reached an upstream is recorded;
2. another gateway key's response id is answered exactly like an unknown one; ``store: false``
   and a conversation over ``server.state.max_bytes`` leave nothing; a store that is down is a 503
   ``state_unavailable`` for what needs it only; two follow-ups of one response both work;
   ``server.state.ttl`` expires what was stored;
3. nothing an upstream says reaches the client with a secret in it (provider keys, gateway keys),
   uncut; a lying stream ends in a clean ``error`` event; a 2xx that is not a Response is a 502;
   usage is never negative nor beyond the kernel's bound;
4. a continued pass-through conversation returns to the account that keeps it, and is served
   elsewhere, spelled out, while that account cools down or once it lost the conversation; ids
   ``input_items`` lists can be sent back to it; a turn is stored before any byte announcing it;
5. the kernel's input limits and budget reservations apply to requests only OpenAI can serve as
   to any other; a stream the client leaves is charged; a background response whose id could
   never be polled is a 502 and nothing is forwarded.

Cases that show a bug not fixed yet are ``xfail(strict=True)`` with the finding's number (see
``/tmp/brief/E-findings.md``): they turn red the moment the fix lands, so the mark is removed then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx
import pytest
import truckllm_dialect_responses as dialect_plugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger

from tests.e2e.responses_liar import MARKER as LIAR_MARKER
from tests.e2e.responses_liar import Lie, ResponsesLiar
from tests.e2e.serving import redis_prefix
from truckllm import hookimpl
from truckllm._internal.numbers import MAX_TOKENS
from truckllm.types import RequestRecord
from truckllm_testing.conformance import LogCapture
from truckllm_testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI, Fault
from truckllm_testing.hostile import MARKER, Hostile, HostileUpstream
from truckllm_testing.server import GatewayServer
from truckllm_testing.store_server import StoreServer

anthropic_plugin = pytest.importorskip("truckllm_provider_anthropic")
gemini_plugin = pytest.importorskip("truckllm_provider_gemini")
openai_plugin = pytest.importorskip("truckllm_provider_openai")
memory_store = pytest.importorskip("truckllm_store_memory")

TEAM = "gw-team-7c1d9e2f4a6b8c0d"
OTHER = "gw-other-3e5f7a9b1c2d4e6f"
ALICE = "gw-alice-9a8b7c6d5e4f3a2b"
ANT = "sk-ant-trust-5a4b3c2d1e0f9a8b"
GEM = "AIzaTrust0123456789abcdefGHIJ"
OAI1 = "sk-oai-trust-one-1f2e3d4c5b6a"
OAI2 = "sk-oai-trust-two-6a5b4c3d2e1f"
HOSTILE_ANT = "sk-ant-hostile-0a1b2c3d4e5f6a7b"
HOSTILE_GEM = "AIzaHostile9876543210zyxwvuTSRQ"
LIAR = "sk-liar-key-8d7c6b5a4f3e2d1c"
ADMIN = "admin-trust-4b6d8f0a2c4e6a8c"
SECRETS = (ADMIN, TEAM, OTHER, ALICE, ANT, GEM, OAI1, OAI2, HOSTILE_ANT, HOSTILE_GEM, LIAR)
"""Every secret the gateways are configured with: none may reach a client, whole or in part."""

ROUTES = (
    ("GET", ""),
    ("DELETE", ""),
    ("POST", "/cancel"),
    ("GET", "/input_items"),
)
"""The local routes, as (method, suffix after ``/v1/responses/{id}``)."""


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


class Records:
    """A throwaway plugin keeping every usage record."""

    __name__ = "throwaway-trust-records"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.lock = threading.Lock()

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Keep the record."""
        with self.lock:
            self.records.append(record)

    def of(self, request_id: str) -> RequestRecord:
        """The one record of request ``request_id`` (waiting for it: written off the response path)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.lock:
                found = [r for r in self.records if r.request_id == request_id]
            if found:
                assert len(found) == 1, found
                return found[0]
            time.sleep(0.01)
        raise AssertionError(f"no record of request {request_id}")


class Upstreams:
    """Every upstream the module's gateway talks to."""

    def __init__(self) -> None:
        self.anthropic = FakeAnthropic(keys=[ANT])
        self.gemini = FakeGemini(keys=[GEM])
        self.openai = FakeOpenAI(keys=[OAI1, OAI2])
        self.hostile = HostileUpstream()
        self.liar = ResponsesLiar(secrets=(TEAM, ALICE))


def _config(up: Upstreams, extra: str = "") -> str:
    return f"""
admin: {{token: {ADMIN}}}
keys:
  - {{name: team, value: {TEAM}}}
  - {{name: other, value: {OTHER}}}
  - {{name: "team:resp:alice", value: {ALICE}}}
routing: {{retries: 0, cooldown: {{failures: 1000, error_ratio: 1}}}}
{extra}
providers:
  ant: {{type: anthropic, base_url: {up.anthropic.base_url}, keys: [{{name: a, value: {ANT}}}]}}
  gem: {{type: gemini, base_url: {up.gemini.base_url}, keys: [{{name: g, value: {GEM}}}]}}
  oai: {{type: openai, base_url: {up.openai.base_url}, keys: [{{name: o1, value: {OAI1}}}, {{name: o2, value: {OAI2}}}]}}
  hant: {{type: anthropic, base_url: {up.hostile.base_url("anthropic")}, keys: [{{name: h, value: {HOSTILE_ANT}}}]}}
  hgem: {{type: gemini, base_url: {up.hostile.base_url("gemini")}, keys: [{{name: h, value: {HOSTILE_GEM}}}]}}
  liar: {{type: openai, base_url: {up.liar.base_url}, keys: [{{name: l, value: {LIAR}}}]}}
  liarchat: {{type: openai, base_url: {up.liar.base_url}, options: {{api: responses}}, keys: [{{name: l, value: {LIAR}}}]}}
models:
  claude: {{deployments: [{{provider: ant, model: claude-sonnet-4-5-20250929}}]}}
  gem: {{deployments: [{{provider: gem, model: gemini-2.5-flash}}]}}
  gpt: {{routing: {{retries: 2}}, deployments: [{{provider: oai, model: gpt-4o}}]}}
  h-claude: {{deployments: [{{provider: hant, model: claude-sonnet-4-5-20250929}}]}}
  h-gem: {{deployments: [{{provider: hgem, model: gemini-2.5-flash}}]}}
  liar: {{deployments: [{{provider: liar, model: gpt-4o}}]}}
  liar-chat: {{deployments: [{{provider: liarchat, model: gpt-4o}}]}}
"""


PLUGINS: tuple[object, ...] = (dialect_plugin, anthropic_plugin, gemini_plugin, openai_plugin, memory_store)


@pytest.fixture(scope="module")
def up() -> Iterator[Upstreams]:
    """The upstreams, served from threads for the module."""
    ups = Upstreams()
    with (
        ups.anthropic.running(),
        ups.gemini.running(),
        ups.openai.running(),
        ups.hostile.running(),
        ups.liar.running(),
    ):
        yield ups


@pytest.fixture(autouse=True)
def _fresh_upstreams(request: pytest.FixtureRequest) -> Iterator[None]:
    """Nothing a test scripts or injects outlives it, even when it fails midway: the upstreams
    serve the whole module (one failure must not fail the tests after it)."""
    yield
    if "up" in request.fixturenames:
        ups: Upstreams = request.getfixturevalue("up")
        for fake in (ups.anthropic, ups.gemini, ups.openai, ups.hostile, ups.liar):
            fake.reset()


@pytest.fixture(scope="module")
def records() -> Records:
    """Every record of the module's gateway."""
    return Records()


@pytest.fixture(scope="module")
def gw(up: Upstreams, records: Records) -> Iterator[GatewayServer]:
    """The module's gateway (memory store)."""
    with GatewayServer(_config(up), autoload=False, extra_plugins=(*PLUGINS, records)) as server:
        yield server


def _post(gw: GatewayServer, body: Any, key: str = TEAM, path: str = "/v1/responses") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**_auth(key), "content-type": "application/json"}
    return httpx.post(gw.url + path, content=content, headers=headers, timeout=30)


def _create(gw: GatewayServer, key: str = TEAM, **fields: Any) -> dict[str, Any]:
    answer = _post(gw, {"model": "claude", "input": "hello", **fields}, key)
    assert answer.status_code == 200, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _openai_error(answer: httpx.Response) -> dict[str, Any]:
    """The error object of an answer in OpenAI's shape (checked)."""
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    return error


def _no_secret(text: str) -> None:
    """No configured secret, nor any 8-character piece of one, is in ``text``."""
    for secret in SECRETS:
        for i in range(len(secret) - 7):
            assert secret[i : i + 8] not in text, (secret, text[:400])


def _events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


def _stream_full(gw: GatewayServer, body: dict[str, Any], key: str = TEAM) -> tuple[int, bytes, str]:
    """A streamed call: its status, its bytes and its ``x-request-id``."""
    with httpx.stream(
        "POST", gw.url + "/v1/responses", json={**body, "stream": True}, headers=_auth(key), timeout=60
    ) as answer:
        return answer.status_code, b"".join(answer.iter_bytes()), answer.headers["x-request-id"]


def _stream(gw: GatewayServer, body: dict[str, Any], key: str = TEAM) -> tuple[int, bytes]:
    status, raw, _ = _stream_full(gw, body, key)
    return status, raw


# --- 1. hostile clients -------------------------------------------------------------------------------

HOSTILE_IDS: dict[str, str] = {
    "dot dot (encoded)": "%2e%2e",
    "a percent-encoded slash, encoded twice": "a%252Fb",
    "NUL": "resp_a%00b",
    "CR LF": "resp_a%0D%0Ab",
    "unicode": "resp_%C3%A9%E2%9C%93",
    "a space": "resp_a%20b",
    "a colon": "resp%3Aresp_x",
    "10 KB": "r" * 10_000,
    "invalid UTF-8": "resp_%FF%FE",
    "a quote and a brace": "resp_%22%7D",
}
"""Response ids no response has, as they appear in the path (raw)."""


@pytest.mark.parametrize("raw_id", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
def test_hostile_ids_on_every_local_route_are_a_clear_404(gw: GatewayServer, raw_id: str) -> None:
    for method, suffix in ROUTES:
        answer = httpx.request(method, f"{gw.url}/v1/responses/{raw_id}{suffix}", headers=_auth(TEAM))
        assert answer.status_code == 404, (method, suffix, answer.text[:200])
        error = _openai_error(answer)
        assert error["param"] == "response_id", error


def test_client_input_is_not_echoed_whole(gw: GatewayServer) -> None:
    messages = [
        _openai_error(
            httpx.request(method, f"{gw.url}/v1/responses/{'r' * 10_000}{suffix}", headers=_auth(TEAM))
        )
        for method, suffix in ROUTES
    ]
    follow = _post(gw, {"model": "claude", "input": "x", "previous_response_id": "r" * 10_000})
    assert follow.status_code == 400
    messages.append(_openai_error(follow))
    created = _create(gw)
    digits = httpx.get(
        f"{gw.url}/v1/responses/{created['id']}/input_items?limit={'9' * 4000}", headers=_auth(TEAM)
    )
    assert digits.status_code == 400
    messages.append(_openai_error(digits))
    assert [len(m["message"]) <= 300 for m in messages] == [True] * len(messages)


def test_an_unknown_model_is_not_echoed_whole(gw: GatewayServer) -> None:
    for path in ("/v1/responses", "/v1/responses/input_tokens"):
        answer = _post(gw, {"model": "m" * 100_000, "input": "x"}, path=path)
        assert answer.status_code == 404
        assert len(_openai_error(answer)["message"]) <= 300


@pytest.mark.parametrize(
    "raw_id",
    ["a%2Fb", "..", "%2F", "a/b"],
    ids=["encoded slash", "dot dot", "only a slash", "a slash"],
)
def test_ids_that_are_not_one_segment_reach_no_route(gw: GatewayServer, raw_id: str) -> None:
    for method, suffix in ROUTES:
        answer = httpx.request(method, f"{gw.url}/v1/responses/{raw_id}{suffix}", headers=_auth(TEAM))
        assert answer.status_code in (404, 405), (method, suffix, answer.text)
        _openai_error(answer)


def test_every_method_on_every_route_is_answered_in_openai_shape(gw: GatewayServer) -> None:
    rid = _create(gw)["id"]
    paths = [
        "/v1/responses",
        "/v1/responses/input_tokens",
        f"/v1/responses/{rid}",
        f"/v1/responses/{rid}/cancel",
        f"/v1/responses/{rid}/input_items",
    ]
    for path in paths:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"):
            answer = httpx.request(method, gw.url + path, headers=_auth(TEAM), timeout=30)
            assert answer.status_code < 500, (method, path, answer.status_code, answer.text[:200])
            if answer.status_code >= 400 and method != "HEAD":
                _openai_error(answer)


QUERIES: list[tuple[str, str]] = [
    ("limit=-1", "limit"),
    ("limit=0", "limit"),
    ("limit=101", "limit"),
    (f"limit={10**30}", "limit"),
    ("limit=" + "9" * 5000, "limit"),
    ("limit=abc", "limit"),
    ("limit=1e3", "limit"),
    ("limit=%00", "limit"),
    ("limit=", "limit"),
    ("order=sideways", "order"),
    ("order=ASC", "order"),
    ("order=" + "d" * 5000, "order"),
    ("after=msg_unknown", "after"),
    ("after=%FF%FE", "after"),
    ("after=" + "a" * 10_000, "after"),
]


def test_bad_input_items_queries_are_400_naming_the_parameter(gw: GatewayServer) -> None:
    created = _create(gw)
    other = _create(gw, key=OTHER)
    cases = [*QUERIES, (f"after={other['id']}", "after")]  # another key's id is just unknown here
    for query, param in cases:
        answer = httpx.get(f"{gw.url}/v1/responses/{created['id']}/input_items?{query}", headers=_auth(TEAM))
        assert answer.status_code == 400, (query[:40], answer.text[:200])
        error = _openai_error(answer)
        assert error["param"] == param and len(error["message"]) <= 300, (query[:40], error["message"][:100])


BODIES: dict[str, bytes] = {
    "not JSON": b"{model: claude}",
    "not UTF-8": b'{"model": "claude", "input": "\xff\xfe"}',
    "a JSON array": b"[]",
    "a JSON string": b'"hello"',
    "empty": b"",
    "a repeated key": b'{"model": "claude", "model": "gpt", "input": "x"}',
    "a repeated key deep in an item": b'{"model": "claude", "input": [{"role": "user", "role": "system", "content": "x"}]}',
    "deep arrays": b'{"model": "claude", "input": "x", "metadata": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "deep tool schema": b'{"model": "claude", "input": "x", "tools": [{"type": "function", "name": "f", "parameters": '
    + b'{"a":' * 500
    + b"1"
    + b"}" * 500
    + b"}]}",
    "a huge integer": b'{"model": "claude", "input": "x", "max_output_tokens": ' + b"9" * 5000 + b"}",
    "a float for an integer": b'{"model": "claude", "input": "x", "max_output_tokens": 1e400}',
    "NaN": b'{"model": "claude", "input": "x", "temperature": NaN}',
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_undecodable_or_ambiguous_bodies_are_400_on_both_post_routes(
    gw: GatewayServer, up: Upstreams, body: bytes
) -> None:
    before = len(up.anthropic.requests)
    for path in ("/v1/responses", "/v1/responses/input_tokens"):
        answer = _post(gw, body, path=path)
        assert answer.status_code == 400, (path, answer.text[:200])
        _openai_error(answer)
    assert len(up.anthropic.requests) == before


def test_a_body_over_the_limit_is_413_in_openai_shape(up: Upstreams) -> None:
    config = _config(up, "server: {max_body_bytes: 20000}")
    with GatewayServer(config, autoload=False, extra_plugins=PLUGINS) as small:
        answer = _post(small, {"model": "claude", "input": "x" * 30_000})
    assert answer.status_code == 413
    _openai_error(answer)


_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
_FIELDS = (
    "input", "instructions", "previous_response_id", "stream", "store", "background", "tools",
    "tool_choice", "text", "reasoning", "metadata", "max_output_tokens", "temperature", "top_p",
    "include", "stream_options", "truncation", "parallel_tool_calls", "user", "conversation",
)  # fmt: skip
_PARTS = st.sampled_from(["input_text", "input_image", "input_file", "output_text", "refusal"]) | _JSON
_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning"]) | _JSON,
        "role": st.sampled_from(["user", "assistant", "system"]) | _JSON,
        "content": _JSON
        | st.lists(st.fixed_dictionaries({"type": _PARTS}, optional={"text": _JSON}), max_size=2),
        "call_id": _JSON,
        "output": _JSON,
        "summary": _JSON,
        "id": _JSON,
    },
)
_BODY = st.fixed_dictionaries(
    {"model": st.just("claude") | _JSON},
    optional={**{name: _JSON for name in _FIELDS}, "input": st.lists(_ITEM, max_size=3) | _JSON},
)


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=_BODY)
def test_any_json_in_any_field_is_an_answer_or_a_named_4xx_and_upstream_calls_are_recorded(
    gw: GatewayServer, up: Upstreams, records: Records, body: dict[str, Any]
) -> None:
    body.pop("stream", None)
    before_calls = len(up.anthropic.requests)
    answer = _post(gw, body)
    if answer.status_code == 200:
        assert answer.json()["object"] == "response"
    else:
        assert 400 <= answer.status_code < 500, answer.text[:300]
        error = _openai_error(answer)
        assert error["param"] is not None or error["code"] is not None, error
    calls = len(up.anthropic.requests) - before_calls
    if calls:  # what reached the upstream is recorded, with its usage when it answered
        record = records.of(answer.headers["x-request-id"])
        assert record.provider == "ant" and len(record.attempts) == calls, record
        assert record.status == answer.status_code
        if answer.status_code == 200:
            assert record.usage is not None


@settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=_BODY, alias=st.sampled_from(["claude", "gem"]))
def test_any_streamed_request_is_a_well_ended_stream_or_a_named_4xx_and_is_recorded(
    gw: GatewayServer, up: Upstreams, records: Records, body: dict[str, Any], alias: str
) -> None:
    if body.get("model") == "claude":
        body["model"] = alias
    fake = up.anthropic if alias == "claude" else up.gemini
    body.pop("stream_options", None)
    before_calls = len(fake.requests)
    status, raw, rid = _stream_full(gw, body)
    if status == 200:
        events = _events(raw)
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert events[-1]["type"] in ("response.completed", "response.incomplete", "response.failed")
    else:
        assert 400 <= status < 500, raw[:300]
        answer = json.loads(raw)
        assert set(answer["error"]) == {"message", "type", "param", "code"}
        assert answer["error"]["param"] is not None or answer["error"]["code"] is not None, answer
    if len(fake.requests) > before_calls:
        record = records.of(rid)
        assert record.stream and record.status == status, record


# --- 2. state abuse --------------------------------------------------------------------------------


def _local(gw: GatewayServer, method: str, rid: str, suffix: str, key: str = TEAM) -> httpx.Response:
    return httpx.request(method, f"{gw.url}/v1/responses/{rid}{suffix}", headers=_auth(key), timeout=30)


def test_another_keys_response_is_answered_exactly_like_an_unknown_one(gw: GatewayServer) -> None:
    theirs = _create(gw, key=OTHER)["id"]
    unknown = "resp_" + "0" * 48
    for method, suffix in [*ROUTES, ("POST", ""), ("POST", "/input_tokens")]:
        if method == "POST" and suffix in ("", "/input_tokens"):
            seen = [
                _post(
                    gw,
                    {"model": "claude", "input": "x", "previous_response_id": rid},
                    path="/v1/responses" + suffix,
                )
                for rid in (theirs, unknown)
            ]
        else:
            seen = [_local(gw, method, rid, suffix) for rid in (theirs, unknown)]
        (a, b) = seen
        assert a.status_code == b.status_code and a.status_code in (400, 404), (method, suffix, a.text)
        shown = [
            answer.text.replace(rid, "<id>") for answer, rid in zip(seen, (theirs, unknown), strict=True)
        ]
        assert shown[0] == shown[1], (method, suffix, shown)
        assert set(a.headers) - {"date", "x-request-id"} == set(b.headers) - {"date", "x-request-id"}
    assert _local(gw, "GET", theirs, "", key=OTHER).status_code == 200  # nothing was deleted by team


def test_key_names_with_colons_do_not_share_state(gw: GatewayServer) -> None:
    alice = _create(gw, key=ALICE, input="alice's plan")["id"]
    forged = f"alice:resp:{alice}"  # team's scope + this name spells alice's scope + alice's name
    assert _local(gw, "GET", forged, "/input_items").status_code == 404
    assert _local(gw, "GET", forged, "").status_code == 404
    follow = _post(gw, {"model": "claude", "input": "go on", "previous_response_id": forged})
    assert follow.status_code == 400 and _openai_error(follow)["code"] == "previous_response_not_found"
    assert _local(gw, "DELETE", forged, "").status_code == 404
    assert _local(gw, "GET", alice, "", key=ALICE).status_code == 200


def test_guessed_ids_find_nothing(gw: GatewayServer) -> None:
    mine = _create(gw)["id"]
    guesses = [mine[:-1] + ("0" if mine[-1] != "0" else "1"), mine.upper(), mine + " ", " " + mine, mine[:-2]]
    for guess in guesses:
        assert _local(gw, "GET", guess.replace(" ", "%20"), "", key=OTHER).status_code == 404
        assert _local(gw, "GET", guess.replace(" ", "%20"), "").status_code == 404


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_store_false_leaves_nothing(gw: GatewayServer, stream: bool) -> None:
    body = {"model": "claude", "input": "forget me", "store": False}
    if stream:
        status, raw = _stream(gw, body)
        assert status == 200
        rid = _events(raw)[-1]["response"]["id"]
    else:
        rid = _create(gw, input="forget me", store=False)["id"]
    for method, suffix in ROUTES:
        assert _local(gw, method, rid, suffix).status_code == 404, (method, suffix)
    follow = _post(gw, {"model": "claude", "input": "x", "previous_response_id": rid})
    assert follow.status_code == 400 and _openai_error(follow)["code"] == "previous_response_not_found"


def test_a_conversation_over_max_bytes_is_answered_and_not_stored(up: Upstreams) -> None:
    config = _config(up, "server: {state: {max_bytes: 4000}}")
    with GatewayServer(config, autoload=False, extra_plugins=PLUGINS) as small:
        kept = _create(small, input="short")
        big = _post(small, {"model": "claude", "input": "word " * 2000})
        assert big.status_code == 200 and big.json()["status"] == "completed"
        assert _local(small, "GET", kept["id"], "").status_code == 200
        assert _local(small, "GET", big.json()["id"], "").status_code == 404
        follow = _post(small, {"model": "claude", "input": "x", "previous_response_id": big.json()["id"]})
        assert follow.status_code == 400 and _openai_error(follow)["code"] == "previous_response_not_found"
        # a continuation that grows past the bound: answered, the earlier turn still there
        grown = _post(small, {"model": "claude", "input": "word " * 2000, "previous_response_id": kept["id"]})
        assert grown.status_code == 200
        assert _local(small, "GET", grown.json()["id"], "").status_code == 404
        assert _local(small, "GET", kept["id"], "").status_code == 200


class _Switch:
    """Whether the flaky store is down."""

    def __init__(self) -> None:
        self.down = False


def _flaky_store_plugin(switch: _Switch) -> object:
    """A throwaway plugin: store ``type: flaky``, the memory store whose state calls fail while
    ``switch.down``."""
    base = memory_store.MemoryStore

    class Flaky(base):  # type: ignore[misc, valid-type]
        async def get_state(self, name: str) -> bytes | None:
            if switch.down:
                raise ConnectionError(f"store down ({name})")
            value: bytes | None = await super().get_state(name)
            return value

        async def put_state(self, name: str, value: bytes, ttl: float) -> None:
            if switch.down:
                raise ConnectionError("store down")
            await super().put_state(name, value, ttl)

        async def delete_state(self, name: str) -> bool:
            if switch.down:
                raise ConnectionError("store down")
            deleted: bool = await super().delete_state(name)
            return deleted

    class Plugin:
        __name__ = "throwaway-flaky-store"

        @hookimpl
        def register_stores(self, register: Callable[[str, type], None]) -> None:
            """``type: flaky``."""
            register("flaky", Flaky)

    return Plugin()


def test_a_store_that_is_down_is_503_for_continuations_only(up: Upstreams) -> None:
    switch = _Switch()
    plugins = (*PLUGINS, _flaky_store_plugin(switch))
    with GatewayServer(_config(up, "store: {type: flaky}"), autoload=False, extra_plugins=plugins) as flaky:
        first = _create(flaky)
        switch.down = True
        follow = _post(flaky, {"model": "claude", "input": "x", "previous_response_id": first["id"]})
        assert follow.status_code == 503, follow.text
        error = _openai_error(follow)
        assert error["code"] == "state_unavailable" and "down" not in error["message"]
        assert follow.headers.get("retry-after") == "1"
        for method, suffix in ROUTES:
            answer = _local(flaky, method, first["id"], suffix)
            assert answer.status_code == 503 and _openai_error(answer)["code"] == "state_unavailable"
        fresh = _post(flaky, {"model": "claude", "input": "no state needed"})  # its write fails, logged
        assert fresh.status_code == 200 and fresh.json()["status"] == "completed"
        status, raw = _stream(flaky, {"model": "claude", "input": "streamed"})
        assert status == 200 and _events(raw)[-1]["type"] == "response.completed"
        unstored = _post(flaky, {"model": "claude", "input": "x", "store": False})
        assert unstored.status_code == 200
        switch.down = False
        again = _post(flaky, {"model": "claude", "input": "x", "previous_response_id": first["id"]})
        assert again.status_code == 200  # back up: what was stored before is there


def test_a_redis_store_on_a_closed_port_is_503_for_continuations_only(up: Upstreams) -> None:
    redis_store = pytest.importorskip("truckllm_store_redis")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    config = _config(up, f"store: {{type: redis, url: 'redis://127.0.0.1:{port}/0'}}")
    try:
        server = GatewayServer(config, autoload=False, extra_plugins=(*PLUGINS, redis_store)).start()
    except RuntimeError:
        pytest.skip("the redis store refuses to start without its server")
    try:
        follow = _post(server, {"model": "claude", "input": "x", "previous_response_id": "resp_1"})
        assert follow.status_code == 503 and _openai_error(follow)["code"] == "state_unavailable"
        fresh = _post(server, {"model": "claude", "input": "no state needed"})
        assert fresh.status_code == 200, fresh.text
    finally:
        server.stop()


@contextlib.contextmanager
def _http_store_service() -> Iterator[str]:
    """The ``http`` store's reference server over a memory store, from a thread; yields its URL."""
    loop = asyncio.new_event_loop()
    server = StoreServer(memory_store.MemoryStore(), token="store-token-5e6f7a8b9c0d1e2f")
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url: str = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def _store_gateway(up: Upstreams, store: str, tmp_path: Any) -> Iterator[GatewayServer]:
    """A gateway whose state lives in the ``store`` store (``memory``, ``file``, ``redis`` or ``http``)."""
    plugins: tuple[object, ...] = PLUGINS
    with contextlib.ExitStack() as stack:
        if store == "memory":
            section = "store: {type: memory}"
        elif store == "file":
            plugins = (*PLUGINS, pytest.importorskip("truckllm_store_file"))
            section = f"store: {{type: file, path: '{tmp_path / 'state.db'}'}}"
        elif store == "redis":
            plugins = (*PLUGINS, pytest.importorskip("truckllm_store_redis"))
            prefix = stack.enter_context(redis_prefix())
            section = f"store: {{type: redis, url: 'redis://127.0.0.1:6379/0', prefix: '{prefix}'}}"
        else:
            plugins = (*PLUGINS, pytest.importorskip("truckllm_store_http"))
            url = stack.enter_context(_http_store_service())
            section = f"store: {{type: http, url: '{url}', token: store-token-5e6f7a8b9c0d1e2f}}"
        yield stack.enter_context(GatewayServer(_config(up, section), autoload=False, extra_plugins=plugins))


def _hostile_names_are_unknown(server: GatewayServer, ids: dict[str, str]) -> None:
    for name, raw_id in ids.items():
        for method, suffix in ROUTES:
            answer = _local(server, method, raw_id, suffix)
            assert answer.status_code == 404, (name, method, suffix, answer.text[:200])
    for name, raw_id in ids.items():
        decoded = urllib.parse.unquote(raw_id, errors="surrogateescape")
        if "\udcff" in decoded:  # not UTF-8: a JSON body cannot carry it
            continue
        follow = _post(server, {"model": "claude", "input": "x", "previous_response_id": decoded})
        assert follow.status_code == 400, (name, follow.text[:200])
        assert _openai_error(follow)["code"] == "previous_response_not_found"


@pytest.mark.parametrize("store", ["memory", "file", "http", pytest.param("redis", marks=pytest.mark.redis)])
def test_every_store_answers_hostile_names_like_unknown_ones(
    up: Upstreams, store: str, tmp_path: Any
) -> None:
    with _store_gateway(up, store, tmp_path) as server:
        kept = _create(server)
        _hostile_names_are_unknown(server, HOSTILE_IDS)
        assert _local(server, "GET", kept["id"], "").json() == kept


def test_the_http_store_answers_a_long_id_like_an_unknown_one_and_logs_no_error(
    up: Upstreams, tmp_path: Any
) -> None:
    """F9: an id over ~8 KB made the http store's URL too long (503 and an ERROR traceback per
    request); ids without a response id's shape now reach no store."""
    errors: list[str] = []
    sink = logger.add(errors.append, level="ERROR", format="{message}")
    try:
        with _store_gateway(up, "http", tmp_path) as server:
            _hostile_names_are_unknown(server, {"10 KB": HOSTILE_IDS["10 KB"], "1 KB": "r" * 1000})
    finally:
        logger.remove(sink)
    assert errors == [], errors[:3]


def test_two_follow_ups_of_one_response_fork_the_conversation(gw: GatewayServer) -> None:
    root = _create(gw, input="root turn")
    answers: dict[str, httpx.Response] = {}

    def follow(text: str) -> None:
        answers[text] = _post(gw, {"model": "claude", "input": text, "previous_response_id": root["id"]})

    threads = [threading.Thread(target=follow, args=(text,)) for text in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert {t: a.status_code for t, a in answers.items()} == {"left": 200, "right": 200}
    ids = {t: a.json()["id"] for t, a in answers.items()}
    assert len(set(ids.values())) == 2
    for text, rid in ids.items():
        items = _local(gw, "GET", rid, "/input_items?order=asc").json()["data"]
        said = [json.dumps(i.get("content")) for i in items if i.get("role") == "user"]
        assert "root turn" in said[0] and text in said[-1] and len(said) == 2, said
    assert _local(gw, "GET", root["id"], "").status_code == 200


def test_stored_responses_expire_after_server_state_ttl(up: Upstreams) -> None:
    offset = [0.0]

    def clock() -> float:
        return time.monotonic() + offset[0]

    config = _config(up, "server: {state: {ttl: 60s}}")
    storeless = tuple(p for p in PLUGINS if p is not memory_store)  # state in the kernel's memory, on `clock`
    with GatewayServer(
        config, autoload=False, extra_plugins=storeless, gateway_kwargs={"clock": clock}
    ) as timed:
        first = _create(timed)
        offset[0] += 59
        assert _local(timed, "GET", first["id"], "").status_code == 200
        offset[0] += 2
        for method, suffix in ROUTES:
            assert _local(timed, method, first["id"], suffix).status_code == 404
        follow = _post(timed, {"model": "claude", "input": "x", "previous_response_id": first["id"]})
        assert follow.status_code == 400 and _openai_error(follow)["code"] == "previous_response_not_found"


# --- 3. hostile upstreams --------------------------------------------------------------------------

ECHO_ACTS = ("echo_key", "echo_key_fragments", "echo_key_straddle")
WHOLE_GARBAGE = (
    "html", "random_bytes", "empty", "truncated_json", "json_array", "wrong_object", "other_dialect",
    "error_in_200", "deep_json",
)  # fmt: skip
STREAM_LIES = (
    "sse_invalid_first",
    "sse_invalid_after",
    "sse_non_json",
    "sse_wrong_shape",
    "sse_cut",
    "sse_error_event",
)


def _clean(text: str, *markers: str) -> None:
    _no_secret(text)
    for marker in markers:
        assert marker not in text, text[:400]


def _check_failed_stream(raw: bytes) -> list[dict[str, Any]]:
    """A stream that failed after it started: numbered events, then ``error`` (+ ``response.failed``)."""
    events = _events(raw)
    assert events, raw[:300]
    kinds = [e["type"] for e in events]
    assert "error" in kinds, kinds
    tail = kinds[kinds.index("error") :]
    assert tail in (["error"], ["error", "response.failed"]), kinds
    numbers = [e["sequence_number"] for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    error = events[kinds.index("error")]
    assert isinstance(error["message"], str) and len(error["message"]) <= 1000
    return events


@pytest.mark.parametrize("alias", ["h-claude", "h-gem"])
@pytest.mark.parametrize("act", ECHO_ACTS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_translated_upstream_errors_reach_the_client_scrubbed_and_cut(
    gw: GatewayServer, up: Upstreams, alias: str, act: str, stream: bool
) -> None:
    up.hostile.reset()
    up.hostile.script(Hostile(act, status=400, times=-1))
    body = {"model": alias, "input": "hi"}
    with LogCapture() as logs:
        if stream:
            status, raw = _stream(gw, body)
            text = raw.decode("utf-8", "replace")
        else:
            answer = _post(gw, body)
            status, text = answer.status_code, answer.text
            error = _openai_error(answer)
            assert len(error["message"]) <= 1000 and all(
                len(error[f] or "") <= 128 for f in ("type", "param", "code")
            )
        time.sleep(0.05)  # the request's record and log lines are written off the response path
    up.hostile.reset()
    assert 400 <= status < 600, text[:300]
    _clean(text, MARKER)
    _no_secret(logs.text)


@pytest.mark.parametrize("alias", ["h-claude", "h-gem"])
@pytest.mark.parametrize("act", STREAM_LIES)
def test_translated_streams_that_lie_end_in_a_clean_error_event(
    gw: GatewayServer, up: Upstreams, records: Records, alias: str, act: str
) -> None:
    up.hostile.reset()
    up.hostile.script(Hostile(act, after=2, times=-1))
    status, raw, rid = _stream_full(gw, {"model": alias, "input": "hi"})
    calls = len(up.hostile.requests)
    up.hostile.reset()
    record = records.of(rid)  # the request that reached the upstream is recorded
    assert record.alias == alias and len(record.attempts) == calls == 1 and record.status >= 500, record
    _clean(raw.decode("utf-8", "replace"), MARKER)
    if status == 200:
        events = _check_failed_stream(raw)
        assert events[-1]["type"] == "response.failed"
    else:  # refused before the first byte: a whole error in OpenAI's shape
        assert status == 502, raw[:300]
        assert set(json.loads(raw)["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("alias", ["h-claude", "h-gem"])
@pytest.mark.parametrize("act", WHOLE_GARBAGE)
def test_translated_garbage_answers_are_502(gw: GatewayServer, up: Upstreams, alias: str, act: str) -> None:
    up.hostile.reset()
    up.hostile.script(Hostile(act, size=100_000 if act == "deep_json" else None, times=-1))
    answer = _post(gw, {"model": alias, "input": "hi"})
    up.hostile.reset()
    assert answer.status_code == 502, answer.text[:300]
    _openai_error(answer)
    _clean(answer.text, MARKER)


@pytest.mark.parametrize("alias", ["h-claude", "h-gem"])
@pytest.mark.parametrize("tokens", [-1_000_000, -1, 10**18, 10**30], ids=str)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_translated_usage_is_clamped(
    gw: GatewayServer, up: Upstreams, records: Records, alias: str, tokens: int, stream: bool
) -> None:
    up.hostile.reset()
    up.hostile.script(Hostile("usage", tokens=tokens, times=-1))
    body = {"model": alias, "input": "hi"}
    if stream:
        status, raw, rid = _stream_full(gw, body)
        final = _events(raw)[-1]
        usage = final["response"]["usage"] if final["type"] == "response.completed" else None
    else:
        answer = _post(gw, body)
        status, rid = answer.status_code, answer.headers["x-request-id"]
        usage = answer.json().get("usage") if status == 200 else None
    up.hostile.reset()
    record = records.of(rid)
    assert record.alias == alias
    if record.usage is not None:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert 0 <= getattr(record.usage, name) <= 2 * MAX_TOKENS, record.usage
        assert record.cost_usd >= 0
    if status == 200 and usage is not None:
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            assert isinstance(usage[name], int) and usage[name] >= 0, usage  # (providers cut at int32)


# --- pass-through (OpenAI Responses API deployments) ---


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_pass_through_errors_are_scrubbed_and_cut(
    gw: GatewayServer, up: Upstreams, status: int, stream: bool
) -> None:
    up.liar.reset()
    up.liar.script(Lie("error_status", status=status, times=-1))
    body = {"model": "liar", "input": "hi"}
    with LogCapture() as logs:
        answer = _post(gw, {**body, "stream": stream})
        time.sleep(0.05)  # the request's record and log lines are written off the response path
    _no_secret(logs.text)
    up.liar.reset()
    enabled = httpx.post(f"{gw.url}/admin/v1/providers/liar/keys/l/enable", headers=_auth(ADMIN))
    assert enabled.status_code == 200, enabled.text  # a 401/403 disabled the key: back for the next case
    assert 400 <= answer.status_code < 600
    error = _openai_error(answer)
    assert len(error["message"]) <= 1000 and all(
        len(error[f] or "") <= 128 for f in ("type", "param", "code")
    )
    _clean(answer.text, LIAR_MARKER)


@pytest.mark.parametrize(
    "act", ["no_terminal", "junk_frame", "raw_line", "error_event", "failed_event", "cut", "huge_frame"]
)
def test_pass_through_streams_that_lie_end_in_a_clean_error_event(
    gw: GatewayServer, up: Upstreams, records: Records, act: str
) -> None:
    up.liar.reset()
    up.liar.script(Lie(act, times=-1))
    with LogCapture() as logs:
        status, raw, rid = _stream_full(gw, {"model": "liar", "input": "hi"})
        time.sleep(0.05)  # the request's record and log lines are written off the response path
    _no_secret(logs.text)
    calls = len(up.liar.calls)
    up.liar.reset()
    record = records.of(rid)  # the request that reached the upstream is recorded
    assert record.alias == "liar" and record.provider == "liar" and len(record.attempts) == calls == 1
    assert record.status >= 500 and record.error_kind is not None, record
    assert status == 200, raw[:300]
    text = raw.decode("utf-8", "replace")
    _clean(text, LIAR_MARKER)
    events = _check_failed_stream(raw)
    assert events[0]["type"] == "response.created"
    failed = events[-1]
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    # nothing of a failed stream is stored
    assert _local(gw, "GET", events[0]["response"]["id"], "").status_code == 404


@pytest.mark.parametrize("act", ["not_a_response", "garbage", "failed_response"])
def test_pass_through_answers_that_are_not_a_response_are_5xx(
    gw: GatewayServer, up: Upstreams, act: str
) -> None:
    up.liar.reset()
    up.liar.script(Lie(act, times=-1))
    answer = _post(gw, {"model": "liar", "input": "hi"})
    up.liar.reset()
    assert answer.status_code == 502, answer.text[:300]
    error = _openai_error(answer)
    if act != "failed_response":
        assert error["type"] == "server_error" and error["code"] in (None, "bad_response"), error
    _clean(answer.text, LIAR_MARKER)


@pytest.mark.parametrize("tokens", [-1_000_000, -1, 10**18, 10**30], ids=str)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_pass_through_usage_is_clamped_in_the_record(
    gw: GatewayServer, up: Upstreams, records: Records, tokens: int, stream: bool
) -> None:
    up.liar.reset()
    up.liar.script(Lie("usage", tokens=tokens, times=-1))
    if stream:
        status, _, rid = _stream_full(gw, {"model": "liar", "input": "hi"})
    else:
        answer = _post(gw, {"model": "liar", "input": "hi"})
        status, rid = answer.status_code, answer.headers["x-request-id"]
    up.liar.reset()
    assert status == 200
    record = records.of(rid)
    assert record.alias == "liar" and record.status == 200
    if record.usage is not None:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert 0 <= getattr(record.usage, name) <= 2 * MAX_TOKENS, record.usage
    assert record.cost_usd >= 0


# --- the other direction: chat clients through ``api: responses`` to a lying /v1/responses ---


@pytest.mark.parametrize(
    "act", ["no_terminal", "junk_frame", "raw_line", "error_event", "failed_event", "cut", "error_status"]
)
def test_chat_clients_of_a_lying_responses_upstream_get_a_clean_end(
    gw: GatewayServer, up: Upstreams, records: Records, act: str
) -> None:
    up.liar.reset()
    up.liar.script(Lie(act, times=-1))
    body = {"model": "liar-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with LogCapture() as logs:
        with httpx.stream(
            "POST", gw.url + "/v1/chat/completions", json=body, headers=_auth(TEAM), timeout=60
        ) as answer:
            status, raw, rid = (
                answer.status_code,
                b"".join(answer.iter_bytes()),
                answer.headers["x-request-id"],
            )
        time.sleep(0.05)  # the request's record and log lines are written off the response path
    if act == "error_status":
        httpx.post(f"{gw.url}/admin/v1/providers/liarchat/keys/l/enable", headers=_auth(ADMIN))
    up.liar.reset()
    text = raw.decode("utf-8", "replace")
    _clean(text, LIAR_MARKER)
    _no_secret(logs.text)
    record = records.of(rid)
    assert len(record.attempts) == 1 and record.attempts[0].provider == "liarchat", record
    assert record.status >= 400, record
    if status == 200:  # the stream had started: it ends with an error frame, never [DONE]
        frames = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
        assert frames and frames[-1] != b"[DONE]" and "error" in json.loads(frames[-1]), frames[-3:]
    else:
        assert 400 <= status < 600 and set(json.loads(raw)["error"]) >= {"message", "type"}, raw[:300]


@pytest.mark.parametrize("act", ["not_a_response", "garbage", "failed_response", "error_status"])
def test_chat_clients_of_a_lying_responses_upstream_get_a_clean_error(
    gw: GatewayServer, up: Upstreams, act: str
) -> None:
    up.liar.reset()
    up.liar.script(Lie(act, times=-1))
    body = {"model": "liar-chat", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=_auth(TEAM), timeout=30)
    if act == "error_status":
        httpx.post(f"{gw.url}/admin/v1/providers/liarchat/keys/l/enable", headers=_auth(ADMIN))
    up.liar.reset()
    assert 400 <= answer.status_code < 600, answer.text[:300]
    _openai_error(answer)
    _clean(answer.text, LIAR_MARKER)


@pytest.mark.parametrize("tokens", [-1_000_000, 10**30], ids=str)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_chat_clients_of_a_responses_upstream_get_clamped_usage(
    gw: GatewayServer, up: Upstreams, records: Records, tokens: int, stream: bool
) -> None:
    up.liar.reset()
    up.liar.script(Lie("usage", tokens=tokens, times=-1))
    body = {"model": "liar-chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=_auth(TEAM)) as answer:
            status, raw, rid = (
                answer.status_code,
                b"".join(answer.iter_bytes()),
                answer.headers["x-request-id"],
            )
        frames = [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]
        usage = next((f["usage"] for f in frames if f.get("usage")), None)
    else:
        whole = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=_auth(TEAM), timeout=30)
        status, rid, usage = whole.status_code, whole.headers["x-request-id"], whole.json().get("usage")
    up.liar.reset()
    assert status == 200
    record = records.of(rid)
    if record.usage is not None:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert 0 <= getattr(record.usage, name) <= 2 * MAX_TOKENS, record.usage
    assert record.cost_usd >= 0
    if usage is not None:
        assert all(usage[name] >= 0 for name in ("prompt_tokens", "completion_tokens", "total_tokens")), usage


# --- 4. affinity -------------------------------------------------------------------------------


def test_a_continued_conversation_returns_to_its_account_and_moves_when_it_cools_down(
    gw: GatewayServer, up: Upstreams
) -> None:
    up.openai.reset()
    first = _post(gw, {"model": "gpt", "input": "my name is Ada"})
    assert first.status_code == 200, first.text
    holder = up.openai.response_turns[-1].api_key
    second = _post(gw, {"model": "gpt", "input": "again", "previous_response_id": first.json()["id"]})
    assert second.status_code == 200 and up.openai.response_turns[-1].api_key == holder
    assert up.openai.requests[-1].json["previous_response_id"] == first.json()["id"]
    up.openai.inject(Fault(status=429, key=holder, times=-1, retry_after=30))
    third = _post(gw, {"model": "gpt", "input": "my name?", "previous_response_id": second.json()["id"]})
    assert third.status_code == 200, third.text
    turn = up.openai.response_turns[-1]
    assert turn.api_key != holder and turn.response_id == third.json()["id"]
    sent = turn.request.json
    assert "previous_response_id" not in sent  # the other account never saw the earlier turns
    texts = [json.dumps(item.get("content")) for item in sent["input"]]
    assert "my name is Ada" in texts[0] and "my name?" in texts[-1] and len(texts) == 5
    # the key that said 429 is cooling down: a fourth turn goes to the new holder at once
    fourth = _post(gw, {"model": "gpt", "input": "bye", "previous_response_id": third.json()["id"]})
    assert fourth.status_code == 200 and up.openai.response_turns[-1].api_key == turn.api_key
    up.openai.reset()


# --- 5. admission: what the kernel checks applies to every request ------------------------------

UNTRANSLATABLE: dict[str, dict[str, Any]] = {
    "a built-in tool": {"tools": [{"type": "web_search"}]},
    "an item_reference": {
        "input": [{"role": "user", "content": "@@"}, {"type": "item_reference", "id": "msg_1"}]
    },
    "a conversation": {"conversation": "conv_1"},
    "a stored prompt": {"prompt": {"id": "pmpt_1"}},
    "an image by file id": {
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "@@"},
                    {"type": "input_image", "file_id": "file_1"},
                ],
            }
        ]
    },
}
"""Requests only an OpenAI account can serve (no chat form): each with ``@@`` where the text goes."""


def test_server_limits_apply_to_requests_only_openai_can_serve(up: Upstreams) -> None:
    config = _config(up, "server: {limits: {max_content_bytes: 2000, max_messages: 4}}")
    big = "x" * 5000
    refused: dict[str, int] = {}
    with GatewayServer(config, autoload=False, extra_plugins=PLUGINS) as limited:
        before = len(up.openai.requests)
        for name, extra in UNTRANSLATABLE.items():
            body = json.loads(json.dumps({"model": "gpt", "input": big, **extra}).replace("@@", big))
            refused[name] = _post(limited, body).status_code
        reached = len(up.openai.requests) - before
    assert refused == dict.fromkeys(UNTRANSLATABLE, 400) and reached == 0, (refused, reached)


def test_a_budget_reserves_the_max_output_tokens_of_requests_only_openai_can_serve(up: Upstreams) -> None:
    """A budget's reservation reads ``max_output_tokens`` (through the request's chat form) for
    every request: 100,000 output tokens at $1,000 per million are $100, over a $1 budget."""
    config = f"""
keys: [{{name: payer, value: {BUDGETED}, budget: {{usd: 1}}}}]
providers:
  oai: {{type: openai, base_url: {up.openai.base_url}, keys: [{{name: o1, value: {OAI1}}}]}}
models:
  gpt: {{deployments: [{{provider: oai, model: gpt-4o, price: {{input: 1, output: 1000}}}}]}}
"""
    cases = {"translatable": {}, **UNTRANSLATABLE}
    answers: dict[str, tuple[int, int]] = {}
    with GatewayServer(config, autoload=False, extra_plugins=PLUGINS) as paying:
        before = len(up.openai.requests)
        for name, extra in cases.items():
            body = json.loads(json.dumps({"model": "gpt", "input": "hi", **extra}).replace("@@", "hi"))
            big = _post(paying, {**body, "max_output_tokens": 100_000}, BUDGETED)
            small = _post(paying, {**body, "max_output_tokens": 16}, BUDGETED)
            answers[name] = (big.status_code, small.status_code)
            if big.status_code == 429:
                assert _openai_error(big)["code"] == "budget_exceeded"
        reached = len(up.openai.requests) - before
    # the big ones are refused before any call; the small ones are admitted (the account answers
    # them: 200, or its own 400 for a reference it does not know)
    assert all(big == 429 and small in (200, 400) for big, small in answers.values()), answers
    assert reached == len(cases)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_deeply_nested_pass_through_answer_never_breaks_its_follow_ups(
    gw: GatewayServer, up: Upstreams, stream: bool
) -> None:
    up.liar.reset()
    up.liar.script(Lie("deep", size=600))
    body = {"model": "liar", "input": "hi"}
    if stream:
        status, raw = _stream(gw, body)
        assert status == 200
        rid = _events(raw)[0]["response"]["id"]
    else:
        first = _post(gw, body)
        assert first.status_code == 200
        rid = first.json()["id"]
    follow = _post(gw, {"model": "liar", "input": "and then?", "previous_response_id": rid})
    up.liar.reset()
    # served (the account keeps it), or refused cleanly: never the gateway's own failure
    assert follow.status_code != 500, follow.text
    if follow.status_code != 200:
        assert follow.status_code in (400, 502), follow.text
        _openai_error(follow)


def test_in_process_state_is_bounded_in_bytes(up: Upstreams) -> None:
    config = _config(up, "server: {state: {memory_bytes: 2000000}}")
    storeless = tuple(p for p in PLUGINS if p is not memory_store)  # the kernel's own memory keeps state
    with GatewayServer(config, autoload=False, extra_plugins=storeless) as bare:
        ids = [_create(bare, input="word " * 100_000)["id"] for _ in range(6)]  # ~0.5 MB stored each
        assert bare.gateway is not None
        held = sum(len(value) for _, value in bare.gateway.memory_state._items.values())
        assert held <= 2_000_000
        assert _local(bare, "GET", ids[-1], "").status_code == 200  # the newest is kept


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_conversation_its_account_lost_is_served_elsewhere_spelled_out(up: Upstreams, stream: bool) -> None:
    up.openai.reset()
    with GatewayServer(_config(up), autoload=False, extra_plugins=PLUGINS) as fresh:
        first = _post(fresh, {"model": "gpt", "input": "my name is Ada"})
        assert first.status_code == 200, first.text
        holder = up.openai.response_turns[-1].api_key
        lost = httpx.delete(
            f"{up.openai.base_url}/responses/{first.json()['id']}", headers=_auth(str(holder))
        )
        assert lost.status_code == 200, lost.text  # gone from the account, still in the gateway
        body = {"model": "gpt", "input": "my name?", "previous_response_id": first.json()["id"]}
        if stream:
            status, raw = _stream(fresh, body)
            assert status == 200 and _events(raw)[-1]["type"] == "response.completed", raw[-300:]
        else:
            follow = _post(fresh, body)
            assert follow.status_code == 200, follow.text
    turn = up.openai.response_turns[-1]
    up.openai.reset()
    assert turn.api_key != holder and "previous_response_id" not in turn.request.json


def test_a_conversation_its_only_account_lost_is_that_accounts_400(up: Upstreams) -> None:
    config = f"""
keys: [{{name: team, value: {TEAM}}}]
providers:
  oai: {{type: openai, base_url: {up.openai.base_url}, keys: [{{name: o1, value: {OAI1}}}]}}
models:
  gpt: {{deployments: [{{provider: oai, model: gpt-4o}}]}}
"""
    with GatewayServer(config, autoload=False, extra_plugins=PLUGINS) as single:
        first = _post(single, {"model": "gpt", "input": "my name is Ada"})
        assert first.status_code == 200, first.text
        httpx.delete(f"{up.openai.base_url}/responses/{first.json()['id']}", headers=_auth(OAI1))
        follow = _post(single, {"model": "gpt", "input": "x", "previous_response_id": first.json()["id"]})
    assert follow.status_code == 400, follow.text
    error = _openai_error(follow)
    assert (error["code"], error["param"]) == ("previous_response_not_found", "previous_response_id")


def test_ids_listed_by_input_items_can_be_sent_back_on_the_account_that_keeps_the_turn(
    gw: GatewayServer, up: Upstreams
) -> None:
    first = _post(gw, {"model": "gpt", "input": "remember: the code word is heron"})
    assert first.status_code == 200, first.text
    listed = _local(gw, "GET", first.json()["id"], "/input_items").json()["data"]
    follow = _post(
        gw,
        {
            "model": "gpt",
            "previous_response_id": first.json()["id"],
            "input": [
                {"type": "item_reference", "id": listed[0]["id"]},
                {"role": "user", "content": "again?"},
            ],
        },
    )
    assert follow.status_code == 200, follow.text


BUDGETED = "gw-budget-1a3c5e7f9b2d4f6a"


@pytest.mark.parametrize("alias", ["gpt", "claude"])
def test_a_stream_the_client_leaves_early_is_still_charged(up: Upstreams, alias: str) -> None:
    config = f"""
keys: [{{name: payer, value: {BUDGETED}, budget: {{usd: 1000}}}}]
store: {{type: memory}}
providers:
  ant: {{type: anthropic, base_url: {up.anthropic.base_url}, keys: [{{name: a, value: {ANT}}}]}}
  oai: {{type: openai, base_url: {up.openai.base_url}, keys: [{{name: o1, value: {OAI1}}}]}}
models:
  gpt: {{deployments: [{{provider: oai, model: gpt-4o, price: {{input: 1000, output: 1000}}}}]}}
  claude: {{deployments: [{{provider: ant, model: claude-sonnet-4-5-20250929, price: {{input: 1000, output: 1000}}}}]}}
"""
    seen = Records()
    fake = up.openai if alias == "gpt" else up.anthropic
    fake.reset()
    fake.inject(Fault(chunk_delay=0.3))
    try:  # the slow fault never outlives the test (the upstreams serve the whole module)
        with GatewayServer(config, autoload=False, extra_plugins=(*PLUGINS, seen)) as paying:
            body = {"model": alias, "input": "word " * 2000, "stream": True}
            with httpx.stream(
                "POST", paying.url + "/v1/responses", json=body, headers=_auth(BUDGETED), timeout=30
            ) as answer:
                assert answer.status_code == 200
                rid = answer.headers["x-request-id"]
                next(answer.iter_bytes())  # the stream started: the upstream is generating; then leave
            record = seen.of(rid)
    finally:
        fake.reset()
    assert record.client_disconnected and record.provider is not None
    assert len(record.attempts) == 1, record  # the upstream call that was made is in the record
    assert record.cost_usd > 0, record  # at least the prompt the upstream read (or the reservation)


UPSTREAM_IDS = {
    "a path": "resp_a/../../chat/completions",
    "a query": "resp_a?api-version=evil&key=x",
    "a fragment": "resp_a#frag",
    "a percent": "resp_a%2Fb",
    "a space": "resp_a b",
    "unicode": "resp_a\u00e9\u2713",
    "CR LF": "resp_a\r\nx-injected: 1",
    "10 KB": "resp_" + "a" * 10_000,
}
"""Response ids an upstream may answer a background create with: none may shape an upstream URL
(issue 13's class 3), so none is ever polled."""


@pytest.mark.parametrize("upstream_id", UPSTREAM_IDS.values(), ids=UPSTREAM_IDS.keys())
def test_a_background_response_whose_id_could_not_be_polled_is_a_502_and_nothing_is_forwarded(
    gw: GatewayServer, up: Upstreams, upstream_id: str
) -> None:
    """The account runs it, yet no poll nor cancel could name it: the create is the upstream's bad
    answer (502 ``server_error``, the id not echoed), nothing is stored, every later call about it
    is an unknown id's 404 (or no route at all), and no call reaches the upstream again."""
    up.liar.reset()
    up.liar.script(Lie("named", rid=upstream_id))
    created = _post(gw, {"model": "liar", "input": "take your time", "background": True})
    assert created.status_code == 502, created.text[:300]
    error = _openai_error(created)
    assert error["type"] == "server_error" and "background response" in error["message"], error
    assert len(created.text) < 1000  # the id is not echoed
    segment = urllib.parse.quote(upstream_id, safe="")
    for method, suffix in (("GET", ""), ("POST", "/cancel"), ("GET", "/input_items"), ("DELETE", "")):
        answer = _local(gw, method, segment, suffix)
        assert answer.status_code in (404, 405), (method, suffix, answer.text[:200])
        _openai_error(answer)
    calls = up.liar.calls[1:]
    up.liar.reset()
    assert calls == []


def test_a_background_poll_and_cancel_send_the_upstreams_id_as_one_encoded_segment(
    gw: GatewayServer, up: Upstreams
) -> None:
    upstream_id = "resp_Ok-1_" + "9" * 40
    up.liar.reset()
    up.liar.script(Lie("named", rid=upstream_id))
    created = _post(gw, {"model": "liar", "input": "take your time", "background": True})
    assert created.status_code == 200 and created.json()["id"] == upstream_id, created.text[:300]
    cancelled = _local(gw, "POST", upstream_id, "/cancel")
    polled = _local(gw, "GET", upstream_id, "")
    calls = up.liar.calls[1:]
    up.liar.reset()
    assert cancelled.status_code == 200 and polled.json()["status"] == "completed"
    assert [(c["_method"], c["_target"]) for c in calls] == [
        ("POST", f"/v1/responses/{upstream_id}/cancel")
    ]  # the cancel's answer (completed) is stored: the poll is answered here


def _completed_then_get(gw: GatewayServer, body: dict[str, Any]) -> tuple[int, int]:
    """Stream ``body``; the moment ``response.completed`` is read (the body not yet ended), ask for
    the response and continue it: their two statuses."""
    with httpx.stream(
        "POST", gw.url + "/v1/responses", json={**body, "stream": True}, headers=_auth(TEAM), timeout=30
    ) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data: ") and '"response.completed"' in line:
                rid = json.loads(line[6:])["response"]["id"]
                got = _local(gw, "GET", rid, "").status_code
                follow = _post(gw, {"model": body["model"], "input": "go on", "previous_response_id": rid})
                return got, follow.status_code
    raise AssertionError("no response.completed")


def test_a_pass_through_turn_is_stored_before_its_response_completed_event_is_sent(
    gw: GatewayServer, up: Upstreams
) -> None:
    up.liar.reset()
    up.liar.script(Lie("slow_close", pause=1.0))  # OpenAI's body ends a moment after its last event
    statuses = _completed_then_get(gw, {"model": "liar", "input": "hi"})
    up.liar.reset()
    assert statuses == (200, 200)


@pytest.mark.parametrize("alias", ["h-claude", "h-gem"])
def test_a_translated_turn_is_stored_before_its_response_completed_event_is_sent(
    gw: GatewayServer, up: Upstreams, alias: str
) -> None:
    up.hostile.reset()
    up.hostile.script(Hostile("valid", chunk_delay=0.15))
    statuses = _completed_then_get(gw, {"model": alias, "input": "hi"})
    up.hostile.reset()
    assert statuses == (200, 200)
