"""Golden files, both directions, for what is Vertex's own (the translations are the Gemini and
Anthropic plugins', with golden files of their own).

- ``golden/requests/<case>.json``: ``{"type", "model", "options"?, "base_url"?, "dialect"?, "body"}``
  → ``url``, ``headers`` and ``sent`` (the body sent upstream);
- ``golden/responses/<case>.json``: ``{"type", "status", "upstream", "request"?, "dialect"?}``
  (an answer or error as Vertex sends it) → ``client`` (the body the client gets) or ``error``.

``TRUCKLLM_UPDATE_GOLDEN=1`` rewrites the expected fields (review the diff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from truckllm_testing.golden import case_paths, check_fields

GOLDEN = Path(__file__).parent / "golden"


def _strip(body: Any) -> Any:
    if isinstance(body, dict):
        body.pop("id", None)
        body.pop("created", None)
    return body


@pytest.mark.parametrize("path", case_paths(GOLDEN / "requests"), ids=lambda p: p.stem)
def test_request_golden(kit: Any, path: Path) -> None:
    case = json.loads(path.read_text())
    call = kit.upstream(
        case["body"],
        type=case["type"],
        model=case["model"],
        base_url=case.get("base_url", ""),
        dialect=case.get("dialect", "openai"),
        **case.get("options", {}),
    )
    actual = {"url": call.url, "headers": dict(sorted(call.headers.items())), "sent": json.loads(call.body)}
    check_fields(path, case, actual, ("url", "headers", "sent"))


@pytest.mark.parametrize("path", case_paths(GOLDEN / "responses"), ids=lambda p: p.stem)
def test_response_golden(kit: Any, path: Path) -> None:
    case = json.loads(path.read_text())
    result = kit.respond(
        case["status"],
        case["upstream"],
        type=case["type"],
        request=case.get("request"),
        dialect=case.get("dialect", "openai"),
    )
    if result.error is not None:
        error = msgspec.to_builtins(result.error)
        actual: dict[str, Any] = {"error": {k: v for k, v in error.items() if v is not None}}
    else:
        assert result.body is not None
        actual = {"client": _strip(json.loads(result.body))}
    check_fields(path, case, actual, ("client", "error"))
