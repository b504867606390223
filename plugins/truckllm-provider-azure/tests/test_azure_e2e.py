"""End to end: the openai SDK through a real gateway to the fake Azure OpenAI resource, on the
classic deployment URLs and on the v1 endpoint: chat (stream and not, tools), embeddings, the
Responses API passed through, content-filter refusals, and Entra ID tokens that the kernel
refreshes while requests keep flowing (a fake token credential injected: no network)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import truckllm_provider_azure as plugin
from azure.core.credentials import AccessToken

from truckllm_testing.fakes import Fault, Reply, ToolCall
from truckllm_testing.fakes.azure import FakeAzure
from truckllm_testing.server import GatewayServer

dialect = pytest.importorskip("truckllm_dialect_responses")

USER: Any = [{"role": "user", "content": "what is the weather in Paris"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CONFIG = """
routing: {{retries: 0}}
providers:
  az:
    type: azure
    base_url: {base_url}
    options: {options}
    keys: [{keys}]
models:
  gpt: {{deployments: [{{provider: az, model: my-gpt4o}}]}}
  emb: {{deployments: [{{provider: az, model: my-embedder}}]}}
"""


def config(fake: FakeAzure, options: dict[str, Any], keys: str = "{name: main, value: key-main}") -> str:
    return CONFIG.format(base_url=fake.base_url, options=json.dumps(options), keys=keys)


@pytest.fixture(scope="module", params=["deployments", "v1"])
def api(request: pytest.FixtureRequest) -> str:
    """Which Azure API the provider uses."""
    return str(request.param)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAzure]:
    """The fake Azure resource, served from a thread for this module."""
    upstream = FakeAzure(keys=["key-main"])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeAzure, api: str) -> Iterator[GatewayServer]:
    """A real gateway with the kernel, the responses dialect and this plugin (api-key auth)."""
    with GatewayServer(config(fake, {"api": api}), autoload=False, extra_plugins=(dialect, plugin)) as gw:
        yield gw


@pytest.fixture
def client(gateway: GatewayServer, fake: FakeAzure) -> Iterator[openai.OpenAI]:
    """An OpenAI client of the gateway; the fake starts clean and must end without violations."""
    fake.reset()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="anything", max_retries=0) as sdk:
        yield sdk
    assert fake.violations == []


def test_chat_and_its_upstream_url(client: openai.OpenAI, fake: FakeAzure, api: str) -> None:
    reply = client.chat.completions.create(model="gpt", messages=USER)
    assert reply.choices[0].message.content == "echo: what is the weather in Paris"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    seen = fake.requests[-1]
    assert seen.headers["api-key"] == "key-main"
    if api == "v1":
        assert seen.path == "/openai/v1/chat/completions" and seen.json["model"] == "my-gpt4o"
    else:
        assert seen.path == "/openai/deployments/my-gpt4o/chat/completions"
        assert seen.query == {"api-version": plugin.DEFAULT_API_VERSION}


def test_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "echo: what is the weather in Paris"
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)  # Azure's filter chunk dropped
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_tools(client: openai.OpenAI, fake: FakeAzure, stream: bool) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    if stream:
        arguments, names = "", []
        for chunk in client.chat.completions.create(model="gpt", messages=USER, tools=TOOLS, stream=True):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    if call.function is not None:
                        arguments += call.function.arguments or ""
                        names += [call.function.name] if call.function.name else []
        assert names == ["get_weather"] and json.loads(arguments) == {"city": "Paris"}
    else:
        reply = client.chat.completions.create(model="gpt", messages=USER, tools=TOOLS)
        calls = reply.choices[0].message.tool_calls
        assert calls is not None and calls[0].type == "function"
        assert calls[0].function.name == "get_weather"
        assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
        assert reply.choices[0].finish_reason == "tool_calls"
    assert fake.requests[-1].json["tools"] == TOOLS


def test_embeddings(client: openai.OpenAI, fake: FakeAzure, api: str) -> None:
    vectors = client.embeddings.create(model="emb", input="hi")
    assert len(vectors.data[0].embedding) == 8
    if api == "deployments":
        assert fake.requests[-1].path == "/openai/deployments/my-embedder/embeddings"


def test_content_filter_refusals_are_400_naming_the_category(client: openai.OpenAI, fake: FakeAzure) -> None:
    fake.inject(Fault(kind="content_filter"))
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt", messages=USER)
    assert refused.value.code == "content_filter" and "hate (high)" in refused.value.message
    fake.script(Reply(text="partial", finish="content_filter"))
    with pytest.raises(openai.BadRequestError) as withheld:
        client.chat.completions.create(model="gpt", messages=USER)
    assert "withheld the answer" in withheld.value.message and "hate (high)" in withheld.value.message
    assert len(fake.requests) == 2  # a refusal is final: no other attempt


def test_rate_limit_is_429_with_retry_after(client: openai.OpenAI, fake: FakeAzure) -> None:
    fake.inject(Fault(kind="rate_limit", retry_after=0.01))  # a short cooldown: later tests use the key
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt", messages=USER)
    assert float(limited.value.response.headers["retry-after"]) > 0


@pytest.mark.parametrize("stream", [False, True])
def test_responses_api_passes_through(client: openai.OpenAI, fake: FakeAzure, api: str, stream: bool) -> None:
    if stream:
        events = list(client.responses.create(model="gpt", input="say hi", stream=True))
        assert events[-1].type == "response.completed"
        text = events[-1].response.output_text  # type: ignore[union-attr]
    else:
        text = client.responses.create(model="gpt", input="say hi").output_text
    assert text.startswith("echo: say hi")
    seen = fake.requests[-1]
    assert seen.path == ("/openai/v1/responses" if api == "v1" else "/openai/responses")
    assert seen.json == {"model": "my-gpt4o", "input": "say hi", **({"stream": True} if stream else {})}


# --- Entra ID ----------------------------------------------------------------------------------


class TokenMint:
    """A fake azure-identity credential: short-lived numbered tokens, each accepted by the fake
    Azure resource only until it expires (an expired token is refused, as Entra's are)."""

    def __init__(self, fake: FakeAzure, lifetime: int = 3) -> None:
        self.fake, self.lifetime = fake, lifetime
        self.lock = threading.Lock()
        self.issued: dict[str, int] = {}
        self.scopes: set[tuple[str, ...]] = set()

    def get_token(self, *scopes: str) -> AccessToken:
        with self.lock:
            self.scopes.add(scopes)
            now = time.time()
            token = f"entra-{len(self.issued) + 1}"
            self.issued[token] = int(now) + self.lifetime
            self.fake.tokens = frozenset(t for t, until in self.issued.items() if until > now)
            return AccessToken(token, self.issued[token])

    def close(self) -> None:
        """Nothing to release."""


def test_entra_tokens_are_refreshed_while_requests_flow() -> None:
    with FakeAzure(keys=[]).running() as fake:
        mint = TokenMint(fake)
        logins: list[plugin.EntraLogin] = []

        def factory(login: plugin.EntraLogin) -> TokenMint:
            logins.append(login)
            return mint

        azure = plugin.AzurePlugin(credential_factory=factory)
        gateway_config = config(fake, {"auth": "entra"}, "{name: mi, value: managed-identity}")
        with (
            GatewayServer(gateway_config, autoload=False, extra_plugins=(azure,)) as gw,
            openai.OpenAI(base_url=gw.url + "/v1", api_key="anything", max_retries=0) as sdk,
            ThreadPoolExecutor(8) as pool,
        ):

            def ask(_: int) -> str | None:
                return sdk.chat.completions.create(model="gpt", messages=USER).choices[0].message.content

            answers: list[str | None] = []
            deadline = time.monotonic() + 60
            while len({r.api_key for r in fake.requests}) < 4 and time.monotonic() < deadline:
                answers += pool.map(ask, range(40))
        seen = {r.api_key for r in fake.requests}
        assert len(seen) >= 4, f"the token was not refreshed while requests flowed: {seen}"
        assert answers and all(a == "echo: what is the weather in Paris" for a in answers)
        assert all(r.status == 200 for r in fake.requests)  # never an expired token
        assert all(r.headers["authorization"].startswith("Bearer entra-") for r in fake.requests)
        assert mint.scopes == {(plugin.DEFAULT_SCOPE,)}
        assert logins == [plugin.EntraLogin(kind="managed_identity")]
        assert fake.violations == []


def test_managed_identity_through_azure_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real azure-identity path: ``ManagedIdentityCredential`` (App Service flavour) gets
    3-second tokens from the fake's identity endpoint; the kernel keeps one fresh while requests
    flow, none is refused."""
    with FakeAzure(keys=[], token_lifetime=3).running() as fake:
        monkeypatch.setenv("IDENTITY_ENDPOINT", fake.identity_endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", fake.identity_header)
        gateway_config = config(fake, {"auth": "entra"}, "{name: mi, value: managed-identity}")
        with (
            GatewayServer(gateway_config, autoload=False, extra_plugins=(plugin,)) as gw,
            openai.OpenAI(base_url=gw.url + "/v1", api_key="anything", max_retries=0) as sdk,
            ThreadPoolExecutor(8) as pool,
        ):

            def ask(_: int) -> str | None:
                return sdk.chat.completions.create(model="gpt", messages=USER).choices[0].message.content

            answers: list[str | None] = []
            deadline = time.monotonic() + 60
            while len({r.api_key for r in fake.requests if r.api_key}) < 3 and time.monotonic() < deadline:
                answers += pool.map(ask, range(40))
        chats = [r for r in fake.requests if r.path.endswith("/chat/completions")]
        assert len({r.api_key for r in chats}) >= 3, "the token was not refreshed while requests flowed"
        assert answers and all(a == "echo: what is the weather in Paris" for a in answers)
        assert all(r.status == 200 for r in fake.requests)
        assert len(fake.issued) >= 3
        assert fake.violations == []
