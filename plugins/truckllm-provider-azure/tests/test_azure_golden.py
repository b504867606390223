"""Golden files, both directions, for what is Azure's own (the translations are the openai
plugin's, with golden files of their own).

- ``golden/requests/<case>.json``: ``{"model", "options"?, "base_url"?, "dialect"?, "endpoint"?,
  "credential"?, "body"}`` (``model``: the deployment; ``credential``: the api-key or Entra token)
  → ``method``, ``url``, ``headers`` (the credential's value shown as ``<credential>``: a golden
  file never holds one) and ``sent`` (the body sent upstream, or ``null`` for a GET);
- ``golden/responses/<case>.json``: ``{"status", "headers"?, "upstream", "request"?, "dialect"?,
  "endpoint"?, "options"?}`` (an answer or error as Azure sends it; ``upstream`` is a list of SSE events for a
  stream) → ``client`` (the body, or the list of SSE events, the client gets) or ``error``.

``TRUCKLLM_UPDATE_GOLDEN=1`` rewrites the expected fields (review the diff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import truckllm_provider_azure as plugin

from truckllm.errors import UpstreamFailure
from truckllm.types import ProviderResult, UpstreamResponse
from truckllm_testing.golden import case_paths, check_fields

from .conftest import Kit

GOLDEN = Path(__file__).parent / "golden"
CREDENTIAL = "azure-golden-secret-0123456789abcdef"
"""The credential every request case is built with unless it names its own."""


def _request(kit: type[Kit], case: dict[str, Any]) -> Any:
    body = case["body"]
    endpoint = case.get("endpoint", "chat")
    if case.get("dialect", "openai") == "responses":
        return kit.responses(body, endpoint=endpoint)
    return kit.chat(body, endpoint=endpoint)


def _provider(kit: type[Kit], case: dict[str, Any]) -> Any:
    return kit.provider(case.get("base_url", kit.endpoint), **case.get("options", {}))


@pytest.mark.parametrize("path", case_paths(GOLDEN / "requests"), ids=lambda p: p.stem)
def test_request_golden(kit: type[Kit], path: Path) -> None:
    case = json.loads(path.read_text())
    credential = case.get("credential", CREDENTIAL)
    sent = plugin.transform_request(_provider(kit, case), case["model"], _request(kit, case), credential)
    assert sent is not None
    headers = {k: v.replace(credential, "<credential>") for k, v in sorted(sent.headers.items())}
    assert credential not in sent.url and credential.encode() not in sent.body
    actual = {
        "method": sent.method,
        "url": sent.url,
        "stream": sent.stream,
        "headers": headers,
        "sent": json.loads(sent.body) if sent.body else None,
    }
    check_fields(path, case, actual, ("method", "url", "stream", "headers", "sent"))


def _sse(events: list[Any]) -> bytes:
    return b"".join(
        b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n" for e in events
    )


def _events(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for block in raw.decode().split("\n\n"):
        data = "".join(line[6:] for line in block.split("\n") if line.startswith("data: "))
        if data:
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _error(error: Any) -> dict[str, Any]:
    return {"error": {k: v for k, v in msgspec.to_builtins(error).items() if v is not None}}


@pytest.mark.parametrize("path", case_paths(GOLDEN / "responses"), ids=lambda p: p.stem)
def test_response_golden(kit: type[Kit], path: Path) -> None:
    case = json.loads(path.read_text())
    request_body = case.get("request", {"model": "alias", "messages": [{"role": "user", "content": "hi"}]})
    request = _request(
        kit,
        {
            "body": request_body,
            "dialect": case.get("dialect", "openai"),
            "endpoint": case.get("endpoint", "chat"),
        },
    )
    provider = _provider(kit, case)
    headers = case.get("headers", {})
    actual: dict[str, Any]
    if isinstance(case["upstream"], list):  # a stream: its events, fed in small pieces
        translator = plugin.transform_stream(
            provider, request, UpstreamResponse(status=case["status"], headers=headers), "d"
        )
        assert translator is not None
        raw = _sse(case["upstream"])
        out = b""
        try:
            for i in range(0, len(raw), 11):
                out += translator.feed(raw[i : i + 11])
            out += translator.close()
            actual = {"client": _events(out)}
        except UpstreamFailure as failure:
            actual = {"client": _events(out + failure.pending), **_error(failure.error)}
    else:
        result: ProviderResult | None = plugin.transform_response(
            provider,
            request,
            UpstreamResponse(
                status=case["status"], headers=headers, body=json.dumps(case["upstream"]).encode()
            ),
            "d",
        )
        assert result is not None
        actual = _error(result.error) if result.error is not None else {"client": json.loads(result.body)}
    check_fields(path, case, actual, ("client", "error"))
