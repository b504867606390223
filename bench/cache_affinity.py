"""The ``cache_affinity`` lane: how much of the providers' prompt caches a gateway keeps warm.

A fake upstream (:class:`PrefixCacheUpstream`) keeps a prompt-prefix cache per API key, as
providers do per account, and speaks one provider's API (``--providers``, all three by default):

- ``openai`` (``POST /v1/chat/completions``): automatic caching; the cached part of a request is
  the longest block-boundary prefix that key saw before (tokens are words here), reported as
  ``usage.prompt_tokens_details.cached_tokens``, and every prefix of the request is then cached;
- ``anthropic`` (``POST /v1/messages``): explicit breakpoints; only prefixes ending at a block
  marked ``cache_control`` are written, reported as ``cache_read_input_tokens`` (the longest
  written prefix) and ``cache_creation_input_tokens`` (from there to the last breakpoint), the
  rest as ``input_tokens``. The client marks its system prompt and its last user turn with
  OpenAI-format ``cache_control`` on content parts (as Claude Code does), so the gateway's
  translation into Anthropic breakpoints is part of what is measured;
- ``gemini`` (``POST /v1beta/models/{model}:generateContent``): implicit caching like OpenAI's,
  reported as ``usageMetadata.cachedContentTokenCount`` (included in ``promptTokenCount``).

The client sees OpenAI's shapes from the gateway whatever the upstream, so every run reads the
cached tokens from ``prompt_tokens_details.cached_tokens``: the gateway's translation of each
provider's report. ``--sessions`` (200) concurrent agent conversations of ``--turns`` (6)
requests each (a system prompt shared by all, a per-session context and task, then the growing
conversation) go through an in-process gateway on loopback to one alias over ``--keys`` (8) keys
of that upstream (round-robin strategy), in four runs per provider:

- ``single``: one key: the cache ratio the workload can reach at all (the ceiling);
- ``off``: eight keys, ``affinity.enabled: false``;
- ``on``: eight keys, ``affinity.enabled: true``;
- ``on+429``: as ``on``, but one key answers 429 (``Retry-After: 60``) from the middle of the run:
  its conversations must move, with no client error.

The OpenAI runs are named ``single``, ``off``, ``on`` and ``on+429``; the others are prefixed
with the provider (``anthropic on``). Per run: the cached-token ratio (cached / prompt tokens),
the ratio against the same provider's ``single``, each key's share of requests against an even
share (the largest deviation), client errors, and for ``on+429`` how many 429s the limited key
gave (and the most one conversation met: 1 is "moved within one request") and how many requests
it answered after it began refusing.

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

__all__ = ["PROVIDERS", "PrefixCacheUpstream", "Workload", "main", "run_lane"]

PROVIDERS = ("openai", "anthropic", "gemini")
"""The provider APIs the fake upstream speaks."""

SYSTEM = " ".join(f"rule{i}" for i in range(1200))  # the agent's shared system prompt (1,200 tokens)


_Block = tuple[str, str, bool]  # (role, text, marked with cache_control)


def _text_of(content: Any) -> list[tuple[str, bool]]:
    """The text blocks of a message's content (a string, or a list of blocks / parts)."""
    if isinstance(content, str):
        return [(content, False)]
    if not isinstance(content, list):
        return [(json.dumps(content, sort_keys=True), False)]
    blocks: list[tuple[str, bool]] = []
    for part in content:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            blocks.append((part["text"], "cache_control" in part))
        else:
            blocks.append(
                (json.dumps(part, sort_keys=True), isinstance(part, dict) and "cache_control" in part)
            )
    return blocks


def _openai_blocks(messages: list[dict[str, Any]]) -> list[_Block]:
    """The blocks of OpenAI chat ``messages`` (marks are not OpenAI's: caching is automatic)."""
    return [
        (str(m.get("role")), text, False) for m in messages for text, _ in _text_of(m.get("content") or "")
    ]


@dataclass
class PrefixCacheUpstream:
    """A provider upstream with a prompt-prefix cache per API key (see the module doc).

    :ivar provider: the API it speaks: one of :data:`PROVIDERS`.
    """

    provider: str = "openai"
    limited: str | None = None  # the key answering 429 once ``limit_from`` requests were served
    limit_from: int = 0
    served: int = 0
    cache: dict[str, set[int]] = field(default_factory=dict)  # key -> hashes of cached prefixes
    calls: Counter[str] = field(default_factory=Counter)  # answered 200, per key
    refused: Counter[str] = field(default_factory=Counter)  # answered 429, per key
    refused_sessions: Counter[str] = field(default_factory=Counter)  # 429s per conversation
    calls_after_limit: Counter[str] = field(default_factory=Counter)
    runner: web.AppRunner | None = None
    port: int = 0

    def usage(self, key: str, messages: list[dict[str, Any]]) -> tuple[int, int]:
        """(prompt tokens, cached prompt tokens) of OpenAI ``messages`` on ``key`` (automatic
        caching: every prefix of them is cached)."""
        total, cached, _ = self.count(key, _openai_blocks(messages), explicit=False)
        return total, cached

    def count(self, key: str, blocks: list[_Block], *, explicit: bool) -> tuple[int, int, int]:
        """(prompt tokens, cached tokens, tokens written to the cache) of ``blocks`` on ``key``.

        Cached: the longest prefix (at a block boundary) written on ``key`` before. Written: every
        prefix (automatic caching), or with ``explicit`` only prefixes ending at a marked block;
        with ``explicit`` the tokens from the cached prefix to the last marked block are the
        cache write (Anthropic's ``cache_creation_input_tokens``)."""
        cached_prefixes = self.cache.setdefault(key, set())
        total = cached = marked_end = 0
        running = 0
        for role, text, marked in blocks:
            total += len(text.split())
            running = hash((running, role, text))
            if running in cached_prefixes:  # this whole prefix was sent to this key before
                cached = total
            if not explicit or marked:
                cached_prefixes.add(running)
                marked_end = total
        written = max(marked_end - cached, 0) if explicit else 0
        return total, cached, written

    def _refuse(self, key: str, blocks: list[_Block]) -> web.Response | None:
        """A 429 in the provider's shape when ``key`` is the limited one and its time has come
        (counted per conversation too: by its first user turn)."""
        if not (self.limited == key and self.served >= self.limit_from):
            return None
        self.refused[key] += 1
        self.refused_sessions[next((text for role, text, _ in blocks if role == "user"), "")] += 1
        body: dict[str, Any]
        if self.provider == "anthropic":
            body = {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}}
        elif self.provider == "gemini":
            body = {"error": {"code": 429, "message": "rate limited", "status": "RESOURCE_EXHAUSTED"}}
        else:
            body = {
                "error": {
                    "message": "rate limited",
                    "type": "rate_limit_error",
                    "code": "rate_limit_exceeded",
                }
            }
        return web.json_response(body, status=429, headers={"retry-after": "60"})

    def _served(self, key: str) -> None:
        self.served += 1
        self.calls[key] += 1
        if self.limited is not None and self.served > self.limit_from:
            self.calls_after_limit[key] += 1

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /v1/chat/completions``."""
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        body = await request.json()
        blocks = _openai_blocks(body["messages"])
        refused = self._refuse(key, blocks)
        if refused is not None:
            return refused
        self._served(key)
        prompt, cached, _ = self.count(key, blocks, explicit=False)
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

    async def handle_anthropic(self, request: web.Request) -> web.Response:
        """``POST /v1/messages``."""
        key = request.headers.get("x-api-key", "")
        body = await request.json()
        system = body.get("system")
        blocks: list[_Block] = [("system", t, m) for t, m in _text_of(system)] if system else []
        for message in body["messages"]:
            blocks += [(message["role"], t, m) for t, m in _text_of(message["content"])]
        refused = self._refuse(key, blocks)
        if refused is not None:
            return refused
        self._served(key)
        prompt, cached, written = self.count(key, blocks, explicit=True)
        return web.json_response(
            {
                "id": "msg_bench",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "m"),
                "content": [{"type": "text", "text": "done step"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": prompt - cached - written,
                    "cache_creation_input_tokens": written,
                    "cache_read_input_tokens": cached,
                    "output_tokens": 2,
                },
            }
        )

    async def handle_gemini(self, request: web.Request) -> web.Response:
        """``POST /v1beta/models/{model}:generateContent``."""
        key = request.headers.get("x-goog-api-key", "")
        body = await request.json()
        system = (body.get("systemInstruction") or {}).get("parts", [])
        blocks: list[_Block] = [("system", str(p.get("text", "")), False) for p in system]
        for content in body["contents"]:
            role = "assistant" if content.get("role") == "model" else "user"
            blocks += [(role, str(p.get("text", json.dumps(p))), False) for p in content["parts"]]
        refused = self._refuse(key, blocks)
        if refused is not None:
            return refused
        self._served(key)
        prompt, cached, _ = self.count(key, blocks, explicit=False)
        return web.json_response(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": "done step"}]},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "cachedContentTokenCount": cached,
                    "candidatesTokenCount": 2,
                    "totalTokenCount": prompt + 2,
                },
                "modelVersion": request.match_info["model"],
                "responseId": "bench",
            }
        )

    async def start(self) -> str:
        """Serve on a loopback port; its base URL."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.handle)
        app.router.add_post("/v1/messages", self.handle_anthropic)
        app.router.add_post("/v1beta/models/{model}:generateContent", self.handle_gemini)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        root = f"http://127.0.0.1:{self.port}"
        return {"openai": root + "/v1", "anthropic": root, "gemini": root + "/v1beta"}[self.provider]

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


_MODELS = {"openai": "gpt-bench", "anthropic": "claude-bench", "gemini": "gemini-bench"}


def gateway_config(base_url: str, keys: int, affinity: bool, provider: str = "openai") -> str:
    """One ``provider`` entry with ``keys`` keys at ``base_url``; alias ``agent`` (round-robin)."""
    key_list = ", ".join(f"{{name: k{i}, value: key-{i}}}" for i in range(keys))
    return f"""
affinity: {{enabled: {str(affinity).lower()}}}
providers:
  up: {{type: {provider}, base_url: "{base_url}", keys: [{key_list}]}}
models:
  agent:
    strategy: round-robin
    deployments: [{{provider: up, model: {_MODELS[provider]}, price: {{input: 1, output: 1}}}}]
"""


@dataclass
class RunFigures:
    """What one run measured."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    errors: int = 0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


_MARK = {"type": "ephemeral"}


def _marked(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` as a caching agent sends them: its system prompt and its last user turn as
    content parts marked ``cache_control`` (OpenAI's format; Anthropic's breakpoints upstream)."""
    sent = list(messages)
    for index in (0, len(sent) - 1):
        message = sent[index]
        sent[index] = {
            **message,
            "content": [{"type": "text", "text": message["content"], "cache_control": _MARK}],
        }
    return sent


async def _session(
    client: aiohttp.ClientSession,
    url: str,
    index: int,
    work: Workload,
    rng: random.Random,
    figures: RunFigures,
) -> None:
    context = " ".join(f"s{index}w{i}" for i in range(work.context_tokens))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"context: {context} task {index}: fix the build"},
    ]
    await asyncio.sleep(rng.random() * 0.5)  # sessions start spread out
    for turn in range(work.turns):
        body = {"model": "agent", "messages": _marked(messages)}
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
        messages.append({"role": "assistant", "content": payload["choices"][0]["message"]["content"]})
        words = " ".join(f"t{turn}w{i}" for i in range(work.turn_tokens))
        messages.append({"role": "user", "content": f"tool result {words}"})
        await asyncio.sleep(rng.random() * 0.2)  # the agent's think time


async def run_once(
    work: Workload,
    *,
    keys: int,
    affinity: bool,
    limit_at: float | None = None,
    provider: str = "openai",
) -> dict[str, Any]:
    """One run: a fresh upstream speaking ``provider``'s API and a gateway; the figures (see the
    module doc)."""
    from truckllm_testing.server import GatewayServer

    upstream = PrefixCacheUpstream(provider=provider)
    if limit_at is not None:
        upstream.limited = "key-3"
        upstream.limit_from = int(work.sessions * work.turns * limit_at)
    base_url = await upstream.start()
    figures = RunFigures()
    began = time.monotonic()
    server = GatewayServer(gateway_config(base_url, keys, affinity, provider), autoload=True)
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
        "provider": provider,
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
        result["most_429s_one_session"] = max(upstream.refused_sessions.values(), default=0)
    return result


async def run_lane(
    work: Workload | None = None, say: Any = print, providers: tuple[str, ...] = PROVIDERS
) -> dict[str, Any]:
    """The four runs per provider API and their comparison (``runs``: the OpenAI runs under their
    own names, the others prefixed with the provider)."""
    work = work or Workload()
    runs: dict[str, dict[str, Any]] = {}
    for provider in providers:
        prefix = "" if provider == "openai" else provider + " "
        for name, keys, affinity, limit_at in (
            ("single", 1, False, None),
            ("off", work.keys, False, None),
            ("on", work.keys, True, None),
            ("on+429", work.keys, True, 0.5),
        ):
            run = await run_once(work, keys=keys, affinity=affinity, limit_at=limit_at, provider=provider)
            single = runs[prefix + "single"]["cached_ratio"] if name != "single" else run["cached_ratio"]
            run["ratio_vs_single"] = run["cached_ratio"] / (single or 1.0)
            runs[prefix + name] = run
            say(_line(prefix + name, run))
    return {"workload": work.__dict__, "providers": list(providers), "runs": runs}


def _line(name: str, run: dict[str, Any]) -> str:
    extra = ""
    if "limited_key" in run:
        extra = (
            f", {run['limited_key']} 429'd from request {run['limited_after_request']}: "
            f"{run['limited_key_429s']} refusals (at most {run['most_429s_one_session']} per session), "
            f"served {run['limited_key_served_after_limit']} after"
        )
    return (
        f"  {name:17} keys={run['keys']} cached={run['cached_ratio']:.1%} "
        f"(vs single {run['ratio_vs_single']:.1%}) spread=±{run['max_share_deviation']:.1%} "
        f"requests={run['requests']} client errors={run['client_errors']} {run['seconds']}s{extra}"
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.cache_affinity [--sessions N] [--turns N] [--keys N] [--providers LIST]
    [--json PATH]``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.cache_affinity", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument(
        "--providers", default=",".join(PROVIDERS), help="the upstream APIs, comma-separated (default: all)"
    )
    parser.add_argument("--json", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    providers = tuple(p for p in args.providers.split(",") if p)
    unknown = set(providers) - set(PROVIDERS)
    if unknown:
        parser.error(f"--providers: unknown {', '.join(sorted(unknown))} (known: {', '.join(PROVIDERS)})")
    work = Workload(sessions=args.sessions, turns=args.turns, keys=args.keys)
    result = asyncio.run(run_lane(work, providers=providers))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
