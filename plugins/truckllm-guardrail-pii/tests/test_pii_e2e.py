"""The ``pii`` guardrail on a real gateway: a prompt's personal data never reaches the upstream,
the answer's never reaches the client, and neither is in the request's record."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx2 as httpx
import msgspec
import pytest

from truckllm import hookimpl
from truckllm.types import RequestRecord
from truckllm_testing.fakes import FakeOpenAI, Reply
from truckllm_testing.server import GatewayServer

pytest.importorskip("truckllm_provider_openai")  # the upstream is an OpenAI provider

PROVIDER_KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa"
CLIENT_KEY = "client-key-0123456789"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PHONE = "+44 20 7946 0958"


class Records:
    """Collects every finished request's record."""

    __name__ = "test-pii-records"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.event = threading.Event()

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.event.set()

    def of(self, response: httpx.Response) -> RequestRecord:
        rid = response.headers["x-request-id"]
        for _ in range(500):
            found = [r for r in self.records if r.request_id == rid]
            if found:
                return found[0]
            self.event.wait(0.02)
            self.event.clear()
        raise AssertionError("no record")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=[PROVIDER_KEY])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def records() -> Records:
    return Records()


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI, records: Records) -> Iterator[GatewayServer]:
    config = f"""
keys:
  - {{name: client, value: {CLIENT_KEY}, log_bodies: true}}
providers:
  oa: {{type: openai, base_url: {fake.base_url}, keys: [{{name: k, value: {PROVIDER_KEY}}}]}}
models:
  gpt-4o: {{deployments: [{{provider: oa, model: gpt-4o}}]}}
  strict: {{deployments: [{{provider: oa, model: gpt-4o}}]}}
guardrails:
  - {{type: pii, name: pii-mask, stages: [input, output], aliases: [gpt-4o]}}
  - {{type: pii, name: pii-block, aliases: [strict], options: {{mode: block, entities: [card]}}}}
"""
    with GatewayServer(config, extra_plugins=(records,)) as server:
        yield server


def _chat(gw: GatewayServer, text: str, model: str = "gpt-4o") -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=30,
    )


def test_mask_on_the_way_in_and_out(gw: GatewayServer, fake: FakeOpenAI, records: Records) -> None:
    fake.script(Reply(text=f"Noted. You can also call {PHONE}."))
    response = _chat(gw, f"My mail is {EMAIL} and my card {CARD}.")
    assert response.status_code == 200, response.text
    upstream = fake.requests[-1].json["messages"][0]["content"]
    assert upstream == "My mail is <EMAIL> and my card <CARD>."
    assert response.json()["choices"][0]["message"]["content"] == "Noted. You can also call <PHONE>."
    record = records.of(response)
    assert [(g.name, g.stage, g.action, dict(g.findings)) for g in record.guardrails] == [
        ("pii-mask", "input", "modify", {"email": 1, "card": 1}),
        ("pii-mask", "output", "modify", {"phone": 1}),
    ]
    everything = json.dumps(msgspec.to_builtins(record)) + response.text
    for value in (EMAIL, CARD, PHONE, "4111111111111111"):
        assert value not in everything


def test_block_names_the_kind_and_sends_nothing_upstream(
    gw: GatewayServer, fake: FakeOpenAI, records: Records
) -> None:
    before = len(fake.requests)
    response = _chat(gw, f"charge {CARD} please", model="strict")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "guardrail_blocked"
    assert error["message"] == "Blocked by guardrail 'pii-block': personal data or secrets found: card"
    assert len(fake.requests) == before
    (result,) = records.of(response).guardrails
    assert (result.action, dict(result.findings)) == ("block", {"card": 1})
    assert _chat(gw, "no card here, just 42", model="strict").status_code == 200


def test_a_streamed_answer_is_masked(gw: GatewayServer, fake: FakeOpenAI, records: Records) -> None:
    fake.script(Reply(text=f"Sure: write to {EMAIL} or call {PHONE}, they answer quickly."))
    response = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "who?"}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200
    text = ""
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[len("data: ") :])["choices"]:
                text += choice["delta"].get("content") or ""
    assert text == "Sure: write to <EMAIL> or call <PHONE>, they answer quickly."
    (_, output) = records.of(response).guardrails
    assert (output.stage, output.action, dict(output.findings)) == (
        "output",
        "modify",
        {"email": 1, "phone": 1},
    )
