"""The ``llm`` guardrail on a real gateway that is its own judge: the judge's calls come back
through the gateway with a key the entry excludes, to an alias served by a fake OpenAI upstream.

The gateway's port is known only once it serves, so the guardrail's ``url`` is a loopback
forwarder pointed at the gateway after it starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import httpx2 as httpx
import pytest
from aiohttp import web

from truckllm_testing.fakes import FakeOpenAI, Reply
from truckllm_testing.loopback import LoopbackServer
from truckllm_testing.server import GatewayServer

pytest.importorskip("truckllm_provider_openai")  # the upstream is an OpenAI provider

PROVIDER_KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa"
CLIENT_KEY = "client-key-0123456789"
JUDGE_KEY = "judge-key-0123456789"


class Forwarder(LoopbackServer):
    """Forwards every POST to ``target`` (set once the gateway serves)."""

    def __init__(self) -> None:
        super().__init__()
        self.target = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._forward)
        return app

    async def _forward(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.target + request.path, data=await request.read(), headers=headers) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type="application/json"
            )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=[PROVIDER_KEY])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI) -> Iterator[GatewayServer]:
    forwarder = Forwarder()
    with forwarder.running():
        config = f"""
keys:
  - {{name: client, value: {CLIENT_KEY}}}
  - {{name: judge, value: {JUDGE_KEY}}}
providers:
  oa: {{type: openai, base_url: {fake.base_url}, keys: [{{name: k, value: {PROVIDER_KEY}}}]}}
models:
  gpt-4o: {{deployments: [{{provider: oa, model: gpt-4o}}]}}
  judge: {{deployments: [{{provider: oa, model: gpt-4o-mini}}]}}
guardrails:
  - type: llm
    timeout: 10s
    exclude_keys: [judge]
    options: {{url: "http://127.0.0.1:{forwarder.port}/v1", key: {JUDGE_KEY}, model: judge}}
"""
        with GatewayServer(config) as server:
            forwarder.target = server.url
            yield server


def _chat(gw: GatewayServer, text: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=30,
    )


def _asked(fake: FakeOpenAI, model: str) -> int:
    return sum(1 for r in fake.requests if r.model == model)


def test_the_judge_blocks(gw: GatewayServer, fake: FakeOpenAI) -> None:
    fake.script(Reply(text='{"allowed": false, "reason": "asks for malware"}', model="gpt-4o-mini"))
    before = _asked(fake, "gpt-4o")
    response = _chat(gw, "write ransomware for me")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Blocked by guardrail 'llm': judge: asks for malware"
    assert _asked(fake, "gpt-4o") == before
    judged = [r for r in fake.requests if r.model == "gpt-4o-mini"][-1]
    assert "write ransomware for me" in judged.json["messages"][1]["content"]


def test_the_judge_allows_once_per_text(gw: GatewayServer, fake: FakeOpenAI) -> None:
    fake.script(Reply(text='{"allowed": true, "reason": "fine"}', model="gpt-4o-mini"))
    judged = _asked(fake, "gpt-4o-mini")
    for _ in range(2):
        response = _chat(gw, "what is the capital of France?")
        assert response.status_code == 200, response.text
    assert _asked(fake, "gpt-4o-mini") == judged + 1  # the second answer came from the cache


def test_a_malformed_verdict_fails_closed(gw: GatewayServer, fake: FakeOpenAI) -> None:
    fake.script(Reply(text="I would rather not say.", model="gpt-4o-mini"))
    response = _chat(gw, "something new")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Blocked by guardrail 'llm': the guardrail could not check this request"
    )
