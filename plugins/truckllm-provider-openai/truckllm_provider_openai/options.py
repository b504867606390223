"""``providers.<name>.options`` for ``type: openai``, validated where they reach a URL or a header."""

from __future__ import annotations

import functools
import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["DEFAULT_REASONING_MODELS", "DEFAULT_RESPONSES_MODELS", "Options", "PresetName"]

DEFAULT_REASONING_MODELS = r"^(o\d|gpt-5)"
"""OpenAI's models that take ``max_completion_tokens`` instead of ``max_tokens``."""

PresetName = Literal[
    "groq", "mistral", "deepseek", "xai", "together", "fireworks", "openrouter", "perplexity",
    "ollama", "vllm", "lmstudio",
]  # fmt: skip
"""The OpenAI-compatible services with a preset (see :mod:`.presets`)."""

DEFAULT_RESPONSES_MODELS = (
    r"^(o1-pro|o3-pro|o3-deep-research|o4-mini-deep-research|computer-use|codex-"
    r"|gpt-5(\.\d+)?-(codex|pro)|gpt-\d+(\.\d+)?-(cyber|rosalind|astra-|sol-)|gpt-rosalind|gpt-daybreak-)"
)
"""The models OpenAI serves only through ``/v1/responses`` (the official SDK's ``ResponsesModel``
list beyond its chat models: o1-pro, o3-pro, the deep-research, computer-use and codex models,
the gpt-5 ``-pro``/``-codex`` families...)."""

HeaderName = Annotated[str, Meta(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z", max_length=128)]
"""An HTTP header name (RFC 9110 token)."""
HeaderValue = Annotated[str, Meta(pattern=r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?\Z", max_length=1024)]
"""A header value: visible ASCII and inner spaces (no CR, LF, NUL or other control character)."""
QueryName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._~-]+\Z", max_length=128)]
"""A query parameter name."""
QueryValue = Annotated[str, Meta(pattern=r"^[\x20-\x7e]*\Z", max_length=1024)]
"""A query parameter value: printable ASCII (percent-encoded when the URL is built)."""


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``providers.<name>.options`` for ``type: openai``.

    :ivar organization: sent as ``OpenAI-Organization``.
    :ivar project: sent as ``OpenAI-Project``.
    :ivar auth_header: the header carrying the key (``api-key`` for Azure OpenAI: the key is
        then sent bare).
    :ivar query: query parameters added to every URL (Azure: ``{api-version: 2024-10-21}``).
    :ivar preset: an OpenAI-compatible service (``groq``, ``mistral``...): its base URL when the
        config gives none, its key optional for a local server, its refused fields dropped, its
        rate-limit headers read (see :mod:`.presets`); the price book looks it up as
        ``openai:<preset>``.
    :ivar reasoning_models: a regular expression of the models that take
        ``max_completion_tokens`` instead of ``max_tokens`` (unset or ``null``: OpenAI's, or the
        preset's default).
    :ivar api: ``chat`` (default): chat-completions clients are served through
        ``/chat/completions``; ``responses``: through ``/responses``, translated both ways.
    :ivar responses_models: a regular expression of the models always called through
        ``/responses`` whatever ``api`` says (``null``: none; with a preset the default is none).
    """

    organization: HeaderValue | None = None
    project: HeaderValue | None = None
    auth_header: HeaderName = "authorization"
    query: dict[QueryName, QueryValue] = msgspec.field(default_factory=dict)
    preset: PresetName | None = None
    reasoning_models: str | None = None
    api: Literal["chat", "responses"] = "chat"
    responses_models: str | None = DEFAULT_RESPONSES_MODELS

    def __post_init__(self) -> None:
        for name in ("reasoning_models", "responses_models"):
            pattern = getattr(self, name)
            try:
                if pattern is not None:
                    re.compile(pattern)
            except re.error:
                raise ValueError(f"{name} is not a valid regular expression") from None

    def renames_max_tokens(self, model: str, preset_default: str | None) -> bool:
        """Whether a chat request for the upstream ``model`` sends ``max_tokens`` as
        ``max_completion_tokens`` (``reasoning_models``; unset: ``preset_default`` with a preset,
        else OpenAI's)."""
        pattern = self.reasoning_models
        if pattern is None:
            pattern = preset_default if self.preset is not None else DEFAULT_REASONING_MODELS
        return pattern is not None and _matches(pattern, model)

    def uses_responses(self, model: str) -> bool:
        """Whether chat requests for the upstream ``model`` go through ``/responses``."""
        if self.api == "responses":
            return True
        pattern = self.responses_models
        if self.preset is not None and pattern == DEFAULT_RESPONSES_MODELS:
            return False  # OpenAI's own Responses-only families: not another service's models
        return pattern is not None and _matches(pattern, model)


@functools.lru_cache(maxsize=256)
def _matches(pattern: str, model: str) -> bool:
    """Whether ``model`` matches the regular expression ``pattern`` from its start (remembered:
    a request asks this two or three times of the same few deployment models, and a long
    alternation such as :data:`DEFAULT_RESPONSES_MODELS` costs ~4,000 instructions each time)."""
    return re.match(pattern, model) is not None
