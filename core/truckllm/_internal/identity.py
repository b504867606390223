"""Who a request is for: the gateway key's team and organisation, the end user the client names
and the request's tags, read once after the request is parsed and set on its context.

- End user: the OpenAI ``user`` field (chat, completions, embeddings, Responses), the Responses
  ``safety_identifier`` when there is no ``user``, Anthropic's ``metadata.user_id`` (the dialect
  puts it in ``typed.user``), Gemini's ``labels.user``. One longer than :data:`MAX_USER`
  characters, or not printable, is kept as its digest ``sha256:<32 hex>`` (never refused: real
  clients send long ids).
- Tags: the ``x-truckllm-tags`` header (comma-separated) and the key's ``tags``, each at most
  ``tags.max_length`` characters of ``[A-Za-z0-9._:/-]``, at most ``tags.max_tags`` in all (else
  400 naming the header).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec

from truckllm._internal.auth import GatewayKey
from truckllm._internal.governance import TAG
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest

if TYPE_CHECKING:
    from truckllm._internal.request import RequestContext
    from truckllm._internal.runtime import Runtime

__all__ = ["MAX_USER", "TAGS_HEADER", "end_user", "identify", "request_tags"]

MAX_USER = 128
"""Characters of an end user's name at most."""

TAGS_HEADER = "x-truckllm-tags"
"""The request header naming a request's tags (comma-separated)."""

_labels = msgspec.json.Decoder(dict[str, Any])


def _checked(value: object, field: str) -> str | None:
    """``value`` as the end user: as given when short and printable, else its digest
    (``sha256:<32 hex>``: bounded and stable, so a client's long ids still group and count; Claude
    Code's ``metadata.user_id`` is a JSON document of several hundred characters)."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) > MAX_USER or not value.isprintable():
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return value


def end_user(request: ChatRequest) -> str | None:
    """The end user the request names, bounded (see the module's docstring)."""
    typed = request.typed
    if typed is not None:
        field = "metadata.user_id" if request.dialect == "anthropic" else "user"
        user = _checked(getattr(typed, "user", None), field)
        if user is None:
            user = _checked(getattr(typed, "safety_identifier", None), "safety_identifier")
        if user is not None or request.dialect != "gemini":
            return user
    try:
        fields = request.fields()
        if request.dialect == "gemini":
            raw = fields.get("labels")
            labels = _labels.decode(raw) if raw is not None else {}
            return _checked(labels.get("user"), "labels.user")
        raw = fields.get("user")
        return _checked(msgspec.json.decode(raw), "user") if raw is not None else None
    except (msgspec.DecodeError, ValueError):
        return None


def request_tags(
    header: str | None, key_tags: tuple[str, ...], max_tags: int, max_length: int
) -> tuple[str, ...]:
    """The request's tags: the header's, then the key's (each once, in that order).

    :raises GatewayError: 400 naming the header for a bad tag or too many.
    """
    if not header and not key_tags:
        return ()  # the common case: nothing to read or check
    given = [t.strip() for t in header.split(",")] if header else []
    tags = tuple(dict.fromkeys([*(t for t in given if t), *key_tags]))
    if len(tags) > max_tags:
        raise GatewayError(
            400,
            f"Too many tags: {len(tags)}; the limit is {max_tags}.",
            param=TAGS_HEADER,
            code="invalid_tags",
        )
    for tag in tags:
        if len(tag) > max_length or not TAG.fullmatch(tag):
            raise GatewayError(
                400,
                f"A tag is at most {max_length} characters of letters, digits and ._:/- "
                "(starting with a letter or digit).",
                param=TAGS_HEADER,
                code="invalid_tags",
            )
    return tags


def identify(
    rt: Runtime, ctx: RequestContext, key: GatewayKey | None, request: ChatRequest, headers: dict[str, str]
) -> GatewayKey | None:
    """Set the request's team, org, their default metadata, end user and tags on ``ctx``; return
    the key with its ``models`` narrowed by its team's and org's (what admission then checks).

    :raises GatewayError: 400 for an end user or tags out of bounds.
    """
    config = rt.config
    if key is not None:
        key = rt.keyring.scoped(key, config)
        ctx.team = key.team
        ctx.org = key.org
        ctx.metadata = key.metadata
    ctx.user = end_user(request)
    tags = config.tags
    ctx.tags = request_tags(
        headers.get(TAGS_HEADER), key.config.tags if key is not None else (), tags.max_tags, tags.max_length
    )
    return key
