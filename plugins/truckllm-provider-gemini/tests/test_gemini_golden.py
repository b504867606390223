"""Golden translation tests: OpenAI → Gemini requests, Gemini → OpenAI answers and streams.

Each file under ``golden/`` holds one case: the input and the expected output. Set
``TRUCKLLM_UPDATE_GOLDEN=1`` to rewrite the expected parts from the current code (then review the
diff). Stream cases are also replayed split at every byte boundary and at random cuts: the output
must not depend on how the upstream's bytes were chunked.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from truckllm.errors import UnsupportedRequest
from truckllm_testing.golden import case_paths, check_fields, usage_fields

GOLDEN = Path(__file__).parent / "golden"
DEFAULT_REQUEST = {"model": "alias", "messages": [{"role": "user", "content": "hi"}]}


def _cases(kind: str) -> list[Path]:
    return case_paths(GOLDEN / kind)


@pytest.mark.parametrize("path", _cases("requests"), ids=lambda p: p.stem)
def test_request_golden(path: Path, gx: Any) -> None:
    case = json.loads(path.read_text())
    actual: dict[str, Any]
    try:
        upstream = gx.upstream(
            case["openai"],
            case.get("endpoint", "chat"),
            model=case.get("model", "gemini-2.5-flash"),
            **case.get("options", {}),
        )
    except UnsupportedRequest as exc:
        actual = {"unsupported": {"param": exc.param, "message": exc.message}}
    else:
        assert upstream.headers["x-goog-api-key"] == "test-key"
        assert upstream.headers["content-type"] == "application/json"
        actual = {
            "url": upstream.url.removeprefix(gx.base_url + "/"),
            "stream": upstream.stream,
            "gemini": json.loads(upstream.body),
        }
    check_fields(path, case, actual, ("url", "stream", "gemini", "unsupported"))


@pytest.mark.parametrize("path", _cases("responses"), ids=lambda p: p.stem)
def test_response_golden(path: Path, gx: Any) -> None:
    case = json.loads(path.read_text())
    endpoint = case.get("endpoint", "chat")
    request = gx.request(case.get("request", DEFAULT_REQUEST), endpoint)
    body = case["gemini"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body, indent=2).encode()
    result = gx.respond(request, raw, case.get("status", 200))
    actual: dict[str, Any]
    if result.error is not None:
        error = result.error
        actual = {
            "error": {
                "status": error.status,
                "kind": error.kind,
                "type": error.type,
                "code": error.code,
                "retry_after": error.retry_after,
                "message": error.message,
            }
        }
    else:
        assert result.dialect == "openai"
        import truckllm_provider_gemini as gemini

        usage = gemini.parse_usage(provider=gx.provider(), request=request, body=raw)
        actual = {
            "openai": gx.normalize(json.loads(result.body)),
            "usage": usage_fields(usage),
        }
    check_fields(path, case, actual, ("openai", "usage", "error"))


def _stream_bytes(case: dict[str, Any], gx: Any) -> bytes:
    events = []
    for event in case["events"]:
        if isinstance(event, dict) and set(event) == {"wire"}:
            events.append(event["wire"])
        else:
            events.append(event)
    return bytes(gx.sse(events))


@pytest.mark.parametrize("path", _cases("streams"), ids=lambda p: p.stem)
def test_stream_golden(path: Path, gx: Any) -> None:
    case = json.loads(path.read_text())
    request = gx.request(
        case.get("request", {**DEFAULT_REQUEST, "stream": True}), case.get("endpoint", "chat")
    )
    raw = _stream_bytes(case, gx)
    out, failure, translator = gx.run_stream(request, raw)
    usage = translator.usage
    actual = {
        "openai": gx.normalize(gx.frames(out)),
        "error": None
        if failure is None
        else {"status": failure.error.status, "kind": failure.error.kind, "message": failure.error.message},
        "usage": usage_fields(usage),
    }
    check_fields(path, case, actual, ("openai", "error", "usage"))

    # the same bytes split anywhere give the same frames and the same outcome
    expected = (gx.normalize(gx.frames(out)), None if failure is None else failure.error.message)
    rng = random.Random(path.stem)
    splits = [
        list(range(1, len(raw))),
        sorted(rng.sample(range(1, len(raw)), k=min(5, max(len(raw) - 1, 0)))),
    ]
    for cuts in splits:
        again, again_failure, _ = gx.run_stream(request, raw, cuts)
        got = (gx.normalize(gx.frames(again)), None if again_failure is None else again_failure.error.message)
        assert got == expected
