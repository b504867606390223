"""``providers.<name>.options`` for ``type: openai``, validated where they reach a URL or a header."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta

__all__ = ["Options"]

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
    :ivar reasoning_models: a regular expression of the models that take
        ``max_completion_tokens`` instead of ``max_tokens``.
    """

    organization: HeaderValue | None = None
    project: HeaderValue | None = None
    auth_header: HeaderName = "authorization"
    query: dict[QueryName, QueryValue] = msgspec.field(default_factory=dict)
    reasoning_models: str = r"^(o\d|gpt-5)"

    def __post_init__(self) -> None:
        try:
            re.compile(self.reasoning_models)
        except re.error:
            raise ValueError("reasoning_models is not a valid regular expression") from None
