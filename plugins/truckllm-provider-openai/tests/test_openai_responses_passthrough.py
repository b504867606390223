"""Responses API pass-through: a Responses client's request goes to ``/responses`` (or
``/responses/input_tokens``) byte for byte but ``model``; answers are checked and relayed; errors,
failed Responses and stream failures are classified; usage is read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from truckllm_provider_openai import (
    ResponsesPassthrough,
    parse_usage,
    transform_request,
    transform_response,
    transform_stream,
)

from truckllm.errors import UpstreamFailure
from truckllm.types import CLIENT_KINDS, Affinity, UpstreamResponse, Usage

# every field a Responses client may send that a gateway must not lose, in an unusual order and
# spacing (the bytes must survive, not just the values)
CLIENT_BODY = (
    b'{"store": true, "model":"codex",  "input":[{"type":"reasoning","id":"rs_1","summary":[],'
    b'"encrypted_content":"gAAAAABo-ENCRYPTED=="},{"role":"user","content":[{"type":"input_text",'
    b'"text":"hi \\u00e9"}]},{"type":"function_call_output","call_id":"call_1","output":"ok"}],'
    b'"include":["reasoning.encrypted_content","web_search_call.action.sources"],'
    b'"reasoning":{"effort":"high","summary":"auto"},'
    b'"text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object"},"strict":true},"verbosity":"low"},'
    b'"tools":[{"type":"web_search"},{"type":"file_search","vector_store_ids":["vs_1"]},'
    b'{"type":"function","name":"f","parameters":{"type":"object"},"strict":false}],'
    b'"prompt_cache_key":"pk","service_tier":"flex","background":false,"truncation":"auto",'
    b'"metadata":{"a":"b"},"parallel_tool_calls":false,"previous_response_id":"resp_prev",'
    b'"max_output_tokens":1000,"stream":false,"future_field":{"n":1.50}}'
)
SSE = {"content-type": "text/event-stream"}
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1741290958,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "model": "gpt-5-codex",
    "output": [
        {
            "id": "msg_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hi", "annotations": []}],
        }
    ],
    "usage": {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 10},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 8},
        "total_tokens": 50,
    },
}


def event(kind: str, n: int, **fields: Any) -> bytes:
    """One event as OpenAI writes it."""
    payload = json.dumps({"type": kind, "sequence_number": n, **fields}, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n".encode()


def stream_events(terminal: str = "response.completed", **response: Any) -> list[bytes]:
    """A short Responses stream ending with ``terminal``."""
    created = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
    return [
        event("response.created", 0, response=created),
        event("response.in_progress", 1, response=created),
        event("response.output_text.delta", 2, item_id="msg_1", output_index=0, content_index=0, delta="hi"),
        event(terminal, 3, response={**RESPONSE, **response}),
    ]


def answer(kit: Any, body: bytes, status: int = 200, endpoint: str = "chat") -> Any:
    result = transform_response(
        provider=kit.provider(),
        request=kit.responses_request(CLIENT_BODY, endpoint=endpoint),
        response=UpstreamResponse(status=status, body=body),
        model="gpt-5-codex",
    )
    assert result is not None
    return result


# --- requests -----------------------------------------------------------------------------------


def test_the_body_reaches_responses_byte_for_byte_but_model(kit: Any) -> None:
    request = kit.responses_request(CLIENT_BODY)
    upstream = transform_request(
        provider=kit.provider(), model="gpt-5-codex", request=request, api_key="sk-x"
    )
    assert upstream is not None
    assert upstream.url == kit.base_url + "/responses"
    assert upstream.headers["authorization"] == "Bearer sk-x"
    sent = json.loads(upstream.body)
    assert sent == {**json.loads(CLIENT_BODY), "model": "gpt-5-codex"}
    assert list(sent) == list(json.loads(CLIENT_BODY))  # the order too
    # every other member byte for byte (numbers as written, escapes kept)
    assert b'"future_field":{"n":1.50}' in upstream.body and b'"hi \\u00e9"' in upstream.body
    same = transform_request(provider=kit.provider(), model="codex", request=request, api_key="k")
    assert same is not None and same.body is request.body


def test_a_responses_request_is_passed_through_whatever_api_says(kit: Any) -> None:
    for options in ({}, {"api": "responses"}, {"responses_models": None}):
        upstream = transform_request(
            provider=kit.provider(**options),
            model="gpt-4o",
            request=kit.responses_request(CLIENT_BODY),
            api_key="k",
        )
        assert upstream is not None and upstream.url.endswith("/responses")
        assert json.loads(upstream.body)["input"] == json.loads(CLIENT_BODY)["input"]


def test_a_stream_request_asks_for_an_event_stream(kit: Any) -> None:
    body = CLIENT_BODY.replace(b'"stream":false', b'"stream":true')
    upstream = transform_request(
        provider=kit.provider(), model="codex", request=kit.responses_request(body), api_key="k"
    )
    assert upstream is not None and upstream.stream and upstream.headers["accept"] == "text/event-stream"
    assert upstream.body is not None and b'"stream":true' in upstream.body


def test_count_tokens_goes_to_input_tokens(kit: Any) -> None:
    body = b'{"model":"codex","input":"hello","tools":[{"type":"web_search"}]}'
    upstream = transform_request(
        provider=kit.provider(),
        model="gpt-5",
        request=kit.responses_request(body, endpoint="count_tokens"),
        api_key="k",
    )
    assert upstream is not None and not upstream.stream
    assert upstream.url == kit.base_url + "/responses/input_tokens"
    assert json.loads(upstream.body) == {**json.loads(body), "model": "gpt-5"}


def test_azure_openai_takes_the_same_path_with_its_key_header_and_api_version(kit: Any) -> None:
    provider = kit.provider(auth_header="api-key", query={"api-version": "2025-04-01-preview"})
    for endpoint, path in (("chat", "/responses"), ("count_tokens", "/responses/input_tokens")):
        upstream = transform_request(
            provider=provider,
            model="my-deployment",
            request=kit.responses_request(CLIENT_BODY, endpoint=endpoint),
            api_key="azure-key",
        )
        assert upstream is not None
        assert upstream.url == kit.base_url + path + "?api-version=2025-04-01-preview"
        assert upstream.headers["api-key"] == "azure-key" and "authorization" not in upstream.headers


# --- whole answers ------------------------------------------------------------------------------


def test_a_response_is_passed_on_untouched_in_the_responses_dialect(kit: Any) -> None:
    body = json.dumps(RESPONSE, indent=2).encode()
    result = answer(kit, body)
    assert result.error is None and result.dialect == "responses" and result.body is body


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>Bad Gateway</html>",
        b"[]",
        b'{"id":"c","object":"chat.completion","choices":[]}',
        b'{"error":{"message":"oops"}}',
        b'{"object":"response.input_tokens","input_tokens":3}',
        json.dumps(RESPONSE).encode()[:40],
        b'{"object":"response","id":"\xff"}',
    ],
)
def test_a_2xx_that_is_not_a_response_is_a_bad_response(kit: Any, body: bytes) -> None:
    result = answer(kit, body)
    assert result.error is not None and result.error.kind == "bad_response" and result.error.status == 502


def test_a_failed_response_is_the_failure_it_says(kit: Any) -> None:
    failed = {**RESPONSE, "status": "failed", "error": {"code": "server_error", "message": "boom"}}
    error = answer(kit, json.dumps(failed).encode()).error
    assert error is not None and error.kind == "server" and error.retryable and error.message == "boom"
    limited = {**failed, "error": {"code": "rate_limit_exceeded", "message": "slow down"}}
    error = answer(kit, json.dumps(limited).encode()).error
    assert error is not None and error.kind == "rate_limit" and error.status == 429
    bad_image = {**failed, "error": {"code": "invalid_image_url", "message": "no image"}}
    error = answer(kit, json.dumps(bad_image).encode()).error
    assert error is not None and error.kind == "bad_request" and error.status == 400
    assert error.code == "invalid_image_url" and not error.retryable


def test_a_token_count_answer_is_checked(kit: Any) -> None:
    good = b'{"object":"response.input_tokens","input_tokens":42}'
    result = answer(kit, good, endpoint="count_tokens")
    assert result.error is None and result.body is good and result.dialect == "responses"
    for bad in (json.dumps(RESPONSE).encode(), b'{"object":"response.input_tokens","input_tokens":"42"}'):
        error = answer(kit, bad, endpoint="count_tokens").error
        assert error is not None and error.kind == "bad_response"


def test_previous_response_not_found_is_the_clients_error_never_the_keys(kit: Any) -> None:
    body = json.dumps(
        {
            "error": {
                "message": "Previous response with id 'resp_x' not found.",
                "type": "invalid_request_error",
                "param": "previous_response_id",
                "code": "previous_response_not_found",
            }
        }
    ).encode()
    for status, kind, client in (
        (400, "bad_request", 400),
        (404, "not_found", 404),
        (500, "bad_request", 400),
    ):
        error = answer(kit, body, status=status).error
        assert error is not None and (error.kind, error.status) == (kind, client)
        assert error.kind in CLIENT_KINDS and not error.retryable
        assert error.code == "previous_response_not_found" and error.param == "previous_response_id"
        assert "resp_x" in error.message


def test_a_conversation_the_gateway_holds_and_the_account_lost_goes_elsewhere(kit: Any) -> None:
    """With an affinity that has ``elsewhere`` (the dialect checked the id: the gateway holds the
    conversation), previous_response_not_found means the account lost it: not the client's error,
    so the kernel tries the conversation spelled out on another candidate."""
    lost = json.dumps(
        {"error": {"message": "Previous response with id 'resp_prev' not found.",
                   "type": "invalid_request_error", "param": "previous_response_id",
                   "code": "previous_response_not_found"}}
    ).encode()  # fmt: skip
    failed = json.dumps(
        {**RESPONSE, "status": "failed", "error": {"code": "previous_response_not_found", "message": "gone"}}
    ).encode()
    pinned = kit.responses_request(CLIENT_BODY)
    spelled = kit.responses_request(CLIENT_BODY.replace(b'"previous_response_id":"resp_prev",', b""))
    pinned.affinity = Affinity(provider="oai", key="k", elsewhere=spelled)
    only_there = kit.responses_request(CLIENT_BODY)
    only_there.affinity = Affinity(provider="oai", key="k", elsewhere=None)
    for status, body in ((400, lost), (200, failed)):
        for request, kind in ((pinned, "not_found"), (only_there, "bad_request")):
            result = transform_response(
                provider=kit.provider(),
                request=request,
                response=UpstreamResponse(status=status, body=body),
                model="m",
            )
            error = result.error
            assert error is not None and (error.kind, error.status) == (kind, 400), (status, kind)
            # never the key's fault, never a retry of the same call
            assert error.kind in CLIENT_KINDS and not error.retryable
            assert error.code == "previous_response_not_found"


def test_a_background_response_that_could_never_be_polled_is_a_bad_answer(kit: Any) -> None:
    queued = {**RESPONSE, "status": "queued", "background": True, "output": [], "usage": None}
    for rid in ("resp_a/../../chat/completions", "resp_a?k=x", "resp_a b", "resp_a\r\nx: 1", 7, None):
        error = answer(kit, json.dumps({**queued, "id": rid}).encode()).error
        assert error is not None and error.kind == "bad_response" and error.status == 502, rid
    assert answer(kit, json.dumps(queued).encode()).error is None  # resp_1: pollable
    finished = {**queued, "status": "completed", "id": "odd id"}  # never polled: relayed
    assert answer(kit, json.dumps(finished).encode()).error is None
    unhashable = {**queued, "status": {"x": 1}, "id": "resp_1"}
    assert answer(kit, json.dumps(unhashable).encode()).error is None


def test_upstream_errors_are_classified_like_chat(kit: Any) -> None:
    limited = b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}'
    result = transform_response(
        provider=kit.provider(),
        request=kit.responses_request(CLIENT_BODY),
        response=UpstreamResponse(status=429, headers={"retry-after-ms": "1500"}, body=limited),
        model="m",
    )
    assert result is not None and result.error is not None
    assert result.error.kind == "rate_limit" and result.error.retry_after == 1.5
    quota = b'{"error":{"message":"You exceeded your quota","type":"insufficient_quota","code":"insufficient_quota"}}'
    error = answer(kit, quota, status=429).error
    assert error is not None and error.kind == "quota"
    long = b'{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}'
    error = answer(kit, long, status=400).error
    assert error is not None and error.kind == "context_length"


def test_usage_of_a_response_and_of_a_token_count(kit: Any) -> None:
    request = kit.responses_request(CLIENT_BODY)
    usage = parse_usage(provider=kit.provider(), request=request, body=json.dumps(RESPONSE).encode())
    assert usage == Usage(
        prompt_tokens=30, completion_tokens=20, total_tokens=50, cached_tokens=10, reasoning_tokens=8
    )
    count = kit.responses_request(CLIENT_BODY, endpoint="count_tokens")
    assert (
        parse_usage(
            provider=kit.provider(),
            request=count,
            body=b'{"object":"response.input_tokens","input_tokens":9}',
        )
        == Usage()
    )
    queued = {**RESPONSE, "status": "queued", "usage": None}
    assert parse_usage(provider=kit.provider(), request=request, body=json.dumps(queued).encode()) is None


# --- streams ------------------------------------------------------------------------------------


def passthrough(kit: Any) -> ResponsesPassthrough:
    translator = transform_stream(
        provider=kit.provider(),
        request=kit.responses_request(CLIENT_BODY.replace(b'"stream":false', b'"stream":true')),
        response=UpstreamResponse(status=200, headers=SSE),
        model="gpt-5-codex",
    )
    assert isinstance(translator, ResponsesPassthrough) and translator.dialect == "responses"
    return translator


def test_a_stream_is_relayed_event_by_event_unchanged_with_its_usage(kit: Any) -> None:
    events = stream_events()
    translator = passthrough(kit)
    sent = [translator.feed(e) for e in events]
    assert sent == events  # each event as soon as it is whole, byte for byte
    assert translator.close() == b""
    assert translator.usage == Usage(
        prompt_tokens=30, completion_tokens=20, total_tokens=50, cached_tokens=10, reasoning_tokens=8
    )


def test_an_incomplete_response_ends_the_stream_with_its_usage(kit: Any) -> None:
    events = stream_events(
        "response.incomplete", status="incomplete", incomplete_details={"reason": "max_output_tokens"}
    )
    sent, failure = kit.run_stream(passthrough(kit), events)
    assert failure is None and sent == b"".join(events)


def test_frames_are_rebuilt_from_their_checked_type_and_data(kit: Any) -> None:
    events = stream_events()
    noisy = b": keep-alive\n\nid: 7\nretry: 10\r\n" + events[0].replace(b"\n", b"\r\n") + b"".join(events[1:])
    sent, failure = kit.run_stream(passthrough(kit), [noisy])
    assert failure is None and sent == b"".join(events)
    bare = b"".join(e.split(b"\n", 1)[1] for e in events)  # data lines only, no event names
    sent, failure = kit.run_stream(passthrough(kit), [bare])
    assert failure is None and sent == b"".join(events)


def test_a_done_marker_some_servers_send_is_dropped(kit: Any) -> None:
    events = stream_events()
    sent, failure = kit.run_stream(passthrough(kit), [*events, b"data: [DONE]\n\n"])
    assert failure is None and sent == b"".join(events)


@pytest.mark.parametrize(
    ("bad", "kind", "status", "code"),
    [
        (event("error", 2, code="server_error", message="The server had an error", param=None), "stream", 502, "server_error"),
        (event("error", 2, error={"type": "invalid_request_error", "code": None, "message": "bad input", "param": "input"}), "bad_request", 400, None),
        (event("error", 2, code="rate_limit_exceeded", message="Rate limit reached", param=None), "rate_limit", 429, "rate_limit_exceeded"),
        (event("response.failed", 2, response={**RESPONSE, "status": "failed", "error": {"code": "server_error", "message": "The server had an error"}}), "stream", 502, "server_error"),
        (event("response.failed", 2, response={**RESPONSE, "status": "failed", "error": {"code": "context_length_exceeded", "message": "too long"}}), "context_length", 400, "context_length_exceeded"),
        (event("response.failed", 2, response={**RESPONSE, "status": "failed", "error": None}), "stream", 502, None),
    ],
)  # fmt: skip
def test_an_error_event_or_a_failed_response_is_a_failure_after_the_frames_before_it(
    kit: Any, bad: bytes, kind: str, status: int, code: str | None
) -> None:
    events = stream_events()
    translator = passthrough(kit)
    assert translator.feed(events[0]) == events[0]
    with pytest.raises(UpstreamFailure) as failure:
        translator.feed(events[1] + bad + events[3])
    error = failure.value.error
    assert (error.kind, error.status, error.code) == (kind, status, code)
    assert failure.value.pending == events[1]  # relayed frames stay relayed; nothing after the error


def test_a_stream_cut_before_its_terminal_event_is_a_cut_stream(kit: Any) -> None:
    events = stream_events()
    translator = passthrough(kit)
    assert translator.feed(b"".join(events[:2])) == b"".join(events[:2])
    translator.feed(events[2][:30])
    with pytest.raises(UpstreamFailure) as failure:
        translator.close()
    assert failure.value.error.kind == "stream" and failure.value.error.retryable


@pytest.mark.parametrize(
    "garbage",
    [
        b"<html>502 Bad Gateway</html>\n\n",
        b"data: not json\n\n",
        b"data: [1, 2]\n\n",
        b'data: {"sequence_number": 1}\n\n',
        b'data: {"type": 7}\n\n',
        b'data: {"type": "response.created\\ndata: {}"}\n\n',
        b'data: {"type": "x", "delta": "\xff"}\n\n',
    ],
)
def test_anything_that_is_not_a_responses_event_is_a_bad_response(kit: Any, garbage: bytes) -> None:
    events = stream_events()
    sent, failure = kit.run_stream(passthrough(kit), [events[0], garbage, *events[1:]])
    assert failure is not None and failure.error.kind == "bad_response"
    assert sent == events[0]


def test_a_stream_without_any_event_is_no_stream(kit: Any) -> None:
    sent, failure = kit.run_stream(passthrough(kit), [b": nothing\n\n"])
    assert failure is not None and failure.error.kind == "bad_response" and sent == b""


def test_a_proxy_error_object_in_a_stream_says_what_it_was(kit: Any) -> None:
    sent, failure = kit.run_stream(passthrough(kit), [b'{"error": {"message": "upstream connect error"}}\n'])
    assert sent == b""
    assert failure is not None and failure.error.kind == "bad_response"
    assert "upstream connect error" in failure.error.message


def test_a_stream_that_is_not_an_event_stream_is_refused_at_once(kit: Any) -> None:
    with pytest.raises(UpstreamFailure) as failure:
        transform_stream(
            provider=kit.provider(),
            request=kit.responses_request(CLIENT_BODY),
            response=UpstreamResponse(status=200, headers={"content-type": "application/json"}),
            model="m",
        )
    assert failure.value.error.kind == "bad_response"


def test_nothing_is_relayed_after_the_terminal_event(kit: Any) -> None:
    events = stream_events()
    sent, failure = kit.run_stream(passthrough(kit), [b"".join(events) + events[2]])
    assert failure is None and sent == b"".join(events)


def test_a_rate_limited_response_says_when_to_try_again(kit: Any) -> None:
    message = (
        "Rate limit reached for gpt-5-codex on tokens per min (TPM): Please try again in 1.5s. Visit ..."
    )
    failed = {**RESPONSE, "status": "failed", "error": {"code": "rate_limit_exceeded", "message": message}}
    events = stream_events()
    sent, failure = kit.run_stream(
        passthrough(kit), [*events[:2], event("response.failed", 2, response=failed)]
    )
    assert failure is not None and sent == b"".join(events[:2])
    assert (failure.error.kind, failure.error.status, failure.error.retry_after) == ("rate_limit", 429, 1.5)
    assert failure.error.message == message
