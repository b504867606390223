"""Gateway keys' rules and the metrics apply to ``POST /v1/responses`` exactly as to chat.

Through a real gateway (memory store, the prometheus logger): a key's ``rpm`` is spent by
Responses and chat requests alike and answered 429 with ``Retry-After`` in OpenAI's shape; a
key's budget refuses a Responses request as it refuses the chat one; a key's model allow-list
answers the Responses request as it answers chat; and ``truckllm_requests_total`` counts
Responses requests under ``dialect="responses"``, whole and streamed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import truckllm_dialect_responses as dialect_plugin

from truckllm_testing.server import GatewayServer

ADMIN = "responses-governance-admin-9Xq2Lm"
LIMITED, POOR, NARROW = "limited-secret", "poor-secret", "narrow-secret"


@pytest.fixture
def gw(upstreams: Any, kit: Any) -> Iterator[GatewayServer]:
    """Keys ``limited`` (rpm 2), ``poor`` (a budget no request fits), ``narrow`` (alias ``claude``
    only); alias ``claude`` (Anthropic, priced) and ``other`` (the same deployment)."""
    kit.need("anthropic")
    prometheus = pytest.importorskip("truckllm_logger_prometheus")
    memory = pytest.importorskip("truckllm_store_memory")
    anthropic = importlib.import_module("truckllm_provider_anthropic")
    deployment = "{provider: ant, model: claude-sonnet-4-5-20250929, price: {input: 3.0, output: 15.0}}"
    config = f"""
admin: {{token: {ADMIN}}}
store: {{type: memory}}
loggers: [prometheus]
keys:
  - {{name: limited, value: {LIMITED}, rpm: 2}}
  - {{name: poor, value: {POOR}, budget: {{usd: 0.000001, period: day}}}}
  - {{name: narrow, value: {NARROW}, models: [claude]}}
routing: {{retries: 0}}
providers:
  ant: {{type: anthropic, base_url: {upstreams.anthropic.base_url}, keys: [{{name: a, value: ak}}]}}
models:
  claude: {{deployments: [{deployment}]}}
  other: {{deployments: [{deployment}]}}
"""
    plugins = (dialect_plugin, anthropic, prometheus, memory)
    with GatewayServer(config, autoload=False, extra_plugins=plugins) as server:
        yield server


def _responses(gw: GatewayServer, key: str, model: str = "claude", stream: bool = False) -> httpx.Response:
    body = {"model": model, "input": "hello", "max_output_tokens": 64, "stream": stream, "store": False}
    return httpx.post(
        gw.url + "/v1/responses", json=body, headers={"authorization": f"Bearer {key}"}, timeout=20
    )


def _chat(gw: GatewayServer, key: str, model: str = "claude") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 64}
    return httpx.post(
        gw.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=20
    )


def _error(answer: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error  # OpenAI's shape
    return error


def test_rpm_is_shared_with_chat_and_answered_429(gw: GatewayServer, fresh: Any) -> None:
    assert _responses(gw, LIMITED).status_code == 200
    assert _chat(gw, LIMITED).status_code == 200
    over = _responses(gw, LIMITED, stream=True)
    chat_over = _chat(gw, LIMITED)
    assert over.status_code == chat_over.status_code == 429
    assert int(over.headers["retry-after"]) >= 1 and "retry-after" in chat_over.headers
    assert _error(over)["code"] == _error(chat_over)["code"]
    assert len(fresh.anthropic.requests) == 2  # the refused ones never went upstream


def test_a_budget_refuses_as_for_chat(gw: GatewayServer, fresh: Any) -> None:
    refused, chat = _responses(gw, POOR), _chat(gw, POOR)
    assert refused.status_code == chat.status_code == 429
    assert (_error(refused)["type"], _error(refused)["code"]) == (_error(chat)["type"], _error(chat)["code"])
    assert fresh.anthropic.requests == []


def test_the_model_allow_list_answers_as_for_chat(gw: GatewayServer, fresh: Any) -> None:
    assert _responses(gw, NARROW).status_code == 200
    refused, chat = _responses(gw, NARROW, model="other"), _chat(gw, NARROW, model="other")
    assert refused.status_code == chat.status_code and refused.status_code in (401, 403, 404)
    assert _error(refused)["code"] == _error(chat)["code"]
    assert len(fresh.anthropic.requests) == 1


def test_metrics_count_responses_under_their_dialect(gw: GatewayServer, fresh: Any) -> None:
    assert _responses(gw, NARROW).status_code == 200
    streamed = _responses(gw, NARROW, stream=True)
    assert streamed.status_code == 200 and b"response.completed" in streamed.content
    page = httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}, timeout=20)
    assert page.status_code == 200
    counted: list[tuple[dict[str, str], float]] = []
    for line in page.text.splitlines():
        if line.startswith("truckllm_requests_total{"):
            inside, value = line[len("truckllm_requests_total{") :].rsplit("} ", 1)
            labels = dict(pair.split("=", 1) for pair in inside.split(","))
            counted.append(({k: v.strip('"') for k, v in labels.items()}, float(value)))
    for stream in ("false", "true"):
        want = {"alias": "claude", "provider": "ant", "status_class": "2xx", "dialect": "responses"}
        found = [n for labels, n in counted if labels == {**want, "stream": stream}]
        assert found and found[0] >= 1, counted
