"""What the hostile-upstream checks of the conformance suite hold, for Bedrock's own wire format
(the shared hostile server speaks no Bedrock): a lying upstream's answers are a clean 502 (or an
error event once a stream started), its garbage and the provider key never reach the client,
``Retry-After`` stays bounded and recorded usage is never negative."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import truckllm_provider_bedrock as plugin
from aiohttp import web

from truckllm_testing.conformance import Answer, GatewayClient, StreamAnswer
from truckllm_testing.fakes.bedrock_wire import event_frame, frame
from truckllm_testing.loopback import LoopbackServer
from truckllm_testing.server import GatewayServer

MARKER = "HOSTILE-BEDROCK-GARBAGE"
SECRET = "hostile-secret-Zq8Wv3Lr7Tn2Xc5Kp9"
KEY = f"AKIDHOSTILE0001:{SECRET}"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
GOOD_START = event_frame("messageStart", {"role": "assistant"})
GOOD_TEXT = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "fine"}})


@dataclass
class Act:
    """One hostile answer: status, headers, body (or stream parts)."""

    status: int = 200
    headers: dict[str, str] | None = None
    body: bytes = b""


class HostileBedrock(LoopbackServer):
    """Answers every Converse call with the next scripted :class:`Act`."""

    def __init__(self) -> None:
        super().__init__()
        self.acts: list[Act] = []
        self.seen: list[str] = []

    def app(self) -> web.Application:
        """One catch-all route."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.seen.append(request.raw_path)
        act = self.acts.pop(0) if self.acts else Act(body=b"{}")
        headers = {"content-type": "application/json", **(act.headers or {})}
        if request.path.endswith("-stream") and act.status == 200:
            headers["content-type"] = "application/vnd.amazon.eventstream"
        return web.Response(status=act.status, body=act.body, headers=headers)


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileBedrock]:
    with HostileBedrock().running() as server:
        yield server


@pytest.fixture
def gateway(hostile: HostileBedrock) -> Iterator[GatewayServer]:
    config = (
        "routing:\n  retries: 0\n  stream_idle_timeout: 5s\n"
        "  cooldown: {failures: 1000000, error_ratio: 1.0, duration: 1s}\n"
        f"providers:\n  br:\n    type: bedrock\n    base_url: {hostile.origin}\n    options: {{region: us-east-1}}\n"
        f"    keys: [{{name: k, value: '{KEY}'}}]\n"
        f"models:\n  claude:\n    deployments: [{{provider: br, model: '{MODEL}'}}]\n"
    )
    hostile.acts.clear()
    with GatewayServer(config, autoload=False, extra_plugins=(plugin,)) as gw:  # a fresh key state each
        yield gw


def _ask(gateway: GatewayServer) -> Answer:
    return GatewayClient(gateway).chat({"model": "claude", "messages": [{"role": "user", "content": "hi"}]})


def _stream(gateway: GatewayServer) -> StreamAnswer:
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    return GatewayClient(gateway).stream(body)


def _clean(text: str) -> None:
    assert MARKER not in text, text[:300]
    assert SECRET[:8] not in text and SECRET[-8:] not in text, "the provider key reached the client"
    assert "Traceback" not in text


GARBAGE = {
    "html": b"<html>" + MARKER.encode() + b"</html>",
    "empty": b"",
    "json_array": b"[]",
    "wrong_object": json.dumps({"foo": MARKER}).encode(),
    "truncated": b'{"output":{"message":{"content":[{"text":"' + MARKER.encode(),
    "deep": b"[" * 100000,
    "openai_shape": json.dumps({"choices": [{"message": {"content": MARKER}}]}).encode(),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_answers_are_a_502(gateway: GatewayServer, hostile: HostileBedrock, name: str) -> None:
    hostile.acts.append(Act(body=GARBAGE[name]))
    answer = _ask(gateway)
    assert answer.status == 502, answer.body
    _clean(answer.body.decode())


@pytest.mark.parametrize(
    "body",
    [
        MARKER.encode(),
        GOOD_START + MARKER.encode(),
        GOOD_START + GOOD_TEXT + frame({":event-type": "contentBlockDelta"}, MARKER.encode()),
        GOOD_START + GOOD_TEXT,
        GOOD_START + GOOD_TEXT[:-3],
    ],
    ids=["not_event_stream", "garbage_after_start", "non_json_event", "cut", "cut_mid_frame"],
)
def test_broken_streams_end_in_an_error(gateway: GatewayServer, hostile: HostileBedrock, body: bytes) -> None:
    hostile.acts.append(Act(body=body))
    answer = _stream(gateway)
    _clean(answer.raw.decode())
    assert not answer.done
    assert answer.status == 502 or answer.error is not None


@pytest.mark.parametrize("status", [400, 403, 429, 500, 503])
def test_an_error_echoing_the_key_never_shows_it(
    gateway: GatewayServer, hostile: HostileBedrock, status: int
) -> None:
    echo = json.dumps({"message": f"bad key {KEY} secret={SECRET} part={SECRET[3:12]}"}).encode()
    hostile.acts.append(Act(status=status, body=echo, headers={"x-amzn-errortype": "ValidationException"}))
    answer = _ask(gateway)
    assert answer.status >= 400
    _clean(answer.body.decode())


@pytest.mark.parametrize("value", ["99999999999", "-5", "nan", "inf", "soon", "1e308"])
def test_retry_after_is_bounded(gateway: GatewayServer, hostile: HostileBedrock, value: str) -> None:
    hostile.acts.append(
        Act(
            status=429,
            body=b'{"message":"slow"}',
            headers={"x-amzn-errortype": "ThrottlingException", "retry-after": value},
        )
    )
    answer = _ask(gateway)
    assert answer.status == 429
    retry = answer.headers.get("retry-after")
    assert retry is None or 0 <= float(retry) <= 3600


@pytest.mark.parametrize("tokens", [-1, -1000000, 10**30])
def test_usage_is_never_negative(gateway: GatewayServer, hostile: HostileBedrock, tokens: int) -> None:
    usage: dict[str, Any] = {
        "inputTokens": tokens,
        "outputTokens": tokens,
        "totalTokens": tokens,
        "cacheReadInputTokens": tokens,
    }
    hostile.acts.append(
        Act(
            body=json.dumps(
                {
                    "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
                    "stopReason": "end_turn",
                    "usage": usage,
                }
            ).encode()
        )
    )
    answer = _ask(gateway)
    if answer.status == 200:
        reported = answer.json().get("usage") or {}
        assert all(v >= 0 for v in reported.values() if isinstance(v, int))
    else:
        assert answer.status == 502
