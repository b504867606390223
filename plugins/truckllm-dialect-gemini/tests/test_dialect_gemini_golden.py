"""Golden translation tests, both directions.

Each file under ``golden/`` is one case: its input and the expected output.

- ``requests/<case>.json``: ``method`` (default ``generateContent``), ``model``, ``query`` and
  the Gemini ``body``; expected: ``dialect``, ``stream`` and the OpenAI ``typed`` request with its
  ``notes``, or the ``error`` (status and message) the client gets.
- ``responses/<case>.json``: ``method``, the client's ``request`` body, the ``source`` dialect and
  its answer (``input``); expected: the Gemini ``output``.
- ``streams/<case>.json``: the client's ``query`` (``alt=sse`` or not), ``source`` and its frames
  (``input``, ``"[DONE]"`` and raw strings allowed); expected: the Gemini ``events``. The exact
  bytes are checked too (they follow from the events), and the case is replayed split at every
  byte: the output must not depend on how the upstream's bytes were chunked.

Set ``TRUCKLLM_UPDATE_GOLDEN=1`` to rewrite the expected parts from the current code (then review
the diff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from truckllm_dialect_gemini.request import read_batch_embed, read_count_tokens, read_embed, read_generate

from truckllm.errors import GatewayError
from truckllm_testing.golden import case_paths, check_fields, updating

GOLDEN = Path(__file__).parent / "golden"
USER = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def _cases(kind: str) -> list[Path]:
    return case_paths(GOLDEN / kind)


@pytest.mark.parametrize("path", _cases("requests"), ids=lambda p: p.stem)
def test_request_golden(path: Path, gk: Any) -> None:
    case = json.loads(path.read_text())
    body = case["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    actual: dict[str, Any]
    try:
        request = gk.parse(
            raw, case.get("method", "generateContent"), case.get("model", "alias"), case.get("query")
        )
    except GatewayError as exc:
        actual = {"error": {"status": exc.status, "message": exc.message}}
    else:
        assert request.body is raw  # the bytes a Gemini deployment gets, as received
        method = case.get("method", "generateContent")
        alias = request.model
        parsed = {
            "embedContent": lambda: read_embed(raw, alias),
            "batchEmbedContents": lambda: read_batch_embed(raw, alias, case.get("model", "alias")),
            "countTokens": lambda: read_count_tokens(raw, alias),
        }.get(method, lambda: read_generate(raw, alias, request.stream))()
        actual = {
            "dialect": request.dialect,
            "stream": request.stream,
            "typed": gk.typed(request),
            "notes": parsed.notes,
        }
    check_fields(path, case, actual, ("dialect", "stream", "typed", "notes", "error"))


@pytest.mark.parametrize("path", _cases("responses"), ids=lambda p: p.stem)
def test_response_golden(path: Path, gk: Any) -> None:
    case = json.loads(path.read_text())
    method = case.get("method", "generateContent")
    request = gk.parse(case.get("request", USER), method, case.get("model", "alias"))
    source = case.get("source", "openai")
    body = case["input"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    actual: dict[str, Any]
    try:
        output = gk.dialect.response(request, raw, source)
    except GatewayError as exc:
        actual = {"error": {"status": exc.status, "message": exc.message}}
    else:
        actual = {"output": json.loads(output)}
        if source == "gemini" and method != "embedContent":
            assert output == raw  # Gemini's own answers are unchanged
    check_fields(path, case, actual, ("output", "error"))


@pytest.mark.parametrize("path", _cases("streams"), ids=lambda p: p.stem)
def test_stream_golden(path: Path, gk: Any) -> None:
    case = json.loads(path.read_text())
    query = case.get("query", {})
    request = gk.parse(case.get("request", USER), "streamGenerateContent", "alias", query)
    sse = query.get("alt") == "sse"
    source = case.get("source", "openai")
    frames = gk.openai_frames(case["input"]) if source == "openai" else gk.gemini_frames(case["input"])
    raw = gk.run_stream(request, source, frames)
    events = gk.events(raw, sse)
    if source == "gemini" and sse:
        assert raw == frames  # Gemini's own SSE frames are unchanged
    elif not updating():
        assert raw == gk.encode_events(events, sse)
    for cut in range(1, len(frames)):
        assert gk.run_stream(request, source, frames, [cut]) == raw, f"split at byte {cut}"
    assert gk.run_stream(request, source, frames, range(1, len(frames))) == raw, "one byte at a time"
    check_fields(path, case, {"events": events}, ("events",))
