"""Polls and cancels of a background response (``responses.retrieve`` / ``responses.cancel``):
the URL and method, the id never reaching a URL unless it is a ``resp_`` id, the Response relayed
(a failed one too), usage counted only when the call may bill and the response has finished; and
another provider's thinking dropped from a chat body."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from truckllm_provider_openai import parse_usage, register_providers, transform_request, transform_response

from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_schemas import ChatCompletionRequest
from truckllm.types import ChatRequest, ProviderSpec, UpstreamResponse, Usage

USAGE = {
    "input_tokens": 30,
    "input_tokens_details": {"cached_tokens": 10},
    "output_tokens": 20,
    "output_tokens_details": {"reasoning_tokens": 8},
    "total_tokens": 50,
}


def call(endpoint: str, response_id: str = "resp_abc-1_Z", bill: bool = True) -> ChatRequest:
    """A poll or cancel as the responses dialect forwards it."""
    body = msgspec.json.encode({"response_id": response_id, "bill": bill})
    return ChatRequest(endpoint=endpoint, dialect="responses", body=body, model="gpt")


def response(status: str, usage: Any = None) -> bytes:
    """A Response object with this status."""
    return json.dumps({"id": "resp_abc-1_Z", "object": "response", "status": status, "usage": usage}).encode()


def test_the_provider_lists_both_endpoints() -> None:
    specs: list[ProviderSpec] = []
    register_providers(register=specs.append)
    assert {"responses.retrieve", "responses.cancel", "chat"} <= specs[0].endpoints


def test_retrieve_is_a_get_and_cancel_a_post_without_body(kit: Any) -> None:
    provider = kit.provider(organization="org-1", query={"api-version": "2025-04-01"})
    got = transform_request(
        provider=provider, model="gpt-4o", request=call("responses.retrieve"), api_key="sk"
    )
    cancel = transform_request(
        provider=provider, model="gpt-4o", request=call("responses.cancel"), api_key="sk"
    )
    assert got is not None and cancel is not None
    assert (got.method, got.url) == ("GET", kit.base_url + "/responses/resp_abc-1_Z?api-version=2025-04-01")
    assert (cancel.method, cancel.url) == (
        "POST",
        kit.base_url + "/responses/resp_abc-1_Z/cancel?api-version=2025-04-01",
    )
    for upstream in (got, cancel):
        assert upstream.body == b"" and not upstream.stream and "content-type" not in upstream.headers
        assert upstream.headers["authorization"] == "Bearer sk"
        assert upstream.headers["openai-organization"] == "org-1"


@pytest.mark.parametrize(
    "bad",
    [
        "resp_../../admin",
        "resp_x/cancel",
        "resp_x?y=1",
        "resp_x\n",
        "resp_",
        "msg_1",
        "resp_x%2F",
        "resp_" + "a" * 252,
        "resp_é",
    ],
)
def test_an_id_that_is_not_a_resp_id_never_reaches_a_url(kit: Any, bad: str) -> None:
    for endpoint in ("responses.retrieve", "responses.cancel"):
        with pytest.raises(UnsupportedRequest) as info:
            transform_request(provider=kit.provider(), model="m", request=call(endpoint, bad), api_key="k")
        assert info.value.param == "response_id"


@pytest.mark.parametrize("body", [b"", b"[]", b'{"response_id": 1}', b'{"id": "resp_1"}', b"{"])
def test_a_body_that_is_not_a_call_is_refused(kit: Any, body: bytes) -> None:
    request = ChatRequest(endpoint="responses.retrieve", dialect="responses", body=body, model="gpt")
    with pytest.raises(UnsupportedRequest):
        transform_request(provider=kit.provider(), model="m", request=request, api_key="k")


@pytest.mark.parametrize("status", ["queued", "in_progress", "completed", "failed", "cancelled"])
def test_the_polled_response_is_relayed_as_it_came_a_failed_one_too(kit: Any, status: str) -> None:
    body = response(status)
    result = transform_response(
        provider=kit.provider(),
        request=call("responses.retrieve"),
        response=UpstreamResponse(status=200, body=body),
        model="gpt-4o",
    )
    assert result is not None and result.error is None
    assert (result.body, result.dialect) == (body, "responses")


def test_a_poll_answer_that_is_not_a_response_or_an_error_is_a_failure(kit: Any) -> None:
    for status, body, kind in (
        (200, b'{"object": "list"}', "bad_response"),
        (200, b"<html>", "bad_response"),
        (404, b'{"error": {"message": "no"}}', "not_found"),
    ):
        result = transform_response(
            provider=kit.provider(),
            request=call("responses.cancel"),
            response=UpstreamResponse(status=status, body=body),
            model="gpt-4o",
        )
        assert result is not None and result.error is not None
        assert result.error.kind == kind


def test_a_created_response_that_failed_is_still_a_failure(kit: Any) -> None:
    request = ChatRequest(endpoint="chat", dialect="responses", body=b'{"model": "gpt"}', model="gpt")
    failed = json.dumps({"object": "response", "status": "failed", "error": {"code": "server_error"}})
    result = transform_response(
        provider=kit.provider(),
        request=request,
        response=UpstreamResponse(status=200, body=failed.encode()),
        model="m",
    )
    assert result is not None and result.error is not None


@pytest.mark.parametrize(
    ("endpoint", "bill", "status", "counted"),
    [
        ("responses.retrieve", True, "completed", True),
        ("responses.retrieve", True, "incomplete", True),
        ("responses.cancel", True, "cancelled", True),
        ("responses.retrieve", True, "in_progress", False),  # (OpenAI has no usage yet: never counted)
        ("responses.retrieve", True, "queued", False),
        ("responses.retrieve", False, "completed", False),  # another call bills this response
        ("responses.cancel", False, "cancelled", False),
    ],
)
def test_usage_only_when_the_call_bills_and_the_response_finished(
    kit: Any, endpoint: str, bill: bool, status: str, counted: bool
) -> None:
    usage = parse_usage(
        provider=kit.provider(), request=call(endpoint, bill=bill), body=response(status, USAGE)
    )
    expected = Usage(
        prompt_tokens=30, completion_tokens=20, total_tokens=50, cached_tokens=10, reasoning_tokens=8
    )
    assert usage == (expected if counted else Usage())


@pytest.mark.parametrize(
    "body",
    [b"", b"[1]", b'{"status": ["completed"], "usage": {"input_tokens": 9}}', b'{"status": "completed"}'],
)
def test_usage_of_an_odd_poll_answer_is_zero(kit: Any, body: bytes) -> None:
    assert parse_usage(provider=kit.provider(), request=call("responses.retrieve"), body=body) == Usage()


def test_another_providers_thinking_is_dropped_from_the_chat_body(kit: Any) -> None:
    """A conversation begun on Anthropic carries its signed thinking in the chat form: an OpenAI
    chat deployment refuses unknown message members (DeepSeek refuses reasoning_content)."""
    body = {
        "model": "alias",
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": "hello",
                "reasoning_content": "thought",
                "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "sig"}],
            },
            {"role": "user", "content": "again"},
        ],
    }
    typed = msgspec.json.decode(json.dumps(body).encode(), type=ChatCompletionRequest)
    request = ChatRequest(endpoint="chat", dialect="anthropic", body=b"{}", model="alias", typed=typed)
    upstream = transform_request(provider=kit.provider(), model="gpt-4o", request=request, api_key="k")
    assert upstream is not None
    sent = json.loads(upstream.body)["messages"]
    assert sent[1] == {"role": "assistant", "content": "hello"}
    assert [m["content"] for m in sent] == ["hi", "hello", "again"]
    assert getattr(typed.messages[1], "thinking_blocks", None)  # the request itself is unchanged (failover)
