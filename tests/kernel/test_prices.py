"""The price book in the kernel: ``register_prices``, how a deployment gets its price (config
first, then the book, exact name then normal form), what it costs, and who sees it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx
import pytest
import truckllm_provider_mock
import truckllm_store_memory
import truckllm_strategy_cost
from loguru import logger

from truckllm import hookimpl
from truckllm._internal.config.loader import parse_config
from truckllm._internal.config.schema import PriceConfig
from truckllm._internal.health import HealthRegistry
from truckllm._internal.plugins import make_plugin_manager
from truckllm._internal.pricebook import PriceBook, book_type, dearer, normal_model, resolve, worst_cost
from truckllm._internal.request import cost
from truckllm._internal.runtime import Runtime, build_runtime
from truckllm.types import Candidate, Deployment, KeyRef, Price, PriceEntry, Provider, Usage
from truckllm_testing.server import GatewayServer

DATE = "2026-11-30"
ADMIN = "admin-token-0123456789"


def entry(model: str, inp: float, out: float, kind: str = "mock", **kw: Any) -> PriceEntry:
    return PriceEntry(
        provider_type=kind,
        model=model,
        price=Price(input=inp, output=out, **kw),
        source="https://example.test/pricing",
        date=DATE,
        context_window=128_000,
        max_output_tokens=16_000,
    )


class Book:
    """A throwaway price book plugin."""

    def __init__(self, *entries: PriceEntry, name: str = "throwaway-book") -> None:
        self.entries = entries
        self.__name__ = name

    @hookimpl
    def register_prices(self, register: Callable[[PriceEntry], None]) -> None:
        for e in self.entries:
            register(e)


BOOK = Book(
    entry("cheap", 1.0, 2.0, cached_input=0.1, cache_write=1.25, reasoning=4.0),
    entry("dear", 100.0, 200.0),
)


def runtime(yaml: str, *plugins: object) -> Runtime:
    host = make_plugin_manager(extra=(truckllm_provider_mock, *plugins), autoload=False)
    config = parse_config(yaml, host.registry())
    return build_runtime(config, host, HealthRegistry(), warn=False)


CONFIG = """
providers:
  m: {type: mock, direct: true}
  n: {type: mock}
models:
  booked: {deployments: [{provider: m, model: cheap}]}
  configured: {deployments: [{provider: m, model: cheap, price: {input: 7, output: 8}}]}
  unknown: {deployments: [{provider: m, model: nowhere}]}
"""


# --- the hook -------------------------------------------------------------------------------------


def test_hook_register_prices() -> None:
    with GatewayServer(CONFIG, extra_plugins=(truckllm_provider_mock, BOOK), autoload=False) as gw:
        assert gw.gateway is not None
        rt = gw.gateway.runtime
    assert len(rt.book) == 2
    (cand,) = rt.aliases["booked"].candidates
    assert cand.deployment.price == Price(
        input=1.0, output=2.0, cached_input=0.1, cache_write=1.25, reasoning=4.0
    )
    assert rt.aliases["booked"].pricing[0].label == f"book {DATE}"


def test_a_later_entry_wins_and_the_clash_is_a_warning() -> None:
    first = Book(entry("cheap", 1.0, 2.0), name="book-one")
    second = Book(entry("cheap", 3.0, 4.0), name="book-two")
    lines: list[str] = []
    handle = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        rt = runtime(CONFIG, first, second)
    finally:
        logger.remove(handle)
    assert rt.aliases["booked"].candidates[0].deployment.price == Price(input=3.0, output=4.0)
    assert any("book-one" in line and "book-two" in line and "mock/cheap" in line for line in lines)


@pytest.mark.parametrize(
    "bad",
    [
        entry("x", -1.0, 2.0),
        entry("x", float("nan"), 2.0),
        entry("x", 1.0, 2.0, reasoning=float("inf")),
        PriceEntry(provider_type="mock", model="x", price=Price(), date="30/11/2026"),
        PriceEntry(provider_type="mock", model="", price=Price(), date=DATE),
        PriceEntry(provider_type="mock", model="x", price=Price(), date=DATE, context_window=0),
        "not an entry",
    ],
)
def test_a_bad_entry_fails_its_plugin_and_none_of_its_entries_count(bad: object) -> None:
    book = Book(entry("cheap", 1.0, 2.0), bad, name="bad-book")  # type: ignore[arg-type]
    host = make_plugin_manager(extra=(truckllm_provider_mock, book), autoload=False)
    assert [f.name for f in host.failures] == ["bad-book"]
    assert "register_prices" in host.failures[0].error
    assert len(host.prices) == 0


# --- how a deployment gets its price --------------------------------------------------------------


def test_config_price_wins_over_the_book_and_the_book_limits_stay() -> None:
    rt = runtime(CONFIG, BOOK)
    pricing = rt.aliases["configured"].pricing[0]
    assert pricing.origin == "config" and pricing.price == Price(input=7, output=8)
    assert pricing.context_window == 128_000  # the book still knows the model's limits
    assert rt.aliases["configured"].candidates[0].deployment.price == Price(input=7, output=8)


def test_a_model_nobody_prices_is_unpriced() -> None:
    rt = runtime(CONFIG, BOOK)
    assert rt.aliases["unknown"].pricing[0].origin == "none"
    assert rt.aliases["unknown"].candidates[0].deployment.price is None


def test_provider_slash_model_gets_the_book_price_without_an_alias() -> None:
    rt = runtime(CONFIG, BOOK)
    plan = rt.plan("m/dear")
    assert plan is not None
    assert plan.candidates[0].deployment.price == Price(input=100.0, output=200.0)
    assert plan.pricing[0].origin == "book"


def test_provider_slash_model_takes_the_dearer_of_the_aliases_prices() -> None:
    # `configured` says 7/8 for m/cheap, `booked` takes the book's 1/2 (+ its cached, reasoning)
    rt = runtime(CONFIG, BOOK)
    plan = rt.plan("m/cheap")
    assert plan is not None
    price = plan.candidates[0].deployment.price
    assert price is not None and (price.input, price.output) == (7, 8)
    assert price.reasoning == 8  # the config's unset reasoning rate is its output rate, dearer than 4
    assert price.cached_input == 7  # likewise for the cached rate (input)
    assert plan.pricing[0].origin == "config"


def test_dearer_counts_an_unset_rate_as_the_rate_it_stands_for() -> None:
    a = Price(input=2.0, output=10.0)
    b = Price(input=1.0, output=12.0, cached_input=0.5, reasoning=11.0)
    assert dearer(a, b) == Price(input=2.0, output=12.0, cached_input=2.0, cache_write=None, reasoning=11.0)


@pytest.mark.parametrize(
    ("model", "normal"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-sonnet-4"),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-haiku-4-5"),
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", "anthropic.claude-3-haiku"),
        ("anthropic.claude-sonnet-4-6-v1:0", "anthropic.claude-sonnet-4-6"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-v1:0",
            "anthropic.claude-3-7-sonnet",
        ),
        ("gpt-4.1", "gpt-4.1"),
        ("o3", "o3"),
        ("us.meta", "us.meta"),  # no vendor.model after it: not a geography
    ],
)
def test_normal_model(model: str, normal: str) -> None:
    assert normal_model(model) == normal


def test_lookup_exact_first_then_normal_form_then_the_dearer_family_member() -> None:
    book = PriceBook.of(
        [
            entry("gpt-4o", 2.5, 10.0, kind="openai"),
            entry("gpt-4o-2024-05-13", 5.0, 15.0, kind="openai"),  # a snapshot priced unlike its family
            entry("claude-sonnet-4-20250514", 3.0, 15.0, kind="anthropic"),
            entry("claude-x-20250101", 1.0, 1.0, kind="anthropic"),
            entry("claude-x-20250601", 2.0, 2.0, kind="anthropic"),
            entry("anthropic.claude-sonnet-4-20250514-v1:0", 3.0, 15.0, kind="bedrock"),
            entry("eu.anthropic.claude-sonnet-4-20250514-v1:0", 3.3, 16.5, kind="bedrock"),
            entry("anthropic.claude-sonnet-4-6", 3.3, 16.5, kind="bedrock"),
            entry("global.anthropic.claude-sonnet-4-6", 3.0, 15.0, kind="bedrock"),
        ]
    )

    def found(kind: str, model: str) -> tuple[float, float] | None:
        e = book.lookup(kind, model)
        return (e.price.input, e.price.output) if e else None

    assert found("openai", "gpt-4o-2024-05-13") == (5.0, 15.0)
    assert found("openai", "gpt-4o-2024-08-06") == (2.5, 10.0)
    assert found("openai", "gpt-4o-mini") is None
    assert found("anthropic", "claude-sonnet-4@20250514") == (3.0, 15.0)  # via the normal form's index
    assert found("anthropic", "claude-sonnet-4-0") is None
    assert found("anthropic", "claude-x-latest") == (2.0, 2.0)  # two family members: the dearer
    assert found("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0") == (3.0, 15.0)
    assert found("bedrock", "eu.anthropic.claude-sonnet-4-20250514-v1:0") == (3.3, 16.5)  # listed exactly
    assert found("bedrock", "global.anthropic.claude-sonnet-4-6") == (3.0, 15.0)
    assert found("bedrock", "us.anthropic.claude-sonnet-4-6-v1:0") == (3.3, 16.5)  # family: the dearer
    assert found("openai", "claude-sonnet-4-20250514") is None  # another provider type's entry


def test_a_preset_is_priced_as_its_own_type_never_as_openai() -> None:
    book = PriceBook.of([entry("gpt-4o", 2.5, 10.0, kind="openai")])
    plain = Provider(name="o", type="openai", base_url="https://x")
    groq = Provider(name="g", type="openai", base_url="https://x", options={"preset": "groq"})
    assert book_type(groq) == "openai:groq"
    assert resolve(None, plain, "gpt-4o", book).origin == "book"
    assert resolve(None, groq, "gpt-4o", book).origin == "none"
    assert resolve(PriceConfig(input=1), groq, "gpt-4o", book).origin == "config"


# --- what it costs --------------------------------------------------------------------------------


def _candidate(price: Price | None) -> Candidate:
    return Candidate(
        id="a#0:m/k",
        deployment=Deployment(alias="a", index=0, provider="m", model="x", price=price),
        provider=Provider(name="m", type="mock", base_url="mock://"),
        key=KeyRef(provider="m", name="k"),
        stats=HealthRegistry().pair("a", "m", "x", "k"),
    )


def test_cost_prices_each_kind_of_token_at_its_own_rate() -> None:
    price = Price(input=1.0, output=2.0, cached_input=0.1, cache_write=1.25, reasoning=4.0)
    usage = Usage(
        prompt_tokens=1_000_000 + 200_000 + 300_000,  # fresh + cached + written
        cached_tokens=200_000,
        cache_write_tokens=300_000,
        completion_tokens=500_000 + 250_000,  # visible + reasoning
        reasoning_tokens=250_000,
    )
    expected = 1.0 + 0.2 * 0.1 + 0.3 * 1.25 + 0.5 * 2.0 + 0.25 * 4.0
    assert cost(_candidate(price), usage) == pytest.approx(expected)


def test_cost_unset_rates_fall_back_to_input_and_output() -> None:
    usage = Usage(
        prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=1_000_000, reasoning_tokens=600_000
    )
    assert cost(_candidate(Price(input=3.0, output=5.0)), usage) == pytest.approx(3.0 + 5.0)
    assert cost(_candidate(None), usage) == 0.0


def test_worst_cost_takes_the_dearest_rate_of_each_side() -> None:
    assert worst_cost(Price(input=1.0, output=2.0), 1_000_000, 1_000_000) == pytest.approx(3.0)
    dear = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75, reasoning=20.0)
    assert worst_cost(dear, 1_000_000, 1_000_000) == pytest.approx(3.75 + 20.0)
    usage = Usage(
        prompt_tokens=1_000_000, cache_write_tokens=1_000_000, completion_tokens=10, reasoning_tokens=10
    )
    assert cost(_candidate(dear), usage) <= worst_cost(dear, 1_000_000, 10)  # a reservation covers the bill


def test_cost_reasoning_never_counts_more_than_the_completion() -> None:
    usage = Usage(prompt_tokens=0, completion_tokens=100, reasoning_tokens=10_000)
    assert cost(_candidate(Price(output=1.0, reasoning=1_000.0)), usage) == pytest.approx(100 * 1_000.0 / 1e6)


# --- who sees it ----------------------------------------------------------------------------------


def test_an_unpriced_alias_deployment_is_a_startup_warning() -> None:
    lines: list[str] = []
    handle = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        with GatewayServer(CONFIG, extra_plugins=(truckllm_provider_mock, BOOK), autoload=False):
            pass
    finally:
        logger.remove(handle)
    unpriced = [line for line in lines if "has no price" in line]
    assert len(unpriced) == 1
    assert "'unknown'" in unpriced[0] and "'m'" in unpriced[0] and "'nowhere'" in unpriced[0]


def test_admin_models_shows_each_deployments_price_and_its_origin() -> None:
    cfg = CONFIG + f"admin: {{token: {ADMIN}}}\n"
    with GatewayServer(cfg, extra_plugins=(truckllm_provider_mock, BOOK), autoload=False) as gw:
        headers = {"authorization": f"Bearer {ADMIN}"}
        assert httpx.get(gw.url + "/admin/v1/models").status_code == 401
        chat = {"model": "m/dear", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(gw.url + "/v1/chat/completions", json=chat).status_code == 200
        body = httpx.get(gw.url + "/admin/v1/models", headers=headers).json()
    rows = {m["alias"]: m["deployments"][0] for m in body["models"]}
    assert rows["booked"]["price_source"] == "book" and rows["booked"]["price_label"] == f"book {DATE}"
    assert rows["booked"]["price_url"] == "https://example.test/pricing"
    assert rows["booked"]["price"]["reasoning"] == 4.0 and rows["booked"]["context_window"] == 128_000
    assert rows["configured"]["price_source"] == "config" and rows["configured"]["price"]["input"] == 7
    assert rows["unknown"]["price_source"] == "none" and rows["unknown"]["price"] is None
    assert body["unpriced"] == ["unknown#0"]
    assert [(d["alias"], d["price_source"]) for d in body["direct"]] == [("m/dear", "book")]


# --- budgets, usage records and the cost strategy, with no price: in the config -------------------

BUDGET = f"""
admin: {{token: {ADMIN}}}
providers:
  cheap-p: {{type: mock}}
  dear-p: {{type: mock}}
models:
  both:
    strategy: cost
    deployments: [{{provider: dear-p, model: dear}}, {{provider: cheap-p, model: cheap}}]
  pricey: {{deployments: [{{provider: dear-p, model: dear}}]}}
  unknown: {{deployments: [{{provider: cheap-p, model: nowhere}}]}}
  mixed:
    strategy: first
    deployments: [{{provider: cheap-p, model: nowhere}}, {{provider: dear-p, model: cheap}}]
keys:
  - {{name: spender, value: spender-key-0123, budget: {{usd: 0.01, period: month}}}}
  - {{name: other, value: other-key-0123456}}
"""


@pytest.fixture
def budgeted() -> Iterator[GatewayServer]:
    plugins = (truckllm_provider_mock, truckllm_store_memory, truckllm_strategy_cost, BOOK)
    with GatewayServer(BUDGET, extra_plugins=plugins, autoload=False) as gw:
        yield gw


def chat(gw: GatewayServer, model: str, words: int = 5) -> httpx.Response:
    body = {
        "model": model,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": " ".join(["w"] * words)}],
    }
    return httpx.post(
        gw.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer spender-key-0123"}
    )


def test_the_cost_strategy_orders_by_book_prices(budgeted: GatewayServer) -> None:
    answers = [chat(budgeted, "both") for _ in range(5)]
    assert [a.headers["x-truckllm-provider"] for a in answers] == ["cheap-p"] * 5


def test_a_budgeted_key_skips_the_unpriced_deployment_for_the_book_priced_one(
    budgeted: GatewayServer,
) -> None:
    answers = [chat(budgeted, "mixed") for _ in range(3)]
    assert [a.headers["x-truckllm-provider"] for a in answers] == ["dear-p"] * 3  # first in order: unpriced
    anyone = httpx.post(
        budgeted.url + "/v1/chat/completions",
        json={"model": "mixed", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": "Bearer other-key-0123456"},
    )
    assert anyone.headers["x-truckllm-provider"] == "cheap-p"  # a key with no budget takes the first


def test_budgets_and_usage_records_use_book_prices(budgeted: GatewayServer) -> None:
    assert chat(budgeted, "unknown").json()["error"]["code"] == "cost_unknown"  # unpriced: fail closed
    served = chat(budgeted, "pricey")
    assert served.status_code == 200
    assert budgeted.gateway is not None
    budgeted.call(budgeted.gateway.background.drain())  # the records are stored after the answers
    report = httpx.get(
        budgeted.url + "/admin/v1/usage?group_by=alias", headers={"authorization": f"Bearer {ADMIN}"}
    ).json()
    spent = {row["group"]["alias"]: row["cost_usd"] for row in report["rows"]}
    usage = served.json()["usage"]
    assert spent["pricey"] == pytest.approx(
        (usage["prompt_tokens"] * 100 + usage["completion_tokens"] * 200) / 1e6
    )
    answers = [chat(budgeted, "pricey", words=200) for _ in range(10)]  # $0.02+ a request: over $0.01
    codes = [a.json().get("error", {}).get("code") for a in answers if a.status_code != 200]
    assert codes and set(codes) == {"budget_exceeded"}


# --- truckllm prices ------------------------------------------------------------------------------


def test_truckllm_prices_prints_each_deployment_with_its_origin(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from truckllm._internal.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    assert main(["prices", "--config", str(path), "configured"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:7] == [
        "deployment",
        "provider/model",
        "input",
        "output",
        "cached",
        "cache",
        "write",
    ]
    (row,) = out[2:]
    assert row.split()[:7] == [
        "configured#0",
        "m/cheap",
        "7",
        "8",
        "7",
        "7",
        "8",
    ]  # unset rates: input/output
    assert row.endswith("config (price:)")
    assert main(["prices", "--config", str(path), "unknown"]) == 0
    assert "none: cost counts as $0" in capsys.readouterr().out
    assert main(["prices", "--config", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["deployment"]: r["price_source"] for r in rows}["configured#0"] == "config"
    assert main(["prices", "--config", str(path), "nothing-here"]) == 1
    assert "no deployment matches model 'nothing-here'" in capsys.readouterr().err
    assert main(["prices", "--config", str(tmp_path / "missing.yaml")]) == 2
