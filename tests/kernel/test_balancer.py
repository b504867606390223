"""The balancer in the kernel: cooldowns, ejection, half-open recovery, retry budget, failover.

Deterministic: an injected clock and random source, an in-process provider whose keys fail as
each test scripts, and the kernel's pipeline driven directly (no sleeps).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from tests.kernel.simkit import SimPlugin
from truckllm import hookimpl
from truckllm._internal.gateway import Gateway
from truckllm._internal.openai_api import OPENAI
from truckllm._internal.openai_wire import chat_completion, upstream_error
from truckllm._internal.pipeline import serve
from truckllm._internal.request import RequestContext
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import GatewayError
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sim(SimPlugin):
    """A throwaway provider type ``sim``: each key answers as ``behaviour[key](now)`` says."""

    clock: Clock
    behaviour: dict[str, Callable[[float], tuple[int, float | None]]] = field(default_factory=dict)
    calls: list[tuple[float, str]] = field(default_factory=list)
    __name__: str = "throwaway-sim"

    @hookimpl
    def transform_request(self, provider: Provider, model: str, request: ChatRequest, api_key: str) -> Any:
        if provider.type != "sim":
            return None
        now = self.clock()
        self.calls.append((now, api_key))
        status, retry_after = self.behaviour.get(api_key, lambda _: (200, None))(now)

        async def local() -> UpstreamResponse:
            if status == 0:
                raise ConnectionRefusedError("down")
            headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
            body = chat_completion(
                model=model,
                choices=[
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": api_key},
                        "finish_reason": "stop",
                    }
                ],
                usage=Usage(total_tokens=1),
            )
            return UpstreamResponse(status=status, headers=headers, body=body if status == 200 else b"{}")

        return UpstreamRequest(url="sim://", local=local)

    @hookimpl
    def transform_response(self, provider: Provider, request: ChatRequest, response: UpstreamResponse) -> Any:
        if provider.type != "sim":
            return None
        if response.status >= 400:
            retry = response.headers.get("retry-after")
            return ProviderResult(
                error=upstream_error(
                    response.status, f"sim {response.status}", retry_after=float(retry) if retry else None
                )
            )
        return ProviderResult(body=response.body)

    @hookimpl
    def parse_usage(self, provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
        return Usage(total_tokens=1) if provider.type == "sim" else None


def make(sim: Sim, keys: int = 3, extra: str = "", strategy: str = "shuffle", routing: str = "") -> Gateway:
    key_lines = ", ".join(f"{{name: k{i}, value: k{i}}}" for i in range(keys))
    text = f"""
routing: {{backoff: {{base: 0s, max: 0s}}, {routing}}}
providers:
  p: {{type: sim, keys: [{key_lines}]}}
  q: {{type: sim, keys: [{{name: spare, value: spare}}]}}
models:
  m: {{strategy: {strategy}, deployments: [{{provider: p, model: x}}]}}
  backup: {{deployments: [{{provider: q, model: y}}]}}
{extra}"""

    async def no_sleep(seconds: float) -> None:
        sim.clock.now += seconds

    return Gateway(
        "<test>",
        config_text=text,
        extra_plugins=(sim,),
        autoload=False,
        clock=sim.clock,
        rng=random.Random(7),
        sleep=no_sleep,
    )


BODY = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'


async def ask(gw: Gateway, model: str = "m") -> tuple[int, str, dict[str, str]]:
    body = BODY.replace(b'"m"', f'"{model}"'.encode())
    request = ChatRequest(
        endpoint="chat", body=body, model=model, typed=msgspec.json.decode(body, type=ChatCompletionRequest)
    )
    try:
        outcome = await serve(gw, gw.runtime, request, RequestContext(request_id="r", dialect=OPENAI))
    except GatewayError as exc:
        return exc.status, exc.message, exc.headers
    return (
        outcome.status,
        msgspec.json.decode(outcome.body)["choices"][0]["message"]["content"],
        outcome.headers,
    )


def always(status: int, retry_after: float | None = None) -> Callable[[float], tuple[int, float | None]]:
    return lambda _now: (status, retry_after)


async def test_429_cools_the_key_for_retry_after_and_other_keys_serve() -> None:
    clock = Clock()
    sim = Sim(clock)
    sim.behaviour["k0"] = lambda now: (429, 30.0) if now < 1001 else (200, None)
    gw = make(sim, keys=2)
    for _ in range(50):
        status, _, _ = await ask(gw)
        assert status == 200
        clock.now += 0.5  # 25 s of traffic
    k0 = [t for t, key in sim.calls if key == "k0"]
    assert len(k0) == 1  # hit once, then skipped for its whole cooldown
    clock.now = 1000 + 30.5
    for _ in range(20):
        await ask(gw)
    assert any(key == "k0" for t, key in sim.calls if t > 1030)


async def test_a_later_shorter_cooldown_never_shortens_the_current_one() -> None:
    clock = Clock()
    gw = make(Sim(clock))
    state = gw.health.key("p", "k0")
    state.cool(clock.now, 30, "rate_limit")
    state.cool(clock.now + 1, 5, "rate_limit")
    assert state.cooldown_until == clock.now + 30
    state.cool(clock.now + 10, 60, "rate_limit")
    assert state.cooldown_until == clock.now + 70


async def test_every_key_cooling_gives_429_with_the_soonest_retry_after() -> None:
    clock = Clock()
    sim = Sim(clock, {"k0": always(429, 12), "k1": always(429, 40)})
    gw = make(sim, keys=2)
    status, _, headers = await ask(gw)
    assert status == 429 and headers["retry-after"] == "12"
    clock.now += 2
    status, _, headers = await ask(gw)
    assert status == 429 and headers["retry-after"] == "10"
    assert len(sim.calls) == 2  # the second request never reached a cooling key


async def test_max_wait_waits_for_a_cooling_key_instead_of_failing() -> None:
    clock = Clock()
    sim = Sim(clock, {"k0": lambda now: (429, 3.0) if now < 1001 else (200, None)})
    gw = make(sim, keys=1)
    assert (await ask(gw))[0] == 429
    assert (await ask(gw))[0] == 429  # without max_wait: fail fast
    clock.now = 1000.0
    gw_wait = make(Sim(clock, dict(sim.behaviour)), keys=1, routing="max_wait: 5s")
    assert (await ask(gw_wait))[0] == 429  # first: the 429 itself
    status, _, _ = await ask(gw_wait)  # then: waits ~3 s (on the fake clock) and succeeds
    assert status == 200 and clock.now >= 1003


async def test_consecutive_failures_eject_then_half_open_probe_lets_it_back() -> None:
    clock = Clock()
    broken = {"down": True}
    sim = Sim(clock, {"k0": lambda now: (503, None) if broken["down"] else (200, None)})
    gw = make(sim, keys=1, routing="cooldown: {failures: 3, duration: 30s}")
    for _ in range(3):
        await ask(gw)  # three requests × (1 + retries) attempts: the key is ejected on the 3rd failure
    state = gw.health.key("p", "k0")
    assert state.state(clock.now) == "ejected" and state.ejected_until == pytest.approx(clock.now + 30)
    calls = len(sim.calls)
    assert (await ask(gw))[0] == 503  # ejected: not even tried
    assert len(sim.calls) == calls
    clock.now += 31
    assert state.state(clock.now) == "half_open"
    assert (await ask(gw))[0] == 503  # the probe fails: ejected again at once, for 2 × 30 s
    assert state.ejected_until == pytest.approx(clock.now + 60)
    clock.now += 61
    broken["down"] = False
    assert (await ask(gw))[0] == 200
    assert state.state(clock.now) in ("ok", "recovering") and not state.half_open


async def test_error_ratio_over_the_window_ejects() -> None:
    clock = Clock()
    flip = iter([503, 200] * 50)
    sim = Sim(clock, {"k0": lambda now: (next(flip), None)})
    gw = make(
        sim,
        keys=1,
        routing="retries: 0, cooldown: {failures: 100, error_ratio: 0.4, window: 10, min_requests: 10}",
    )
    for _ in range(9):
        await ask(gw)
    assert gw.health.key("p", "k0").state(clock.now) == "ok"  # 9 attempts: below min_requests
    await ask(gw)  # 10th (a success)
    await ask(gw)  # 11th: a failure with 6 of the last 10 failed
    assert gw.health.key("p", "k0").state(clock.now) == "ejected"


async def test_client_error_is_not_a_key_failure() -> None:
    clock = Clock()
    sim = Sim(clock, {"k0": always(400), "k1": always(400)})
    gw = make(sim, keys=2)
    for _ in range(5):
        status, _, _ = await ask(gw)
        assert status == 400
    assert gw.health.key("p", "k0").consecutive_failures == 0
    assert len(sim.calls) == 5  # never retried


async def test_auth_failure_disables_the_key() -> None:
    clock = Clock()
    sim = Sim(clock, {"k0": always(401)})
    gw = make(sim, keys=2)
    for _ in range(10):
        assert (await ask(gw))[0] == 200
    assert sum(1 for _, key in sim.calls if key == "k0") == 1
    assert gw.health.key("p", "k0").state(clock.now) == "disabled"


async def test_retry_budget_caps_attempts_in_a_total_outage() -> None:
    clock = Clock()
    sim = Sim(clock, {f"k{i}": always(503) for i in range(10)} | {"spare": always(503)})
    gw = make(sim, keys=10, routing="retries: 2, cooldown: {failures: 1000000, error_ratio: 1.0}")
    requests = 500
    for _ in range(requests):
        status, _, _ = await ask(gw)
        assert status == 503
        clock.now += 0.01
    assert len(sim.calls) <= 1.2 * requests
    assert gw.budget.denied > 0


async def test_fallback_alias_serves_when_the_alias_cannot() -> None:
    clock = Clock()
    sim = Sim(clock, {"k0": always(0)})
    gw = make(sim, keys=1, extra="  m2: {deployments: [{provider: p, model: x}], fallbacks: [backup]}\n")
    status, content, _ = await ask(gw, "m2")
    assert status == 200 and content == "spare"


async def test_simulation_mixed_faults_no_errors_no_traffic_during_cooldown() -> None:
    """Thousands of requests over six keys with mixed faults: 429 bursts with Retry-After,
    flaky 5xx, a key that is down: no client-visible error while one key is healthy, the healthy
    keys share the load, and no request ever reaches a key during its announced cooldown."""
    clock = Clock()
    rng = random.Random(11)
    cooldowns: dict[str, list[tuple[float, float]]] = {}

    def bursty(name: str, every: float, pause: float) -> Callable[[float], tuple[int, float | None]]:
        def answer(now: float) -> tuple[int, float | None]:
            if int(now / every) % 3 == 0 and rng.random() < 0.5:
                cooldowns.setdefault(name, []).append((now, now + pause))
                return 429, pause
            return 200, None

        return answer

    sim = Sim(
        clock,
        {
            "k0": bursty("k0", 7, 5.0),
            "k1": bursty("k1", 11, 2.0),
            "k2": lambda now: (503, None) if rng.random() < 0.3 else (200, None),
            "k3": always(0),  # refuses connections
            "k4": always(200, None),
            "k5": always(200, None),
        },
    )
    gw = make(sim, keys=6, strategy="shuffle")
    errors = 0
    served: Counter[str] = Counter()
    for _ in range(3000):
        status, who, _ = await ask(gw)
        if status != 200:
            errors += 1
        else:
            served[who] += 1
        clock.now += 0.02
    assert errors == 0
    for name, windows in cooldowns.items():
        for t, key in sim.calls:
            if key == name:
                assert not any(start < t < end for start, end in windows), f"{name} called at {t} in cooldown"
    assert served["k3"] == 0
    assert served["k4"] > 400 and served["k5"] > 400
    assert abs(served["k4"] - served["k5"]) < 0.25 * (served["k4"] + served["k5"])
