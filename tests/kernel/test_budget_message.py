"""A budget's message shows dollars in plain decimals: ``$0.00006``, never ``$6e-05``."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from truckllm._internal.admission import usd
from truckllm_testing.server import GatewayServer


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (6e-05, "0.00006"),
        (5, "5"),
        (5.0, "5"),
        (12.5, "12.5"),
        (0.1, "0.1"),
        (1e-09, "0.000000001"),
        (0, "0"),
    ],
)
def test_usd_is_plain_decimals(amount: float, shown: str) -> None:
    assert usd(amount) == shown


def test_the_budget_exceeded_message_shows_a_tiny_budget_in_plain_decimals() -> None:
    config = """
providers:
  demo: {type: mock}
models:
  demo: {deployments: [{provider: demo, model: echo, price: {input: 1, output: 1}}]}
keys:
  - {name: tiny, value: tiny-key-0123456789, budget: {usd: 0.00006, period: month}}
"""
    chat = {"model": "demo", "max_tokens": 5, "messages": [{"role": "user", "content": "one two three"}]}
    with GatewayServer(config) as gw:
        answers = [
            httpx.post(
                gw.url + "/v1/chat/completions",
                json=chat,
                headers={"authorization": "Bearer tiny-key-0123456789"},
            )
            for _ in range(12)
        ]
    refused = [a.json()["error"] for a in answers if a.status_code == 429]
    assert refused and refused[0]["code"] == "budget_exceeded"
    assert "has used its budget of $0.00006 for this month" in refused[0]["message"], refused[0]["message"]
