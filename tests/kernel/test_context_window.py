"""The price book's context windows route prompts: a prompt far beyond a deployment's window is
not sent there, and when no deployment of an alias can take it, its context_window_fallbacks are."""

from __future__ import annotations

from collections.abc import Callable

import httpx2 as httpx

from truckllm import hookimpl
from truckllm.types import Price, PriceEntry
from truckllm_testing.server import GatewayServer


class SmallWindows:
    """A price book: the mock's ``tiny`` model reads 200 tokens at most."""

    __name__ = "throwaway-windows"

    @hookimpl
    def register_prices(self, register: Callable[[PriceEntry], None]) -> None:
        register(PriceEntry(provider_type="mock", model="tiny", price=Price(input=1, output=1),
                            context_window=200, date="2026-12-07", source="test"))


CONFIG = """
providers:
  p: {type: mock}
  q: {type: mock}
models:
  small:
    deployments: [{provider: p, model: tiny}]
    context_window_fallbacks: [big]
  mixed:
    strategy: priority
    deployments: [{provider: p, model: tiny, priority: 1}, {provider: q, model: echo, priority: 2}]
  big:
    deployments: [{provider: q, model: echo}]
"""


def ask(gw: GatewayServer, alias: str, words: int) -> httpx.Response:
    body = {"model": alias, "messages": [{"role": "user", "content": "word " * words}]}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10)


def test_long_prompts_skip_small_windows_and_take_the_fallback() -> None:
    with GatewayServer(CONFIG, extra_plugins=(SmallWindows(),)) as gw:
        short = ask(gw, "small", 5)
        long = ask(gw, "small", 2000)
        mixed_short = ask(gw, "mixed", 5)
        mixed_long = ask(gw, "mixed", 2000)
        nowhere = ask(gw, "mixed", 5).status_code
    assert short.status_code == 200 and short.headers["x-truckllm-provider"] == "p"
    assert long.status_code == 200 and long.headers["x-truckllm-provider"] == "q"  # big, the fallback
    assert mixed_short.headers["x-truckllm-provider"] == "p"
    assert mixed_long.headers["x-truckllm-provider"] == "q"  # the small window skipped, not tried
    assert nowhere == 200


def test_without_a_fallback_the_client_is_told_the_prompt_is_too_long() -> None:
    config = CONFIG.replace("    context_window_fallbacks: [big]\n", "")
    with GatewayServer(config, extra_plugins=(SmallWindows(),)) as gw:
        long = ask(gw, "small", 2000)
    assert long.status_code == 400
    error = long.json()["error"]
    assert error["code"] == "context_length_exceeded" and "context window" in error["message"]
    assert long.headers.get("x-truckllm-attempts") == "0"  # nothing was sent upstream
