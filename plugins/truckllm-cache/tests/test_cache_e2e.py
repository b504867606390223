"""The response cache on a real gateway (mock provider, every installed front door).

A request asked twice is answered once upstream: the second answer is the first one's bytes
(whole or streamed, in each dialect), with ``x-truckllm-cache: hit``, no provider in its record,
$0 charged to the key's budget. Never across keys (unless configured), never errors or cut
streams, never with ``Cache-Control: no-cache`` / ``no-store``.
"""

from __future__ import annotations

import time
from typing import Any

import httpx2 as httpx
import pytest

from truckllm import hookimpl
from truckllm.types import RequestRecord
from truckllm_testing.server import GatewayServer

CONFIG = """
providers:
  mock: {{type: mock}}
models:
  m:
    deployments: [{{provider: mock, model: mock-1, price: {{input: 1000, output: 2000}}}}]
  other:
    deployments: [{{provider: mock, model: mock-1, price: {{input: 1000, output: 2000}}}}]
keys:
  - {{name: alice, value: key-alice, budget: {{usd: 1000}}}}
  - {{name: bob, value: key-bob}}
cache: {{aliases: [m], keys: ["*"], shared_across_keys: {shared}}}
"""
ALICE = "key-alice"
BOB = "key-bob"


class Records:
    """Collects every finished request's record."""

    __name__ = "test-records"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)


def _gateway(records: Records, *, shared: bool = False) -> GatewayServer:
    return GatewayServer(CONFIG.format(shared="true" if shared else "false"), extra_plugins=(records,))


def _openai(gw: GatewayServer, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=20,
    )


def _chat(text: str = "hello there", *, stream: bool = False, model: str = "m") -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# one request per front door: (path, body, credential header); the stream form sets "stream"
DIALECTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "openai": ("/v1/chat/completions", _chat(), "authorization"),
    "anthropic": (
        "/v1/messages",
        {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}]},
        "x-api-key",
    ),
    "responses": ("/v1/responses", {"model": "m", "input": "hello there", "store": False}, "authorization"),
    "gemini": (
        "/v1beta/models/m:{method}",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        "x-goog-api-key",
    ),
}


def _ask(
    gw: GatewayServer, dialect: str, stream: bool, key: str = ALICE, headers: dict[str, str] | None = None
) -> httpx.Response:
    path, body, header = DIALECTS[dialect]
    body = dict(body)
    if dialect == "gemini":
        path = path.format(method="streamGenerateContent?alt=sse" if stream else "generateContent")
    elif stream:
        body["stream"] = True
    value = f"Bearer {key}" if header == "authorization" else key
    sent = {header: value, "anthropic-version": "2023-06-01", **(headers or {})}
    return httpx.post(gw.url + path, json=body, headers=sent, timeout=20)


def _upstream(records: Records) -> list[RequestRecord]:
    """The records of requests an upstream answered."""
    return [r for r in records.records if r.provider is not None]


def _attempts(records: Records) -> int:
    """Calls made upstream, successful or not."""
    return sum(len(r.attempts) for r in records.records)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_a_repeated_request_is_replayed_byte_for_byte(dialect: str, stream: bool) -> None:
    records = Records()
    with _gateway(records) as gw:
        first = _ask(gw, dialect, stream)
        second = _ask(gw, dialect, stream)
        third = _ask(gw, dialect, stream)
    assert first.status_code == 200, first.text
    assert first.headers["x-truckllm-cache"] == "miss"
    assert second.headers["x-truckllm-cache"] == third.headers["x-truckllm-cache"] == "hit"
    assert second.content == first.content == third.content
    assert second.headers["content-type"] == first.headers["content-type"]
    if stream:
        assert first.headers["content-type"].startswith("text/event-stream")
    assert len(_upstream(records)) == 1
    hits = [r for r in records.records if r.extra.get("cache") == "hit"]
    assert len(hits) == 2 and all(r.cost_usd == 0 and r.status == 200 for r in hits)


def test_a_whole_answer_is_not_replayed_as_a_stream() -> None:
    records = Records()
    with _gateway(records) as gw:
        whole = _openai(gw, ALICE, _chat())
        streamed = _openai(gw, ALICE, _chat(stream=True))
        again = _openai(gw, ALICE, _chat(stream=True))
    assert whole.headers["x-truckllm-cache"] == streamed.headers["x-truckllm-cache"] == "miss"
    assert again.headers["x-truckllm-cache"] == "hit" and again.content == streamed.content


def test_never_across_gateway_keys() -> None:
    records = Records()
    with _gateway(records) as gw:
        alice = _openai(gw, ALICE, _chat())
        bob = _openai(gw, BOB, _chat())
        bob_again = _openai(gw, BOB, _chat())
    assert alice.headers["x-truckllm-cache"] == bob.headers["x-truckllm-cache"] == "miss"
    assert bob_again.headers["x-truckllm-cache"] == "hit"
    assert len(_upstream(records)) == 2


def test_across_gateway_keys_when_configured() -> None:
    records = Records()
    with _gateway(records, shared=True) as gw:
        alice = _openai(gw, ALICE, _chat())
        bob = _openai(gw, BOB, _chat())
    assert bob.headers["x-truckllm-cache"] == "hit" and bob.content == alice.content


def test_cache_control_bypasses() -> None:
    records = Records()
    with _gateway(records) as gw:
        no_store = _openai(gw, ALICE, _chat(), **{"cache-control": "no-store"})
        after_no_store = _openai(gw, ALICE, _chat())
        no_cache = _openai(gw, ALICE, _chat(), **{"cache-control": "No-Cache"})
        hit = _openai(gw, ALICE, _chat())
    assert no_store.headers["x-truckllm-cache"] == "bypass"
    assert after_no_store.headers["x-truckllm-cache"] == "miss"  # no-store kept nothing
    assert no_cache.headers["x-truckllm-cache"] == "bypass"  # not served from the cache...
    assert hit.headers["x-truckllm-cache"] == "hit"
    assert hit.content == no_cache.content  # ...but its fresh answer was kept
    assert [r.extra.get("cache") for r in records.records] == ["bypass", "miss", "bypass", "hit"]


def test_errors_are_never_cached() -> None:
    records = Records()
    fault = {"x-mock-fault": "status=400"}
    with _gateway(records) as gw:
        first = _openai(gw, ALICE, _chat("bad"), **fault)
        second = _openai(gw, ALICE, _chat("bad"), **fault)
    assert first.status_code == second.status_code == 400
    assert _attempts(records) == 2
    assert all(r.extra.get("cache") == "miss" for r in records.records)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_cut_streams_are_never_cached(dialect: str) -> None:
    records = Records()
    fault = {"x-mock-fault": "cut_after=2"}
    with _gateway(records) as gw:
        first = _ask(gw, dialect, True, headers=fault)
        second = _ask(gw, dialect, True)
    assert first.status_code == 200  # the stream started, then was cut: an error event ends it
    assert b"error" in first.content
    assert first.headers["x-truckllm-cache"] == second.headers["x-truckllm-cache"] == "miss"
    assert second.content != first.content
    assert _attempts(records) == 2


def test_a_stream_the_client_left_is_never_cached() -> None:
    """A client that goes away after the first frames gets nothing kept: the next ask is a miss."""
    records = Records()
    slow = CONFIG.replace(
        "mock: {{type: mock}}", "mock: {{type: mock, options: {{chunks: 10, chunk_interval: 100ms}}}}"
    )
    with GatewayServer(slow.format(shared="false"), extra_plugins=(records,)) as gw:
        body = _chat("leave early", stream=True)
        headers = {"authorization": f"Bearer {ALICE}"}
        with httpx.stream(
            "POST", gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=20
        ) as r:
            assert r.headers["x-truckllm-cache"] == "miss"
            next(r.iter_raw())  # the first frames, then the client leaves
        for _ in range(100):  # the gateway ends the request once it sees the client gone
            if records.records:
                break
            time.sleep(0.05)
        again = _openai(gw, ALICE, body)
    assert again.status_code == 200 and b"[DONE]" in again.content
    assert again.headers["x-truckllm-cache"] == "miss"
    assert _attempts(records) == 2


def test_hits_cost_the_budget_nothing() -> None:
    records = Records()
    with _gateway(records) as gw:
        for _ in range(4):
            assert _openai(gw, ALICE, _chat()).status_code == 200
        gateway = gw.gateway
        assert gateway is not None
    (miss,) = _upstream(records)
    assert miss.cost_usd > 0
    hits = [r for r in records.records if r.extra.get("cache") == "hit"]
    assert len(hits) == 3
    assert all(r.cost_usd == 0 and r.usage is None for r in hits)
    assert all(r.extra["cost_saved_usd"] == pytest.approx(miss.cost_usd) for r in hits)
    store: Any = gateway.store  # the memory store: its state is readable in process
    (budget,) = store.state.budget_states()
    assert budget.spent == pytest.approx(miss.cost_usd)
    assert budget.reserved == pytest.approx(0)


def test_an_alias_not_opted_in_is_not_cached() -> None:
    records = Records()
    with _gateway(records) as gw:
        _openai(gw, ALICE, _chat(model="other"))
        again = _openai(gw, ALICE, _chat(model="other"))
    assert again.headers["x-truckllm-cache"] == "miss"
    assert len(_upstream(records)) == 2


FAKE_CONFIG = """
providers:
  claude: {{type: anthropic, base_url: "{url}", keys: [{{name: k1, value: test-key}}]}}
models:
  m:
    deployments: [{{provider: claude, model: {model}, price: {{input: 3, output: 15}}}}]
loggers:
  - cache: {{aliases: [m]}}
"""
TOOLS = [
    {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
]


@pytest.mark.parametrize("front", ["anthropic", "openai"])
def test_a_stream_with_reasoning_tool_calls_and_usage_replays_whole(
    front: str, fake_anthropic: Any, truckllm_gateway: Any
) -> None:
    from truckllm_testing.fakes.base import Reply, ToolCall

    fake_anthropic.script(
        Reply(thinking="The user wants weather.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})])
    )
    model = fake_anthropic.served_models[0]
    gw = truckllm_gateway(FAKE_CONFIG.format(url=fake_anthropic.base_url, model=model))
    if front == "anthropic":
        body: dict[str, Any] = {
            "model": "m",
            "max_tokens": 2048,
            "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": TOOLS,
            "messages": [{"role": "user", "content": "weather in Paris?"}],
        }
        url, headers = gw.url + "/v1/messages", {"anthropic-version": "2023-06-01"}
    else:
        body = {
            "model": "m",
            "stream": True,
            "stream_options": {"include_usage": True},
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "parameters": TOOLS[0]["input_schema"]},
                }
            ],
            "messages": [{"role": "user", "content": "weather in Paris?"}],
        }
        url, headers = gw.url + "/v1/chat/completions", {}
    first = httpx.post(url, json=body, headers=headers, timeout=20)
    second = httpx.post(url, json=body, headers=headers, timeout=20)
    assert first.status_code == 200, first.text
    assert b"get_weather" in first.content  # the arguments arrive split over several deltas
    if front == "anthropic":
        assert b"thinking_delta" in first.content and b"input_json_delta" in first.content
        assert b"message_delta" in first.content
    else:
        assert b'"tool_calls"' in first.content and b"reasoning" in first.content
        assert b'"usage"' in first.content and b"[DONE]" in first.content
    assert second.headers["x-truckllm-cache"] == "hit"
    assert second.content == first.content
    assert len([r for r in fake_anthropic.requests if r.path.endswith("/messages")]) == 1
