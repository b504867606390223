"""Golden translation tests, both directions.

Layout of ``tests/golden/``:

- ``requests/<case>.in.json``: ``{"body": <Responses request>, "stored"?: [<earlier items>]}``;
  ``requests/<case>.out.json``: ``{"typed": <the chat request built>, "notes": [...]}``, or
  ``{"refused": {"param", "message"}}`` when only OpenAI deployments can serve it.
- ``responses/<case>.in.json``: ``{"body": <chat.completion>, "request"?: <Responses request>}``;
  ``responses/<case>.out.json``: the Response object the client gets.
- ``streams/<case>.sse``: the chat frames a provider hands over;
  ``streams/<case>.out.json``: the Responses events.

Set ``TRUCKLLM_UPDATE_GOLDEN=1`` to rewrite the ``.out.json`` files (then review the diff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from truckllm_dialect_responses.request import read_request, translate
from truckllm_dialect_responses.response import Shape, response_from_chat
from truckllm_dialect_responses.stream import ChatToResponses

from truckllm.errors import UnsupportedRequest
from truckllm_testing.golden import case_names, check_file

GOLDEN = Path(__file__).parent / "golden"
EVENT = TypeAdapter(ResponseStreamEvent)
DEFAULT_REQUEST = {"model": "gpt-alias", "input": "hi"}


def _cases(kind: str, suffix: str) -> list[str]:
    return case_names(GOLDEN / kind, suffix)


def _shape(request: dict[str, Any]) -> Shape:
    call = read_request(json.dumps(request).encode())
    return Shape(
        id="resp_golden", created_at=1_750_000_000, alias=call.model, call=call, completed_at=1_750_000_002
    )


@pytest.mark.parametrize("case", _cases("requests", ".in.json"))
def test_request_golden(case: str) -> None:
    spec = json.loads((GOLDEN / "requests" / f"{case}.in.json").read_text())
    call = read_request(json.dumps(spec["body"]).encode())
    try:
        translation = translate(call, [*spec.get("stored", []), *call.input])
    except UnsupportedRequest as refused:
        actual: dict[str, Any] = {"refused": {"param": refused.param, "message": refused.message}}
    else:
        actual = {"typed": json.loads(msgspec.json.encode(translation.typed)), "notes": translation.notes}
    check_file(GOLDEN / "requests" / f"{case}.out.json", actual)


@pytest.mark.parametrize("case", _cases("responses", ".in.json"))
def test_response_golden(case: str) -> None:
    spec = json.loads((GOLDEN / "responses" / f"{case}.in.json").read_text())
    got = response_from_chat(json.dumps(spec["body"]).encode(), _shape(spec.get("request", DEFAULT_REQUEST)))
    Response.model_validate(got)
    check_file(GOLDEN / "responses" / f"{case}.out.json", got)


def _events(out: bytes) -> list[dict[str, Any]]:
    decoded = []
    for frame in out.split(b"\n\n")[:-1]:
        name, data = frame.split(b"\n")
        event = json.loads(data.removeprefix(b"data: "))
        assert name == b"event: " + event["type"].encode()
        EVENT.validate_python(event)
        decoded.append(event)
    return decoded


@pytest.mark.parametrize("case", _cases("streams", ".sse"))
def test_stream_golden(case: str) -> None:
    upstream = (GOLDEN / "streams" / f"{case}.sse").read_bytes()
    request = {**DEFAULT_REQUEST, "stream": True}
    translator = ChatToResponses(_shape(request))
    whole = translator.feed(upstream) + translator.close()
    got = _events(whole)
    assert got[-1]["response"] == translator.final
    check_file(GOLDEN / "streams" / f"{case}.out.json", got)
    # the same bytes fed one at a time give the same events
    bytewise = ChatToResponses(_shape(request))
    pieces = [bytewise.feed(upstream[i : i + 1]) for i in range(len(upstream))]
    assert b"".join(pieces) + bytewise.close() == whole
