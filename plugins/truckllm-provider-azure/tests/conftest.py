"""Builders of the azure plugin's tests: provider entries and requests as the kernel builds them."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from truckllm_provider_azure import Options

from truckllm.kit.openai_schemas import ChatCompletionRequest, EmbeddingRequest
from truckllm.types import ChatRequest, Provider

ENDPOINT = "https://contoso.openai.azure.com"


class Kit:
    """Builders (stateless)."""

    endpoint = ENDPOINT

    @staticmethod
    def provider(base_url: str = ENDPOINT, **options: Any) -> Provider:
        """A ``type: azure`` provider entry with these options."""
        return Provider(name="az", type="azure", base_url=base_url, options=msgspec.convert(options, Options))

    @staticmethod
    def chat(body: dict[str, Any], *, dialect: str = "openai", endpoint: str = "chat") -> ChatRequest:
        """A chat (or embeddings) request as the kernel builds it, the raw body as given."""
        raw = json.dumps(body).encode()
        schema = EmbeddingRequest if endpoint == "embeddings" else ChatCompletionRequest
        return ChatRequest(
            endpoint=endpoint,  # type: ignore[arg-type]
            dialect=dialect,
            body=raw,
            model=str(body["model"]),
            stream=bool(body.get("stream")),
            typed=msgspec.json.decode(raw, type=schema),
        )

    @staticmethod
    def responses(body: dict[str, Any], *, endpoint: str = "chat") -> ChatRequest:
        """A Responses API client's request, as the responses dialect hands it on."""
        return ChatRequest(
            endpoint=endpoint,  # type: ignore[arg-type]
            dialect="responses",
            body=json.dumps(body).encode(),
            model=str(body.get("model", "")),
            stream=bool(body.get("stream")) and endpoint == "chat",
        )


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    """The builders."""
    return Kit
