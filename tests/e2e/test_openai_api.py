"""The OpenAI-compatible API end to end: the official openai SDK -> gateway -> fake OpenAI upstream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx2 as httpx
import openai
import pytest

from truckllm_testing.fakes import FakeOpenAI, Fault, Reply, ToolCall
from truckllm_testing.server import GatewayServer

KEYS = ("sk-test-aaaaaaaaaaaaaaaaaaaa", "sk-test-bbbbbbbbbbbbbbbbbbbb")


def gateway_config(base_url: str, extra: str = "") -> str:
    return f"""
admin: {{token: admin-token}}
routing: {{backoff: {{base: 1ms, max: 5ms}}}}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys:
      - {{name: first, value: {KEYS[0]}}}
      - {{name: second, value: {KEYS[1]}}}
  demo: {{type: mock}}
models:
  gpt-4o:
    strategy: first
    deployments: [{{provider: oa, model: gpt-4o-2024-08-06}}]
    fallbacks: [demo]
  strict:
    strategy: first
    deployments: [{{provider: oa, model: gpt-4o-mini}}]
  embed:
    deployments: [{{provider: oa, model: text-embedding-3-small}}]
  demo:
    deployments: [{{provider: demo, model: echo}}]
{extra}"""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=KEYS, chunks=4)
    with upstream.running():
        yield upstream
    assert upstream.violations == []


@pytest.fixture
def gw(fake: FakeOpenAI) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_config(fake.base_url)) as server:
        yield server


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gw.url + "/v1", api_key="client-key", max_retries=0
    ) as sdk:  # closed: no socket left for a later test's GC
        yield sdk


def test_chat_passes_through_with_only_model_rewritten(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hello there"}],
        temperature=0,
        extra_body={"prediction": {"type": "content", "content": "Hi"}, "service_tier": "default"},
    )
    result = raw.parse()
    assert result.choices[0].message.content == "echo: Hello there"
    assert result.usage is not None and result.usage.total_tokens > 0
    assert raw.headers["x-truckllm-provider"] == "oa" and raw.headers["x-truckllm-attempts"] == "1"
    (received,) = fake.requests
    assert received.json["model"] == "gpt-4o-2024-08-06"
    assert received.json["temperature"] == 0  # "0" is kept, not dropped
    # fields the gateway does not model pass through untouched
    assert received.json["prediction"] == {"type": "content", "content": "Hi"}
    assert received.json["service_tier"] == "default"
    assert received.headers["authorization"] == f"Bearer {KEYS[0]}"  # our key, never the client's


def test_stream_with_usage_requested(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_stream_asks_upstream_for_usage_and_hides_it_from_a_client_that_did_not(
    fake: FakeOpenAI, client: openai.OpenAI, gw: GatewayServer
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "count me"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)  # no usage-only chunk
    assert fake.requests[0].json["stream_options"] == {"include_usage": True}
    assert gw.gateway is not None


def test_tool_calls_streamed_and_not(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    calls = [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"tz": "CET"})]
    fake.script(Reply(tool_calls=calls, times=2))
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("get_weather", "get_time")
    ]
    whole = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "w"}], tools=tools
    )
    assert whole.choices[0].finish_reason == "tool_calls"
    assert [json.loads(t.function.arguments) for t in whole.choices[0].message.tool_calls or []] == [
        {"city": "Paris"},
        {"tz": "CET"},
    ]
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    for chunk in client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "w"}], tools=tools, stream=True
    ):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "" if tc.function else "")
            if tc.function and tc.function.name:
                names[tc.index] = tc.function.name
    assert names == {0: "get_weather", 1: "get_time"}
    assert json.loads(args[0]) == {"city": "Paris"} and json.loads(args[1]) == {"tz": "CET"}


def test_embeddings_and_models(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="embed", input=["a", "b"])
    assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) > 0
    assert {m.id for m in client.models.list()} == {"gpt-4o", "strict", "embed", "demo"}
    assert client.models.retrieve("demo").id == "demo"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_legacy_completions(client: openai.OpenAI) -> None:
    result = client.completions.create(model="demo", prompt="say this", max_tokens=20)
    assert result.choices[0].text == "mock: say this"


def test_failover_to_the_next_key_after_503(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.inject(Fault(status=503, key=KEYS[0]))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-truckllm-attempts"] == "2"
    assert [r.api_key for r in fake.requests] == [KEYS[0], KEYS[1]]
    assert fake.requests[0].body == fake.requests[1].body  # the same bytes on the retry


def test_rate_limited_key_cools_down_for_retry_after(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.inject(Fault(status=429, retry_after=30, key=KEYS[0]))
    for _ in range(4):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert [r.api_key for r in fake.requests] == [KEYS[0], KEYS[1], KEYS[1], KEYS[1], KEYS[1]]


def test_every_key_rate_limited_gives_429_with_retry_after(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.inject(Fault(status=429, retry_after=7, times=2))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "x"}])
    retry_after = int(info.value.response.headers["retry-after"])
    assert 6 <= retry_after <= 7
    assert info.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]


def test_fallback_alias_serves_when_every_deployment_fails(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.inject(Fault(status=500, times=-1))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().choices[0].message.content == "mock: hi"
    assert raw.headers["x-truckllm-provider"] == "demo"


def test_upstream_401_disables_the_key_and_fails_over(
    fake: FakeOpenAI, client: openai.OpenAI, gw: GatewayServer
) -> None:
    fake.inject(Fault(status=401, key=KEYS[0]))
    client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "x"}])
    client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "x"}])
    assert [r.api_key for r in fake.requests] == [KEYS[0], KEYS[1], KEYS[1]]
    providers = httpx.get(
        gw.url + "/admin/v1/providers", headers={"authorization": "Bearer admin-token"}
    ).json()
    first = providers["providers"][0]["keys"][0]
    assert first["state"] == "disabled" and KEYS[0] not in json.dumps(providers)
    assert first["disabled"].startswith("401 auth")


def test_client_error_is_not_retried_and_keeps_the_upstream_message(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake.inject(Fault(status=400, kind="context_length"))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "x"}])
    assert len(fake.requests) == 1
    assert info.value.body["code"] == "context_length_exceeded"  # type: ignore[index]


def test_mid_stream_error_reaches_the_client_as_an_error(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.inject(Fault(error_after=2, chunk_delay=0.05))
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="strict", messages=[{"role": "user", "content": "a b c d"}], stream=True
        ):
            received.append(chunk)
    assert len(received) == 2  # what was sent stays sent; no retry after the first byte
    assert len(fake.requests) == 1


def test_dropped_stream_is_an_error_not_a_silent_done(fake: FakeOpenAI, gw: GatewayServer) -> None:
    fake.inject(Fault(drop_after=2, chunk_delay=0.05))
    body = {"model": "strict", "messages": [{"role": "user", "content": "a b c d"}], "stream": True}
    text = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10).text
    events = [e for e in text.split("\n\n") if e]
    assert "[DONE]" not in text
    assert json.loads(events[-1].removeprefix("data: "))["error"]["type"] == "server_error"
    assert len(events) == 3  # 2 chunks, then the error event


def test_stream_failure_before_first_byte_fails_over(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.inject(Fault(drop_after=0, key=KEYS[0]))
    chunks = list(
        client.chat.completions.create(
            model="strict", messages=[{"role": "user", "content": "ok"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: ok"
    assert [r.api_key for r in fake.requests] == [KEYS[0], KEYS[1]]


def test_connection_refused_falls_back() -> None:
    with GatewayServer(gateway_config("http://127.0.0.1:9/v1")) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 502 and "cannot reach provider 'oa'" in info.value.message
        assert "sk-test" not in info.value.message
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-truckllm-provider"] == "demo"
        # both keys failed again and again, but at most 10% of a provider's keys (at least one)
        # are ejected at once: one key is out, the other still carries the traffic
        assert gw.gateway is not None
        now = gw.gateway.clock()
        states = sorted(gw.gateway.health.key("oa", name).state(now) for name in ("first", "second"))
        assert states == ["ejected", "ok"]
        shown = httpx.get(gw.url + "/admin/v1/providers", headers={"authorization": "Bearer admin-token"})
        keys = {k["state"]: k for k in shown.json()["providers"][0]["keys"]}
        assert "consecutive failures" in keys["ejected"]["ejected_reason"]  # why, for the console
        assert keys["ok"]["ejected_reason"] is None and keys["ok"]["credential"] is None


@pytest.mark.parametrize(
    ("body", "status", "param", "fragment"),
    [
        (b"{not json", 400, None, "could not parse the JSON body"),
        (
            b'{"messages": [{"role": "user", "content": "x"}]}',
            400,
            "model",
            "Missing required parameter: 'model'",
        ),
        (b'{"model": "gpt-4o"}', 400, "messages", "Missing required parameter: 'messages'"),
        (b'{"model": "gpt-4o", "messages": []}', 400, "messages", "messages"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}',
            400,
            "messages[0].role",
            "wizard",
        ),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}',
            400,
            "messages[0].content",
            "",
        ),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "temperature": 9}',
            400,
            "temperature",
            "",
        ),
        (
            b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model",
            "does not exist",
        ),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream_options": {}}',
            400,
            "stream_options",
            "only allowed when 'stream'",
        ),
        (b"[1, 2]", 400, None, ""),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xff"}]}', 400, None, ""),
    ],
)
def test_bad_requests_get_openai_errors(
    gw: GatewayServer, fake: FakeOpenAI, body: bytes, status: int, param: str | None, fragment: str
) -> None:
    response = httpx.post(
        gw.url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and fragment in error["message"]
    assert fake.requests == []  # nothing reached the upstream


def test_body_over_the_limit_is_413_before_upstream(fake: FakeOpenAI) -> None:
    with GatewayServer(gateway_config(fake.base_url, "server: {max_body_bytes: 1000}\n")) as gw:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 1000}]}
        response = httpx.post(gw.url + "/v1/chat/completions", json=body)
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
        chunked = httpx.post(gw.url + "/v1/chat/completions", content=iter([b"{" + b" " * 600, b" " * 600]))
        assert chunked.status_code == 413
    assert fake.requests == []


def test_gateway_keys_401_and_403(fake: FakeOpenAI) -> None:
    extra = "keys:\n  - {name: team, value: team-secret-value, models: [demo]}\n"
    with GatewayServer(gateway_config(fake.base_url, extra)) as gw:
        body = {"model": "demo", "messages": [{"role": "user", "content": "x"}]}
        assert httpx.post(gw.url + "/v1/chat/completions", json=body).status_code == 401
        wrong = httpx.post(
            gw.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        ok = openai.OpenAI(base_url=gw.url + "/v1", api_key="team-secret-value", max_retries=0)
        assert ok.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}]).choices
        with pytest.raises(openai.PermissionDeniedError):
            ok.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        assert [m.id for m in ok.models.list()] == ["demo"]


def test_request_id_is_kept_or_made(gw: GatewayServer) -> None:
    body = {"model": "demo", "messages": [{"role": "user", "content": "x"}]}
    given = httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"x-request-id": "my-id-42"})
    assert given.headers["x-request-id"] == "my-id-42"
    made = httpx.post(gw.url + "/v1/chat/completions", json=body)
    assert made.headers["x-request-id"].startswith("req_")
    error = httpx.post(
        gw.url + "/v1/chat/completions", json={"model": "nope"}, headers={"x-request-id": "e-1"}
    )
    assert error.headers["x-request-id"] == "e-1"


def test_unknown_path_and_method_are_openai_errors(gw: GatewayServer) -> None:
    assert httpx.get(gw.url + "/v1/nothing").json()["error"]["code"] == "not_found"
    assert httpx.get(gw.url + "/v1/chat/completions").status_code == 405


def test_health(gw: GatewayServer) -> None:
    assert httpx.get(gw.url + "/admin/v1/health").json() == {"status": "ok"}


def test_admin_plugins_lists_plugins(gw: GatewayServer) -> None:
    assert httpx.get(gw.url + "/admin/v1/plugins").status_code == 401
    rows = httpx.get(gw.url + "/admin/v1/plugins", headers={"authorization": "Bearer admin-token"}).json()[
        "plugins"
    ]
    names = {r["name"] for r in rows}
    assert {"truckllm-provider-openai", "truckllm-provider-mock"} <= names


def test_admin_config_has_no_secret(gw: GatewayServer) -> None:
    text = httpx.get(gw.url + "/admin/v1/config", headers={"authorization": "Bearer admin-token"}).text
    assert "<secret>" in text
    for secret in (*KEYS, "admin-token"):
        assert secret not in text


def test_slow_upstream_times_out_and_fails_over(fake: FakeOpenAI) -> None:
    fake.inject(Fault(delay=2.0, key=KEYS[0]))
    slow = "strategy: first\n    routing: {try_timeout: 200ms}\n    deployments:"
    config = gateway_config(fake.base_url).replace(
        "strategy: first\n    deployments: [{provider: oa, model: gpt-4o-mini}]",
        slow + " [{provider: oa, model: gpt-4o-mini}]",
    )
    assert "try_timeout: 200ms" in config
    with GatewayServer(config) as gw:
        start = time.monotonic()
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "x"}])
        elapsed = time.monotonic() - start
    assert 0.2 <= elapsed < 1.5
    assert [r.api_key for r in fake.requests] == [KEYS[0], KEYS[1]]


def test_provider_slash_model_is_off_unless_the_provider_opts_in(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="oa/gpt-4.1-nano", messages=[{"role": "user", "content": "x"}])
    assert fake.requests == []
    config = gateway_config(fake.base_url).replace(
        "    type: openai\n", "    type: openai\n    direct: true\n"
    )
    with GatewayServer(config) as gw:
        direct = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        result = direct.chat.completions.create(
            model="oa/gpt-4.1-nano", messages=[{"role": "user", "content": "direct"}]
        )
        assert result.choices[0].message.content == "echo: direct"
        assert fake.requests[-1].json["model"] == "gpt-4.1-nano"
        with pytest.raises(openai.NotFoundError):
            direct.chat.completions.create(model="nobody/gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_provider_slash_model_follows_the_key_allow_list(fake: FakeOpenAI) -> None:
    extra = "keys:\n  - {name: a, value: key-a-value-123, models: ['oa/*']}\n  - {name: b, value: key-b-value-123, models: [demo]}\n"
    with GatewayServer(gateway_config(fake.base_url, extra)) as gw:
        body = {"model": "oa/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
        allowed = httpx.post(
            gw.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer key-a-value-123"}
        )
        denied = httpx.post(
            gw.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer key-b-value-123"}
        )
    # the key that names oa/* opts in for itself; the other key cannot even see that provider
    assert allowed.status_code == 200 and denied.status_code == 404


def test_limited_key_receives_nothing_for_its_whole_retry_after(fake: FakeOpenAI) -> None:
    """Issue 4's end-to-end check, on the gateway's injected clock: 30 s of cooldown, to the second."""
    now = [5000.0]
    with GatewayServer(gateway_config(fake.base_url), gateway_kwargs={"clock": lambda: now[0]}) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        fake.inject(Fault(status=429, retry_after=30, key=KEYS[0]))
        for step in range(30):  # one request per simulated second, for 29.5 s
            client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "x"}])
            now[0] += 29.5 / 30 if step < 29 else 0
        assert [r.api_key for r in fake.requests].count(KEYS[0]) == 1  # only the request that got the 429
        now[0] = 5000.0 + 30.5
        client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "x"}])
        assert fake.requests[-1].api_key == KEYS[0]  # back after its cooldown
