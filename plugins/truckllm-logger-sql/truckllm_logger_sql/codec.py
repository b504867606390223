"""A :class:`~truckllm.types.RequestRecord` as a ``requests`` row and back, exactly; and the
search cursor.

- :data:`COLUMNS`: the ``requests`` columns in row order; :data:`PAGE_COLUMNS`: those a search
  page reads (no bodies); :data:`UNIT_COLUMNS`: the usage's units of work besides tokens (schema
  2); :data:`CONTEXT_COLUMNS`: who made the request, its tags, guardrail decisions and metadata
  (schema 3); :data:`COLUMNS_V2` / :data:`COLUMNS_V1`: the columns of schemas 2 and 1.
- :func:`to_row` / :func:`from_row`: a record ↔ a row tuple (JSON columns as text).
- :func:`encode_batch`: a batch as one JSON array, encoded in C (the databases read it).
- :func:`encode_cursor` / :func:`decode_cursor`: the opaque ``next_cursor`` (base64url of JSON).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from typing import Any

import msgspec

from truckllm.types import AttemptRecord, GuardrailResult, RecordBodies, RequestRecord, Usage

__all__ = [
    "BODY_COLUMNS",
    "COLUMNS",
    "COLUMNS_V1",
    "COLUMNS_V2",
    "CONTEXT_COLUMNS",
    "INT64_MAX",
    "PAGE_COLUMNS",
    "UNIT_COLUMNS",
    "decode_cursor",
    "encode_batch",
    "encode_cursor",
    "from_row",
    "tag_as_stored",
    "to_row",
]

INT64_MAX = 2**63 - 1
"""Integers are stored as 64-bit: token counts beyond are stored as this."""

COLUMNS: tuple[str, ...] = (
    "request_id",
    "started_at",
    "endpoint",
    "dialect",
    "alias",
    "gateway_key",
    "stream",
    "status",
    "status_class",
    "latency_ms",
    "ttft_ms",
    "upstream_ms",
    "added_ms",
    "provider",
    "provider_type",
    "deployment",
    "model",
    "provider_key",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "images",
    "audio_seconds",
    "characters",
    "search_units",
    "requests",
    "cost_usd",
    "error_kind",
    "error_message",
    "client_disconnected",
    "attempts",
    "fallbacks",
    "extra",
    "body_request",
    "body_response",
    "body_truncated",
    "team",
    "org",
    "end_user",
    "tags",
    "guardrails",
    "metadata",
)
"""The ``requests`` table's columns, in the order of :func:`to_row`."""

BODY_COLUMNS = ("body_request", "body_response", "body_truncated")
"""The body columns: ``NULL`` unless the record's bodies were recorded (``body_truncated`` is a
bit set: 1 the request was cut, 2 the answer)."""

PAGE_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in BODY_COLUMNS)
"""The columns a search page reads."""

UNIT_COLUMNS = ("images", "audio_seconds", "characters", "search_units", "requests")
"""The usage's units of work not counted in tokens (``Usage.images``... ``Usage.requests``: calls
charged per request), added by schema 2; ``NULL`` when the record has no usage, as the tokens
(a row written before schema 2 reads them as 0). ``audio_seconds`` is a float, the others
integers."""

CONTEXT_COLUMNS = ("team", "org", "end_user", "tags", "guardrails", "metadata")
"""Who made the request and what was decided about it, added by schema 3: ``team``, ``org`` and
``end_user`` (:attr:`RequestRecord.user <truckllm.types.RequestRecord.user>`; ``user`` is a
reserved word in PostgreSQL) as text, ``NULL`` when unset; ``tags`` (a JSON array of strings),
``guardrails`` (a JSON array of :class:`~truckllm.types.GuardrailResult` as msgspec encodes them)
and ``metadata`` (a JSON object of strings) as JSON text. A row written before schema 3 reads
them as ``None``, ``()``, ``()`` and ``{}``.

A NUL in a tag is stored as U+FFFD on both backends (:func:`tag_as_stored`): the tag filter reads
``tags`` with the database's JSON functions, and SQLite's end a string at ``\\u0000`` (``a\\x00b``
would match the tag ``a``) while PostgreSQL's ``jsonb`` refuses it."""

COLUMNS_V2: tuple[str, ...] = tuple(c for c in COLUMNS if c not in CONTEXT_COLUMNS)
"""The ``requests`` columns of schema 2 (schema 1's and :data:`UNIT_COLUMNS`)."""

COLUMNS_V1: tuple[str, ...] = tuple(c for c in COLUMNS_V2 if c not in UNIT_COLUMNS)
"""The ``requests`` columns of schema 1 (what its ``CREATE TABLE`` made)."""

_USAGE = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_INT_UNITS = ("images", "characters", "search_units", "requests")
_ATTEMPTS = msgspec.json.Decoder(tuple[AttemptRecord, ...])
_FALLBACKS = msgspec.json.Decoder(tuple[str, ...])
_EXTRA = msgspec.json.Decoder(dict[str, Any])
_TAGS = msgspec.json.Decoder(tuple[str, ...])
_GUARDRAILS = msgspec.json.Decoder(tuple[GuardrailResult, ...])
_METADATA = msgspec.json.Decoder(dict[str, str])
_ENCODER = msgspec.json.Encoder()


def encode_batch(records: Sequence[RequestRecord]) -> bytes:
    """``records`` as one JSON array of objects (UTF-8), in msgspec's C encoder: the backends
    read every column from it in SQL. Every :class:`RequestRecord` field is present (``null``
    when unset); ``usage`` and ``bodies`` omit their default fields; ``attempts``, ``fallbacks``,
    ``extra``, ``tags``, ``guardrails`` and ``metadata`` are exactly the text :func:`to_row`
    stores."""
    return _ENCODER.encode(records)


def _int64(value: int) -> int:
    return max(-INT64_MAX - 1, min(INT64_MAX, value))


def _json(value: object) -> str:
    return _ENCODER.encode(value).decode()


def to_row(record: RequestRecord) -> tuple[Any, ...]:
    """``record`` as a row of :data:`COLUMNS` (Python values; the backend adapts them)."""
    usage = record.usage
    tokens: tuple[int | None, ...] = (
        tuple(_int64(getattr(usage, name)) for name in _USAGE) if usage is not None else (None,) * 6
    )
    units: tuple[int | float | None, ...] = (
        (
            _int64(usage.images),
            _seconds(usage.audio_seconds),
            _int64(usage.characters),
            _int64(usage.search_units),
            _int64(usage.requests),
        )
        if usage is not None
        else (None,) * 5
    )
    added = record.latency_ms - record.upstream_ms if record.upstream_ms is not None else None
    bodies = record.bodies
    body: tuple[str | None, str | None, int | None] = (
        (bodies.request, bodies.response, int(bodies.request_truncated) | 2 * int(bodies.response_truncated))
        if bodies is not None
        else (None, None, None)
    )
    return (
        record.request_id,
        record.started_at,
        record.endpoint,
        record.dialect,
        record.alias,
        record.gateway_key,
        record.stream,
        _int64(record.status),
        record.status // 100,
        record.latency_ms,
        record.ttft_ms,
        record.upstream_ms,
        added,
        record.provider,
        record.provider_type,
        record.deployment,
        record.model,
        record.provider_key,
        *tokens,
        *units,
        record.cost_usd,
        record.error_kind,
        record.error_message,
        record.client_disconnected,
        _json(record.attempts),
        _json(record.fallbacks),
        _json(record.extra),
        *body,
        record.team,
        record.org,
        record.user,
        _json(tuple(tag_as_stored(t) for t in record.tags) if _has_nul(record.tags) else record.tags),
        _json(record.guardrails),
        _json(record.metadata),
    )


def from_row(row: Sequence[Any], columns: Sequence[str] = COLUMNS) -> RequestRecord:
    """A row of ``columns`` (:data:`COLUMNS` or :data:`PAGE_COLUMNS`) back into its record."""
    v = dict(zip(columns, row, strict=True))
    # no audio: the default left in place, so that the usage's JSON leaves it out as it does a
    # fresh record's (msgspec omits a float default by identity, and 0.0 built here is not it)
    usage = None
    if v["prompt_tokens"] is not None:
        usage = Usage(
            **{name: int(v[name]) for name in _USAGE}, **{name: int(v[name] or 0) for name in _INT_UNITS}
        )
        if seconds := float(v["audio_seconds"] or 0.0):
            usage.audio_seconds = seconds
    truncated = v.get("body_truncated")
    bodies = (
        RecordBodies(
            request=v["body_request"] or "",
            response=v["body_response"] or "",
            request_truncated=bool(truncated & 1),
            response_truncated=bool(truncated & 2),
        )
        if truncated is not None
        else None
    )
    return RequestRecord(
        request_id=v["request_id"],
        started_at=float(v["started_at"]),
        endpoint=v["endpoint"],
        dialect=v["dialect"],
        alias=v["alias"],
        gateway_key=v["gateway_key"],
        stream=bool(v["stream"]),
        status=int(v["status"]),
        latency_ms=float(v["latency_ms"]),
        ttft_ms=_float(v["ttft_ms"]),
        upstream_ms=_float(v["upstream_ms"]),
        provider=v["provider"],
        provider_type=v["provider_type"],
        deployment=v["deployment"],
        model=v["model"],
        provider_key=v["provider_key"],
        attempts=_ATTEMPTS.decode(v["attempts"]),
        fallbacks=_FALLBACKS.decode(v["fallbacks"]),
        usage=usage,
        cost_usd=float(v["cost_usd"]),
        error_kind=v["error_kind"],
        error_message=v["error_message"],
        client_disconnected=bool(v["client_disconnected"]),
        extra=_EXTRA.decode(v["extra"]),
        bodies=bodies,
        team=v["team"],
        org=v["org"],
        user=v["end_user"],
        # NULL: a row written before schema 3
        tags=_TAGS.decode(v["tags"]) if v["tags"] is not None else (),
        guardrails=_GUARDRAILS.decode(v["guardrails"]) if v["guardrails"] is not None else (),
        metadata=_METADATA.decode(v["metadata"]) if v["metadata"] is not None else {},
    )


def tag_as_stored(tag: str) -> str:
    """``tag`` as the ``tags`` column keeps it and the tag filter compares it: NUL as U+FFFD."""
    return tag.replace("\x00", "\ufffd")


def _has_nul(tags: tuple[str, ...]) -> bool:
    return any("\x00" in tag for tag in tags)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _seconds(value: float) -> float:
    """Seconds of audio as stored: a value that is not finite is 0 (as PostgreSQL's JSON path
    reads it: msgspec writes it as ``null``)."""
    return float(value) if math.isfinite(value) else 0.0


class _Cursor(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """Where the next page starts: before this ``(started_at, request_id)``."""

    version: int
    started_at: float
    request_id: str


def encode_cursor(started_at: float, request_id: str) -> str:
    """The opaque cursor of the page after the row ``(started_at, request_id)``."""
    raw = _ENCODER.encode(_Cursor(1, started_at, request_id))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """``(started_at, request_id)`` of a cursor :func:`encode_cursor` made; ValueError for any other."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValueError("not a cursor of this request log") from None
    if value.version != 1 or value.started_at != value.started_at:  # NaN
        raise ValueError("not a cursor of this request log")
    return value.started_at, value.request_id
