"""Azure's errors as the kernel must see them: content-filter refusals (error answers and answers
the filter withheld) as a final 400 naming the categories, rate limits with when to retry, the
rest as OpenAI's; Azure's prompt-filter stream chunks never reach a client."""

from __future__ import annotations

import json
from typing import Any

import truckllm_provider_azure as plugin

from truckllm.errors import UpstreamFailure
from truckllm.types import UpstreamResponse

from .conftest import Kit

MESSAGES = [{"role": "user", "content": "hi"}]
FILTER_ERROR = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": True, "severity": "medium"},
                "jailbreak": {"filtered": True, "detected": True},
            },
        },
    }
}


def answer(kit: type[Kit], status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    result = plugin.transform_response(
        kit.provider(),
        kit.chat({"model": "a", "messages": MESSAGES}),
        UpstreamResponse(status=status, headers=headers or {}, body=json.dumps(body).encode()),
        "d",
    )
    assert result is not None
    return result


def test_content_filter_error_is_a_final_400_naming_the_categories(kit: type[Kit]) -> None:
    error = answer(kit, 400, FILTER_ERROR).error
    assert error.status == 400 and error.kind == "bad_request" and not error.retryable
    assert error.code == "content_filter" and error.param == "prompt"
    assert "violence (medium)" in error.message and "jailbreak (detected)" in error.message
    assert "hate" not in error.message


def test_an_answer_the_filter_withheld_is_a_400(kit: type[Kit]) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None},
                "finish_reason": "content_filter",
                "content_filter_results": {"sexual": {"filtered": True, "severity": "high"}},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
    }
    error = answer(kit, 200, body).error
    assert error.status == 400 and error.code == "content_filter"
    assert "withheld the answer" in error.message and "sexual (high)" in error.message


def test_a_clean_answer_with_filter_annotations_passes(kit: type[Kit]) -> None:
    body = {
        "object": "chat.completion",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
                "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
            }
        ],
    }
    result = answer(kit, 200, body)
    assert result.error is None and json.loads(result.body) == body


def test_rate_limits_say_when_to_retry(kit: type[Kit]) -> None:
    error = answer(kit, 429, {"error": {"code": "429", "message": "x"}}, {"retry-after-ms": "1500"}).error
    assert error.kind == "rate_limit" and error.retry_after == 1.5
    words = {"error": {"code": "429", "message": "Requests ... Please retry after 7 seconds. Please go"}}
    assert answer(kit, 429, words).error.retry_after == 7


def test_other_errors_read_as_openai(kit: type[Kit]) -> None:
    assert answer(kit, 401, {"error": {"code": "401", "message": "Access denied"}}).error.kind == "auth"
    missing = answer(kit, 404, {"error": {"code": "DeploymentNotFound", "message": "no such deployment"}})
    assert missing.error.kind == "not_found" and missing.error.code == "DeploymentNotFound"
    assert answer(kit, 503, {"error": {"message": "busy"}}).error.retryable


def frames(*chunks: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def test_stream_drops_azures_prompt_filter_chunk(kit: type[Kit]) -> None:
    opening = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": []}
    text = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "hi"}}],
    }
    usage = {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 1}}
    request = kit.chat({"model": "a", "messages": MESSAGES, "stream": True})
    translator = plugin.transform_stream(
        kit.provider(),
        request,
        UpstreamResponse(status=200, headers={"content-type": "text/event-stream"}),
        "d",
    )
    assert isinstance(translator, plugin.AzureStream)
    raw = frames(opening, text, usage)
    sent = b"".join(translator.feed(raw[i : i + 7]) for i in range(0, len(raw), 7)) + translator.close()
    assert sent == frames(text)  # the usage chunk was not asked for
    assert translator.usage is not None and translator.usage.prompt_tokens == 1


def test_stream_error_keeps_what_came_before_without_the_filter_chunk(kit: type[Kit]) -> None:
    opening = {"choices": [], "object": "", "prompt_filter_results": []}
    text = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
    failing = {"error": {"message": "boom", "type": "server_error"}}
    request = kit.chat({"model": "a", "messages": MESSAGES, "stream": True})
    translator = plugin.transform_stream(
        kit.provider(), request, UpstreamResponse(status=200, headers={}), "d"
    )
    assert translator is not None
    raw = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in (opening, text, failing))
    try:
        translator.feed(raw)
    except UpstreamFailure as failure:
        assert failure.pending == b"data: " + json.dumps(text).encode() + b"\n\n"
    else:
        raise AssertionError("the error event did not fail the stream")
