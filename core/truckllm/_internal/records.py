"""One request record as log fields, and its JSON and text lines.

The kernel's one definition of the log fields, used by ``truckllm-logger-stdout``, ``-file`` and
``-webhook`` and available to third-party loggers, so every logger writes the same names.

Only what :class:`~truckllm.types.RequestRecord` holds is written: key *names*, never key values
(records never carry them), and nothing from the config but names and the teams' and
organisations' ``metadata`` labels (never secrets).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import msgspec

from truckllm.types import Alert, AttemptRecord, RequestRecord

__all__ = [
    "FIELDS",
    "alert_line",
    "attempt_fields",
    "iso_time",
    "json_line",
    "level_for",
    "record_fields",
    "text_line",
]

FIELDS = (
    "time",
    "level",
    "request_id",
    "endpoint",
    "dialect",
    "gateway_key",
    "alias",
    "provider",
    "provider_type",
    "deployment",
    "model",
    "provider_key",
    "status",
    "stream",
    "latency_ms",
    "ttft_ms",
    "upstream_ms",
    "overhead_ms",
    "attempts",
    "attempt_list",
    "fallbacks",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "error_kind",
    "error_message",
    "client_disconnected",
    "team",
    "org",
    "user",
    "tags",
    "metadata",
)
"""Every field of a JSON record, in the order written."""

_PLAIN = re.compile(r"[A-Za-z0-9_.:/@#+$,-]+")


def iso_time(unix: float) -> str:
    """ISO 8601 UTC with milliseconds: ``2025-06-01T12:00:00.123Z``."""
    when = dt.datetime.fromtimestamp(unix, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def level_for(record: RequestRecord) -> str:
    """``ERROR`` for a 5xx answer, ``WARNING`` for a 4xx (a client disconnect is 499), else ``INFO``."""
    if record.status >= 500:
        return "ERROR"
    if record.status >= 400:
        return "WARNING"
    return "INFO"


def overhead_ms(record: RequestRecord) -> float | None:
    """Time spent in the gateway: latency minus the answering attempt's upstream time."""
    if record.upstream_ms is None:
        return None
    return round(max(0.0, record.latency_ms - record.upstream_ms), 3)


def attempt_fields(attempt: AttemptRecord) -> dict[str, Any]:
    """One attempt as a mapping (key name, never value)."""
    return {
        "alias": attempt.alias,
        "provider": attempt.provider,
        "provider_key": attempt.provider_key,
        "deployment": attempt.deployment,
        "model": attempt.model,
        "status": attempt.status,
        "latency_ms": attempt.latency_ms,
        "error_kind": attempt.error_kind,
    }


def record_fields(record: RequestRecord) -> dict[str, Any]:
    """The record as a flat mapping with the keys of :data:`FIELDS`, in that order."""
    usage = record.usage
    return {
        "time": iso_time(record.started_at),
        "level": level_for(record),
        "request_id": record.request_id,
        "endpoint": record.endpoint,
        "dialect": record.dialect,
        "gateway_key": record.gateway_key,
        "alias": record.alias,
        "provider": record.provider,
        "provider_type": record.provider_type,
        "deployment": record.deployment,
        "model": record.model,
        "provider_key": record.provider_key,
        "status": record.status,
        "stream": record.stream,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "upstream_ms": record.upstream_ms,
        "overhead_ms": overhead_ms(record),
        "attempts": len(record.attempts),
        "attempt_list": [attempt_fields(a) for a in record.attempts],
        "fallbacks": list(record.fallbacks),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "total_tokens": usage.total_tokens if usage else None,
        "cached_tokens": usage.cached_tokens if usage else None,
        "cache_write_tokens": usage.cache_write_tokens if usage else None,
        "reasoning_tokens": usage.reasoning_tokens if usage else None,
        "cost_usd": record.cost_usd,
        "error_kind": record.error_kind,
        "error_message": record.error_message,
        "client_disconnected": record.client_disconnected,
        "team": record.team,
        "org": record.org,
        "user": record.user,
        "tags": list(record.tags),
        "metadata": dict(record.metadata),
    }


def json_line(record: RequestRecord, bodies: bool = False) -> str:
    """The record as one JSON object on one line (no trailing newline); with ``bodies``, its
    ``bodies`` too when it has them (already scrubbed and cut by the kernel)."""
    fields = record_fields(record)
    if bodies and record.bodies is not None:
        fields = {**fields, "bodies": msgspec.to_builtins(record.bodies)}
    return msgspec.json.encode(fields).decode()


def alert_line(alert: Alert, format: str = "json") -> str:
    """An alert as one line: JSON ``{"time", "level", "type": "alert", "alert"}``, or text
    ``<time> WARNING ALERT <kind> "<subject>" "<message>" id="<id>"`` (strings JSON-quoted, so
    the line stays one line whatever they hold)."""
    time = iso_time(alert.at)
    if format == "json":
        fields = {"time": time, "level": "WARNING", "type": "alert", "alert": msgspec.to_builtins(alert)}
        return msgspec.json.encode(fields).decode()
    quoted = msgspec.json.encode
    return (
        f"{time} WARNING ALERT {alert.kind} {quoted(alert.subject).decode()} "
        f"{quoted(alert.message).decode()} id={quoted(alert.id).decode()}"
    )


def _value(value: object) -> str:
    """A logfmt value: bare when safe, else JSON-quoted (so a line never breaks or lies)."""
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    return msgspec.json.encode(text).decode()


def _ms(value: float) -> str:
    return f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def text_line(record: RequestRecord) -> str:
    """A readable one-line summary, then ``key=value`` pairs (null and false fields left out).

    ``2025-06-01T12:00:00.123Z INFO 200 chat gpt-4o -> openai/gpt-4o 812ms request_id=... ...``
    """
    target = f" -> {_value(record.provider)}/{_value(record.model)}" if record.provider else ""
    head = (
        f"{iso_time(record.started_at)} {level_for(record)} {record.status} {_value(record.endpoint)} "
        f"{_value(record.alias or '-')}{target} {_ms(record.latency_ms)}"
    )
    pairs: list[tuple[str, object]] = [("request_id", record.request_id)]
    if record.dialect != "openai":
        pairs.append(("dialect", record.dialect))
    pairs += [
        ("gateway_key", record.gateway_key),
        ("provider_type", record.provider_type),
        ("deployment", record.deployment),
        ("provider_key", record.provider_key),
        ("stream", "true" if record.stream else None),
        ("ttft_ms", record.ttft_ms),
        ("upstream_ms", record.upstream_ms),
        ("overhead_ms", overhead_ms(record)),
        ("attempts", len(record.attempts)),
    ]
    if len(record.attempts) > 1:
        tried = ",".join(
            f"{a.provider}/{a.provider_key}:{a.status}" + (f":{a.error_kind}" if a.error_kind else "")
            for a in record.attempts
        )
        pairs.append(("tried", tried))
    if record.fallbacks:
        pairs.append(("fallbacks", ",".join(record.fallbacks)))
    usage = record.usage
    if usage is not None:
        pairs += [
            ("prompt_tokens", usage.prompt_tokens),
            ("completion_tokens", usage.completion_tokens),
            ("cached_tokens", usage.cached_tokens or None),
            ("cache_write_tokens", usage.cache_write_tokens or None),
            ("reasoning_tokens", usage.reasoning_tokens or None),
        ]
    if record.cost_usd:
        pairs.append(("cost_usd", f"{record.cost_usd:.6f}"))
    pairs += [
        ("error_kind", record.error_kind),
        ("error_message", record.error_message),
        ("client_disconnected", "true" if record.client_disconnected else None),
        ("team", record.team),
        ("org", record.org),
        ("user", record.user),
        ("tags", ",".join(record.tags) or None),
        ("metadata", msgspec.json.encode(record.metadata).decode() if record.metadata else None),
    ]
    return head + "".join(f" {k}={_value(v)}" for k, v in pairs if v is not None)
