"""Shared fixtures of the Anthropic provider tests: request/provider builders and stream helpers."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import truckllm_provider_anthropic as plugin
from truckllm_provider_anthropic.options import Options

from truckllm._internal.schemas.openai import ChatCompletionRequest, CompletionRequest
from truckllm.types import ChatRequest, Provider, UpstreamRequest, UpstreamResponse

MODEL = "claude-sonnet-4-5-20250929"


class Kit:
    """Builds the kernel values the hooks receive, the way the kernel builds them."""

    model = MODEL

    @staticmethod
    def provider(base_url: str = "https://api.anthropic.com", **options: Any) -> Provider:
        """A ``type: anthropic`` provider entry with these options."""
        return Provider(
            name="anth",
            type="anthropic",
            base_url=base_url,
            options=msgspec.convert(options, Options),
        )

    @staticmethod
    def request(
        body: dict[str, Any],
        *,
        endpoint: str = "chat",
        dialect: str = "openai",
        headers: dict[str, str] | None = None,
    ) -> ChatRequest:
        """A decoded client request (``typed`` validated as the kernel does)."""
        raw = json.dumps(body).encode()
        schema = CompletionRequest if endpoint == "completions" else ChatCompletionRequest
        typed: Any = msgspec.json.decode(raw, type=schema) if dialect == "openai" else None
        stream = bool(body.get("stream"))
        options = body.get("stream_options") or {}
        return ChatRequest(
            endpoint=endpoint,
            dialect=dialect,
            body=raw,
            model=body.get("model", "claude"),
            stream=stream,
            include_usage=bool(stream and options.get("include_usage") is True),
            typed=typed,
            headers=headers or {},
        )

    def upstream(
        self,
        body: dict[str, Any],
        *,
        endpoint: str = "chat",
        model: str = MODEL,
        dialect: str = "openai",
        **options: Any,
    ) -> UpstreamRequest:
        """``transform_request`` for this OpenAI body."""
        result = plugin.transform_request(
            provider=self.provider(**options),
            model=model,
            request=self.request(body, endpoint=endpoint, dialect=dialect),
            api_key="sk-ant-test",
        )
        assert result is not None
        return result

    def translate(self, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The Anthropic body the plugin sends for this OpenAI body."""
        decoded: dict[str, Any] = json.loads(self.upstream(body, **kwargs).body)
        return decoded

    def respond(
        self,
        answer: dict[str, Any] | bytes,
        request: dict[str, Any] | None = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        endpoint: str = "chat",
        **options: Any,
    ) -> Any:
        """``transform_response`` for an Anthropic answer."""
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        req = request or {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
        if endpoint == "completions" and request is None:
            req = {"model": "claude", "prompt": "hi"}
        return plugin.transform_response(
            provider=self.provider(**options),
            request=self.request(req, endpoint=endpoint),
            response=UpstreamResponse(status=status, headers=headers or {}, body=body),
        )

    def translator(
        self,
        request: dict[str, Any] | None = None,
        *,
        endpoint: str = "chat",
        dialect: str = "openai",
        headers: dict[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """``transform_stream`` for a streamed request."""
        req = request or {
            "model": "claude",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        result = plugin.transform_stream(
            provider=self.provider(**options),
            request=self.request(req, endpoint=endpoint, dialect=dialect),
            response=UpstreamResponse(status=200, headers=headers or {}),
        )
        assert result is not None
        return result


@pytest.fixture
def kit() -> Kit:
    """Builders for hook arguments."""
    return Kit()


def chunks_of(frames: bytes) -> list[Any]:
    """The JSON of each ``data:`` frame (``"[DONE]"`` kept as a string), ``id``/``created`` removed."""
    out: list[Any] = []
    for frame in frames.split(b"\n\n"):
        if not frame.strip():
            continue
        assert frame.startswith(b"data: "), frame
        payload = frame[len(b"data: ") :]
        if payload == b"[DONE]":
            out.append("[DONE]")
            continue
        chunk = json.loads(payload)
        chunk.pop("id", None)
        chunk.pop("created", None)
        out.append(chunk)
    return out


@pytest.fixture
def parse_chunks() -> Any:
    """:func:`chunks_of` as a fixture."""
    return chunks_of
