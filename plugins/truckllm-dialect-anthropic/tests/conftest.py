"""Shared helpers of the Anthropic dialect tests: building requests and reading Anthropic events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from truckllm_dialect_anthropic import AnthropicDialect

from truckllm._internal.dialect import DialectRoute
from truckllm.types import ChatRequest

HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


def route(endpoint: str = "chat") -> DialectRoute:
    """The dialect's route for ``endpoint``."""
    (found,) = [r for r in AnthropicDialect.routes if r.endpoint == endpoint]
    return found


def parse(body: dict[str, Any] | bytes, endpoint: str = "chat", **headers: str) -> ChatRequest:
    """``AnthropicDialect.parse`` for this body, as the kernel calls it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return AnthropicDialect().parse(route(endpoint), raw, {}, {}, {**HEADERS, **headers})


def events(frames: bytes) -> list[tuple[str, Any]]:
    """``(event name, decoded data)`` for each SSE frame; every frame must be named and complete."""
    out: list[tuple[str, Any]] = []
    assert frames.endswith(b"\n\n") or not frames, frames[-80:]
    for frame in frames.split(b"\n\n"):
        if not frame:
            continue
        lines = frame.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), frame
        name = lines[0][len(b"event: ") :].decode()
        data = json.loads(lines[1][len(b"data: ") :])
        assert data["type"] == name, frame
        out.append((name, data))
    return out


def openai_frames(*chunks: dict[str, Any] | str) -> bytes:
    """OpenAI SSE frames (``"[DONE]"`` as is) as an OpenAI-dialect provider hands them over."""
    return b"".join(
        b"data: " + (c.encode() if isinstance(c, str) else json.dumps(c).encode()) + b"\n\n" for c in chunks
    )


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a choice (or ``choices: []`` when ``delta`` is None)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
    }
    body["choices"] = (
        [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    body.update(extra)
    return body


class Kit:
    """The helpers above, handed to tests as the ``kit`` fixture (tests cannot import conftest)."""

    route = staticmethod(route)
    parse = staticmethod(parse)
    events = staticmethod(events)
    openai_frames = staticmethod(openai_frames)
    chunk = staticmethod(chunk)
    headers = HEADERS


@pytest.fixture
def kit() -> Kit:
    """Request builders and Anthropic event readers."""
    return Kit()


@pytest.fixture
def dialect() -> AnthropicDialect:
    """A fresh dialect object."""
    return AnthropicDialect()
