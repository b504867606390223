"""Shared fixtures of the Vertex provider tests: the kernel values the hooks receive."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import truckllm_provider_vertex as plugin
from truckllm_provider_vertex.options import AnthropicVertexOptions, VertexOptions

from truckllm._internal.schemas.openai import ChatCompletionRequest, CompletionRequest
from truckllm.types import ChatRequest, Provider, ProviderResult, UpstreamRequest, UpstreamResponse

TOKEN = "ya29.test-token"


class Kit:
    """Builds providers and requests the way the kernel does, and calls the plugin's hooks."""

    @staticmethod
    def provider(type: str = "vertex", base_url: str = "", **options: Any) -> Provider:
        """A provider entry of ``type`` (``project`` defaults to ``my-project``)."""
        schema = VertexOptions if type == "vertex" else AnthropicVertexOptions
        return Provider(
            name="vx",
            type=type,
            base_url=base_url,
            options=msgspec.convert({"project": "my-project", **options}, schema),
        )

    @staticmethod
    def request(
        body: dict[str, Any], *, endpoint: str = "chat", dialect: str = "openai", stream: bool | None = None
    ) -> ChatRequest:
        """A decoded client request (``typed`` for OpenAI bodies)."""
        raw = json.dumps(body).encode()
        schema = CompletionRequest if endpoint == "completions" else ChatCompletionRequest
        typed: Any = msgspec.json.decode(raw, type=schema) if dialect == "openai" else None
        streaming = bool(body.get("stream")) if stream is None else stream
        return ChatRequest(
            endpoint=endpoint,
            dialect=dialect,
            body=raw,
            model=str(body.get("model", "alias")),
            stream=streaming,
            typed=typed,
        )

    def upstream(
        self,
        body: dict[str, Any],
        *,
        type: str = "vertex",
        model: str = "gemini-2.5-flash",
        base_url: str = "",
        dialect: str = "openai",
        endpoint: str = "chat",
        stream: bool | None = None,
        **options: Any,
    ) -> UpstreamRequest:
        """``transform_request`` for this client body."""
        result = plugin.transform_request(
            provider=self.provider(type, base_url, **options),
            model=model,
            request=self.request(body, endpoint=endpoint, dialect=dialect, stream=stream),
            api_key=TOKEN,
        )
        assert result is not None
        return result

    def respond(
        self,
        status: int,
        body: Any,
        *,
        type: str = "vertex",
        request: dict[str, Any] | None = None,
        dialect: str = "openai",
    ) -> ProviderResult:
        """``transform_response`` for an upstream answer."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        result = plugin.transform_response(
            provider=self.provider(type),
            request=self.request(
                request or {"model": "alias", "messages": [{"role": "user", "content": "hi"}]},
                dialect=dialect,
            ),
            response=UpstreamResponse(status=status, headers={"content-type": "application/json"}, body=raw),
        )
        assert result is not None
        return result


@pytest.fixture
def kit() -> Kit:
    """The request/provider builders."""
    return Kit()
