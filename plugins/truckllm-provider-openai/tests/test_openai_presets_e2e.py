"""End to end: the ``openai`` SDK through a real gateway to OpenAI-compatible services with a
preset (Groq, Mistral, Ollama without a key), each played by a FakeCompat that refuses what the
real service refuses; and the ``usage`` strategy steering by Mistral's own rate-limit headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
import truckllm_provider_openai as plugin

from truckllm_testing.fakes import Reply
from truckllm_testing.fakes.compat import FakeCompat
from truckllm_testing.server import GatewayServer

usage_strategy = pytest.importorskip("truckllm_strategy_usage")

CONFIG = """
routing: {{retries: 0}}
providers:
  groq: {{type: openai, base_url: {groq}, keys: [{{name: g, value: gsk-1}}], options: {{preset: groq}}}}
  mistral: {{type: openai, base_url: {mistral}, keys: [{{name: m, value: mk-1}}], options: {{preset: mistral}}}}
  ollama: {{type: openai, base_url: {ollama}, options: {{preset: ollama}}}}
  mistral-a: {{type: openai, base_url: {mistral_a}, keys: [{{name: a, value: mk-a}}], options: {{preset: mistral}}}}
  mistral-b: {{type: openai, base_url: {mistral_b}, keys: [{{name: b, value: mk-b}}], options: {{preset: mistral}}}}
models:
  fast: {{deployments: [{{provider: groq, model: llama-3.3-70b-versatile}}]}}
  large: {{deployments: [{{provider: mistral, model: mistral-large-latest}}]}}
  local: {{deployments: [{{provider: ollama, model: llama3.2}}]}}
  spread:
    strategy: usage
    deployments: [{{provider: mistral-a, model: mistral-small-latest}}, {{provider: mistral-b, model: mistral-small-latest}}]
"""

USER: Any = [{"role": "user", "content": "one two three four five six seven eight"}]
TOOLS: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeCompat]]:
    """The services, served from threads for this module."""
    made = {
        "groq": FakeCompat("groq", keys=["gsk-1"]),
        "mistral": FakeCompat("mistral", keys=["mk-1"]),
        "ollama": FakeCompat("ollama", keys=()),
        "mistral_a": FakeCompat("mistral", keys=["mk-a"]),
        "mistral_b": FakeCompat("mistral", keys=["mk-b"]),
    }
    for fake in made.values():
        fake.start_in_thread()
    yield made
    for fake in made.values():
        fake.stop_thread()


@pytest.fixture(scope="module")
def client(fakes: dict[str, FakeCompat]) -> Iterator[openai.OpenAI]:
    """An ``openai`` client of a real gateway with this plugin and the usage strategy."""
    config = CONFIG.format(**{name: fake.base_url for name, fake in fakes.items()})
    with (
        GatewayServer(config, autoload=False, extra_plugins=(plugin, usage_strategy)) as gateway,
        openai.OpenAI(base_url=gateway.url + "/v1", api_key="anything", max_retries=0, timeout=20) as sdk,
    ):
        yield sdk


def test_groq_gets_no_logprobs_nor_names(client: openai.OpenAI, fakes: dict[str, FakeCompat]) -> None:
    fake = fakes["groq"]
    fake.reset()
    reply = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "hello there", "name": "alice"}],
        logprobs=True,
        top_logprobs=2,
        logit_bias={"50256": -100},
    )
    assert reply.choices[0].message.content == "echo: hello there"
    (received,) = fake.requests
    assert received.api_key == "gsk-1" and fake.violations == []
    assert not {"logprobs", "top_logprobs", "logit_bias"} & set(received.json)
    assert "name" not in received.json["messages"][0]


def test_groq_n_above_one_is_the_clients_400_naming_n(
    client: openai.OpenAI, fakes: dict[str, FakeCompat]
) -> None:
    fakes["groq"].reset()
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="fast", messages=USER, n=2)
    assert refused.value.param == "n" or "n must be 1" in str(refused.value)
    assert fakes["groq"].requests == []  # never sent


def test_mistral_stream_with_tools_forced(client: openai.OpenAI, fakes: dict[str, FakeCompat]) -> None:
    fake = fakes["mistral"]
    fake.reset()
    fake.script(Reply(text="fine"))
    text, usage = "", None
    for chunk in client.chat.completions.create(
        model="large",
        messages=USER,
        max_completion_tokens=40,
        seed=11,
        user="u-9",
        tools=TOOLS,
        tool_choice="required",
        stream=True,
        stream_options={"include_usage": True},
    ):
        text += "".join(choice.delta.content or "" for choice in chunk.choices)
        usage = chunk.usage or usage
    assert text == "fine" and usage is not None and usage.total_tokens > 0
    (received,) = fake.requests
    assert fake.violations == []
    body = received.json
    assert body["max_tokens"] == 40 and body["random_seed"] == 11 and body["tool_choice"] == "any"
    assert not {"max_completion_tokens", "seed", "user", "stream_options"} & set(body)


def test_ollama_without_a_key_and_its_output_limit(
    client: openai.OpenAI, fakes: dict[str, FakeCompat]
) -> None:
    fake = fakes["ollama"]
    fake.reset()
    reply = client.chat.completions.create(model="local", messages=USER, max_completion_tokens=2)
    assert reply.choices[0].finish_reason == "length"  # max_tokens reached Ollama: the limit held
    (received,) = fake.requests
    assert received.api_key is None and "authorization" not in received.headers
    assert received.json["max_tokens"] == 2 and fake.violations == []


def test_the_usage_strategy_steers_by_mistrals_own_headers(
    client: openai.OpenAI, fakes: dict[str, FakeCompat]
) -> None:
    a, b = fakes["mistral_a"], fakes["mistral_b"]
    a.reset()
    b.reset()
    for _ in range(20):  # until both keys have answered (their headers read)
        client.chat.completions.create(model="spread", messages=USER)
        if a.requests and b.requests:
            break
    assert a.requests and b.requests
    a.script(Reply(prompt_tokens=5000))  # a's next answer leaves it little of its token minute
    for _ in range(20):
        client.chat.completions.create(model="spread", messages=USER)
        if a.pending == 0:
            break
    assert a.pending == 0
    served_by_a = len(a.requests)
    for _ in range(6):
        client.chat.completions.create(model="spread", messages=USER)
    assert len(a.requests) == served_by_a  # b has the headroom: every request went there
    assert a.violations == [] and b.violations == []
