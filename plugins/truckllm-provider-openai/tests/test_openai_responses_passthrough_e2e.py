"""End to end, pass-through: raw HTTP ``POST /v1/responses`` (and ``/v1/responses/input_tokens``)
to a real gateway with the responses dialect plugin, to FakeOpenAI, which records the bytes it
received and validates them as OpenAI does. Every member the client sent arrives as it was sent
(the bytes of every value, their order) but ``model``; encrypted reasoning survives a round trip
(the fake accepts only its own, for the same account); a stream's events reach the client as
OpenAI numbered them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import truckllm_provider_openai as plugin

from truckllm_testing.fakes import FakeOpenAI, Reply, parse_sse
from truckllm_testing.server import GatewayServer

dialect = pytest.importorskip("truckllm_dialect_responses")

MODEL = "gpt-5-codex"
CONFIG = """
routing: {{retries: 0}}
providers:
  oai: {{type: openai, base_url: {base_url}, keys: [{{name: main, value: key-main}}]}}
models:
  codex: {{deployments: [{{provider: oai, model: {model}}}]}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    """The fake upstream, served from a thread for this module."""
    upstream = FakeOpenAI(keys=["key-main"])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI) -> Iterator[GatewayServer]:
    """A real gateway with the kernel, the responses dialect and this plugin."""
    config = CONFIG.format(base_url=fake.base_url, model=MODEL)
    with GatewayServer(config, autoload=False, extra_plugins=(dialect, plugin)) as gw:
        yield gw


@pytest.fixture
def post(gateway: GatewayServer, fake: FakeOpenAI) -> Iterator[Any]:
    """POST raw bytes to the gateway; the fake starts clean and must end without violations."""
    fake.reset()
    with httpx.Client(base_url=gateway.url, timeout=20) as http:

        def send(path: str, body: bytes) -> Any:
            return http.post(path, content=body, headers={"content-type": "application/json"})

        yield send
    assert fake.violations == []


def _expected(body: bytes) -> bytes:
    """What OpenAI must receive: the same bytes with only the model rewritten."""
    assert body.count(b'"model":"codex"') == 1
    return body.replace(b'"model":"codex"', f'"model":"{MODEL}"'.encode())


# a compact top level (the plugin re-encodes only it), odd spacing and escapes inside values
EVERY_FIELD = (
    b'{"model":"codex","input":[{"role":"user","content":[{"type":"input_text","text":"caf\\u00e9  ok"}]}],'
    b'"instructions":"Be  brief.","include":["reasoning.encrypted_content"],'
    b'"reasoning":{ "effort" : "low", "summary":"auto" },'
    b'"text":{"format":{"type":"json_schema","name":"answer","schema":{"type":"object","properties":'
    b'{"a":{"type":"string"}},"required":["a"],"additionalProperties":false},"strict":true},"verbosity":"low"},'
    b'"tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{}},"strict":false}],'
    b'"tool_choice":"auto","prompt_cache_key":"pk-1","service_tier":"flex","background":false,'
    b'"truncation":"auto","metadata":{"team" :"a"},"parallel_tool_calls":false,"store":true,'
    b'"max_output_tokens":1000,"temperature":1.0,"top_p":1.0,"safety_identifier":"user-hash"}'
)


def test_every_field_arrives_byte_for_byte_but_model(post: Any, fake: FakeOpenAI) -> None:
    answer = post("/v1/responses", EVERY_FIELD)
    assert answer.status_code == 200, answer.text
    received = fake.requests[-1]
    assert received.path == "/v1/responses" and received.api_key == "key-main"
    assert received.body == _expected(EVERY_FIELD)
    response = answer.json()
    assert response["object"] == "response" and response["status"] == "completed"
    assert response["id"] == fake.response_turns[-1].response_id  # OpenAI's own id


def test_encrypted_reasoning_survives_a_round_trip(post: Any, fake: FakeOpenAI) -> None:
    fake.script(Reply(text="first", thinking="Think about it."))
    first_body = (
        b'{"model":"codex","input":"hi","include":["reasoning.encrypted_content"],'
        b'"reasoning":{"effort":"low","summary":"auto"},"store":false}'
    )
    first = post("/v1/responses", first_body)
    assert first.status_code == 200, first.text
    assert fake.requests[-1].body == _expected(first_body)
    output = first.json()["output"]
    (reasoning,) = [item for item in output if item["type"] == "reasoning"]
    assert reasoning["encrypted_content"]
    items = [{"role": "user", "content": "hi"}, *output, {"role": "user", "content": "and then?"}]
    second_body = (
        b'{"model":"codex","input":'
        + json.dumps(items, separators=(",", ":")).encode()
        + b',"include":["reasoning.encrypted_content"],"store":false}'
    )
    second = post("/v1/responses", second_body)
    assert second.status_code == 200, second.text
    assert fake.requests[-1].body == _expected(second_body)  # the fake verified the sealed content


def test_a_stream_reaches_the_client_event_by_event(post: Any, fake: FakeOpenAI) -> None:
    body = b'{"model":"codex","input":"stream me please","stream":true,"stream_options":{"include_obfuscation":false}}'
    answer = post("/v1/responses", body)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    assert fake.requests[-1].body == _expected(body)
    events = parse_sse(answer.content)
    payloads = [json.loads(e.data) for e in events]
    assert [e.event for e in events] == [p["type"] for p in payloads]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert payloads[0]["type"] == "response.created" and payloads[-1]["type"] == "response.completed"
    text = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    assert text == payloads[-1]["response"]["output"][-1]["content"][0]["text"]
    assert payloads[-1]["response"]["id"] == fake.response_turns[-1].response_id


def test_input_tokens_pass_through(post: Any, fake: FakeOpenAI) -> None:
    body = b'{"model":"codex","input":"count these words","instructions":"x","tools":[]}'
    answer = post("/v1/responses/input_tokens", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["object"] == "response.input_tokens" and answer.json()["input_tokens"] > 0
    assert fake.requests[-1].path == "/v1/responses/input_tokens"
    assert fake.requests[-1].body == _expected(body)


def test_built_in_tools_pass_through(post: Any, fake: FakeOpenAI) -> None:
    """A tool only OpenAI runs goes to OpenAI as it was sent."""
    body = b'{"model":"codex","input":"news?","tools":[{"type":"web_search"}],"tool_choice":"auto"}'
    answer = post("/v1/responses", body)
    assert answer.status_code == 200, answer.text
    assert fake.requests[-1].body == _expected(body)
