"""``options.preset``: per service, the body this plugin sends is one the service's fake accepts
(refused fields dropped, renamed ones renamed), while the client's raw body is refused there;
base URLs, keys, explicit options over the preset, and each service's rate-limit headers."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from truckllm_provider_openai import DEFAULT_BASE_URL, PRESETS, Options, transform_request, transform_response

from truckllm.errors import UnsupportedRequest
from truckllm.types import ChatRequest, Provider, UpstreamResponse
from truckllm_testing.fakes.compat import LIMIT_REQUESTS, LIMIT_TOKENS, FakeCompat

USER = {"role": "user", "content": "one two three four five six seven eight"}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def provider(base_url: str = DEFAULT_BASE_URL, **options: Any) -> Provider:
    """A ``type: openai`` entry with these options."""
    return Provider(name="p", type="openai", base_url=base_url, options=msgspec.convert(options, Options))


def chat(body: dict[str, Any]) -> ChatRequest:
    """A chat-completions client's request (same dialect: passed through)."""
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    return ChatRequest(
        endpoint="chat",
        dialect="openai",
        body=json.dumps(body).encode(),
        model=str(body["model"]),
        stream=stream,
        include_usage=bool(stream and isinstance(options, dict) and options.get("include_usage")),
    )


def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, dict[str, str]]:
    """Send one request; ``(status, body, headers)`` of the answer."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as failure:
        return failure.code, failure.read(), dict(failure.headers)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeCompat]]:
    """One fake per preset, served for the module (local servers without keys)."""
    made = {name: FakeCompat(name, keys=() if PRESETS[name].local else ("test-key",)) for name in PRESETS}
    for fake in made.values():
        fake.start_in_thread()
    yield made
    for fake in made.values():
        fake.stop_thread()


CASES = [
    # preset, model, what the client sends beyond model/messages, what must be gone, what must be there
    (
        "groq",
        "llama-3.3-70b-versatile",
        {
            "logprobs": True,
            "top_logprobs": 2,
            "logit_bias": {"50256": -100},
            "messages": [{**USER, "name": "bo"}],
        },
        {"logprobs", "top_logprobs", "logit_bias"},
        {},
    ),
    (
        "mistral",
        "mistral-large-latest",
        {
            "max_completion_tokens": 50,
            "seed": 7,
            "user": "u-1",
            "tools": TOOLS,
            "tool_choice": "required",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [
                {**USER, "name": "bo"},
                {"role": "assistant", "content": "ok", "reasoning_content": "hm"},
                {"role": "user", "content": "again"},
            ],
        },
        {"max_completion_tokens", "seed", "user", "stream_options"},
        {"max_tokens": 50, "random_seed": 7, "tool_choice": "any"},
    ),
    (
        "deepseek",
        "deepseek-reasoner",
        {"max_completion_tokens": 3, "logprobs": True, "top_logprobs": 1},
        {"max_completion_tokens", "logprobs", "top_logprobs"},
        {"max_tokens": 3},
    ),
    (
        "xai",
        "grok-4",
        {"presence_penalty": 0.5, "frequency_penalty": 0.1, "stop": ["zz"]},
        {"presence_penalty", "frequency_penalty", "stop"},
        {},
    ),
    ("perplexity", "sonar", {"logit_bias": {"1": 1}, "logprobs": True}, {"logit_bias", "logprobs"}, {}),
    (
        "ollama",
        "llama3.2",
        {"max_completion_tokens": 2, "logit_bias": {"1": 1}},
        {"max_completion_tokens"},
        {"max_tokens": 2},
    ),
]


@pytest.mark.parametrize(("preset", "model", "extra", "gone", "there"), CASES, ids=[c[0] for c in CASES])
def test_the_service_accepts_what_the_preset_sends_and_refuses_the_raw_body(
    fakes: dict[str, FakeCompat],
    preset: str,
    model: str,
    extra: dict[str, Any],
    gone: set[str],
    there: dict[str, Any],
) -> None:
    fake = fakes[preset]
    fake.reset()
    body = {"model": model, "messages": [USER], **extra}
    key = "" if PRESETS[preset].local else "test-key"
    sent = transform_request(
        provider=provider(fake.base_url, preset=preset), model=model, request=chat(body), api_key=key
    )
    assert sent is not None
    status, answer, _ = post(sent.url, sent.headers, sent.body)
    assert (status, fake.violations) == (200, []), answer
    fields = json.loads(sent.body)
    assert not gone & set(fields)
    assert {k: fields.get(k) for k in there} == there
    for message in fields["messages"]:
        assert not ({"name", "reasoning_content"} & set(message)) or preset not in ("groq", "mistral")

    raw_status, raw_answer, _ = post(sent.url, sent.headers, json.dumps(body).encode())  # the control
    if preset == "ollama":  # ignored there rather than refused: the answer is not cut
        assert raw_status == 200 and json.loads(raw_answer)["choices"][0]["finish_reason"] == "stop"
        assert json.loads(answer)["choices"][0]["finish_reason"] == "length"
    else:
        assert raw_status in (400, 422) and fake.violations, raw_answer


def test_deepseek_keeps_reasoning_content_a_tool_turn_needs_passed_back(fakes: dict[str, FakeCompat]) -> None:
    history = [
        USER,
        {"role": "assistant", "content": None, "reasoning_content": "look it up",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]  # fmt: skip
    sent = transform_request(
        provider=provider(preset="deepseek"),
        model="deepseek-chat",
        request=chat({"model": "deepseek-chat", "messages": history, "tools": TOOLS}),
        api_key="k",
    )
    assert sent is not None and json.loads(sent.body)["messages"][1]["reasoning_content"] == "look it up"


REFUSALS = [
    ("groq", {"n": 2}, "n"),
    ("ollama", {"n": 3}, "n"),
    (
        "deepseek",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
        "response_format",
    ),
    ("perplexity", {"tools": TOOLS}, "tools"),
]


@pytest.mark.parametrize(("preset", "extra", "param"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_what_no_drop_can_save_is_a_400_naming_the_field(
    preset: str, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(UnsupportedRequest) as refused:
        transform_request(
            provider=provider(preset=preset),
            model="m",
            request=chat({"model": "m", "messages": [USER], **extra}),
            api_key="k",
        )
    assert refused.value.param == param and preset in str(refused.value)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_the_preset_fills_the_base_url_and_an_explicit_one_wins(preset: str) -> None:
    request = chat({"model": "m", "messages": [USER]})
    sent = transform_request(provider=provider(preset=preset), model="m", request=request, api_key="k")
    assert sent is not None and sent.url == PRESETS[preset].base_url + "/chat/completions"
    mine = transform_request(
        provider=provider("https://proxy.example/v1", preset=preset), model="m", request=request, api_key="k"
    )
    assert mine is not None and mine.url == "https://proxy.example/v1/chat/completions"


def test_documented_roots() -> None:
    assert {name: p.base_url for name, p in PRESETS.items()} == {
        "groq": "https://api.groq.com/openai/v1",
        "mistral": "https://api.mistral.ai/v1",
        "deepseek": "https://api.deepseek.com/v1",
        "xai": "https://api.x.ai/v1",
        "together": "https://api.together.xyz/v1",
        "fireworks": "https://api.fireworks.ai/inference/v1",
        "openrouter": "https://openrouter.ai/api/v1",
        "perplexity": "https://api.perplexity.ai",
        "ollama": "http://localhost:11434/v1",
        "vllm": "http://localhost:8000/v1",
        "lmstudio": "http://localhost:1234/v1",
    }
    assert {name for name, p in PRESETS.items() if p.local} == {"ollama", "vllm", "lmstudio"}


@pytest.mark.parametrize("preset", ["ollama", "vllm", "lmstudio"])
def test_a_local_server_is_called_without_a_key(fakes: dict[str, FakeCompat], preset: str) -> None:
    fake = fakes[preset]
    sent = transform_request(
        provider=provider(fake.base_url, preset=preset),
        model="m",
        request=chat({"model": "m", "messages": [USER]}),
        api_key="",
    )
    assert sent is not None and "authorization" not in sent.headers
    assert post(sent.url, sent.headers, sent.body)[0] == 200
    with_key = transform_request(
        provider=provider(fake.base_url, preset=preset),
        model="m",
        request=chat({"model": "m", "messages": [USER]}),
        api_key="vk",
    )
    assert with_key is not None and with_key.headers["authorization"] == "Bearer vk"  # vLLM --api-key


def test_reasoning_models_explicit_wins_over_the_preset() -> None:
    body = {"model": "openai/gpt-oss-120b", "messages": [USER], "max_tokens": 9}
    default = transform_request(
        provider=provider(preset="groq"), model="openai/gpt-oss-120b", request=chat(body), api_key="k"
    )
    assert default is not None and json.loads(default.body)["max_tokens"] == 9  # no preset renames by default
    mine = transform_request(
        provider=provider(preset="groq", reasoning_models="^openai/gpt-oss"),
        model="openai/gpt-oss-120b",
        request=chat(body),
        api_key="k",
    )
    assert mine is not None and json.loads(mine.body)["max_completion_tokens"] == 9
    plain = transform_request(
        provider=provider(), model="o3", request=chat({**body, "model": "o3"}), api_key="k"
    )
    assert plain is not None and json.loads(plain.body)["max_completion_tokens"] == 9  # OpenAI's default kept


def test_a_preset_sends_no_chat_request_through_responses_by_default() -> None:
    sent = transform_request(
        provider=provider(preset="openrouter"),
        model="o3-pro",
        request=chat({"model": "o3-pro", "messages": [USER]}),
        api_key="k",
    )
    assert sent is not None and sent.url.endswith("/chat/completions")


def test_dropped_fields_are_logged_at_debug_by_name_only(caplog: pytest.LogCaptureFixture) -> None:
    body = {"model": "m", "messages": [USER], "logit_bias": {"1": 1}, "user": "person@example.com"}
    with caplog.at_level(logging.DEBUG, logger="truckllm_provider_openai"):
        transform_request(provider=provider(preset="mistral"), model="m", request=chat(body), api_key="k")
    (record,) = [r for r in caplog.records if r.name == "truckllm_provider_openai"]
    assert record.levelno == logging.DEBUG
    assert "dropped logit_bias" in record.getMessage() and "dropped user" in record.getMessage()
    assert "person@example.com" not in record.getMessage()


LIMITS = [
    # preset, (remaining requests, remaining tokens) after one request; None: the service sends none
    ("groq", True, True),
    ("xai", True, True),
    ("mistral", True, True),
    ("together", True, True),
    ("fireworks", True, False),
    ("openrouter", True, False),
    ("deepseek", False, False),
    ("perplexity", False, False),
    ("ollama", False, False),
]


@pytest.mark.parametrize(("preset", "requests", "tokens"), LIMITS, ids=[x[0] for x in LIMITS])
def test_each_service_rate_limit_headers_are_read(
    fakes: dict[str, FakeCompat], preset: str, requests: bool, tokens: bool
) -> None:
    fake = fakes[preset]
    entry = provider(fake.base_url, preset=preset)
    request = chat({"model": "m", "messages": [USER]})
    sent = transform_request(
        provider=entry, model="m", request=request, api_key="" if PRESETS[preset].local else "test-key"
    )
    assert sent is not None
    status, body, headers = post(sent.url, sent.headers, sent.body)
    assert status == 200
    lowered = {k.lower(): v for k, v in headers.items()}
    result = transform_response(
        provider=entry,
        request=request,
        response=UpstreamResponse(status=200, headers=lowered, body=body),
        model="m",
    )
    assert result is not None
    limits = result.limits
    if not (requests or tokens):
        assert limits is None
        return
    assert limits is not None
    if requests:
        assert limits.remaining_requests is not None and 0 <= limits.remaining_requests < LIMIT_REQUESTS
        assert limits.limit_requests == LIMIT_REQUESTS
    if tokens:
        assert limits.remaining_tokens is not None and 0 <= limits.remaining_tokens < LIMIT_TOKENS
    if preset == "openrouter":
        assert limits.reset_requests is not None and 0 <= limits.reset_requests <= 11


def test_without_a_preset_only_openai_headers_are_read() -> None:
    headers = {"x-ratelimit-remaining-tokens-minute": "5", "x-tokenlimit-remaining": "5"}
    result = transform_response(
        provider=provider(), request=chat({"model": "m", "messages": [USER]}),
        response=UpstreamResponse(status=429, headers=headers, body=b"{}"), model="m",
    )  # fmt: skip
    assert result is not None and result.limits is None


def test_an_unknown_preset_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(msgspec.ValidationError, match="preset"):
        msgspec.convert({"preset": "grok"}, Options)


def test_rate_limit_figures_are_read_defensively() -> None:
    from truckllm_provider_openai.ratelimits import mistral_limits, openrouter_limits, together_limits

    past = openrouter_limits({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "5000"}, clock=lambda: 10.0)
    assert past is not None and past.reset_requests == 0.0 and past.remaining_requests == 3
    future = openrouter_limits(
        {"x-ratelimit-remaining": "3", "x-ratelimit-reset": "12500"}, clock=lambda: 10.0
    )
    assert future is not None and future.reset_requests == pytest.approx(2.5)
    far = openrouter_limits({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "1e15"}, clock=lambda: 10.0)
    assert far is not None and far.reset_requests is None  # beyond a day: unknown
    assert together_limits({"x-ratelimit-remaining": "-1", "x-tokenlimit-remaining": "nan"}) is None
    odd = together_limits({"x-ratelimit-remaining": "7", "x-ratelimit-reset": "inf"})
    assert odd is not None and odd.remaining_requests == 7 and odd.reset_requests is None
    assert mistral_limits({"x-ratelimit-remaining-tokens-minute": str(10**16)}) is None
    assert mistral_limits({}) is None
