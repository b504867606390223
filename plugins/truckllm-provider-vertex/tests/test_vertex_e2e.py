"""End to end: the official SDKs → a real gateway (GatewayServer) → the fake Vertex AI.

The gateway's keys are the fake's service-account key files: the kernel's credential source gets
a token from the fake's token endpoint (the assertion's signature checked) before serving, and
every model call carries it. The openai SDK reaches Gemini (``vertex``) and Claude
(``vertex-anthropic``), streamed and not, with tools; the anthropic SDK reaches Claude through the
gateway's Anthropic front door (what Claude Code does with ``ANTHROPIC_BASE_URL``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from truckllm_testing.conformance import LogCapture
from truckllm_testing.fakes import Reply, ToolCall
from truckllm_testing.fakes.vertex import FakeVertex, TestServiceAccount
from truckllm_testing.server import GatewayServer

anthropic = pytest.importorskip("anthropic")
pytest.importorskip("truckllm_dialect_anthropic")

PROJECT = "test-project"
GEMINI_PATH = f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/gemini-2.5-flash"
CLAUDE_PATH = (
    f"/v1/projects/{PROJECT}/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929"
)
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
USER = {"role": "user", "content": "what is the weather in Paris"}


def gateway_config(fake: FakeVertex) -> str:
    """Both provider types on the fake, keyed by its service accounts (JSON is YAML)."""
    key = [{"name": "sa1", "value": fake.service_account_json("sa-1")}]
    return json.dumps(
        {
            "routing": {"retries": 0, "cooldown": {"failures": 1000}},
            "providers": {
                "gemini-vx": {
                    "type": "vertex",
                    "base_url": fake.base_url,
                    "options": {"project": PROJECT, "location": "us-central1"},
                    "keys": key,
                },
                "claude-vx": {
                    "type": "vertex-anthropic",
                    "base_url": fake.base_url,
                    "options": {"project": PROJECT, "location": "us-east5"},
                    "keys": key,
                },
            },
            "models": {
                "gemini": {
                    "strategy": "first",
                    "deployments": [{"provider": "gemini-vx", "model": "gemini-2.5-flash"}],
                },
                "claude-sonnet-4-5": {
                    "strategy": "first",
                    "deployments": [{"provider": "claude-vx", "model": "claude-sonnet-4-5@20250929"}],
                },
            },
        }
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeVertex]:
    server = FakeVertex(keys=["sa-1"], project=PROJECT)
    with server.running():
        yield server


@pytest.fixture(scope="module")
def gateway(fake: FakeVertex) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_config(fake)) as gw:
        yield gw


@pytest.fixture
def client(fake: FakeVertex, gateway: GatewayServer) -> Iterator[Any]:
    fake.reset()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0) as sdk:
        yield sdk
    assert fake.violations == []
    assert fake.pending == 0


@pytest.fixture
def claude(fake: FakeVertex, gateway: GatewayServer) -> Iterator[Any]:
    fake.reset()
    with anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0, timeout=20) as sdk:
        yield sdk
    assert fake.violations == []


def bearer(fake: FakeVertex) -> str:
    """The token of the last model call, checked to be one the token endpoint issued to sa-1."""
    token = fake.requests[-1].headers["authorization"].removeprefix("Bearer ")
    assert token in {t.token for t in fake.issued if t.account == "sa-1"}
    return token


def collect(stream: Any) -> tuple[str, dict[int, dict[str, str]], list[str]]:
    content, finishes, calls = "", [], {}
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"name": "", "arguments": ""})
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return content, calls, finishes


@pytest.mark.parametrize(("alias", "path"), [("gemini", GEMINI_PATH), ("claude-sonnet-4-5", CLAUDE_PATH)])
def test_chat(client: Any, fake: FakeVertex, alias: str, path: str) -> None:
    answer = client.chat.completions.create(
        model=alias, messages=[{"role": "system", "content": "Be brief."}, USER]
    )
    assert answer.choices[0].message.content == "echo: " + USER["content"]
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    (call,) = fake.requests
    assert call.path == path + (":generateContent" if alias == "gemini" else ":rawPredict")
    assert call.api_key == "sa-1"
    bearer(fake)


@pytest.mark.parametrize(("alias", "path"), [("gemini", GEMINI_PATH), ("claude-sonnet-4-5", CLAUDE_PATH)])
def test_stream(client: Any, fake: FakeVertex, alias: str, path: str) -> None:
    fake.script(Reply(text="one two three four five six"))
    stream = client.chat.completions.create(
        model=alias, messages=[USER], stream=True, stream_options={"include_usage": True}
    )
    content, _, finishes = collect(stream)
    assert content == "one two three four five six"
    assert finishes == ["stop"]
    (call,) = fake.requests
    assert call.path == path + (":streamGenerateContent" if alias == "gemini" else ":streamRawPredict")
    assert call.stream


@pytest.mark.parametrize("alias", ["gemini", "claude-sonnet-4-5"])
@pytest.mark.parametrize("stream", [False, True])
def test_tools_round_trip(client: Any, fake: FakeVertex, alias: str, stream: bool) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    if stream:
        _, calls, finishes = collect(
            client.chat.completions.create(model=alias, messages=[USER], tools=TOOLS, stream=True)
        )
        assert finishes == ["tool_calls"]
        (call,) = calls.values()
        name, arguments = call["name"], call["arguments"]
        call_id = None
    else:
        answer = client.chat.completions.create(model=alias, messages=[USER], tools=TOOLS)
        assert answer.choices[0].finish_reason == "tool_calls"
        (tool_call,) = answer.choices[0].message.tool_calls
        name, arguments, call_id = tool_call.function.name, tool_call.function.arguments, tool_call.id
    assert name == "get_weather" and json.loads(arguments) == {"city": "Paris"}
    if call_id is None:
        return
    fake.script(Reply(text="It is sunny"))
    history = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        ]},
        {"role": "tool", "tool_call_id": call_id, "content": '{"sky": "clear"}'},
    ]  # fmt: skip
    answer = client.chat.completions.create(model=alias, messages=history, tools=TOOLS)
    assert answer.choices[0].message.content == "It is sunny"


def test_anthropic_front_door_to_claude_on_vertex(claude: Any, fake: FakeVertex) -> None:
    message = claude.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=[USER])
    assert message.content[0].text == "echo: " + USER["content"]
    (call,) = fake.requests
    assert call.path == CLAUDE_PATH + ":rawPredict"
    assert call.json["anthropic_version"] == "vertex-2023-10-16" and "model" not in call.json
    bearer(fake)


def test_anthropic_front_door_streamed_tool_use(claude: Any, fake: FakeVertex) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    tool = {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    with claude.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=[USER], tools=[tool]
    ) as stream:
        final = stream.get_final_message()
    (use,) = [block for block in final.content if block.type == "tool_use"]
    assert use.input == {"city": "Paris"} and final.stop_reason == "tool_use"
    (call,) = fake.requests
    assert call.path == CLAUDE_PATH + ":streamRawPredict"
    assert call.json["stream"] is True and "model" not in call.json


def test_anthropic_front_door_token_count(claude: Any, fake: FakeVertex) -> None:
    counted = claude.messages.count_tokens(model="claude-sonnet-4-5", messages=[USER])
    assert counted.input_tokens > 0
    (call,) = fake.requests
    assert call.path == CLAUDE_PATH.rsplit("/", 1)[0] + "/count-tokens:rawPredict"
    assert call.json["model"] == "claude-sonnet-4-5@20250929"
    assert call.json["anthropic_version"] == "vertex-2023-10-16"


def test_application_default_credentials_with_no_keys(
    fake: FakeVertex, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider entry without keys authenticates with application default credentials."""
    adc = tmp_path / "adc.json"
    adc.write_text(fake.service_account_json("sa-1"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    config = json.loads(gateway_config(fake))
    for entry in config["providers"].values():
        del entry["keys"]
    fake.reset()
    with (
        GatewayServer(json.dumps(config)) as gw,
        openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as sdk,
    ):
        for alias in ("gemini", "claude-sonnet-4-5"):
            answer = sdk.chat.completions.create(model=alias, messages=[USER])
            assert answer.choices[0].message.content == "echo: " + USER["content"]
    assert [r.api_key for r in fake.requests if "/publishers/" in r.path] == ["sa-1", "sa-1"]
    assert fake.violations == []


def test_a_key_the_token_endpoint_refuses_is_skipped(fake: FakeVertex) -> None:
    """A key whose assertion is refused (signed with another account's key) never serves; the
    provider's other key does, and the refusal is logged without the key."""
    forged = fake.service_account("sa-1")
    forged["private_key"] = TestServiceAccount.make("stranger", PROJECT).info(fake.token_uri, PROJECT)[
        "private_key"
    ]
    config = json.loads(gateway_config(fake))
    entry = config["providers"]["gemini-vx"]
    entry["keys"] = [{"name": "forged", "value": json.dumps(forged)}, *entry["keys"]]
    fake.reset()
    with (
        LogCapture() as logs,
        GatewayServer(json.dumps(config)) as gw,
        openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as sdk,
    ):
        answer = sdk.chat.completions.create(model="gemini", messages=[USER])
    assert answer.choices[0].message.content == "echo: " + USER["content"]
    assert "provider gemini-vx key forged: credential refresh failed" in logs.text
    pem_body = forged["private_key"].splitlines()[1]
    assert pem_body not in logs.text and "PRIVATE KEY" not in logs.text
    assert "Invalid JWT Signature." in fake.refused_grants
    assert [r.api_key for r in fake.requests if "/publishers/" in r.path] == ["sa-1"]
