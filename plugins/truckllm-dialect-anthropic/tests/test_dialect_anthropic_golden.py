"""Golden translation tests, both directions.

Layout of ``tests/golden/``:

- ``requests/<case>.in.json``: ``{"body": <Anthropic request>, "endpoint"?}``;
  ``requests/<case>.out.json``: ``{"typed": <the OpenAI request built>, "notes": [...]}``.
- ``responses/<case>.in.json``: ``{"body": <OpenAI answer>, "endpoint"?, "model"?}``;
  ``responses/<case>.out.json``: the Anthropic body the client gets.
- ``streams/<case>.sse``: the OpenAI frames the provider hands over;
  ``streams/<case>.out.json``: the Anthropic events, as ``[name, data]`` pairs.

Set ``TRUCKLLM_UPDATE_GOLDEN=1`` to rewrite the ``.out.json`` files (then review the diff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from truckllm_dialect_anthropic import AnthropicDialect
from truckllm_dialect_anthropic.request import read_request

from truckllm.types import ChatRequest
from truckllm_testing.golden import case_names, check_file

GOLDEN = Path(__file__).parent / "golden"


def _cases(kind: str, suffix: str) -> list[str]:
    return case_names(GOLDEN / kind, suffix)


def _request(endpoint: str = "chat", model: str = "claude-alias") -> ChatRequest:
    return ChatRequest(endpoint=endpoint, dialect="anthropic", body=b"{}", model=model)


@pytest.mark.parametrize("case", _cases("requests", ".in.json"))
def test_request_golden(kit: Any, case: str) -> None:
    spec = json.loads((GOLDEN / "requests" / f"{case}.in.json").read_text())
    endpoint = spec.get("endpoint", "chat")
    raw = json.dumps(spec["body"]).encode()
    parsed = read_request(raw, endpoint)
    request = kit.parse(raw, endpoint)
    assert request.body is raw and request.model == spec["body"]["model"]
    assert request.stream is bool(spec["body"].get("stream")) and request.include_usage is request.stream
    typed = json.loads(msgspec.json.encode(request.typed))
    assert typed == json.loads(msgspec.json.encode(parsed.typed))
    check_file(GOLDEN / "requests" / f"{case}.out.json", {"typed": typed, "notes": parsed.notes})


@pytest.mark.parametrize("case", _cases("responses", ".in.json"))
def test_response_golden(case: str) -> None:
    spec = json.loads((GOLDEN / "responses" / f"{case}.in.json").read_text())
    request = _request(spec.get("endpoint", "chat"), spec.get("model", "claude-alias"))
    body = AnthropicDialect().response(request, json.dumps(spec["body"]).encode(), "openai")
    check_file(GOLDEN / "responses" / f"{case}.out.json", json.loads(body))


@pytest.mark.parametrize("case", _cases("streams", ".sse"))
def test_stream_golden(kit: Any, case: str) -> None:
    upstream = (GOLDEN / "streams" / f"{case}.sse").read_bytes()
    translator = AnthropicDialect().stream(_request(), "openai")
    whole = translator.feed(upstream) + translator.close()
    got = kit.events(whole)
    check_file(GOLDEN / "streams" / f"{case}.out.json", [[name, data] for name, data in got])
    # the same bytes fed one at a time give the same events
    bytewise = AnthropicDialect().stream(_request(), "openai")
    pieces = [bytewise.feed(upstream[i : i + 1]) for i in range(len(upstream))]
    assert b"".join(pieces) + bytewise.close() == whole
