"""Shared helpers for the Gemini dialect tests, handed out by the ``gk`` fixture."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from truckllm_dialect_gemini import GeminiDialect, GeminiRequest
from truckllm_dialect_gemini.errors import STREAM_FORM

from truckllm._internal.dialect import DialectRoute


class Kit:
    """Runs the dialect the way the kernel does, and writes wire bytes for it."""

    def __init__(self) -> None:
        self.dialect = GeminiDialect()

    def route(self, method: str, prefix: str = "/v1beta") -> DialectRoute:
        """The route of one Gemini method."""
        (route,) = [r for r in self.dialect.routes if r.name == method and r.path.startswith(prefix + "/")]
        return route

    def parse(
        self,
        body: dict[str, Any] | bytes,
        method: str = "generateContent",
        model: str = "alias",
        query: dict[str, str] | None = None,
    ) -> GeminiRequest:
        """``parse`` for a body (a dict is encoded as JSON)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.dialect.parse(self.route(method), raw, {"model": model}, query or {}, {})

    @staticmethod
    def typed(request: GeminiRequest) -> Any:
        """The typed form as the OpenAI provider encodes it."""
        return json.loads(msgspec.json.encode(request.typed))

    @staticmethod
    def openai_frames(chunks: Sequence[dict[str, Any] | str]) -> bytes:
        """OpenAI SSE frames: ``data: <json>\\n\\n`` per chunk (a string is sent as the data)."""
        out = []
        for chunk in chunks:
            data = chunk.encode() if isinstance(chunk, str) else json.dumps(chunk).encode()
            out.append(b"data: " + data + b"\n\n")
        return b"".join(out)

    @staticmethod
    def gemini_frames(events: Sequence[dict[str, Any] | str]) -> bytes:
        """Gemini SSE frames: ``data: <json>\\r\\n\\r\\n`` per event (a string is sent as it is)."""
        out = []
        for event in events:
            if isinstance(event, str):
                out.append(event.encode())
            else:
                out.append(b"data: " + json.dumps(event, separators=(",", ": ")).encode() + b"\r\n\r\n")
        return b"".join(out)

    def run_stream(self, request: GeminiRequest, source: str, raw: bytes, cuts: Sequence[int] = ()) -> bytes:
        """Feed ``raw`` to a fresh translator split at ``cuts``, then close it."""
        translator = self.dialect.stream(request, source)
        bounds = [0, *sorted(c for c in cuts if 0 < c < len(raw)), len(raw)]
        out = [translator.feed(raw[a:b]) for a, b in itertools.pairwise(bounds)]
        out.append(translator.close())
        return b"".join(out)

    @staticmethod
    def events(raw: bytes, sse: bool) -> list[Any]:
        """Decode a Gemini stream, checking its framing strictly."""
        if not sse:
            assert raw.startswith(b"[") and raw.endswith(b"]")
            decoded: list[Any] = json.loads(raw)
            return decoded
        assert raw.endswith(b"\r\n\r\n") or not raw
        frames = raw.split(b"\r\n\r\n")
        assert frames[-1] == b""
        events = []
        for frame in frames[:-1]:
            assert frame.startswith(b"data: ") and b"\n" not in frame, frame
            events.append(json.loads(frame[6:]))
        return events

    @staticmethod
    def encode_events(events: list[Any], sse: bool) -> bytes:
        """The exact bytes a stream of ``events`` is written as."""
        if sse:
            return b"".join(b"data: " + msgspec.json.encode(e) + b"\r\n\r\n" for e in events)
        if not events:
            return b"[]"
        body = b"\n,\r\n".join(msgspec.json.format(msgspec.json.encode(e), indent=2) for e in events)
        return b"[" + body + b"\n]"


@pytest.fixture
def gk() -> Kit:
    """The test kit."""
    STREAM_FORM.set("sse")
    return Kit()
