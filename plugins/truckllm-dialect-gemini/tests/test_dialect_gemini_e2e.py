"""End to end: the official ``google-genai`` SDK → a real gateway (GatewayServer) → each fake upstream.

One gateway serves three aliases: a Gemini deployment (the body passes through byte for byte), an
OpenAI deployment and an Anthropic deployment (the request is translated from its OpenAI typed
form, the answer back). Every test ends with ``fake.violations == []``: what reached each fake was
a valid request of its own API.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from truckllm_testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI, Fault, Reply, ToolCall
from truckllm_testing.server import GatewayServer

pytest.importorskip("truckllm_provider_gemini")
pytest.importorskip("truckllm_provider_openai")
pytest.importorskip("truckllm_provider_anthropic")

GATEWAY_KEY = "gw-gemini-dialect-key"
UPSTREAMS = ("gemini", "openai", "anthropic")
ALIASES = {"gemini": "gemini-2.5-flash", "openai": "gpt", "anthropic": "claude"}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather in a city",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={"city": types.Schema(type=types.Type.STRING)},
                required=["city"],
            ),
        ),
        types.FunctionDeclaration(name="get_time", description="The time now"),
    ]
)
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)
AFTER = {"gemini": 2, "openai": 2, "anthropic": 4}
"""Stream events before a mid-stream error: enough for some text to reach the client first."""


class Fakes:
    """The three fake upstreams, by name."""

    def __init__(self, gemini: FakeGemini, openai: FakeOpenAI, anthropic: FakeAnthropic) -> None:
        self.by_name: dict[str, Any] = {"gemini": gemini, "openai": openai, "anthropic": anthropic}

    def __getitem__(self, name: str) -> Any:
        return self.by_name[name]

    def all(self) -> list[Any]:
        return list(self.by_name.values())


def config(fakes: Fakes) -> str:
    return f"""
routing: {{retries: 0, cooldown: {{failures: 1000}}}}
providers:
  gem: {{type: gemini, base_url: {fakes["gemini"].base_url}, keys: [{{name: g, value: gemini-key}}]}}
  oai: {{type: openai, base_url: {fakes["openai"].base_url}, keys: [{{name: o, value: openai-key}}]}}
  ant: {{type: anthropic, base_url: {fakes["anthropic"].base_url}, keys: [{{name: a, value: anthropic-key}}]}}
models:
  gemini-2.5-flash: {{strategy: first, deployments: [{{provider: gem, model: gemini-2.5-flash}}]}}
  gpt: {{strategy: first, deployments: [{{provider: oai, model: gpt-4o}}]}}
  claude: {{strategy: first, deployments: [{{provider: ant, model: claude-sonnet-4-5}}]}}
  gemini-embedding-001: {{strategy: first, deployments: [{{provider: gem, model: gemini-embedding-001}}]}}
  oai-embed: {{strategy: first, deployments: [{{provider: oai, model: text-embedding-3-small}}]}}
keys:
  - {{name: team, value: {GATEWAY_KEY}}}
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    with (
        FakeGemini(keys=["gemini-key"]).running() as gemini,
        FakeOpenAI(keys=["openai-key"]).running() as openai,
        FakeAnthropic(keys=["anthropic-key"]).running() as anthropic,
    ):
        yield Fakes(gemini, openai, anthropic)


@pytest.fixture(scope="module")
def gateway(fakes: Fakes) -> Iterator[GatewayServer]:
    with GatewayServer(config(fakes)) as gw:
        yield gw


@pytest.fixture
def client(fakes: Fakes, gateway: GatewayServer) -> Iterator[genai.Client]:
    """A ``google-genai`` client of the gateway; afterwards every fake saw only valid requests."""
    for fake in fakes.all():
        fake.reset()
    fakes["gemini"].require_thought_signature = True  # Gemini 3 mode: signatures must round-trip
    yield sdk(gateway)
    for fake in fakes.all():
        assert fake.violations == []
        assert fake.pending == 0


def sdk(gw: GatewayServer, key: str = GATEWAY_KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url, api_version="v1beta"))


def post(gw: GatewayServer, path: str, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        gw.url + path,
        content=raw,
        headers={"content-type": "application/json", "x-goog-api-key": GATEWAY_KEY, **headers},
        timeout=30,
    )


# --- generateContent ------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_generate_content(client: genai.Client, fakes: Fakes, upstream: str) -> None:
    answer = client.models.generate_content(
        model=ALIASES[upstream],
        contents="what is the capital of France",
        config=types.GenerateContentConfig(
            system_instruction="Be brief.", temperature=0.5, max_output_tokens=50
        ),
    )
    assert answer.text == "echo: what is the capital of France"
    candidate = answer.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content.role == "model"
    usage = answer.usage_metadata
    assert usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    received = fakes[upstream].requests[-1].json
    if upstream == "gemini":
        assert received["systemInstruction"] == {"parts": [{"text": "Be brief."}], "role": "user"}
        assert received["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 50}
    elif upstream == "openai":
        assert received["messages"][0] == {"role": "system", "content": "Be brief."}
        assert received["temperature"] == 0.5 and received["max_completion_tokens"] == 50
    else:
        assert received["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
        assert received["max_tokens"] == 50


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_generate_content_stream(client: genai.Client, upstream: str) -> None:
    chunks = list(
        client.models.generate_content_stream(model=ALIASES[upstream], contents="tell me about the sea")
    )
    assert "".join(c.text or "" for c in chunks) == "echo: tell me about the sea"
    assert all(c.candidates and c.candidates[0].content and c.candidates[0].content.parts for c in chunks)
    assert [c.candidates[0].finish_reason for c in chunks][-1] == types.FinishReason.STOP
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])
    final = chunks[-1].usage_metadata
    assert final.prompt_token_count and final.candidates_token_count and final.total_token_count


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
def test_multimodal_input(client: genai.Client, fakes: Fakes, upstream: str) -> None:
    """The SDK sends ``inlineData`` as ``{"mime_type", "data"}`` in URL-safe base64 (the real API takes
    both; the fake Gemini does not, so the Gemini leg is the raw pass-through test below)."""
    image = types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png")
    answer = client.models.generate_content(model=ALIASES[upstream], contents=[image, "what is this picture"])
    assert answer.text == "echo: what is this picture"
    received = fakes[upstream].requests[-1].json
    if upstream == "openai":
        assert received["messages"][0]["content"][0] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}"},
        }
    else:
        source = received["messages"][0]["content"][0]["source"]
        assert source == {"type": "base64", "media_type": "image/png", "data": PNG}


# --- function calling -----------------------------------------------------------------------------


def _tool_config() -> types.GenerateContentConfig:
    return types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AFC)


def _answers(calls: list[types.FunctionCall]) -> types.Content:
    results = {"get_weather": {"output": {"temp_c": 21}}, "get_time": {"output": "12:00"}}
    return types.Content(
        role="user",
        parts=[
            types.Part(
                function_response=types.FunctionResponse(id=c.id, name=c.name, response=results[c.name])
            )
            for c in calls
        ],
    )


def _check_tool_results(fakes: Fakes, upstream: str) -> None:
    """The second turn reached the upstream with each call answered, in its own API's terms."""
    received = fakes[upstream].requests[-1].json
    if upstream == "gemini":
        model_turn = received["contents"][1]
        calls = [p for p in model_turn["parts"] if "functionCall" in p]
        assert [p["functionCall"]["name"] for p in calls] == ["get_weather", "get_time"]
        assert calls[0]["thoughtSignature"]  # the fake's signature came back
    elif upstream == "openai":
        call_ids = [c["id"] for c in received["messages"][1]["tool_calls"]]
        tools = [m for m in received["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in tools] == call_ids
        assert tools[0]["content"] == '{"temp_c":21}' and tools[1]["content"] == "12:00"
    else:
        uses = [b["id"] for b in received["messages"][1]["content"] if b["type"] == "tool_use"]
        results = [b["tool_use_id"] for b in received["messages"][2]["content"] if b["type"] == "tool_result"]
        assert results == uses and len(uses) == 2


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_function_calling(client: genai.Client, fakes: Fakes, upstream: str) -> None:
    fakes[upstream].script(
        Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {})])
    )
    question = types.Content(role="user", parts=[types.Part(text="weather and time in Paris")])
    answer = client.models.generate_content(
        model=ALIASES[upstream], contents=[question], config=_tool_config()
    )
    calls = answer.function_calls
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    history = [question, answer.candidates[0].content, _answers(calls)]
    final = client.models.generate_content(model=ALIASES[upstream], contents=history, config=_tool_config())
    assert final.text.startswith("echo: ")
    _check_tool_results(fakes, upstream)


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_function_calling_stream(client: genai.Client, fakes: Fakes, upstream: str) -> None:
    fakes[upstream].script(
        Reply(
            text="Let me check.",
            tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {})],
        )
    )
    question = types.Content(role="user", parts=[types.Part(text="weather and time in Paris")])
    chunks = list(
        client.models.generate_content_stream(
            model=ALIASES[upstream], contents=[question], config=_tool_config()
        )
    )
    calls = [call for c in chunks for call in c.function_calls or ()]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert (
        "".join(c.text or "" for c in chunks if not c.function_calls)
        + "".join(p.text or "" for c in chunks if c.function_calls for p in c.candidates[0].content.parts)
        == "Let me check."
    )
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    parts = [p for c in chunks for p in c.candidates[0].content.parts]
    model_turn = types.Content(role="model", parts=parts)
    final = client.models.generate_content(
        model=ALIASES[upstream], contents=[question, model_turn, _answers(calls)], config=_tool_config()
    )
    assert final.text.startswith("echo: ")
    _check_tool_results(fakes, upstream)


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_forced_function_call(client: genai.Client, fakes: Fakes, upstream: str) -> None:
    fakes[upstream].script(Reply(tool_calls=[ToolCall("get_time", {})]))
    config = _tool_config()
    config.tool_config = types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(mode="ANY", allowed_function_names=["get_time"])
    )
    answer = client.models.generate_content(
        model=ALIASES[upstream], contents="what time is it", config=config
    )
    assert [c.name for c in answer.function_calls] == ["get_time"]
    received = fakes[upstream].requests[-1].json
    if upstream == "openai":
        assert received["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    elif upstream == "anthropic":
        assert received["tool_choice"]["type"] == "tool" and received["tool_choice"]["name"] == "get_time"
    else:
        assert received["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_chat_session_keeps_streamed_turns(client: genai.Client, fakes: Fakes, upstream: str) -> None:
    """google-genai's chat drops a streamed turn from its history if any chunk lacks content."""
    chat = client.chats.create(model=ALIASES[upstream])
    first = "".join(c.text or "" for c in chat.send_message_stream("hello there"))
    assert first == "echo: hello there"
    second = "".join(c.text or "" for c in chat.send_message_stream("and again"))
    assert second == "echo: and again"
    history = chat.get_history(curated=True)
    roles = [c.role for c in history]
    assert roles[0] == "user" and roles.count("user") == 2 and roles[-1] == "model"
    received = fakes[upstream].requests[-1].json
    if upstream == "gemini":  # the chunks of the first answer, as the SDK kept them
        texts = [p["text"] for c in received["contents"] if c["role"] == "model" for p in c["parts"]]
        assert "".join(texts) == "echo: hello there"
    elif upstream == "openai":  # one assistant message for the streamed answer
        assert [m["role"] for m in received["messages"]] == ["user", "assistant", "user"]
        assert received["messages"][1]["content"] == "echo: hello there"
    else:
        assert [m["role"] for m in received["messages"]] == ["user", "assistant", "user"]
        assert "echo: hello there" in json.dumps(received["messages"][1]["content"])


# --- embeddings ---------------------------------------------------------------------------------


def test_embed_content_gemini_passes_through(client: genai.Client, fakes: Fakes) -> None:
    result = client.models.embed_content(
        model="gemini-embedding-001",
        contents=["first text", "second text"],
        config=types.EmbedContentConfig(output_dimensionality=8, task_type="RETRIEVAL_DOCUMENT"),
    )
    assert [len(e.values) for e in result.embeddings] == [8, 8]
    assert result.embeddings[0].values != result.embeddings[1].values
    received = fakes["gemini"].requests[-1]
    assert received.path.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert [r["taskType"] for r in received.json["requests"]] == ["RETRIEVAL_DOCUMENT"] * 2


def test_embed_content_openai(client: genai.Client, fakes: Fakes) -> None:
    result = client.models.embed_content(
        model="oai-embed", contents=["first text", "second text"], config={"output_dimensionality": 16}
    )
    assert [len(e.values) for e in result.embeddings] == [16, 16]
    received = fakes["openai"].requests[-1].json
    assert received["input"] == ["first text", "second text"] and received["dimensions"] == 16


@pytest.mark.parametrize("alias", ["gemini-embedding-001", "oai-embed"])
def test_embed_content_single(client: genai.Client, gateway: GatewayServer, alias: str) -> None:
    answer = post(
        gateway, f"/v1beta/models/{alias}:embedContent", {"content": {"parts": [{"text": "hello"}]}}
    )
    assert answer.status_code == 200, answer.text
    assert list(answer.json()) == ["embedding"] and answer.json()["embedding"]["values"]


def test_embeddings_on_a_chat_only_upstream(client: genai.Client) -> None:
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.embed_content(model="claude", contents=["x"])
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"


# --- pass-through --------------------------------------------------------------------------------


def test_gemini_gets_the_body_byte_for_byte(
    client: genai.Client, gateway: GatewayServer, fakes: Fakes
) -> None:
    body = (
        b'{ "contents": [ {"role":"user", "parts":[{"text":"exact bytes"},\n'
        b'  {"inlineData": {"mimeType": "image/png", "data": "' + PNG.encode() + b'"}}]} ],\n'
        b'  "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],\n'
        b'  "generationConfig": {"temperature": 0.10, "responseMimeType": "text/plain"} }'
    )
    answer = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", body)
    assert answer.status_code == 200
    assert fakes["gemini"].requests[-1].body == body
    stream = post(gateway, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", body)
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert fakes["gemini"].requests[-1].body == body
    assert stream.content.endswith(b"\r\n\r\n") and b"[DONE]" not in stream.content
    batch = b'{"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"x"}]}}]}'
    assert post(gateway, "/v1beta/models/gemini-embedding-001:batchEmbedContents", batch).status_code == 200
    assert fakes["gemini"].requests[-1].body == batch


# --- the JSON-array stream form -------------------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_json_array_stream(client: genai.Client, gateway: GatewayServer, fakes: Fakes, upstream: str) -> None:
    fakes[upstream].script(Reply(text="Let me check.", tool_calls=[ToolCall("get_time", {})]))
    body = {
        "contents": [{"role": "user", "parts": [{"text": "time please"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_time"}]}],
    }
    answer = post(gateway, f"/v1beta/models/{ALIASES[upstream]}:streamGenerateContent", body)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.content.startswith(b"[{") and answer.content.endswith(b"\n]")
    events = answer.json()
    parts = [p for e in events for p in e["candidates"][0]["content"]["parts"]]
    assert "".join(p.get("text", "") for p in parts) == "Let me check."
    assert [p["functionCall"]["name"] for p in parts if "functionCall" in p] == ["get_time"]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"]["totalTokenCount"] > 0


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize(
    ("status", "answered", "rpc", "exc"),
    [
        (429, 429, "RESOURCE_EXHAUSTED", genai_errors.ClientError),
        (500, 502, "UNAVAILABLE", genai_errors.ServerError),  # an upstream's 500 is a bad gateway answer
        (503, 503, "UNAVAILABLE", genai_errors.ServerError),
    ],
)
def test_upstream_errors(
    client: genai.Client, fakes: Fakes, upstream: str, status: int, answered: int, rpc: str, exc: type[Exception]
) -> None:
    kind = {429: "rate_limit", 500: "server", 503: "overloaded"}[status]
    native = 529 if upstream == "anthropic" and status == 503 else status
    fakes[upstream].inject(Fault(status=native, kind=kind, retry_after=0.01))
    with pytest.raises(exc) as caught:
        client.models.generate_content(model=ALIASES[upstream], contents="hello")
    time.sleep(0.05)  # the key's cool-down (the upstream's retry-after) is over for the next test
    error: Any = caught.value
    assert error.code == answered and error.status == rpc
    if status == 429:
        retry = [d for d in error.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
        assert retry and retry[0]["retryDelay"].endswith("s")


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_error_mid_stream(client: genai.Client, fakes: Fakes, upstream: str) -> None:
    fakes[upstream].inject(Fault(error_after=AFTER[upstream], kind="overloaded", chunk_delay=0.05))
    seen: list[Any] = []
    with pytest.raises(genai_errors.APIError) as caught:
        for chunk in client.models.generate_content_stream(
            model=ALIASES[upstream], contents="a longer question to stream back"
        ):
            seen.append(chunk)
    assert seen, "the error came after the stream had started"
    assert caught.value.code >= 500


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_error_mid_json_array_stream(
    gateway: GatewayServer, fakes: Fakes, client: genai.Client, upstream: str
) -> None:
    fakes[upstream].inject(Fault(error_after=AFTER[upstream], kind="overloaded", chunk_delay=0.05))
    body = {"contents": [{"role": "user", "parts": [{"text": "a longer question to stream back"}]}]}
    answer = post(gateway, f"/v1beta/models/{ALIASES[upstream]}:streamGenerateContent", body)
    events = answer.json()  # still one valid JSON array
    assert "candidates" in events[0]
    assert events[-1]["error"]["code"] >= 500 and events[-1]["error"]["status"]


def test_bad_requests_never_reach_upstream(client: genai.Client, fakes: Fakes) -> None:
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(
            model="gpt", contents=[types.Content(role="user", parts=[types.Part(text="")])]
        )
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert "empty text parameter" in caught.value.message
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(
            model="gemini-2.5-flash",
            contents="x",
            config=types.GenerateContentConfig(temperature=5),
        )
    assert "temperature must be in the range" in caught.value.message
    assert all(not fake.requests for fake in fakes.all())


def test_unknown_model(client: genai.Client) -> None:
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model="no-such-model", contents="x")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"


def test_gateway_key(client: genai.Client, gateway: GatewayServer) -> None:
    wrong = sdk(gateway, "wrong-key")
    with pytest.raises(genai_errors.ClientError) as caught:
        wrong.models.generate_content(model="gpt", contents="x")
    assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    missing = httpx.post(gateway.url + "/v1beta/models/gpt:generateContent", json=body)
    assert missing.status_code == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"
    in_query = httpx.post(gateway.url + f"/v1beta/models/gpt:generateContent?key={GATEWAY_KEY}", json=body)
    assert in_query.status_code == 200
    bearer = httpx.post(
        gateway.url + "/v1beta/models/gpt:generateContent",
        json=body,
        headers={"authorization": f"Bearer {GATEWAY_KEY}"},
    )
    assert bearer.status_code == 200


def test_count_tokens(client: genai.Client) -> None:
    """A Gemini deployment counts tokens (passed through); an OpenAI one through /responses/input_tokens."""
    counted = client.models.count_tokens(model="gemini-2.5-flash", contents="count me")
    assert counted.total_tokens is not None and counted.total_tokens > 0
    other = client.models.count_tokens(model="gpt", contents="count me")
    assert other.total_tokens is not None and other.total_tokens > 0


def test_unknown_method(client: genai.Client, gateway: GatewayServer) -> None:
    answer = post(gateway, "/v1beta/models/gpt:predict", {"instances": []})
    assert answer.status_code == 404
    assert answer.json()["error"] | {"details": None} == {
        "code": 404,
        "message": "Method not found: models/gpt:predict.",
        "status": "NOT_FOUND",
        "details": None,
    }


def test_sdk_configured_from_the_environment(
    client: genai.Client, gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY`` are all a google-genai program needs."""
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gateway.url)
    monkeypatch.setenv("GEMINI_API_KEY", GATEWAY_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    from_env = genai.Client()
    assert from_env.models.generate_content(model="gpt", contents="from the environment").text == (
        "echo: from the environment"
    )
