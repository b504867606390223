"""``providers.<name>.options`` for ``type: azure``, validated where they reach a URL or a header."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from truckllm_provider_openai.options import DEFAULT_RESPONSES_MODELS

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_SCOPE", "Options"]

DEFAULT_API_VERSION = "2025-04-01-preview"
"""The ``api-version`` of deployment URLs when none is configured: one that serves chat
completions, completions, embeddings and the Responses API."""

DEFAULT_SCOPE = "https://cognitiveservices.azure.com/.default"
"""The Entra ID scope of Azure OpenAI tokens."""

ApiVersion = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._-]+\Z", max_length=64)]
"""An ``api-version`` value (``2024-10-21``, ``2025-04-01-preview``, ``preview``)."""
Scope = Annotated[str, Meta(pattern=r"^[\x21-\x7e]+\Z", max_length=512)]
"""An OAuth scope (visible ASCII)."""


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``providers.<name>.options`` for ``type: azure``.

    :ivar api: ``deployments`` (default): the classic API, the deployment (a deployment's
        ``model``) in the URL (``{base_url}/openai/deployments/{model}/chat/completions``) and
        ``api-version`` required; ``v1``: the OpenAI-compatible endpoint
        (``{base_url}/openai/v1/chat/completions``), ``model`` in the body.
    :ivar api_version: the ``api-version`` query parameter (``deployments``: default
        :data:`DEFAULT_API_VERSION`; ``v1``: none unless set, e.g. ``preview``).
    :ivar auth: ``api-key`` (default): each key's value is sent as the ``api-key`` header;
        ``entra``: each key's value says how to get Entra ID tokens (see the README), sent as
        ``Authorization: Bearer``.
    :ivar scope: the Entra ID scope tokens are asked for.
    :ivar chat_api: ``chat`` (default): chat clients are served through chat completions;
        ``responses``: through the Responses API, translated both ways.
    :ivar responses_models: a regular expression of the deployments always called through the
        Responses API (``null``: none).
    :ivar reasoning_models: a regular expression of the deployments that take
        ``max_completion_tokens`` instead of ``max_tokens``.
    """

    api: Literal["deployments", "v1"] = "deployments"
    api_version: ApiVersion | None = None
    auth: Literal["api-key", "entra"] = "api-key"
    scope: Scope = DEFAULT_SCOPE
    chat_api: Literal["chat", "responses"] = "chat"
    responses_models: str | None = DEFAULT_RESPONSES_MODELS
    reasoning_models: str = r"^(o\d|gpt-5)"

    def __post_init__(self) -> None:
        for name in ("reasoning_models", "responses_models"):
            pattern = getattr(self, name)
            try:
                if pattern is not None:
                    re.compile(pattern)
            except re.error:
                raise ValueError(f"{name} is not a valid regular expression") from None

    @property
    def query(self) -> dict[str, str]:
        """The query parameters of every URL (``api-version``, when there is one)."""
        if self.api_version is not None:
            return {"api-version": self.api_version}
        return {} if self.api == "v1" else {"api-version": DEFAULT_API_VERSION}
