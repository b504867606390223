"""The price book behind the cloud providers (issue 16): a gateway whose config has no ``price:``
serves a budgeted gateway key from Bedrock, Vertex AI (Gemini and Claude) and Azure OpenAI, charges
each kind of token at its own book rate (cached reads, cache writes, reasoning), and the ``cost``
strategy picks the cheaper cloud by the book alone.

The fakes report known token counts (:class:`Reply`); the expected cost is worked out here from
those counts and the book's rates (which ``/admin/v1/models`` must say come from the book, dated,
and which must be the ``truckllm-prices`` entries), not from the gateway's own arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import truckllm_prices

from truckllm_testing.fakes import Reply
from truckllm_testing.fakes.azure import FakeAzure
from truckllm_testing.fakes.bedrock import FakeBedrock
from truckllm_testing.fakes.vertex import FakeVertex
from truckllm_testing.server import GatewayServer

pytest.importorskip("truckllm_provider_bedrock")
pytest.importorskip("truckllm_provider_vertex")
pytest.importorskip("truckllm_provider_azure")
pytest.importorskip("truckllm_strategy_cost")

ADMIN = "admin-token-cloud-prices-0123"
SPENDER = "tllm_cloud_spender_0123456789"
AWS_KEY = "AKIDCLOUDPRICES:cloud-prices-secret"
PROJECT = "price-project"
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
BOOK_MODELS = {  # alias -> (provider type, the book entry the deployment's model is found under)
    "bedrock-sonnet": ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
    "vertex-sonnet": ("vertex-anthropic", "claude-sonnet-4-5@20250929"),
    "vertex-gemini": ("vertex", "gemini-2.5-flash"),
    "azure-o4": ("azure", "o4-mini"),
}
# the counts each fake reports (prompt tokens include cached reads and cache writes; completion
# tokens include reasoning); the Converse and Anthropic usages carry no reasoning count, Gemini
# and OpenAI no cache writes
PROMPT, COMPLETION = 10_000, 3_000
REPLY = Reply(
    text="priced",
    prompt_tokens=PROMPT,
    cached_tokens=6_000,
    cache_write_tokens=2_000,
    completion_tokens=COMPLETION,
    reasoning_tokens=1_000,
    thinking="counted",
)
SEEN = {  # alias -> (cached, cache written, reasoning) as the provider reports them
    "bedrock-sonnet": (6_000, 2_000, 0),
    "vertex-sonnet": (6_000, 2_000, 0),
    "vertex-gemini": (6_000, 0, 1_000),
    "azure-o4": (6_000, 0, 1_000),
}


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeBedrock, FakeVertex, FakeAzure]]:
    bedrock, vertex, azure = (
        FakeBedrock(keys=[AWS_KEY]),
        FakeVertex(keys=["sa-1"], project=PROJECT),
        FakeAzure(),
    )
    with bedrock.running(), vertex.running(), azure.running():
        yield bedrock, vertex, azure


def config(bedrock: FakeBedrock, vertex: FakeVertex, azure: FakeAzure) -> str:
    """Four cloud providers, no ``price:`` anywhere, a gateway key with a budget (JSON is YAML)."""
    sa = [{"name": "sa", "value": vertex.service_account_json("sa-1")}]
    return json.dumps(
        {
            "admin": {"token": ADMIN},
            "routing": {"retries": 0},
            "providers": {
                "bedrock": {
                    "type": "bedrock",
                    "base_url": bedrock.origin,
                    "options": {"region": "us-east-1"},
                    "keys": [{"name": "k", "value": AWS_KEY}],
                },
                "claude-vx": {
                    "type": "vertex-anthropic",
                    "base_url": vertex.base_url,
                    "options": {"project": PROJECT, "location": "us-east5"},
                    "keys": sa,
                },
                "gemini-vx": {
                    "type": "vertex",
                    "base_url": vertex.base_url,
                    "options": {"project": PROJECT, "location": "us-central1"},
                    "keys": sa,
                },
                "azure": {
                    "type": "azure",
                    "base_url": azure.base_url,
                    "keys": [{"name": "k", "value": "test-key"}],
                },
            },
            "models": {
                "bedrock-sonnet": {"deployments": [{"provider": "bedrock", "model": BEDROCK_MODEL}]},
                "vertex-sonnet": {
                    "deployments": [{"provider": "claude-vx", "model": "claude-sonnet-4-5@20250929"}]
                },
                "vertex-gemini": {"deployments": [{"provider": "gemini-vx", "model": "gemini-2.5-flash"}]},
                "azure-o4": {"deployments": [{"provider": "azure", "model": "o4-mini"}]},
                "claude-cheapest": {
                    "strategy": "cost",
                    "deployments": [
                        {"provider": "bedrock", "model": BEDROCK_MODEL},
                        {"provider": "claude-vx", "model": "claude-haiku-4-5@20251001"},
                    ],
                },
            },
            "keys": [{"name": "spender", "value": SPENDER, "budget": {"usd": 5, "period": "month"}}],
        }
    )


@pytest.fixture(scope="module")
def gateway(fakes: tuple[FakeBedrock, FakeVertex, FakeAzure]) -> Iterator[GatewayServer]:
    with GatewayServer(config(*fakes)) as gw:
        yield gw


def chat(gw: GatewayServer, model: str, *, stream: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "price me"}]}
    if stream:
        body["stream"] = True
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {SPENDER}"},
        timeout=20,
    )


def admin(gw: GatewayServer, path: str) -> Any:
    return httpx.get(gw.url + path, headers={"authorization": f"Bearer {ADMIN}"}, timeout=10).json()


def book_rates(provider_type: str, model: str) -> set[float]:
    """The input rates the shipped book lists for this model (every dated line)."""
    return {
        e.price.input
        for e in truckllm_prices.entries()
        if (e.provider_type, e.model) == (provider_type, model)
    }


def expected_cost(price: dict[str, Any], cached: int, written: int, reasoning: int) -> float:
    """USD for :data:`REPLY`'s counts as a provider reports them, each kind at its own rate."""
    fresh = PROMPT - cached - written
    fallbacks = {"cached_input": "input", "cache_write": "input", "reasoning": "output"}
    rate: dict[str, float] = {
        k: price[k] if price.get(k) is not None else price[v] for k, v in fallbacks.items()
    }
    return (
        fresh * float(price["input"])
        + cached * rate["cached_input"]
        + written * rate["cache_write"]
        + (COMPLETION - reasoning) * float(price["output"])
        + reasoning * rate["reasoning"]
    ) / 1e6


def test_each_cloud_is_priced_by_the_book_and_charged_per_kind_of_token(
    gateway: GatewayServer, fakes: tuple[FakeBedrock, FakeVertex, FakeAzure]
) -> None:
    for fake in fakes:
        fake.reset()
    for alias in BOOK_MODELS:
        for stream in (False, True):
            for fake in fakes:
                fake.script(REPLY)
            answer = chat(gateway, alias, stream=stream)
            assert answer.status_code == 200, (alias, stream, answer.text)
    for fake in fakes:
        assert fake.violations == []
    assert gateway.gateway is not None
    gateway.call(gateway.gateway.background.drain())
    models = admin(gateway, "/admin/v1/models")
    report = admin(gateway, "/admin/v1/usage?group_by=alias")
    rows = {m["alias"]: m["deployments"][0] for m in models["models"]}
    spent = {row["group"]["alias"]: row["cost_usd"] for row in report["rows"]}
    assert models["unpriced"] == []
    for alias, (provider_type, book_model) in BOOK_MODELS.items():
        row = rows[alias]
        assert row["price_source"] == "book" and row["price_date"], (alias, row)
        assert row["price"]["input"] in book_rates(provider_type, book_model), (alias, row["price"])
        one = expected_cost(row["price"], *SEEN[alias])
        assert one > 0 and spent[alias] == pytest.approx(2 * one), (alias, spent[alias], one)


def test_the_cost_strategy_takes_the_cheaper_cloud_by_book_prices(
    gateway: GatewayServer, fakes: tuple[FakeBedrock, FakeVertex, FakeAzure]
) -> None:
    answers = [chat(gateway, "claude-cheapest") for _ in range(4)]
    assert [a.status_code for a in answers] == [200] * 4
    assert {a.headers["x-truckllm-provider"] for a in answers} == {"claude-vx"}  # Haiku on Vertex
