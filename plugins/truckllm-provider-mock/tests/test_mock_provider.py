"""The mock provider: entry point, deterministic answers, streams, faults."""

from __future__ import annotations

import json

import pytest
import truckllm_provider_mock
from truckllm_provider_mock import parse_fault

from truckllm.plugins import make_plugin_manager
from truckllm.testing.server import GatewayServer

CONFIG = """
providers:
  demo: {type: mock, options: {chunks: 3}}
models:
  demo: {deployments: [{provider: demo, model: echo}]}
"""


def test_entry_point_registers_the_mock_provider_type() -> None:
    host = make_plugin_manager()
    assert host.providers["mock"].needs_keys is False
    assert host.pm.get_plugin("provider-mock") is truckllm_provider_mock


def test_fault_header_parsing() -> None:
    fault = parse_fault("status=429, retry_after=2,latency=bad,cut_after=1")
    assert (fault.status, fault.retry_after, fault.latency, fault.cut_after) == (429, 2.0, None, 1)


@pytest.fixture(scope="module")
def gw() -> object:
    with GatewayServer(CONFIG) as server:
        yield server


def post(gw: GatewayServer, body: dict[str, object], **headers: str) -> object:
    import httpx2 as httpx

    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_answers_are_deterministic(gw: GatewayServer) -> None:
    body = {"model": "demo", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a b"}]}
    first, second = post(gw, body).json(), post(gw, body).json()  # type: ignore[attr-defined]
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"] == "mock: a b"
    assert first["usage"]["prompt_tokens"] == 4 and first["usage"]["completion_tokens"] == 3


def test_stream_chunks_and_usage(gw: GatewayServer) -> None:
    body = {"model": "demo", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "abcdef"}]}
    text = post(gw, body).text  # type: ignore[attr-defined]
    events = [json.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")]
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]) == "mock: abcdef"
    assert events[-1]["usage"]["completion_tokens"] == 2 and text.endswith("data: [DONE]\n\n")


def test_fault_header_injects_errors(gw: GatewayServer) -> None:
    body = {"model": "demo", "messages": [{"role": "user", "content": "x"}]}
    limited = post(gw, body, **{"x-mock-fault": "status=429,retry_after=3"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"  # type: ignore[attr-defined]
    cut = post(gw, {**body, "stream": True}, **{"x-mock-fault": "cut_after=1"}).text  # type: ignore[attr-defined]
    assert '"error"' in cut and "[DONE]" not in cut
