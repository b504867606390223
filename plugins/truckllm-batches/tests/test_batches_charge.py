"""Spend that already happened upstream is always recorded: a finished batch's usage is charged
exactly once at every level (key, team, organisation, the key's tags) even when the key is over
its rpm and over its budget, by a client's retrieve or by the poller; and the poller's own
questions never take the key's rpm nor are refused by its budget."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest
import truckllm_batches
import truckllm_provider_anthropic
import truckllm_store_memory

from truckllm.kit.store import Admission, BudgetCheck
from truckllm_testing.conformance import wait_for
from truckllm_testing.fakes import FakeAnthropic
from truckllm_testing.server import GatewayServer

POOR = "poor-secret"
ADMIN = "admin-token-for-the-batch-charge-tests"
PRICE = {"input": 100_000.0, "output": 0.0, "batch": 0.5}
"""0.1 USD a prompt token (0.05 at the batch price): a batch's charge is large next to a call's
reservation."""
BUDGET = 40.0
PROBE = 1e9


def _config(fake: FakeAnthropic) -> str:
    return f"""
admin: {{token: {ADMIN}}}
keys:
  - {{name: poor, value: {POOR}, team: lab, rpm: 5, budget: {{usd: {BUDGET}}}, tags: [nightly]}}
teams: {{lab: {{org: acme, budgets: [{{usd: 100000}}]}}}}
orgs: {{acme: {{budgets: [{{usd: 100000, period: day}}]}}}}
tags: {{budgets: {{nightly: {{usd: 100000}}}}}}
routing: {{retries: 0, cooldown: {{failures: 1000}}}}
providers:
  ant: {{type: anthropic, base_url: {fake.base_url}, keys: [{{name: a1, value: test-key}}]}}
models:
  claude:
    deployments: [{{provider: ant, model: claude-sonnet-4-5, price: {json.dumps(PRICE)}}}]
loggers: [{{batches: {{poll_interval: 0}}}}]
"""


@pytest.fixture
def setup(records: Any) -> Iterator[tuple[GatewayServer, FakeAnthropic]]:
    """A fresh gateway (fresh spend) and fake for each test."""
    records.records.clear()
    plugins = (truckllm_batches, truckllm_provider_anthropic, truckllm_store_memory, records)
    with (
        FakeAnthropic(keys=["test-key"]).running() as fake,
        GatewayServer(_config(fake), autoload=False, extra_plugins=plugins) as gw,
    ):
        yield gw, fake
        assert fake.violations == []


def _file(words: int, lines: int) -> bytes:
    rows = []
    for i in range(lines):
        text = " ".join(["word"] * words)
        body = {"model": "claude", "messages": [{"role": "user", "content": text}]}
        rows.append(
            json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
        )
    return ("\n".join(rows) + "\n").encode()


def _billed(records: Any) -> list[Any]:
    return [r for r in records.records if r.endpoint == "batches.usage" and r.usage is not None]


def _results_reads(fake: FakeAnthropic, batch_id: str) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.path.endswith(f"/{batch_id}/results"))


def _spent(gw: GatewayServer, names: list[tuple[str, str]]) -> dict[str, float]:
    """What the store says each budget (store key, period) has spent (reserved included)."""

    async def probe() -> dict[str, float]:
        assert gw.gateway is not None and gw.gateway.store is not None
        checks = tuple(BudgetCheck(key=k, limit=PROBE, period=p, amount=0.0) for k, p in names)  # type: ignore[arg-type]
        decision = await gw.gateway.store.admit(Admission(request_id="probe", budgets=checks))
        return {k: round(PROBE - decision.remaining[k], 6) for k, _ in names}

    return gw.call(probe())


def _create(client: openai.OpenAI, words: int, lines: int) -> Any:
    file = client.files.create(file=("in.jsonl", _file(words, lines)), purpose="batch")
    return client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def test_over_rpm_and_over_budget_each_batch_is_charged_once_at_every_level(
    setup: tuple[GatewayServer, FakeAnthropic], records: Any
) -> None:
    gw, fake = setup
    client = openai.OpenAI(api_key=POOR, base_url=gw.url + "/v1", max_retries=0)
    big = _create(client, 200, 5)  # about 1,000 prompt tokens: 50 USD at the batch price > the budget
    small = _create(client, 3, 1)  # 4 requests of the key's rpm of 5 taken
    fake.end_batch(big.id)
    fake.end_batch(small.id)

    assert client.batches.retrieve(big.id).status == "completed"  # the 5th: its usage read is a 6th
    wait_for(lambda: len(_billed(records)) == 1, what="the big batch's usage record")
    big_cost = _billed(records)[0].cost_usd
    assert big_cost > BUDGET  # the key is now over its budget (and its rpm)

    with pytest.raises(openai.RateLimitError):  # a client's own call is still refused
        client.batches.retrieve(small.id)
    component = gw.gateway.view.component(truckllm_batches.BatchPoller)  # type: ignore[union-attr]
    assert component is not None and component.poller is not None
    gw.call(component.poller.poll_once())  # the poller's retrieve and usage read: never refused
    wait_for(lambda: len(_billed(records)) == 2, what="the small batch's usage record")
    gw.call(component.poller.poll_once())  # again: nothing more
    with pytest.raises(openai.RateLimitError):
        client.batches.retrieve(small.id)

    billed = _billed(records)
    assert len(billed) == 2
    assert [_results_reads(fake, b.id) for b in (big, small)] == [1, 1]  # each output read once
    total = round(sum(r.cost_usd for r in billed), 6)
    for record in billed:
        assert (record.gateway_key, record.team, record.org, record.tags) == (
            "poor",
            "lab",
            "acme",
            ("nightly",),
        )
        prompt = record.usage.prompt_tokens
        assert record.cost_usd == pytest.approx(prompt * PRICE["input"] / 1_000_000 * PRICE["batch"])

    def settled() -> bool:
        spent = _spent(gw, [("gk:poor:budget", "month"), ("tag:nightly:budget", "month")])
        return all(v == pytest.approx(total) for v in spent.values())

    wait_for(settled, what="the key's and the tag's budgets settled")
    answer = httpx.get(gw.url + "/admin/v1/teams", headers={"authorization": f"Bearer {ADMIN}"})
    body = answer.json()
    team_spent = [b["spent_usd"] for t in body["teams"] if t["name"] == "lab" for b in t["budgets"]]
    org_spent = [b["spent_usd"] for o in body["orgs"] if o["name"] == "acme" for b in o["budgets"]]
    assert team_spent == [pytest.approx(total)] and org_spent == [pytest.approx(total)]


def test_the_pollers_questions_take_none_of_the_keys_rpm(
    setup: tuple[GatewayServer, FakeAnthropic], records: Any
) -> None:
    gw, fake = setup
    client = openai.OpenAI(api_key=POOR, base_url=gw.url + "/v1", max_retries=0)
    batch = _create(client, 3, 1)  # 2 of the key's 5
    component = gw.gateway.view.component(truckllm_batches.BatchPoller)  # type: ignore[union-attr]
    assert component is not None and component.poller is not None
    for _ in range(6):  # an open batch asked about 6 times (interval 0: always due)
        gw.call(component.poller.poll_once())
    assert sum(1 for r in fake.requests if r.method == "GET" and r.path.endswith("/" + batch.id)) == 6
    for _ in range(3):  # the key's own 3 left are all still there
        client.batches.retrieve(batch.id)
    with pytest.raises(openai.RateLimitError):
        client.batches.retrieve(batch.id)
