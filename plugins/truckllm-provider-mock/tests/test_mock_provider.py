"""The mock provider: entry point, deterministic answers, streams, faults."""

from __future__ import annotations

import json
import os

import pytest
import truckllm_provider_mock
from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_provider_mock import GARBAGE, MAX_LATENCY, MAX_RETRY_AFTER, MockStream, parse_fault

from truckllm._internal.plugins import make_plugin_manager
from truckllm.errors import UpstreamFailure
from truckllm.types import Usage
from truckllm_testing.server import GatewayServer

CONFIG = """
providers:
  demo: {type: mock, options: {chunks: 3}}
models:
  demo: {deployments: [{provider: demo, model: echo}]}
"""


def test_entry_point_registers_the_mock_provider_type() -> None:
    host = make_plugin_manager()
    assert host.providers["mock"].needs_keys is False
    assert host.pm.get_plugin("provider-mock") is truckllm_provider_mock


def test_fault_header_parsing() -> None:
    fault = parse_fault("status=429, retry_after=2,latency=bad,cut_after=1")
    assert (fault.status, fault.retry_after, fault.latency, fault.cut_after) == (429, 2.0, None, 1)


@pytest.fixture(scope="module")
def gw() -> object:
    with GatewayServer(CONFIG) as server:
        yield server


def post(gw: GatewayServer, body: dict[str, object], **headers: str) -> object:
    import httpx2 as httpx

    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_answers_are_deterministic(gw: GatewayServer) -> None:
    body = {
        "model": "demo",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a b"}],
    }
    first, second = post(gw, body).json(), post(gw, body).json()  # type: ignore[attr-defined]
    assert (
        first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"] == "mock: a b"
    )
    assert first["usage"]["prompt_tokens"] == 4 and first["usage"]["completion_tokens"] == 3


def test_stream_chunks_and_usage(gw: GatewayServer) -> None:
    body = {
        "model": "demo",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "abcdef"}],
    }
    text = post(gw, body).text  # type: ignore[attr-defined]
    events = [json.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")]
    assert (
        "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]) == "mock: abcdef"
    )
    assert events[-1]["usage"]["completion_tokens"] == 2 and text.endswith("data: [DONE]\n\n")


def test_fault_header_injects_errors(gw: GatewayServer) -> None:
    body = {"model": "demo", "messages": [{"role": "user", "content": "x"}]}
    limited = post(gw, body, **{"x-mock-fault": "status=429,retry_after=3"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"  # type: ignore[attr-defined]
    cut = post(gw, {**body, "stream": True}, **{"x-mock-fault": "cut_after=1"}).text  # type: ignore[attr-defined]
    assert '"error"' in cut and "[DONE]" not in cut


# --- the x-mock-fault header comes from any client: every value is checked ---------------------------

BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "1e300", "99999999999999999999", "", "x", "0x10", "1_0", "+5", "٣"]


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize("name", ["status", "retry_after", "latency", "cut_after"])
def test_out_of_range_fault_values_are_ignored(name: str, value: str) -> None:
    fault = parse_fault(f"{name}={value}")
    assert getattr(fault, name) is None, f"{name}={value!r} was accepted"


@pytest.mark.parametrize("status", ["0", "200", "302", "399", "600", "99999", "-429"])
def test_only_http_error_statuses_are_faults(status: str) -> None:
    assert parse_fault(f"status={status}").status is None
    assert parse_fault("status=429").status == 429 and parse_fault("status=599").status == 599


@settings(max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "200")), deadline=None)
@given(st.text(max_size=120))
def test_any_fault_header_parses_into_sane_values(text: str) -> None:
    fault = parse_fault(text)
    assert fault.status is None or 400 <= fault.status <= 599
    assert fault.retry_after is None or 0 <= fault.retry_after <= MAX_RETRY_AFTER
    assert fault.latency is None or 0 <= fault.latency <= MAX_LATENCY
    assert fault.cut_after is None or fault.cut_after >= 0
    assert fault.garbage is None or fault.garbage in GARBAGE


HOSTILE_CONFIG = """
routing: {retries: 0, cooldown: {failures: 100000, error_ratio: 1.0}}
providers:
  demo: {type: mock, options: {chunks: 3}}
  closed: {type: mock, options: {client_faults: false}}
models:
  demo: {deployments: [{provider: demo, model: echo}]}
  closed: {deployments: [{provider: closed, model: echo}]}
"""


@pytest.fixture(scope="module")
def hostile_gw() -> object:
    with GatewayServer(HOSTILE_CONFIG) as server:
        yield server


def chat_body(model: str = "demo", stream: bool = False) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_a_200_that_is_not_an_openai_answer_is_a_502(
    garbage: str, stream: bool, hostile_gw: GatewayServer
) -> None:
    answer = post(hostile_gw, chat_body(stream=stream), **{"x-mock-fault": f"garbage={garbage}"})
    if stream and garbage == "object":  # a JSON object is a frame: the stream then ends unfinished
        assert answer.status_code == 200 and "[DONE]" not in answer.text  # type: ignore[attr-defined]
        assert answer.text.rstrip().endswith("}") and '"error"' in answer.text  # type: ignore[attr-defined]
        return
    assert answer.status_code == 502, answer.text  # type: ignore[attr-defined]
    error = answer.json()["error"]  # type: ignore[attr-defined]
    assert any(
        why in error["message"] for why in ("not an OpenAI answer", "not a JSON object", "not an SSE frame")
    )
    assert "<html>" not in answer.text  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "1e300", "99999999999"])
def test_a_client_cannot_set_an_absurd_retry_after(value: str, hostile_gw: GatewayServer) -> None:
    answer = post(hostile_gw, chat_body(), **{"x-mock-fault": f"status=503,retry_after={value}"})
    assert answer.status_code == 503  # type: ignore[attr-defined]
    retry = answer.headers.get("retry-after")  # type: ignore[attr-defined]
    assert retry is None or 0 <= float(retry) <= MAX_RETRY_AFTER


@pytest.mark.parametrize("status", ["302", "200", "99999"])
def test_a_non_error_status_fault_is_ignored(status: str, hostile_gw: GatewayServer) -> None:
    answer = post(hostile_gw, chat_body(), **{"x-mock-fault": f"status={status}"})
    assert answer.status_code == 200 and answer.json()["choices"]  # type: ignore[attr-defined]


def test_client_faults_can_be_turned_off(hostile_gw: GatewayServer) -> None:
    for fault in ("status=500", "garbage=html", "cut_after=0"):
        answer = post(hostile_gw, chat_body("closed"), **{"x-mock-fault": fault})
        assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]


def test_the_stream_translator_checks_every_frame() -> None:
    stream = MockStream(Usage())
    assert stream.feed(b'data: {"a": 1}\n\n') == b'data: {"a": 1}\n\n'
    for frame in (
        b"data: []\n\n",
        b"data: nope\n\n",
        b"<html>\n\n",
        b'data: {"a": 1}',
        b"data: " + b"[" * 100_000,
    ):
        with pytest.raises(UpstreamFailure) as failure:
            MockStream(Usage()).feed(frame)
        assert failure.value.error.kind == "bad_response"
    assert stream.feed(b"data: [DONE]\n\n") == b"data: [DONE]\n\n" and stream.close() == b""


def test_the_quick_starts_front_doors_count_tokens() -> None:
    """Anthropic's ``/v1/messages/count_tokens`` and Gemini's ``:countTokens`` are served by the
    mock: the prompt's words plus one, the ``prompt_tokens`` its chat answer reports; free."""
    import httpx2 as httpx

    pytest.importorskip("truckllm_dialect_anthropic")  # the front doors are plugins of their own
    pytest.importorskip("truckllm_dialect_gemini")
    text = "one two three"
    with GatewayServer(CONFIG) as gw:  # a fresh one: no fault of another test cools its key
        chat = post(gw, {"model": "demo", "messages": [{"role": "user", "content": text}]})
        expected = chat.json()["usage"]["prompt_tokens"]  # type: ignore[attr-defined]
        count_tokens = (
            ("/v1/messages/count_tokens", {"model": "demo", "messages": [{"role": "user", "content": text}]}),
            ("/v1beta/models/demo:countTokens", {"contents": [{"role": "user", "parts": [{"text": text}]}]}),
        )
        headers = {"anthropic-version": "2023-06-01", "x-api-key": "any", "x-goog-api-key": "any"}
        anthropic, gemini, again = (
            httpx.post(gw.url + path, json=body, headers=headers)
            for path, body in (*count_tokens, count_tokens[0])
        )
    assert anthropic.status_code == 200, anthropic.text
    assert anthropic.json() == {"input_tokens": expected} == {"input_tokens": 4}
    assert gemini.status_code == 200, gemini.text
    assert gemini.json() == {"totalTokens": expected}
    assert again.json() == anthropic.json()  # deterministic


def test_a_token_count_is_free() -> None:
    from truckllm.types import ChatRequest, Provider

    provider = Provider(name="demo", type="mock", base_url="mock://local")
    request = ChatRequest(endpoint="count_tokens", model="demo", body=b"{}")
    assert truckllm_provider_mock.parse_usage(provider, request, b'{"prompt_tokens": 9}') == Usage()
