"""The fake OpenAI-compatible services refuse what the real ones refuse, in their own error
shapes, accept what they accept, and send their own rate-limit headers; read by the official
``openai`` client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from truckllm_testing.fakes.compat import LIMIT_TOKENS, FakeCompat

USER: Any = [{"role": "user", "content": "say something short"}]


@pytest.fixture
def client() -> Iterator[Any]:
    """Makes an ``OpenAI`` client of a fake (``client(fake, api_key=...)``), closed after the test."""
    made: list[openai.OpenAI] = []

    def make(fake: FakeCompat, api_key: str = "test-key") -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=fake.base_url, api_key=api_key, max_retries=0))
        return made[-1]

    yield make
    for one in made:
        one.close()


SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
REFUSED = [
    # preset, model, extra request fields, status, param the error names
    ("groq", "llama-3.3-70b-versatile", {"logprobs": True}, 400, "logprobs"),
    ("groq", "llama-3.3-70b-versatile", {"logit_bias": {"1": 1}}, 400, "logit_bias"),
    ("groq", "llama-3.3-70b-versatile", {"n": 2}, 400, "n"),
    (
        "groq",
        "llama-3.3-70b-versatile",
        {"messages": [{"role": "user", "content": "hi", "name": "bo"}]},
        400,
        None,
    ),
    ("mistral", "mistral-large-latest", {"max_completion_tokens": 5}, 422, None),
    ("mistral", "mistral-large-latest", {"seed": 1}, 422, None),
    (
        "mistral",
        "mistral-large-latest",
        {"stream_options": {"include_usage": True}, "stream": True},
        422,
        None,
    ),
    ("deepseek", "deepseek-chat", {"response_format": SCHEMA}, 400, "response_format"),
    ("deepseek", "deepseek-reasoner", {"logprobs": True}, 400, "logprobs"),
    ("xai", "grok-4", {"presence_penalty": 0.5}, 400, None),
    ("xai", "grok-3-mini", {"stop": ["x"]}, 400, None),
    ("perplexity", "sonar", {"tools": TOOLS}, 400, "tools"),
]


@pytest.mark.parametrize(("preset", "model", "extra", "status", "param"), REFUSED)
def test_the_raw_field_is_refused_like_the_real_service(
    client: Any, preset: str, model: str, extra: dict[str, Any], status: int, param: str | None
) -> None:
    with FakeCompat(preset).running() as fake:
        body = {"messages": USER, **extra}
        with pytest.raises(openai.APIStatusError) as caught:
            client(fake).chat.completions.create(model=model, **body)
        assert caught.value.status_code == status
        answer = caught.value.body  # the SDK's: the "error" member when there is one
        if preset == "xai":  # {"code": ..., "error": "<text>"}
            assert isinstance(answer, str) and answer.startswith("Argument not supported on this model")
        elif preset == "mistral":  # pydantic's detail list, in a 422
            assert isinstance(answer, dict)
            (detail,) = answer["message"]["detail"]
            assert detail["type"] == "extra_forbidden" and detail["loc"][0] == "body"
        else:
            assert isinstance(answer, dict) and answer["message"]
            assert answer.get("param", param) == param or param is None
        assert fake.violations


def test_what_the_services_take_instead_is_accepted(client: Any) -> None:
    with FakeCompat("mistral").running() as fake:
        reply = client(fake).chat.completions.create(
            model="mistral-large-latest",
            messages=USER,
            max_tokens=50,
            extra_body={"random_seed": 3},
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            tool_choice="any",
        )
        assert reply.choices[0].message.content == "echo: say something short"
        assert fake.violations == []
    with FakeCompat("deepseek").running() as fake:
        history: Any = [
            *USER,
            {"role": "assistant", "content": "ok", "reasoning_content": "thinking"},
            {"role": "user", "content": "again"},
        ]
        client(fake).chat.completions.create(model="deepseek-reasoner", messages=history)
        client(fake).chat.completions.create(model="deepseek-chat", messages=USER, logprobs=True)
        assert fake.violations == []


def test_ollama_ignores_max_completion_tokens_and_takes_no_key(client: Any) -> None:
    with FakeCompat("ollama").running() as fake:
        long_prompt: Any = [{"role": "user", "content": "one two three four five six seven"}]
        ignored = client(fake, api_key="unused").chat.completions.create(
            model="llama3.2", messages=long_prompt, max_completion_tokens=2
        )
        assert ignored.choices[0].finish_reason == "stop"  # no limit: the field means nothing there
        cut = client(fake).chat.completions.create(model="llama3.2", messages=long_prompt, max_tokens=2)
        assert cut.choices[0].finish_reason == "length"
        fake.requests.clear()
    with FakeCompat("lmstudio").running() as fake:
        import urllib.request

        request = urllib.request.Request(
            fake.base_url + "/chat/completions",
            data=b'{"model": "qwen", "messages": [{"role": "user", "content": "hi"}]}',
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 200
        assert fake.requests[-1].api_key is None


def test_vllm_wants_a_key_only_when_started_with_one(client: Any) -> None:
    with FakeCompat("vllm", keys=()).running() as fake:
        assert client(fake, api_key="anything").chat.completions.create(model="m", messages=USER).choices
    with FakeCompat("vllm", keys=["secret"]).running() as fake:
        with pytest.raises(openai.AuthenticationError):
            client(fake, api_key="wrong").chat.completions.create(model="m", messages=USER)
        assert client(fake, api_key="secret").chat.completions.create(model="m", messages=USER).choices


def test_a_cloud_service_wants_its_key(client: Any) -> None:
    with FakeCompat("groq", keys=["gsk"]).running() as fake, pytest.raises(openai.AuthenticationError):
        client(fake, api_key="wrong").chat.completions.create(model="m", messages=USER)


def test_perplexity_is_served_at_the_root(client: Any) -> None:
    with FakeCompat("perplexity").running() as fake:
        assert not fake.base_url.endswith("/v1")
        client(fake).chat.completions.create(model="sonar", messages=USER)
        assert fake.requests[-1].path == "/chat/completions"


HEADERS = {
    "groq": {"x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests", "x-ratelimit-limit-requests"},
    "xai": {"x-ratelimit-remaining-requests"},
    "fireworks": {"x-ratelimit-remaining-requests"},
    "mistral": {"x-ratelimit-remaining-tokens-minute", "x-ratelimit-remaining-req-minute"},
    "together": {"x-ratelimit-remaining", "x-ratelimit-reset", "x-tokenlimit-remaining"},
    "openrouter": {"x-ratelimit-remaining", "x-ratelimit-reset"},
    "deepseek": set(),
    "perplexity": set(),
    "ollama": set(),
}


@pytest.mark.parametrize("preset", sorted(HEADERS))
def test_each_service_sends_its_own_rate_limit_headers(client: Any, preset: str) -> None:
    with FakeCompat(preset, clock=lambda: 1000.0).running() as fake:
        raw = client(fake).chat.completions.with_raw_response.create(model="m", messages=USER)
        names = {
            name.lower()
            for name in raw.headers
            if "ratelimit" in name.lower() or "tokenlimit" in name.lower()
        }
        assert HEADERS[preset] <= names
        if not HEADERS[preset]:
            assert names == set()
        if preset == "mistral":
            assert "x-ratelimit-remaining-tokens" not in names  # not OpenAI's family
            assert int(raw.headers["x-ratelimit-remaining-tokens-minute"]) < LIMIT_TOKENS
        if preset == "openrouter":
            assert raw.headers["x-ratelimit-reset"] == "1010000"  # epoch milliseconds


def test_an_unknown_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        FakeCompat("nope")
