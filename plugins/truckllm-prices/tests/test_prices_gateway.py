"""The book in a running gateway: an OpenAI deployment with no ``price:`` is charged, budgeted and
shown at the book's price; ``truckllm prices`` says what each deployment would be charged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
import truckllm_prices

from truckllm._internal.cli import main
from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

PROVIDER_KEY = "sk-prices-test-0123456789abcdef"
ADMIN = "admin-token-0123456789"
SPENDER = "tllm_spender_0123456789abcdef"
(MINI,) = [e for e in truckllm_prices.entries() if (e.provider_type, e.model) == ("openai", "gpt-4o-mini")]


def config(base_url: str, budget: float = 1.0) -> str:
    return f"""
admin: {{token: {ADMIN}}}
providers:
  oa: {{type: openai, base_url: {base_url}, keys: [{{name: k, value: {PROVIDER_KEY}}}]}}
  demo: {{type: mock}}
models:
  mini: {{deployments: [{{provider: oa, model: gpt-4o-mini-2024-07-18}}]}}
  fixed: {{deployments: [{{provider: oa, model: gpt-4o, price: {{input: 1, output: 2}}}}]}}
  demo: {{deployments: [{{provider: demo, model: echo}}]}}
keys:
  - {{name: spender, value: {SPENDER}, budget: {{usd: {budget}, period: month}}}}
"""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=(PROVIDER_KEY,))
    with upstream.running():
        yield upstream


def chat(gw: GatewayServer, model: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "price me"}]},
        headers={"authorization": f"Bearer {SPENDER}"},
        timeout=10,
    )


def test_a_budgeted_key_is_served_and_charged_at_the_book_price(fake: FakeOpenAI) -> None:
    with GatewayServer(config(fake.base_url)) as gw:
        answer = chat(gw, "mini")
        assert answer.status_code == 200, answer.text
        refused = chat(gw, "demo")  # the mock is in no book: fail closed for a budgeted key
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "cost_unknown"
        assert gw.gateway is not None
        gw.call(gw.gateway.background.drain())
        admin = {"authorization": f"Bearer {ADMIN}"}
        report = httpx.get(gw.url + "/admin/v1/usage?group_by=alias", headers=admin).json()
        models = httpx.get(gw.url + "/admin/v1/models", headers=admin).json()
    usage = answer.json()["usage"]
    expected = (
        usage["prompt_tokens"] * MINI.price.input + usage["completion_tokens"] * MINI.price.output
    ) / 1e6
    spent = {row["group"]["alias"]: row["cost_usd"] for row in report["rows"]}
    assert expected > 0 and spent["mini"] == pytest.approx(expected)
    rows = {m["alias"]: m["deployments"][0] for m in models["models"]}
    assert rows["mini"]["price_source"] == "book" and rows["mini"]["price_date"] == MINI.date
    assert rows["mini"]["price_url"] == MINI.source and rows["mini"]["context_window"] == MINI.context_window
    assert rows["fixed"]["price_source"] == "config"
    assert models["unpriced"] == ["demo#0"]


def test_a_budget_runs_out_at_the_book_price(fake: FakeOpenAI) -> None:
    with GatewayServer(config(fake.base_url, budget=0.00002)) as gw:
        answers = [chat(gw, "mini") for _ in range(10)]
    codes = [a.json().get("error", {}).get("code") for a in answers if a.status_code != 200]
    assert codes and set(codes) == {"budget_exceeded"}


def test_truckllm_prices_shows_each_deployment_and_where_its_price_comes_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "truckllm.yaml"
    path.write_text(config("https://api.openai.com/v1"))
    assert main(["prices", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert f"book {MINI.date} ({MINI.source})" in lines["mini#0"]
    assert f"{MINI.price.input:g}" in lines["mini#0"].split()
    assert "config (price:)" in lines["fixed#0"]
    assert "none" in lines["demo#0"]

    assert main(["prices", "--config", str(path), "--json", "oa/gpt-4o-mini"]) == 0
    (direct,) = json.loads(capsys.readouterr().out)
    assert direct["price_source"] == "book" and direct["price"]["input"] == MINI.price.input

    assert main(["prices", "--config", str(path), "no-such-model"]) == 1
    assert "no deployment matches" in capsys.readouterr().err


def test_a_preset_deployment_is_priced_from_its_own_book_never_as_openai(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (oss,) = [
        e
        for e in truckllm_prices.entries()
        if (e.provider_type, e.model) == ("openai:groq", "openai/gpt-oss-120b")
    ]
    path = tmp_path / "truckllm.yaml"
    path.write_text(f"""
providers:
  groq: {{type: openai, options: {{preset: groq}}, keys: [{{name: k, value: {PROVIDER_KEY}}}]}}
  local: {{type: openai, options: {{preset: ollama}}}}
models:
  oss: {{deployments: [{{provider: groq, model: openai/gpt-oss-120b}}]}}
  gpt: {{deployments: [{{provider: groq, model: gpt-4o-mini}}]}}
  llama: {{deployments: [{{provider: local, model: llama3.2}}]}}
  free: {{deployments: [{{provider: local, model: llama3.2, price: {{}}}}]}}
""")
    assert main(["prices", "--config", str(path), "--json"]) == 0
    rows = {row["deployment"]: row for row in json.loads(capsys.readouterr().out)}
    assert (
        rows["oss#0"]["price_source"] == "book" and rows["oss#0"]["price_url"] == "https://groq.com/pricing"
    )
    assert rows["oss#0"]["price"]["input"] == oss.price.input == 0.15
    assert rows["oss#0"]["price"]["cached_input"] == 0.075 and rows["oss#0"]["context_window"] == 131072
    assert rows["gpt#0"]["price_source"] == "none"  # OpenAI's own price is not Groq's
    assert rows["llama#0"]["price_source"] == "none"  # a local server is in no book...
    assert rows["free#0"]["price_source"] == "config"  # ...`price: {}` runs it free
    assert rows["free#0"]["price"]["input"] == rows["free#0"]["price"]["output"] == 0
