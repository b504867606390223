"""Guardrails on every front door, end to end: client -> gateway -> fake OpenAI upstream.

A throwaway guardrail type ``mask`` (registered by a throwaway plugin) masks a secret-like
string, blocks on a word, raises on another and stalls on a third. Every front door (OpenAI chat,
completions, embeddings, Responses, Anthropic messages, Gemini generateContent), whole and
stream: a block answers in the door's own error format and sends nothing upstream; a modify
sends only the masked text upstream, and the secret appears in no answer, record, body or log
line; an allow changes nothing. The output stage masks and blocks whole answers and streams.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx
import msgspec
import pytest
from loguru import logger

from truckllm import hookimpl
from truckllm.types import GuardrailSpec, GuardSubject, RequestRecord, Verdict
from truckllm_testing.fakes import FakeOpenAI, Reply
from truckllm_testing.server import GatewayServer

SECRET = "sk-live-QZ7x9SECRETx42"
MASK = "[MASKED]"
PROVIDER_KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa"
CLIENT_KEY = "client-key-0123456789"


class MaskGuard:
    """Masks ``secret``; blocks on ``BLOCKME``; raises on ``RAISEME``; stalls on ``SLOWME``."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
        secret: str
        mark: str = MASK

    def __init__(self, options: MaskGuard.Options) -> None:
        self.options = options
        self.subjects: list[GuardSubject] = []

    async def check(self, subject: GuardSubject) -> Verdict:
        self.subjects.append(subject)
        joined = " ".join(t.text for t in subject.texts)
        if "BLOCKME" in joined or "\u00a7" in joined:  # § is never split across stream deltas
            return Verdict(action="block", reason="a forbidden word")
        if "RAISEME" in joined:
            raise RuntimeError(f"boom on {joined}")  # the text must not reach a log line
        if "SLOWME" in joined:
            await asyncio.sleep(30)
        found = sum(t.text.count(self.options.secret) for t in subject.texts)
        if not found:
            return Verdict()
        return Verdict(
            action="modify",
            reason="masked a secret",
            texts=tuple(t.text.replace(self.options.secret, self.options.mark) for t in subject.texts),
            findings={"secret": found},
        )


class Plugin:
    """Registers ``mask`` and records every request record."""

    __name__ = "throwaway-guardrails"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.event = threading.Event()

    @hookimpl
    def register_guardrails(self, register: Callable[[GuardrailSpec], None]) -> None:
        register(GuardrailSpec(type="mask", make=MaskGuard, options=MaskGuard.Options))  # type: ignore[arg-type]

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.event.set()


def gateway_config(base_url: str) -> str:
    options = f"{{secret: {SECRET}}}"
    return f"""
admin: {{token: admin-token-guardrails-e2e}}
keys:
  - {{name: client, value: {CLIENT_KEY}, log_bodies: true}}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys: [{{name: first, value: {PROVIDER_KEY}}}]
models:
  gpt-4o: {{deployments: [{{provider: oa, model: gpt-4o-2024-08-06}}]}}
  embed: {{deployments: [{{provider: oa, model: text-embedding-3-small}}]}}
  lenient: {{deployments: [{{provider: oa, model: gpt-4o-2024-08-06}}]}}
  windowed: {{deployments: [{{provider: oa, model: gpt-4o-2024-08-06}}]}}
guardrails:
  - {{type: mask, name: in, aliases: [gpt-4o, embed], timeout: 200ms, options: {options}}}
  - {{type: mask, name: out, stages: [output], aliases: [gpt-4o], window: 4000, options: {options}}}
  - {{type: mask, name: soft, aliases: [lenient], timeout: 200ms, on_error: allow, options: {options}}}
  - {{type: mask, name: small, stages: [output], aliases: [windowed], window: 12, options: {options}}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=[PROVIDER_KEY], chunks=6)
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def plugin() -> Plugin:
    return Plugin()


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI, plugin: Plugin) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_config(fake.base_url), extra_plugins=(plugin,)) as server:
        yield server


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(sink)


DOORS = ("chat", "completions", "embeddings", "responses", "anthropic", "gemini")
STREAMING = ("chat", "completions", "responses", "anthropic", "gemini", "gemini-array")
ERROR_SHAPE = {
    "chat": "openai",
    "completions": "openai",
    "embeddings": "openai",
    "responses": "openai",
    "gemini-array": "gemini",
}


def send(
    gw: GatewayServer, door: str, text: str, stream: bool = False, model: str = "gpt-4o"
) -> httpx.Response:
    """One request through ``door`` carrying ``text`` as the user's text."""
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    body: dict[str, Any]
    if door == "chat":
        path, body = "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": text}]}
    elif door == "completions":
        path, body = "/v1/completions", {"model": model, "prompt": text, "max_tokens": 50}
    elif door == "embeddings":
        path, body = "/v1/embeddings", {"model": "embed", "input": [text, "plain"]}
    elif door == "responses":
        path, body = "/v1/responses", {"model": model, "input": text, "store": False}
    elif door == "anthropic":
        auth = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
        path = "/v1/messages"
        body = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}]}
    else:
        auth = {"x-goog-api-key": CLIENT_KEY}
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        if door == "gemini-array":  # the JSON-array stream (no alt=sse)
            method = "streamGenerateContent"
        path, body = (
            f"/v1beta/models/{model}:{method}",
            {"contents": [{"role": "user", "parts": [{"text": text}]}]},
        )
        stream = False  # the route says it
    if stream:
        body["stream"] = True
    return httpx.post(gw.url + path, json=body, headers=auth, timeout=30)


def shape(door: str, body: bytes) -> str:
    error = json.loads(body)
    if error.get("type") == "error":
        return "anthropic"
    if "status" in error.get("error", {}):
        return "gemini"
    return "openai"


def message_of(body: bytes) -> str:
    error = json.loads(body)
    return str(error["error"]["message"])


def record_for(plugin: Plugin, response: httpx.Response) -> RequestRecord:
    rid = response.headers["x-request-id"]
    for _ in range(500):
        found = [r for r in plugin.records if r.request_id == rid]
        if found:
            return found[0]
        plugin.event.wait(0.02)
        plugin.event.clear()
    raise AssertionError("no record")


def upstream_bodies(fake: FakeOpenAI, before: int) -> bytes:
    return b"".join(r.body for r in fake.requests[before:])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("door", DOORS)
def test_input_block_answers_in_the_doors_format_and_sends_nothing(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, door: str, stream: bool
) -> None:
    if stream and door not in STREAMING:
        pytest.skip("embeddings do not stream")
    before = len(fake.requests)
    response = send(gw, door, "please BLOCKME now", stream)
    assert response.status_code == 400
    assert shape(door, response.content) == ERROR_SHAPE.get(door, door)
    assert message_of(response.content) == "Blocked by guardrail 'in': a forbidden word"
    if shape(door, response.content) == "openai":
        assert json.loads(response.content)["error"]["code"] == "guardrail_blocked"
    assert len(fake.requests) == before  # nothing went upstream
    record = record_for(plugin, response)
    assert record.status == 400
    assert [(g.name, g.stage, g.action) for g in record.guardrails] == [("in", "input", "block")]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("door", DOORS)
def test_input_modify_sends_only_the_masked_text(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, logs: list[str], door: str, stream: bool
) -> None:
    if stream and door not in STREAMING:
        pytest.skip("embeddings do not stream")
    before = len(fake.requests)
    response = send(gw, door, f"my key is {SECRET} ok", stream)
    assert response.status_code == 200, response.text
    sent = upstream_bodies(fake, before)
    assert sent and SECRET.encode() not in sent
    assert MASK.encode() in sent
    assert SECRET not in response.text
    record = record_for(plugin, response)
    encoded = msgspec.json.encode(record)
    assert SECRET.encode() not in encoded
    assert record.bodies is not None and MASK.encode() in msgspec.json.encode(record.bodies)
    assert not [line for line in logs if SECRET in line]
    (result,) = [g for g in record.guardrails if g.stage == "input"]
    assert (result.name, result.action, dict(result.findings)) == ("in", "modify", {"secret": 1})


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("door", DOORS)
def test_input_allow_changes_nothing(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, door: str, stream: bool
) -> None:
    if stream and door not in STREAMING:
        pytest.skip("embeddings do not stream")
    before = len(fake.requests)
    response = send(gw, door, "a harmless question", stream)
    assert response.status_code == 200, response.text
    assert b"a harmless question" in upstream_bodies(fake, before)
    record = record_for(plugin, response)
    assert ("in", "input", "allow") in [(g.name, g.stage, g.action) for g in record.guardrails]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("door", STREAMING)
def test_output_masks_the_answer(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, logs: list[str], door: str, stream: bool
) -> None:
    if door == "gemini-array" and not stream:
        pytest.skip("the JSON-array form is a stream")
    fake.script(Reply(text=f"the key is {SECRET} as asked"))
    response = send(gw, door, "tell me the key", stream)
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    assert MASK in response.text
    record = record_for(plugin, response)
    assert SECRET.encode() not in msgspec.json.encode(record)
    assert not [line for line in logs if SECRET in line]
    (result,) = [g for g in record.guardrails if g.stage == "output"]
    assert (result.name, result.action) == ("out", "modify")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("door", STREAMING)
def test_output_block_before_anything_was_sent_is_an_error_in_the_doors_format(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, door: str, stream: bool
) -> None:
    if door == "gemini-array" and not stream:
        pytest.skip("the JSON-array form is a stream")
    fake.script(Reply(text="here you go BLOCKME"))
    response = send(gw, door, "tell me", stream)
    assert response.status_code == 400
    assert shape(door, response.content) == ERROR_SHAPE.get(door, door)
    assert message_of(response.content) == "Blocked by guardrail 'out': a forbidden word"
    record = record_for(plugin, response)
    assert record.status == 400 and record.usage is not None  # the upstream's work is still charged


@pytest.mark.parametrize("door", STREAMING)
def test_output_block_mid_stream_ends_with_the_doors_stream_error(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, door: str
) -> None:
    fake.script(Reply(text="one two three four five six seven eight nine ten \u00a7 eleven"))
    response = send(gw, door, "count", True, model="windowed")
    assert response.status_code == 200
    assert "one" in response.text  # windows before the block were released
    assert "\u00a7" not in response.text and "eleven" not in response.text
    assert "Blocked by guardrail 'small': a forbidden word" in response.text
    record = record_for(plugin, response)
    (result,) = [g for g in record.guardrails if g.stage == "output"]
    assert (result.name, result.action) == ("small", "block")


@pytest.mark.parametrize("word", ["RAISEME", "SLOWME"])
def test_a_failing_guardrail_blocks_by_default(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, logs: list[str], word: str
) -> None:
    before = len(fake.requests)
    response = send(gw, "chat", f"{word} {SECRET}")
    assert response.status_code == 400
    assert message_of(response.content).startswith("Blocked by guardrail 'in': ")
    assert len(fake.requests) == before
    record = record_for(plugin, response)
    (result,) = record.guardrails
    assert result.action == "block"
    assert result.error == ("timeout" if word == "SLOWME" else "RuntimeError")
    assert not [line for line in logs if SECRET in line]


@pytest.mark.parametrize("word", ["RAISEME", "SLOWME"])
def test_a_failing_guardrail_allows_with_on_error_allow(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, word: str
) -> None:
    before = len(fake.requests)
    response = send(gw, "chat", f"{word} hello", model="lenient")
    assert response.status_code == 200
    assert len(fake.requests) == before + 1
    (result,) = record_for(plugin, response).guardrails
    assert (result.name, result.action) == ("soft", "allow")
    assert result.error == ("timeout" if word == "SLOWME" else "RuntimeError")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("door", DOORS)
def test_a_raising_input_guardrail_blocks_on_every_door(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, door: str, stream: bool
) -> None:
    """Fail closed whatever the front door: the 400 in the door's own format, nothing upstream."""
    if stream and door not in STREAMING:
        pytest.skip("embeddings do not stream")
    before = len(fake.requests)
    response = send(gw, door, f"RAISEME {SECRET}", stream)
    assert response.status_code == 400
    assert shape(door, response.content) == ERROR_SHAPE.get(door, door)
    assert (
        message_of(response.content)
        == "Blocked by guardrail 'in': the guardrail could not check this request"
    )
    assert len(fake.requests) == before
    (result,) = record_for(plugin, response).guardrails
    assert (result.stage, result.action, result.error) == ("input", "block", "RuntimeError")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("door", STREAMING)
def test_a_raising_output_guardrail_blocks_the_answer(
    gw: GatewayServer, fake: FakeOpenAI, plugin: Plugin, logs: list[str], door: str, stream: bool
) -> None:
    """The output stage fails closed too: the answer (whole, or a stream whose window had not
    been released) is never shown; the client gets the door's error."""
    if door == "gemini-array" and not stream:
        pytest.skip("the JSON-array form is a stream")
    fake.script(Reply(text=f"the answer is RAISEME and {SECRET}"))
    response = send(gw, door, "tell me", stream)
    assert response.status_code == 400
    assert shape(door, response.content) == ERROR_SHAPE.get(door, door)
    assert message_of(response.content) == (
        "Blocked by guardrail 'out': the guardrail could not check this request"
    )
    assert SECRET not in response.text and "RAISEME" not in response.text
    record = record_for(plugin, response)
    (result,) = [g for g in record.guardrails if g.stage == "output"]
    assert (result.name, result.action, result.error) == ("out", "block", "RuntimeError")
    assert not [line for line in logs if SECRET in line]


def test_guardrails_never_see_credentials(gw: GatewayServer, plugin: Plugin) -> None:
    assert gw.gateway is not None
    send(gw, "chat", "what is my key")
    entries = gw.gateway.runtime.extra["guardrails"]
    guard: Any = entries.entries[0].guard  # type: ignore[attr-defined]
    seen = msgspec.json.encode(guard.subjects)
    assert CLIENT_KEY.encode() not in seen and PROVIDER_KEY.encode() not in seen


@pytest.mark.parametrize("stream", [False, True])
def test_a_stored_response_is_never_the_unmasked_answer(
    gw: GatewayServer, fake: FakeOpenAI, stream: bool
) -> None:
    """A stateful dialect's stored copy follows the output stage: an answer a guardrail masked
    is not stored (retrieving it is a 404, continuing from it too), one it let through is."""
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    for text, kept in ((f"the key is {SECRET} as asked", False), ("nothing to hide", True)):
        fake.script(Reply(text=text))
        body: dict[str, Any] = {"model": "gpt-4o", "input": "tell me", "store": True}
        if stream:
            body["stream"] = True
        answer = httpx.post(gw.url + "/v1/responses", json=body, headers=auth, timeout=30)
        assert answer.status_code == 200 and SECRET not in answer.text
        if stream:
            completed = [
                json.loads(line[6:])
                for line in answer.text.splitlines()
                if line.startswith("data: ") and '"response.completed"' in line
            ]
            rid = completed[0]["response"]["id"]
        else:
            rid = answer.json()["id"]
        stored = httpx.get(gw.url + f"/v1/responses/{rid}", headers=auth)
        assert SECRET not in stored.text
        assert stored.status_code == (200 if kept else 404), stored.text
