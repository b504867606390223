"""Fixtures of the Responses API tests: ``kit`` builds requests as the kernel builds them and
provider entries, and runs a stream translator over upstream bytes split anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import msgspec
import pytest
from truckllm_provider_openai import Options

from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_schemas import ChatCompletionRequest
from truckllm.types import ChatRequest, Provider

BASE_URL = "https://api.example/v1"
RESPONSES_MODEL = "o3-pro"
"""An upstream model in the default ``responses_models``."""
CHAT_MODEL = "gpt-4o"
"""An upstream model served through ``/chat/completions`` by default."""


class Kit:
    """Builders for the Responses API tests."""

    base_url = BASE_URL
    responses_model = RESPONSES_MODEL
    chat_model = CHAT_MODEL

    @staticmethod
    def provider(**options: Any) -> Provider:
        """A ``type: openai`` provider entry with these options."""
        return Provider(
            name="oa", type="openai", base_url=BASE_URL, options=msgspec.convert(options, Options)
        )

    @staticmethod
    def chat_request(
        body: dict[str, Any], *, dialect: str = "openai", raw_extra: dict[str, Any] | None = None
    ) -> ChatRequest:
        """A chat request as the kernel builds it (``raw_extra``: members only in the raw body)."""
        raw = json.dumps({**body, **(raw_extra or {})}).encode()
        typed = msgspec.json.decode(json.dumps(body).encode(), type=ChatCompletionRequest)
        stream = bool(body.get("stream"))
        options = body.get("stream_options")
        return ChatRequest(
            endpoint="chat",
            dialect=dialect,
            body=raw,
            model=str(body["model"]),
            stream=stream,
            include_usage=bool(stream and isinstance(options, dict) and options.get("include_usage")),
            typed=typed,
        )

    @staticmethod
    def responses_request(body: bytes, *, endpoint: str = "chat") -> ChatRequest:
        """A Responses API client's request, as the responses dialect hands it on."""
        fields = json.loads(body)
        return ChatRequest(
            endpoint=endpoint,
            dialect="responses",
            body=body,
            model=str(fields.get("model", "")),
            stream=bool(fields.get("stream")) and endpoint == "chat",
        )

    @staticmethod
    def run_stream(translator: Any, chunks: Iterable[bytes]) -> tuple[bytes, UpstreamFailure | None]:
        """Feed ``chunks`` then close; the bytes sent (a failure's ``pending`` included) and the failure."""
        out: list[bytes] = []
        try:
            for chunk in chunks:
                out.append(translator.feed(chunk))
            out.append(translator.close())
        except UpstreamFailure as failure:
            out.append(failure.pending)
            return b"".join(out), failure
        return b"".join(out), None

    @staticmethod
    def data_frames(sent: bytes) -> list[Any]:
        """The ``data:`` payloads of client frames, JSON-decoded (``[DONE]`` kept as the string)."""
        payloads = []
        for frame in sent.split(b"\n\n"):
            for line in frame.split(b"\n"):
                if line.startswith(b"data: "):
                    data = line[6:]
                    payloads.append("[DONE]" if data == b"[DONE]" else json.loads(data))
        return payloads


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    """The builders (stateless: one for the session, so hypothesis tests may use it)."""
    return Kit
