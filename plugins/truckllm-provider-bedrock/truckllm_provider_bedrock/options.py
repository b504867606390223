"""``providers.<name>.options`` for ``type: bedrock``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["DEFAULT_OPTIONS", "Options", "region_of"]

_HOST_REGION = re.compile(r"^https://bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?:/|$)")


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Options of a Bedrock provider entry, decoded strictly from its YAML ``options:``.

    :ivar region: the AWS region (``us-east-1``); required unless ``base_url`` is a
        ``bedrock-runtime.<region>.amazonaws.com`` URL. It picks the endpoint and the SigV4 scope.
    :ivar auth: ``sigv4`` (AWS credentials: the key's ``ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]``, or
        the standard credential chain for a key whose value is empty or a keyless entry) or
        ``api_key`` (a Bedrock API key, sent as ``Authorization: Bearer``).
    :ivar profile: the shared config/credentials profile the credential chain reads
        (``AWS_PROFILE`` when unset).
    :ivar max_tokens: ``inferenceConfig.maxTokens`` when the client gives none (unset: the
        model's own default).
    :ivar thinking_max_tokens: the answer budget added on top of the thinking budget when
        ``reasoning_effort`` asks Claude to think and the client gave no ``max_tokens``.
    """

    region: Annotated[str, Meta(pattern=r"^[a-z]{2}(?:-[a-z]+)+-\d+$")] | None = None
    auth: Literal["sigv4", "api_key"] = "sigv4"
    profile: str | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    thinking_max_tokens: Annotated[int, Meta(ge=1)] = 4096


DEFAULT_OPTIONS = Options()
"""The options of an entry that gives none."""


def region_of(options: Options, base_url: str) -> str | None:
    """The region to sign for: the option, else the one in an AWS endpoint ``base_url``."""
    if options.region:
        return options.region
    match = _HOST_REGION.match(base_url)
    return match.group(1) if match else None
