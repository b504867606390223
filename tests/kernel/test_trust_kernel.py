"""The kernel's side of the trust boundary (issue 13): what a provider plugin hands it from a
hostile upstream (strings, numbers), how a deployment is reached (direct addressing, prices,
budgets), what client input may grow, and the attempt bookkeeping a plugin bug must not upset.

Driven through the real pipeline with an in-process provider plugin (``hostile``) whose answers
each test scripts, and the real endpoint (``GatewayServer``) where the client's view matters.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import msgspec
import pytest
import truckllm_store_memory

from truckllm import hookimpl
from truckllm._internal.gateway import Gateway
from truckllm._internal.numbers import MAX_TOKENS
from truckllm._internal.openai_api import OPENAI
from truckllm._internal.openai_wire import chat_completion
from truckllm._internal.pipeline import serve
from truckllm._internal.request import RequestContext, end_request
from truckllm._internal.runtime import MAX_DIRECT_PLANS, UNKNOWN_ALIAS
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import GatewayError, UnsupportedRequest
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    RateLimits,
    RequestRecord,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)
from truckllm_testing.server import GatewayServer

KEY = "sk-hostile-0123456789abcdefghij"
OTHER = "sk-hostile-zyxwvutsrqponmlkjih"


@dataclass
class Hostile:
    """Provider type ``hostile``: each key's answer is scripted by ``answers[key]``."""

    answers: dict[str, Callable[[], Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (key, model)
    usage: Usage | None = None  # what parse_usage reports
    __name__: str = "hostile-plugin"

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        register(ProviderSpec(type="hostile", default_base_url="hostile://", endpoints=frozenset({"chat"})))

    @hookimpl
    def transform_request(self, provider: Provider, model: str, request: ChatRequest, api_key: str) -> Any:
        if provider.type != "hostile":
            return None
        answer = self.answers.get(api_key, ok)
        if answer is unsupported:
            raise UnsupportedRequest("this key's deployment cannot do that", param="tools")
        if answer is broken_build:
            raise RuntimeError("plugin bug while building")
        self.calls.append((api_key, model))

        async def local() -> UpstreamResponse:
            return UpstreamResponse(status=200, headers={"x-key": api_key}, body=b"{}")

        return UpstreamRequest(url="hostile://", local=local)

    @hookimpl
    def transform_response(self, provider: Provider, request: ChatRequest, response: UpstreamResponse) -> Any:
        if provider.type != "hostile":
            return None
        return self.answers.get(response.headers["x-key"], ok)()

    @hookimpl
    def parse_usage(self, provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
        if provider.type != "hostile":
            return None
        return self.usage or Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)


def ok(usage: Usage | None = None) -> ProviderResult:
    body = chat_completion(
        model="x",
        choices=[{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        usage=usage or Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
    )
    return ProviderResult(body=body)


def unsupported() -> ProviderResult:  # a marker: transform_request raises UnsupportedRequest
    raise AssertionError


def broken_build() -> ProviderResult:  # a marker: transform_request raises
    raise AssertionError


def echoing_error(status: int = 400, kind: str = "bad_request", retry_after: float | None = None) -> Callable[[], Any]:
    """An upstream error that echoes the key in every string field, past a 300-byte cut."""

    def answer() -> ProviderResult:
        padded = "x" * 290 + KEY + " and more text"
        return ProviderResult(
            error=UpstreamError(
                status=status,
                kind=kind,
                message=padded,
                type=f"type {KEY}",
                code=KEY,
                param=KEY[:20],
                retry_after=retry_after,
            ),
            limits=RateLimits(remaining_requests=-5, reset_requests=1e12),
        )

    return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    plugin: Hostile,
    *,
    keys: tuple[str, ...] = (KEY,),
    routing: str = "",
    price: str = "",
    direct: bool = False,
    sink: object | None = None,
) -> Gateway:
    key_lines = ", ".join(f"{{name: k{i}, value: {k}}}" for i, k in enumerate(keys))
    text = f"""
routing: {{retries: 0, backoff: {{base: 0s, max: 0s}}{', ' + routing if routing else ''}}}
providers:
  h: {{type: hostile, direct: {str(direct).lower()}, keys: [{key_lines}]}}
models:
  m: {{strategy: first, deployments: [{{provider: h, model: x{', price: ' + price if price else ''}}}]}}
"""
    clock = Clock()

    async def sleep(seconds: float) -> None:
        clock.now += seconds

    return Gateway(
        "<hostile>",
        config_text=text,
        extra_plugins=(plugin,) if sink is None else (plugin, sink),
        autoload=False,
        clock=clock,
        rng=random.Random(1),
        sleep=sleep,
        watch_interval=0,
    )


class Sink:
    """A logger plugin keeping every record."""

    __name__ = "sink"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)


BODY = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'


async def ask(gw: Gateway, model: str = "m") -> tuple[int, dict[str, str], str, RequestContext]:
    body = BODY.replace(b'"m"', msgspec.json.encode(model))
    request = ChatRequest(endpoint="chat", body=body, model=model, typed=msgspec.json.decode(body, type=ChatCompletionRequest))
    ctx = RequestContext(request_id="r", dialect=OPENAI)
    try:
        outcome = await serve(gw, gw.runtime, request, ctx)
    except GatewayError as exc:
        return exc.status, exc.headers, f"{exc.message} {exc.type} {exc.code} {exc.param}", ctx
    return outcome.status, outcome.headers, outcome.body.decode(), ctx


# --- strings and numbers from upstream ------------------------------------------------------------


@pytest.mark.parametrize("status,kind", [(400, "bad_request"), (500, "server"), (401, "auth"), (429, "rate_limit")])
async def test_an_error_echoing_the_key_in_every_field_reaches_nobody(status: int, kind: str) -> None:
    plugin = Hostile({KEY: echoing_error(status, kind)})
    gw = make(plugin)
    code, headers, text, ctx = await ask(gw)
    assert code >= 400
    seen = [text, str(headers), str(ctx.error), str(ctx.attempts), gw.health.key("h", "k0").disabled]
    for part in seen:
        assert KEY[:8] not in part and KEY[-8:] not in part, part


async def test_retry_after_from_upstream_is_capped() -> None:
    plugin = Hostile({KEY: echoing_error(429, "rate_limit", retry_after=99_999_999_999)})
    gw = make(plugin)
    code, headers, _, _ = await ask(gw)
    assert code == 429
    assert 1 <= int(headers["retry-after"]) <= 3600
    state = gw.health.key("h", "k0")
    assert state.cooldown_until - gw.clock() <= 3600


async def test_a_cap_set_in_config_holds_and_nan_is_zero() -> None:
    gw = make(Hostile({KEY: echoing_error(429, "rate_limit", retry_after=float("nan"))}))
    await ask(gw)
    assert gw.health.key("h", "k0").cooldown_until <= gw.clock()
    capped = make(
        Hostile({KEY: echoing_error(429, "rate_limit", retry_after=1e9)}), routing="cooldown: {max_retry_after: 90s}"
    )
    await ask(capped)
    assert capped.health.key("h", "k0").cooldown_until - capped.clock() == pytest.approx(90)


async def test_rate_limit_figures_from_upstream_are_clamped() -> None:
    plugin = Hostile({KEY: echoing_error(400, "bad_request")})
    gw = make(plugin)
    await ask(gw)
    limits = gw.health.key("h", "k0").limits
    assert limits is not None
    assert limits.remaining_requests == 0 and limits.reset_requests == 3600


@pytest.mark.parametrize(
    "usage",
    [
        Usage(prompt_tokens=-1_000_000, completion_tokens=-5, total_tokens=-1_000_005),
        Usage(prompt_tokens=10**18, completion_tokens=1, total_tokens=0, cached_tokens=-3),
    ],
)
async def test_usage_from_upstream_is_clamped_and_costs_never_go_negative(usage: Usage) -> None:
    sink = Sink()
    gw = make(Hostile(usage=usage), price="{input: 1000, output: 1000}", sink=sink)
    gw.background.start()
    status, _, _, ctx = await ask(gw)
    end_request(gw, gw.runtime, ctx)  # what the endpoint does once the answer is sent
    await gw.background.stop()
    assert status == 200
    assert ctx.usage is not None
    for name in ctx.usage.__struct_fields__:
        assert 0 <= getattr(ctx.usage, name) <= (2 if name == "total_tokens" else 1) * MAX_TOKENS
    assert ctx.usage.total_tokens >= ctx.usage.prompt_tokens + ctx.usage.completion_tokens
    assert sink.records and all(r.cost_usd >= 0 for r in sink.records)


# --- how a deployment is reached ----------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[Hostile, Callable[[str], GatewayServer]]]:
    plugin = Hostile(usage=Usage(prompt_tokens=10, completion_tokens=10, total_tokens=20))  # $0.02 priced

    def start(extra: str) -> GatewayServer:
        return GatewayServer(
            f"""
admin: {{token: admin-token-0123456789}}
providers:
  h: {{type: hostile, keys: [{{name: k0, value: {KEY}}}]}}
  open: {{type: hostile, direct: true, keys: [{{name: k1, value: {OTHER}}}]}}
models:
  priced: {{deployments: [{{provider: h, model: x, price: {{input: 1000, output: 1000}}}}]}}
  unpriced: {{deployments: [{{provider: h, model: y}}]}}
  mixed:
    strategy: first
    deployments: [{{provider: h, model: y}}, {{provider: h, model: x, price: {{input: 1, output: 1}}}}]
{extra}""",
            extra_plugins=(plugin, truckllm_store_memory),
            autoload=False,
        )

    yield plugin, start


def post(server: GatewayServer, model: str, key: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": f"Bearer {key}"},
    )


def test_the_budget_bypass_through_provider_slash_model_is_closed(
    served: tuple[Hostile, Callable[[str], GatewayServer]],
) -> None:
    """The finding: a budgeted key without ``models:`` sent ``h/x`` and got 20/20 through at $0."""
    plugin, start = served
    keys = "keys:\n  - {name: spender, value: spender-key-0123, budget: {usd: 0.05, period: month}}\n"
    with start(keys) as server:
        direct = [post(server, "h/x", "spender-key-0123") for _ in range(5)]
        assert {r.status_code for r in direct} == {404}  # h is not open to direct addressing
        assert plugin.calls == []
        # an opted-in provider, a model priced by no alias: the cost is unknown, refused for a budget
        opened = post(server, "open/anything", "spender-key-0123")
        assert opened.status_code == 403
        assert opened.json()["error"]["code"] == "cost_unknown"
        assert post(server, "unpriced", "spender-key-0123").json()["error"]["code"] == "cost_unknown"
        # the alias of the same deployment answers budget_exceeded once the budget is used
        answers = [post(server, "priced", "spender-key-0123") for _ in range(20)]
        codes = [a.json().get("error", {}).get("code") for a in answers if a.status_code != 200]
        assert codes and set(codes) == {"budget_exceeded"}


def test_a_key_that_names_provider_star_opts_in_and_gets_the_alias_price(
    served: tuple[Hostile, Callable[[str], GatewayServer]],
) -> None:
    _, start = served
    keys = (
        "keys:\n  - {name: direct, value: direct-key-01234, models: ['h/*'], "
        "budget: {usd: 0.05, period: month}}\n"
    )
    with start(keys) as server:
        first = post(server, "h/x", "direct-key-01234")  # priced by the alias `priced`: served, counted
        assert first.status_code == 200
        refused = post(server, "h/y", "direct-key-01234")  # no alias prices h/y
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "cost_unknown"
        spent = [post(server, "h/x", "direct-key-01234") for _ in range(20)]
        assert any(r.json().get("error", {}).get("code") == "budget_exceeded" for r in spent)
        for bad in ("h/../x", "h/x?key=evil", "h/ x", "h/x#", "h/%2e%2e"):
            assert post(server, bad, "direct-key-01234").status_code == 404, bad


def test_a_budgeted_key_is_never_served_by_an_unpriced_deployment(
    served: tuple[Hostile, Callable[[str], GatewayServer]],
) -> None:
    plugin, start = served
    keys = (
        "keys:\n  - {name: spender, value: spender-key-0123, budget: {usd: 5, period: month}}\n"
        "  - {name: free, value: free-key-0123456}\n"
    )
    with start(keys) as server:
        assert post(server, "mixed", "spender-key-0123").status_code == 200
        assert post(server, "mixed", "free-key-0123456").status_code == 200
    # `mixed` lists the unpriced model first (strategy first): only the budgeted key skipped it
    assert plugin.calls == [(KEY, "x"), (KEY, "y")]


def test_unknown_models_are_recorded_in_one_bucket() -> None:
    sink = Sink()
    config = f"""
providers:
  h: {{type: hostile, keys: [{{name: k0, value: {KEY}}}]}}
models:
  m: {{deployments: [{{provider: h, model: x}}]}}
"""
    with GatewayServer(config, extra_plugins=(Hostile(), sink), autoload=False) as server:
        for i in range(30):
            assert post(server, f"made-up-{i}", "any").status_code == 404
        assert post(server, "m", "any").status_code == 200
    assert {r.alias for r in sink.records} == {UNKNOWN_ALIAS, "m"}
    assert len(sink.records) == 31


async def test_direct_plans_are_bounded() -> None:
    gw = make(Hostile(), direct=True)
    for i in range(MAX_DIRECT_PLANS + 50):
        assert gw.runtime.plan(f"h/model-{i}") is not None
    assert len(gw.runtime.direct) == MAX_DIRECT_PLANS
    assert len(gw.health.pairs) <= MAX_DIRECT_PLANS + 1


# --- attempts and plugin bugs -------------------------------------------------------------------


async def test_an_unsupported_candidate_is_not_an_attempt() -> None:
    plugin = Hostile({KEY: unsupported})
    gw = make(plugin, keys=(KEY, OTHER))
    status, headers, _, _ = await ask(gw)
    assert status == 200
    assert headers["x-truckllm-attempts"] == "1"
    assert plugin.calls == [(OTHER, "x")]


async def test_a_plugin_bug_never_ejects_a_healthy_key() -> None:
    def raising() -> ProviderResult:
        raise KeyError("plugin bug")

    plugin = Hostile({KEY: raising})
    gw = make(plugin)
    for _ in range(20):
        status, _, _, _ = await ask(gw)
        assert status == 502
    state = gw.health.key("h", "k0")
    assert state.ejected_until == 0 and state.consecutive_failures == 0 and not state.disabled
    plugin.answers[KEY] = broken_build
    for _ in range(5):
        status, _, _, ctx = await ask(gw)
        assert status == 502 and ctx.attempts[-1].error_kind == "plugin"
    assert gw.health.key("h", "k0").ejected_until == 0
