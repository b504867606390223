"""Golden translation tests: OpenAI request → Anthropic body, Anthropic answer → OpenAI body, and
Anthropic SSE stream → OpenAI chunk sequence (compared ignoring ``id`` and ``created``).

Layout of ``tests/golden/``:

- ``requests/<case>.in.json``: ``{"body": <OpenAI request>, "endpoint"?, "model"?, "options"?}``;
  ``requests/<case>.out.json``: the Anthropic body sent upstream.
- ``responses/<case>.in.json``: ``{"body": <Anthropic answer>, "request"?, "endpoint"?, "options"?}``;
  ``responses/<case>.out.json``: the OpenAI body the client gets.
- ``streams/<case>.sse``: the upstream bytes; ``streams/<case>.meta.json`` (optional):
  ``{"request"?, "endpoint"?, "options"?}``; ``streams/<case>.out.json``: the client's chunks.

Set ``TRUCKLLM_UPDATE_GOLDEN=1`` to rewrite the ``.out.json`` files (then review the diff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from truckllm_testing.golden import case_names, check_file

GOLDEN = Path(__file__).parent / "golden"


def _cases(kind: str, suffix: str) -> list[str]:
    return case_names(GOLDEN / kind, suffix)


def _strip(body: dict[str, Any]) -> dict[str, Any]:
    body.pop("id", None)
    body.pop("created", None)
    return body


@pytest.mark.parametrize("case", _cases("requests", ".in.json"))
def test_request_golden(kit: Any, case: str) -> None:
    spec = json.loads((GOLDEN / "requests" / f"{case}.in.json").read_text())
    upstream = kit.upstream(
        spec["body"],
        endpoint=spec.get("endpoint", "chat"),
        model=spec.get("model", kit.model),
        **spec.get("options", {}),
    )
    assert upstream.url == "https://api.anthropic.com/v1/messages"
    assert upstream.headers["x-api-key"] == "sk-ant-test"
    assert upstream.headers["anthropic-version"] == "2023-06-01"
    check_file(GOLDEN / "requests" / f"{case}.out.json", json.loads(upstream.body))


@pytest.mark.parametrize("case", _cases("responses", ".in.json"))
def test_response_golden(kit: Any, case: str) -> None:
    spec = json.loads((GOLDEN / "responses" / f"{case}.in.json").read_text())
    result = kit.respond(
        spec["body"], spec.get("request"), endpoint=spec.get("endpoint", "chat"), **spec.get("options", {})
    )
    assert result.error is None
    body = json.loads(result.body)
    assert body["id"].startswith("cmpl-" if spec.get("endpoint") == "completions" else "chatcmpl-")
    check_file(GOLDEN / "responses" / f"{case}.out.json", _strip(body))


@pytest.mark.parametrize("case", _cases("streams", ".sse"))
def test_stream_golden(kit: Any, parse_chunks: Any, case: str) -> None:
    raw = (GOLDEN / "streams" / f"{case}.sse").read_bytes()
    meta_path = GOLDEN / "streams" / f"{case}.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    translator = kit.translator(
        meta.get("request"), endpoint=meta.get("endpoint", "chat"), **meta.get("options", {})
    )
    frames = translator.feed(raw) + translator.close()
    chunks = parse_chunks(frames)
    check_file(GOLDEN / "streams" / f"{case}.out.json", chunks)
    # the same bytes one at a time give the same chunks
    again = kit.translator(
        meta.get("request"), endpoint=meta.get("endpoint", "chat"), **meta.get("options", {})
    )
    split = b"".join(again.feed(raw[i : i + 1]) for i in range(len(raw))) + again.close()
    assert parse_chunks(split) == chunks
