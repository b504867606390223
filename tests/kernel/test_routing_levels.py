"""Every routing field changes behaviour at every level it can be set (issue 13, finding 8).

A table: for each field of ``routing`` and each level (top, provider, alias, deployment, key),
the field is set at that level only, a real request goes through the openai provider plugin to
a scripted upstream on loopback, and what happens must differ from the same request with the
field left at its default. ``routing.retries: 0`` on a provider once still made three attempts:
a level that is read for some fields and silently ignored for others fails here.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import truckllm_provider_openai
from aiohttp import web

from truckllm._internal.config.schema import RoutingConfig
from truckllm._internal.gateway import Gateway
from truckllm._internal.openai_api import OPENAI
from truckllm._internal.pipeline import serve
from truckllm._internal.request import RequestContext
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest

LEVELS = ("top", "provider", "alias", "deployment", "key")
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


@dataclass
class Script:
    """What the upstream does next: ``mode`` and its number."""

    mode: str = "ok"
    seconds: float = 0.0
    calls: int = 0


async def upstream_app(script: Script) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        script.calls += 1
        await request.read()
        mode = script.mode
        if mode == "503":
            return web.json_response({"error": {"message": "busy", "type": "server_error"}}, status=503)
        if mode in ("429", "429-once"):
            if mode == "429-once":
                script.mode = "ok"
            return web.json_response(
                {"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}},
                status=429,
                headers={"retry-after": str(script.seconds)},
            )
        if mode == "slow-head":
            await asyncio.sleep(script.seconds)
        body = msgspec.json.encode(ANSWER)
        response = web.StreamResponse(headers={"content-type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        if mode == "stall-body":
            await response.write(body[:10])
            await asyncio.sleep(script.seconds)
            await response.write(body[10:])
        else:
            await response.write(body)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, Script]]:
    script = Script()
    runner = web.AppRunner(await upstream_app(script))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", script
    await runner.cleanup()


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A listener whose accept queue is full: a new connection is never accepted (SYNs dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}/v1"
    for filler in fillers:
        filler.close()
    listener.close()


def config(base_url: str, level: str | None, setting: str, top: str = "", server: str = "") -> str:
    """One provider with one key, one alias with one deployment; ``setting`` at ``level``."""
    at = {name: (f"routing: {{{setting}}}" if name == level else "") for name in LEVELS}

    def block(name: str) -> str:
        return f", {at[name]}" if at[name] else ""

    if level == "top":  # the setting replaces the test's own top-level value of the same field
        name = setting.split(":", 1)[0]
        top = ", ".join(part for part in _parts(top) if part.split(":", 1)[0] != name)
    top_routing = ", ".join(part for part in (top, setting if level == "top" else "") if part)
    return f"""
server: {{request_timeout: 1s{', ' + server if server else ''}}}
routing: {{{top_routing}}}
providers:
  p:
    type: openai
    base_url: {base_url}
    keys: [{{name: k0, value: sk-routing-test-key-0000{block('key')}}}]
    {at['provider']}
models:
  m: {{deployments: [{{provider: p, model: gpt-x{block('deployment')}}}]{block('alias')}}}
"""


def _parts(flow: str) -> list[str]:
    """``a: 1, b: {c: 2, d: 3}`` split at its top-level commas."""
    parts, depth, current = [], 0, ""
    for ch in flow:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [p for p in [*parts, current.strip()] if p]


@dataclass
class Run:
    """What one request did."""

    status: int
    calls: int
    sleeps: list[float]
    gateway: Gateway


class Clock:
    """The gateway's clock, moved by its sleeps."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


async def run_once(text: str, script: Script, requests: int = 1) -> Run:
    clock = Clock()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    gw = Gateway(
        "<levels>",
        config_text=text,
        extra_plugins=(truckllm_provider_openai,),
        autoload=False,
        clock=clock,
        rng=random.Random(1),
        sleep=sleep,
        watch_interval=0,
    )
    await gw.start()
    status = 0
    try:
        body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'
        typed = msgspec.json.decode(body, type=ChatCompletionRequest)
        for _ in range(requests):
            request = ChatRequest(endpoint="chat", body=body, model="m", typed=typed)
            try:
                outcome = await serve(gw, gw.runtime, request, RequestContext(request_id="r", dialect=OPENAI))
                status = outcome.status
            except GatewayError as exc:
                status = exc.status
    finally:
        await gw.stop(grace=0)
    return Run(status=status, calls=script.calls, sleeps=sleeps, gateway=gw)


@dataclass(frozen=True)
class Case:
    """A routing field set to ``value``, the upstream's behaviour, and what must change."""

    field: str
    value: str
    mode: str
    seconds: float
    observe: Callable[[Run], Any]
    top: str = "retries: 0, backoff: {base: 0s, max: 0s}"
    server: str = ""
    requests: int = 1
    blackhole: bool = False


def _cooldown_left(run: Run) -> float:
    state = run.gateway.health.key("p", "k0")
    return round(max(state.cooldown_until, state.ejected_until) - run.gateway.clock(), 1)


CASES = [
    Case("retries", "retries: 0", "503", 0, lambda r: r.calls, top="retries: 2, backoff: {base: 0s, max: 0s}"),
    Case("max_attempts", "max_attempts: 1", "503", 0, lambda r: r.calls, top="retries: 2, backoff: {base: 0s, max: 0s}"),
    Case("try_timeout", "try_timeout: 100ms", "slow-head", 0.3, lambda r: r.status),
    Case("connect_timeout", "connect_timeout: 100ms", "ok", 0, lambda r: r.status, blackhole=True),
    Case("stream_idle_timeout", "stream_idle_timeout: 100ms", "stall-body", 0.3, lambda r: r.status),
    Case(
        "backoff",
        "backoff: {base: 1s, max: 1s}",
        "503",
        0,
        lambda r: sum(r.sleeps) > 0,
        top="retries: 1, backoff: {base: 0s, max: 0s}",
    ),
    Case("cooldown", "cooldown: {failures: 1, max_ejection_percent: 100}", "503", 0, _cooldown_left),
    Case("cooldown.max_retry_after", "cooldown: {max_retry_after: 10s}", "429", 100000, _cooldown_left),
    Case(
        "retry_budget",
        "retry_budget: {min: 0, ratio: 0}",
        "503",
        0,
        lambda r: r.calls,
        top="retries: 2, backoff: {base: 0s, max: 0s}",
    ),
    Case("max_wait", "max_wait: 5s", "429-once", 0.5, lambda r: r.status, requests=2),
]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", CASES, ids=[c.field for c in CASES])
async def test_a_routing_field_changes_behaviour_at_every_level(
    case: Case, level: str, upstream: tuple[str, Script], blackhole: str
) -> None:
    base_url, script = upstream
    url = blackhole if case.blackhole else base_url
    outcomes = []
    for at in (None, level):
        script.mode, script.seconds, script.calls = case.mode, case.seconds, 0
        text = config(url, at, case.value, top=case.top, server=case.server)
        outcomes.append(case.observe(await run_once(text, script, case.requests)))
    default, changed = outcomes
    assert default != changed, f"{case.field} set at {level} changed nothing ({default!r})"


def test_the_table_covers_every_routing_field() -> None:
    covered = {case.field.split(".")[0] for case in CASES}
    assert covered == set(RoutingConfig.__struct_fields__)
