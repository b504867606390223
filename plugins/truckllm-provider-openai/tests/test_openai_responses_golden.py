"""Golden files of the ``api: responses`` translation: chat request → Responses request, Response →
chat completion, Responses stream → chat chunks.

Layout of ``tests/golden/``:

- ``requests/<case>.in.json``: ``{"body": <chat request>, "dialect"?, "raw_extra"?}`` (``raw_extra``:
  members only in the raw body, which a client of another dialect's typed form never has);
  ``requests/<case>.out.json``: the body sent to ``/responses``.
- ``answers/<case>.in.json``: ``{"body": <Response>}``; ``answers/<case>.out.json``: the chat
  completion the client gets.
- ``streams/<case>.sse``: the upstream's bytes (as OpenAI writes them);
  ``streams/<case>.meta.json``: ``{"include_usage": bool}``; ``streams/<case>.out.json``: the
  client's ``data:`` payloads.

Set ``TRUCKLLM_UPDATE_GOLDEN=1`` to rewrite the ``.out.json`` files (then review the diff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from truckllm_provider_openai import transform_request, transform_response, transform_stream

from truckllm.types import UpstreamResponse
from truckllm_testing.golden import case_names, check_file

GOLDEN = Path(__file__).parent / "golden"
SSE = {"content-type": "text/event-stream; charset=utf-8"}


@pytest.mark.parametrize("case", case_names(GOLDEN / "requests", ".in.json"))
def test_request_golden(kit: Any, case: str) -> None:
    spec = json.loads((GOLDEN / "requests" / f"{case}.in.json").read_text())
    request = kit.chat_request(
        spec["body"], dialect=spec.get("dialect", "openai"), raw_extra=spec.get("raw_extra")
    )
    upstream = transform_request(
        provider=kit.provider(), model=kit.responses_model, request=request, api_key="sk-test"
    )
    assert upstream is not None
    assert upstream.url == kit.base_url + "/responses"
    assert upstream.stream is request.stream
    assert upstream.headers["accept"] == ("text/event-stream" if request.stream else "application/json")
    check_file(GOLDEN / "requests" / f"{case}.out.json", json.loads(upstream.body))


@pytest.mark.parametrize("case", case_names(GOLDEN / "answers", ".in.json"))
def test_answer_golden(kit: Any, case: str) -> None:
    spec = json.loads((GOLDEN / "answers" / f"{case}.in.json").read_text())
    request = kit.chat_request({"model": "alias", "messages": [{"role": "user", "content": "hi"}]})
    result = transform_response(
        provider=kit.provider(),
        request=request,
        response=UpstreamResponse(status=200, body=json.dumps(spec["body"]).encode()),
        model=kit.responses_model,
    )
    assert result is not None and result.error is None, result
    assert result.dialect == "openai"
    check_file(GOLDEN / "answers" / f"{case}.out.json", json.loads(result.body))


def stream_translator(kit: Any, case: str) -> Any:
    """The translator a chat client's stream request for ``case`` gets."""
    meta = json.loads((GOLDEN / "streams" / f"{case}.meta.json").read_text())
    body: dict[str, Any] = {"model": "alias", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if meta.get("include_usage"):
        body["stream_options"] = {"include_usage": True}
    return transform_stream(
        provider=kit.provider(),
        request=kit.chat_request(body),
        response=UpstreamResponse(status=200, headers=SSE),
        model=kit.responses_model,
    )


STREAMS = case_names(GOLDEN / "streams", ".sse")


@pytest.mark.parametrize("case", STREAMS)
def test_stream_golden(kit: Any, case: str) -> None:
    upstream = (GOLDEN / "streams" / f"{case}.sse").read_bytes()
    translator = stream_translator(kit, case)
    assert translator.dialect == "openai"
    sent, failure = kit.run_stream(translator, [upstream])
    assert failure is None
    check_file(GOLDEN / "streams" / f"{case}.out.json", kit.data_frames(sent))


@pytest.mark.parametrize("case", STREAMS)
def test_stream_and_answer_agree(kit: Any, case: str) -> None:
    """The chunks of a stream add up to the chat completion of its final Response."""
    upstream = (GOLDEN / "streams" / f"{case}.sse").read_bytes()
    sent, _ = kit.run_stream(stream_translator(kit, case), [upstream])
    chunks = [c for c in kit.data_frames(sent) if c != "[DONE]"]
    final = json.loads(upstream.rstrip().rsplit(b"\ndata: ", 1)[1])["response"]
    result = transform_response(
        provider=kit.provider(),
        request=kit.chat_request({"model": "alias", "messages": [{"role": "user", "content": "hi"}]}),
        response=UpstreamResponse(status=200, body=json.dumps(final).encode()),
        model=kit.responses_model,
    )
    assert result is not None
    whole = json.loads(result.body)
    assert {c["id"] for c in chunks} == {whole["id"]}
    assert {c["created"] for c in chunks} == {whole["created"]}
    message = whole["choices"][0]["message"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    for name in ("content", "refusal", "reasoning_content"):
        streamed = "".join(d.get(name) or "" for d in deltas)
        assert streamed == (message.get(name) or ""), name
    calls: dict[int, dict[str, str]] = {}
    for delta in deltas:
        for call in delta.get("tool_calls", ()):
            entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.get("id", "")
            entry["name"] += call.get("function", {}).get("name", "")
            entry["arguments"] += call.get("function", {}).get("arguments", "")
    assert [calls[i] for i in sorted(calls)] == [
        {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
        for c in message.get("tool_calls", ())
    ]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    assert finish == whole["choices"][0]["finish_reason"]
