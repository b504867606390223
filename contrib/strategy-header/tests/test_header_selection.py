"""Ordering by the ``x-truckllm-prefer`` header, unit by unit and through a running gateway."""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from truckllm_strategy_header import HEADER, MAX_NAMES, preferences, select_provider

from truckllm.types import Candidate, Deployment, KeyRef, Provider, SelectionContext
from truckllm_testing.fakes import FakeOpenAI, FakeUpstream
from truckllm_testing.server import GatewayServer


def cand(provider: str, key: str, index: int = 0) -> Candidate:
    return Candidate(
        id=f"a#{index}:{provider}/{key}",
        deployment=Deployment(alias="a", index=index, provider=provider, model="m"),
        provider=Provider(name=provider, type="openai", base_url="http://upstream.test/v1"),
        key=KeyRef(provider=provider, name=key),
        stats=None,
    )


CANDS = [cand("openai", "oa-1"), cand("openai", "oa-2"), cand("azure", "az-1", 1), cand("groq", "gq-1", 2)]


def order(header: str | None) -> list[str]:
    headers = {HEADER: header} if header is not None else {}
    context = SelectionContext(alias="a", now=0.0, random=random.Random(0), state={}, headers=headers)
    ordered = select_provider("header", CANDS, context)
    assert ordered is not None and sorted(c.id for c in ordered) == sorted(c.id for c in CANDS)
    return [f"{c.provider.name}/{c.key.name}" for c in ordered]


CONFIG_ORDER = ["openai/oa-1", "openai/oa-2", "azure/az-1", "groq/gq-1"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CONFIG_ORDER),
        ("", CONFIG_ORDER),
        ("nobody", CONFIG_ORDER),
        ("azure", ["azure/az-1", "openai/oa-1", "openai/oa-2", "groq/gq-1"]),
        ("oa-2", ["openai/oa-2", "openai/oa-1", "azure/az-1", "groq/gq-1"]),
        ("openai/oa-2", ["openai/oa-2", "openai/oa-1", "azure/az-1", "groq/gq-1"]),
        ("groq, azure", ["groq/gq-1", "azure/az-1", "openai/oa-1", "openai/oa-2"]),
        (" groq ,, openai ", ["groq/gq-1", "openai/oa-1", "openai/oa-2", "azure/az-1"]),
    ],
)
def test_preferred_candidates_first_then_config_order(header: str | None, expected: list[str]) -> None:
    assert order(header) == expected


def test_other_strategies_are_not_ours() -> None:
    context = SelectionContext(alias="a", now=0.0, random=random.Random(0), state={})
    assert select_provider("weighted", CANDS, context) is None


def test_header_value_is_bounded() -> None:
    assert preferences(",".join(f"p{i}" for i in range(50))) == [f"p{i}" for i in range(MAX_NAMES)]
    assert preferences("x" * 5000) == ["x" * 1024]


CONFIG = """
routing: {{backoff: {{base: 1ms, max: 5ms}}}}
providers:
  primary: {{type: openai, base_url: "{primary}", keys: [{{name: p-key, value: test-key}}]}}
  secondary: {{type: openai, base_url: "{secondary}", keys: [{{name: s-key, value: test-key}}]}}
models:
  chat:
    strategy: header
    deployments: [{{provider: primary, model: m1}}, {{provider: secondary, model: m2}}]
"""


def ask(gw: GatewayServer, prefer: str | None = None) -> str:
    headers = {"content-type": "application/json", "authorization": "Bearer any"}
    if prefer is not None:
        headers[HEADER] = prefer
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    request = urllib.request.Request(gw.url + "/v1/chat/completions", json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["x-truckllm-provider"])


def test_the_gateway_routes_by_the_header(
    truckllm_gateway: Callable[..., GatewayServer], truckllm_fake: Callable[..., FakeUpstream]
) -> None:
    primary, secondary = truckllm_fake(FakeOpenAI), truckllm_fake(FakeOpenAI)
    gw = truckllm_gateway(CONFIG.format(primary=primary.base_url, secondary=secondary.base_url))
    assert [ask(gw), ask(gw, "secondary"), ask(gw, "s-key"), ask(gw, "elsewhere")] == [
        "primary",
        "secondary",
        "secondary",
        "primary",
    ]
    received: list[Any] = [r.json["model"] for r in secondary.requests]
    assert received == ["m2", "m2"]
