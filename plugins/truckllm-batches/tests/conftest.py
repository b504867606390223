"""A real gateway with the batches dialect and the OpenAI provider, in front of a fake OpenAI with
two accounts (provider keys ``ok1`` and ``ok2``), and the usage records it made."""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import truckllm_batches
import truckllm_provider_openai
import truckllm_strategy_round_robin

from truckllm import hookimpl
from truckllm.types import RequestRecord
from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

TEAM = "team-secret"
"""The gateway key ``team``."""
OTHER = "other-secret"
"""The gateway key ``other``: never sees ``team``'s files and batches."""
PRICE = {"input": 2.0, "output": 8.0}
"""The price of the ``gpt`` alias's deployment (USD per 1M tokens)."""


class Records:
    """A throwaway plugin keeping every usage record."""

    __name__ = "throwaway-records"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Keep the record."""
        self.records.append(record)

    def of(self, endpoint: str) -> list[RequestRecord]:
        """The records of ``endpoint``."""
        return [r for r in self.records if r.endpoint == endpoint]


def config(fake: FakeOpenAI) -> str:
    """Alias ``gpt`` (round-robin over the two keys of provider ``oai``), alias ``mini`` (the
    same provider) that ``team`` may not use; gateway keys ``team`` and ``other``."""
    return f"""
keys:
  - {{name: team, value: {TEAM}, models: [gpt, gpt-batch]}}
  - {{name: other, value: {OTHER}}}
routing: {{retries: 0, cooldown: {{failures: 1000}}}}
providers:
  oai: {{type: openai, base_url: {fake.base_url}, keys: [{{name: k1, value: ok1}}, {{name: k2, value: ok2}}]}}
models:
  gpt:
    strategy: round-robin
    deployments: [{{provider: oai, model: gpt-4o, price: {json.dumps(PRICE)}}}]
  gpt-batch:
    deployments: [{{provider: oai, model: gpt-4o, price: {{input: 2.0, output: 8.0, batch: 0.25}}}}]
  mini:
    deployments: [{{provider: oai, model: gpt-4o-mini}}]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    """The fake OpenAI, two accounts."""
    with FakeOpenAI(keys=["ok1", "ok2"]).running() as server:
        yield server


@pytest.fixture(scope="module")
def records() -> Records:
    """Every usage record of the module's gateway."""
    return Records()


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, records: Records) -> Iterator[GatewayServer]:
    """The gateway."""
    plugins = (truckllm_batches, truckllm_provider_openai, truckllm_strategy_round_robin, records)
    with GatewayServer(config(fake), autoload=False, extra_plugins=plugins) as gw:
        yield gw


@pytest.fixture
def clean(fake: FakeOpenAI, records: Records) -> Iterator[FakeOpenAI]:
    """The fake reset before a test, and checked after it: every upstream request was valid."""
    fake.reset()
    records.records.clear()
    yield fake
    assert fake.violations == []


@pytest.fixture(autouse=True)
def _sdk_clients_collected() -> Iterator[None]:
    """The SDK clients a test made with :func:`client` (never closed by the tests) are collected
    at its end, so that their pooled sockets are not found by a later test's garbage collection
    (a ``ResourceWarning``, an error under ``filterwarnings = error``, blamed on that test)."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def client(gateway: GatewayServer, key: str = TEAM) -> openai.OpenAI:
    """The official SDK pointed at the gateway."""
    return openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0)


def batch_file(alias: str, n: int = 3, overrides: dict[int, Any] | None = None) -> bytes:
    """A batch input file of ``n`` chat requests for ``alias``."""
    lines = []
    for i in range(n):
        body = {"model": alias, "messages": [{"role": "user", "content": f"say hello {i} please"}]}
        line = {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        line.update((overrides or {}).get(i, {}))
        lines.append(json.dumps(line))
    return ("\n".join(lines) + "\n").encode()


class Kit:
    """The helpers above, as the ``kit`` fixture (tests cannot import conftest)."""

    team = TEAM
    other = OTHER
    price = PRICE
    client = staticmethod(client)
    batch_file = staticmethod(batch_file)


@pytest.fixture
def kit() -> Kit:
    """Clients and files."""
    return Kit()
