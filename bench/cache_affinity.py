"""The ``cache_affinity`` lane: how much of the providers' prompt caches a gateway keeps warm.

A fake OpenAI upstream (:class:`PrefixCacheUpstream`) keeps a prompt-prefix cache per API key,
as providers do per account: a request's ``usage.prompt_tokens_details.cached_tokens`` is the
length of the longest message-boundary prefix that key has seen before (tokens are words here),
and every prefix of the request is then cached on that key. ``--sessions`` (200) concurrent agent
conversations of ``--turns`` (6) requests each (a system prompt shared by all, a per-session
context and task, then the growing conversation) go through an in-process gateway on loopback
to one alias over ``--keys`` (8) keys of that upstream (round-robin strategy), in four runs:

- ``single``: one key: the cache ratio the workload can reach at all (the ceiling);
- ``off``: eight keys, ``affinity.enabled: false``;
- ``on``: eight keys, ``affinity.enabled: true``;
- ``on+429``: as ``on``, but one key answers 429 (``Retry-After: 60``) from the middle of the run:
  its conversations must move, with no client error.

Per run: the cached-token ratio (cached / prompt tokens), the ratio against ``single``, each
key's share of requests against an even share (the largest deviation), client errors, and for
``on+429`` how many requests the limited key answered before and after it began refusing.

``python -m bench.cache_affinity`` runs the lane alone; ``python -m bench --lanes cache_affinity``
runs it inside the load benchmark (it starts its own gateway and upstream, in process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["PrefixCacheUpstream", "Workload", "main", "run_lane"]

SYSTEM = " ".join(f"rule{i}" for i in range(1200))  # the agent's shared system prompt (1,200 tokens)


@dataclass
class PrefixCacheUpstream:
    """An OpenAI chat upstream with a prompt-prefix cache per API key (see the module doc)."""

    limited: str | None = None  # the key answering 429 once ``limit_from`` requests were served
    limit_from: int = 0
    served: int = 0
    cache: dict[str, set[int]] = field(default_factory=dict)  # key -> hashes of cached prefixes
    calls: Counter[str] = field(default_factory=Counter)  # answered 200, per key
    refused: Counter[str] = field(default_factory=Counter)  # answered 429, per key
    calls_after_limit: Counter[str] = field(default_factory=Counter)
    runner: web.AppRunner | None = None
    port: int = 0

    def usage(self, key: str, messages: list[dict[str, Any]]) -> tuple[int, int]:
        """(prompt tokens, cached prompt tokens) of ``messages`` on ``key``; caches their prefixes."""
        cached_prefixes = self.cache.setdefault(key, set())
        total = cached = 0
        running = 0
        for message in messages:
            content = message.get("content") or ""
            total += len(str(content).split())
            running = hash((running, message.get("role"), str(content)))
            if running in cached_prefixes:  # this whole prefix was sent to this key before
                cached = total
            cached_prefixes.add(running)
        return total, cached

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /v1/chat/completions``."""
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        body = await request.json()
        if self.limited == key and self.served >= self.limit_from:
            self.refused[key] += 1
            return web.json_response(
                {
                    "error": {
                        "message": "rate limited",
                        "type": "rate_limit_error",
                        "code": "rate_limit_exceeded",
                    }
                },
                status=429,
                headers={"retry-after": "60"},
            )
        self.served += 1
        self.calls[key] += 1
        if self.limited is not None and self.served > self.limit_from:
            self.calls_after_limit[key] += 1
        prompt, cached = self.usage(key, body["messages"])
        return web.json_response(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 1,
                "model": body.get("model", "m"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "done step"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": 2,
                    "total_tokens": prompt + 2,
                    "prompt_tokens_details": {"cached_tokens": cached},
                },
            }
        )

    async def start(self) -> str:
        """Serve on a loopback port; its base URL."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}/v1"

    async def stop(self) -> None:
        """Stop serving."""
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass(frozen=True)
class Workload:
    """The conversations: how many, how long, how big."""

    sessions: int = 200
    turns: int = 6
    keys: int = 8
    context_tokens: int = 400  # per-session context (a project file) after the shared system prompt
    turn_tokens: int = 60  # each user turn
    seed: int = 17


def gateway_config(base_url: str, keys: int, affinity: bool) -> str:
    """One ``openai`` provider with ``keys`` keys at ``base_url``; alias ``agent`` (round-robin)."""
    key_list = ", ".join(f"{{name: k{i}, value: key-{i}}}" for i in range(keys))
    return f"""
affinity: {{enabled: {str(affinity).lower()}}}
providers:
  up: {{type: openai, base_url: "{base_url}", keys: [{key_list}]}}
models:
  agent:
    strategy: round-robin
    deployments: [{{provider: up, model: gpt-bench, price: {{input: 1, output: 1}}}}]
"""


@dataclass
class RunFigures:
    """What one run measured."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    errors: int = 0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


async def _session(
    client: aiohttp.ClientSession,
    url: str,
    index: int,
    work: Workload,
    rng: random.Random,
    figures: RunFigures,
) -> None:
    context = " ".join(f"s{index}w{i}" for i in range(work.context_tokens))
    messages: list[dict[str, str]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"context: {context} task {index}: fix the build"},
    ]
    await asyncio.sleep(rng.random() * 0.5)  # sessions start spread out
    for turn in range(work.turns):
        body = {"model": "agent", "messages": messages}
        async with client.post(url + "/v1/chat/completions", json=body) as response:
            figures.requests += 1
            figures.statuses[response.status] += 1
            payload = await response.json()
        if response.status != 200:
            figures.errors += 1
            return
        usage = payload["usage"]
        figures.prompt_tokens += usage["prompt_tokens"]
        figures.cached_tokens += (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        messages.append(payload["choices"][0]["message"])
        words = " ".join(f"t{turn}w{i}" for i in range(work.turn_tokens))
        messages.append({"role": "user", "content": f"tool result {words}"})
        await asyncio.sleep(rng.random() * 0.2)  # the agent's think time


async def run_once(
    work: Workload, *, keys: int, affinity: bool, limit_at: float | None = None
) -> dict[str, Any]:
    """One run: a fresh upstream and gateway; the figures (see the module doc)."""
    from truckllm_testing.server import GatewayServer  # type: ignore[import-untyped]

    upstream = PrefixCacheUpstream()
    if limit_at is not None:
        upstream.limited = "key-3"
        upstream.limit_from = int(work.sessions * work.turns * limit_at)
    base_url = await upstream.start()
    figures = RunFigures()
    began = time.monotonic()
    server = GatewayServer(gateway_config(base_url, keys, affinity), autoload=True)
    await asyncio.to_thread(server.start)
    try:
        rng = random.Random(work.seed)
        connector = aiohttp.TCPConnector(limit=work.sessions)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=120)
        ) as client:
            await asyncio.gather(
                *(_session(client, server.url, i, work, rng, figures) for i in range(work.sessions))
            )
    finally:
        await asyncio.to_thread(server.stop)
        await upstream.stop()
    total = sum(upstream.calls.values()) or 1
    even = 1 / keys
    shares = {k: upstream.calls[k] / total for k in sorted(upstream.calls)}
    if limit_at is None:
        spread = max(abs(s - even) / even for s in shares.values()) if shares else 0.0
    else:  # the limited key's share is meant to fall: the spread of the others, over (keys - 1)
        others = {k: v for k, v in upstream.calls.items() if k != upstream.limited}
        spread = max(abs(v / sum(others.values()) - 1 / (keys - 1)) * (keys - 1) for v in others.values())
    result: dict[str, Any] = {
        "keys": keys,
        "affinity": affinity,
        "requests": figures.requests,
        "client_errors": figures.errors,
        "statuses": dict(figures.statuses),
        "prompt_tokens": figures.prompt_tokens,
        "cached_tokens": figures.cached_tokens,
        "cached_ratio": figures.cached_tokens / figures.prompt_tokens if figures.prompt_tokens else 0.0,
        "key_shares": shares,
        "max_share_deviation": spread,
        "seconds": round(time.monotonic() - began, 1),
    }
    if limit_at is not None and upstream.limited is not None:
        result["limited_key"] = upstream.limited
        result["limited_after_request"] = upstream.limit_from
        result["limited_key_429s"] = upstream.refused[upstream.limited]
        result["limited_key_served_after_limit"] = upstream.calls_after_limit[upstream.limited]
    return result


async def run_lane(work: Workload | None = None, say: Any = print) -> dict[str, Any]:
    """The four runs and their comparison."""
    work = work or Workload()
    runs: dict[str, dict[str, Any]] = {}
    for name, keys, affinity, limit_at in (
        ("single", 1, False, None),
        ("off", work.keys, False, None),
        ("on", work.keys, True, None),
        ("on+429", work.keys, True, 0.5),
    ):
        runs[name] = await run_once(work, keys=keys, affinity=affinity, limit_at=limit_at)
        single = runs["single"]["cached_ratio"] or 1.0
        runs[name]["ratio_vs_single"] = runs[name]["cached_ratio"] / single
        say(_line(name, runs[name]))
    return {"workload": work.__dict__, "runs": runs}


def _line(name: str, run: dict[str, Any]) -> str:
    extra = ""
    if "limited_key" in run:
        extra = (
            f", {run['limited_key']} 429'd from request {run['limited_after_request']}: "
            f"{run['limited_key_429s']} refusals, served {run['limited_key_served_after_limit']} after"
        )
    return (
        f"  {name:7} keys={run['keys']} cached={run['cached_ratio']:.1%} "
        f"(vs single {run['ratio_vs_single']:.1%}) spread=±{run['max_share_deviation']:.1%} "
        f"requests={run['requests']} client errors={run['client_errors']} {run['seconds']}s{extra}"
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.cache_affinity [--sessions N] [--turns N] [--keys N] [--json PATH]``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.cache_affinity", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--json", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    work = Workload(sessions=args.sessions, turns=args.turns, keys=args.keys)
    result = asyncio.run(run_lane(work))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
