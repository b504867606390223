"""Shared helpers for the Gemini provider tests, handed out by the ``gx`` fixture."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import pytest
import truckllm_provider_gemini as gemini
from truckllm_provider_gemini.options import Options

from truckllm._internal.schemas.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from truckllm.errors import UpstreamFailure
from truckllm.types import ChatRequest, Provider, ProviderResult, UpstreamRequest, UpstreamResponse

SCHEMAS: dict[str, Any] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
    "count_tokens": ChatCompletionRequest,  # what dialects with a count endpoint put in ``typed``
}
_CALL_ID = re.compile(r"call_[A-Za-z0-9]{24}")
_RANDOM_RESPONSE_ID = re.compile(r"^(chatcmpl-|cmpl-)[0-9a-f]{24}$")


class Helpers:
    """Builds requests, runs the plugin's hooks and normalizes their output for comparison."""

    base_url = "https://gemini.test/v1beta"

    def provider(self, **options: Any) -> Provider:
        """A ``type: gemini`` provider with these options (decoded strictly, like the kernel)."""
        decoded = msgspec.convert(options, Options) if options else None
        return Provider(name="gem", type="gemini", base_url=self.base_url, options=decoded)

    def request(self, body: dict[str, Any], endpoint: str = "chat", dialect: str = "openai") -> ChatRequest:
        """A :class:`ChatRequest` decoded the way the kernel decodes it."""
        raw = json.dumps(body).encode()
        typed = msgspec.json.decode(raw, type=SCHEMAS[endpoint]) if dialect == "openai" else None
        stream = bool(body.get("stream"))
        options = body.get("stream_options") or {}
        return ChatRequest(
            endpoint=endpoint,
            dialect=dialect,
            body=raw,
            model=str(body.get("model", "alias")),
            stream=stream,
            include_usage=bool(stream and options.get("include_usage")),
            typed=typed,
        )

    def upstream(
        self,
        body: dict[str, Any],
        endpoint: str = "chat",
        model: str = "gemini-2.5-flash",
        key: str = "test-key",
        **options: Any,
    ) -> UpstreamRequest:
        """``transform_request`` for an OpenAI body."""
        result = gemini.transform_request(
            provider=self.provider(**options), model=model, request=self.request(body, endpoint), api_key=key
        )
        assert result is not None
        return result

    def translate(self, body: dict[str, Any], endpoint: str = "chat", **options: Any) -> dict[str, Any]:
        """The Gemini JSON body for an OpenAI body."""
        result: dict[str, Any] = json.loads(self.upstream(body, endpoint, **options).body)
        return result

    def respond(
        self, request: ChatRequest, body: bytes | dict[str, Any] | list[Any], status: int = 200
    ) -> ProviderResult:
        """``transform_response`` for one upstream answer."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        result = gemini.transform_response(
            provider=self.provider(),
            request=request,
            response=UpstreamResponse(status=status, headers={}, body=raw),
        )
        assert result is not None
        return result

    def respond_json(self, request: ChatRequest, body: dict[str, Any] | bytes, status: int = 200) -> Any:
        """The translated body of a successful answer, decoded."""
        result = self.respond(request, body, status)
        assert result.error is None, result.error
        return json.loads(result.body)

    @staticmethod
    def sse(events: Iterable[dict[str, Any] | str | bytes]) -> bytes:
        """Gemini's wire bytes: ``data: {...}\\r\\n\\r\\n`` per dict, strings/bytes sent as they are."""
        out = []
        for event in events:
            if isinstance(event, dict):
                out.append(b"data: " + json.dumps(event, separators=(",", ": ")).encode() + b"\r\n\r\n")
            elif isinstance(event, str):
                out.append(event.encode())
            else:
                out.append(event)
        return b"".join(out)

    def run_stream(
        self, request: ChatRequest, raw: bytes, cuts: Sequence[int] = ()
    ) -> tuple[bytes, UpstreamFailure | None, Any]:
        """Feed ``raw`` split at ``cuts`` then close: (all frames, the failure if any, the translator)."""
        translator = gemini.transform_stream(
            provider=self.provider(), request=request, response=UpstreamResponse(status=200, headers={})
        )
        assert translator is not None
        bounds = [0, *sorted(c for c in cuts if 0 < c < len(raw)), len(raw)]
        out: list[bytes] = []
        try:
            for start, end in itertools.pairwise(bounds):
                out.append(translator.feed(raw[start:end]))
            out.append(translator.close())
        except UpstreamFailure as failure:
            return b"".join(out), failure, translator
        return b"".join(out), None, translator

    @staticmethod
    def frames(raw: bytes) -> list[Any]:
        """OpenAI SSE output → decoded chunks (``"[DONE]"`` kept as a string); checks the framing."""
        assert b"\r" not in raw
        items: list[Any] = []
        for frame in raw.split(b"\n\n"):
            if not frame:
                continue
            assert frame.startswith(b"data: "), frame
            data = frame[6:]
            items.append("[DONE]" if data == b"[DONE]" else json.loads(data))
        return items

    @staticmethod
    def normalize(value: Any) -> Any:
        """Replace what is random or time-dependent: synthesized call ids, generated ids, ``created``."""
        text = json.dumps(value)
        seen: dict[str, str] = {}

        def call(match: re.Match[str]) -> str:
            return seen.setdefault(match.group(0), f"call_<{len(seen) + 1}>")

        text = _CALL_ID.sub(call, text)
        result = json.loads(text)

        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                out: dict[str, Any] = {}
                for key, item in node.items():
                    if key == "created" and isinstance(item, int):
                        out[key] = 0
                    elif key == "id" and isinstance(item, str) and _RANDOM_RESPONSE_ID.match(item):
                        out[key] = item.split("-")[0] + "-<generated>"
                    else:
                        out[key] = walk(item)
                return out
            if isinstance(node, list):
                return [walk(item) for item in node]
            return node

        return walk(result)


@pytest.fixture
def gx() -> Helpers:
    """The test helpers."""
    return Helpers()
