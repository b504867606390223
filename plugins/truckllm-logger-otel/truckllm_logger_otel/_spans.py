"""Request records as span names, attributes and times: pure functions, no I/O.

A finished :class:`~truckllm.types.RequestRecord` becomes one span for the request (kind
``SERVER``) and one child span per upstream attempt (kind ``CLIENT``), named and attributed after
the OpenTelemetry GenAI semantic conventions (``gen_ai.*``), plus TruckLLM's own ``truckllm.*``
attributes. Only what the record holds is written: key *names*, never key values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from truckllm.types import AttemptRecord, RequestRecord

__all__ = [
    "GENAI_PROVIDER_NAMES",
    "OPERATION_NAMES",
    "AttributeValue",
    "Attributes",
    "Upstream",
    "attempt_attributes",
    "attempt_failed",
    "attempt_windows",
    "error_type",
    "operation_name",
    "provider_name",
    "request_attributes",
    "request_failed",
    "request_window",
    "span_name",
    "upstream_of",
]

AttributeValue = str | bool | int | float | Sequence[str]
"""A span attribute value as written here (never ``None``: absent values are left out)."""

Attributes = dict[str, AttributeValue]
"""Span attributes by name."""

OPERATION_NAMES = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}
"""``gen_ai.operation.name`` for each TruckLLM endpoint; any other endpoint is written as is."""

GENAI_PROVIDER_NAMES = {"gemini": "gcp.gemini"}
"""``gen_ai.provider.name`` for provider types whose well-known GenAI name differs from the type."""

MAX_MESSAGE = 1024
"""The longest error message written (characters); longer ones are cut."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a provider is reached: ``server.address`` and ``server.port``."""

    address: str
    port: int | None = None


def upstream_of(base_url: str) -> Upstream | None:
    """The host and port of an ``http(s)`` ``base_url`` (never its path, query or user info)."""
    if not base_url:
        return None
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None  # an in-process provider (``mock://``) has no network address
    return Upstream(parts.hostname, port if port is not None else _DEFAULT_PORTS[parts.scheme])


def operation_name(endpoint: str) -> str:
    """``gen_ai.operation.name``: ``chat``, ``text_completion`` or ``embeddings``."""
    return OPERATION_NAMES.get(endpoint, endpoint)


def provider_name(provider_type: str) -> str:
    """``gen_ai.provider.name`` for a TruckLLM provider type (``gemini`` is ``gcp.gemini``)."""
    return GENAI_PROVIDER_NAMES.get(provider_type, provider_type)


def span_name(operation: str, model: str | None) -> str:
    """``{operation} {model}``, or the operation alone when the model is unknown."""
    return f"{operation} {model}" if model else operation


def error_type(status: int, error_kind: str | None) -> str | None:
    """``error.type``: the kernel's error kind, else the status of a 4xx/5xx answer, else none."""
    if error_kind:
        return error_kind
    if status >= 400:
        return str(status)
    return None


def request_failed(record: RequestRecord) -> bool:
    """The request span's status is ERROR: the gateway answered 5xx (a 4xx is the client's)."""
    return record.status >= 500


def attempt_failed(attempt: AttemptRecord) -> bool:
    """An attempt span's status is ERROR: the attempt failed (any error kind, or 4xx/5xx)."""
    return attempt.error_kind is not None or attempt.status >= 400


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def request_window(record: RequestRecord) -> tuple[int, int]:
    """Start and end of the request, in nanoseconds since the epoch: ``started_at + latency``."""
    start = _ns(record.started_at)
    return start, start + max(0, round(record.latency_ms * 1e6))


def attempt_windows(record: RequestRecord) -> list[tuple[int, int]]:
    """Start and end of each attempt, in nanoseconds since the epoch.

    A record gives each attempt's duration but not its start, so the attempts are laid back to
    back from the request's start (they run one after another), each clamped to the request.
    """
    start, end = request_window(record)
    windows: list[tuple[int, int]] = []
    cursor = start
    for attempt in record.attempts:
        begin = min(cursor, end)
        finish = min(begin + max(0, round(attempt.latency_ms * 1e6)), end)
        windows.append((begin, finish))
        cursor = finish
    return windows


def _message(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _put(attributes: Attributes, name: str, value: AttributeValue | None) -> None:
    if value is not None:
        attributes[name] = value


def _upstream(attributes: Attributes, upstream: Upstream | None) -> None:
    if upstream is not None:
        attributes["server.address"] = upstream.address
        _put(attributes, "server.port", upstream.port)


def request_attributes(record: RequestRecord, upstream: Upstream | None = None) -> Attributes:
    """The request span's attributes (absent values are left out).

    :param record: the finished request.
    :param upstream: where the answering provider is reached, when known.
    """
    operation = operation_name(record.endpoint)
    attributes: Attributes = {"gen_ai.operation.name": operation}
    if record.provider_type:
        attributes["gen_ai.provider.name"] = provider_name(record.provider_type)
        attributes["gen_ai.system"] = provider_name(record.provider_type)
    _put(attributes, "gen_ai.request.model", record.alias or None)
    _put(attributes, "gen_ai.response.model", record.model)
    usage = record.usage
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
        if usage.cached_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
        if usage.cache_write_tokens:
            attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
        if usage.reasoning_tokens:
            attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    if record.endpoint != "embeddings":
        attributes["gen_ai.request.stream"] = record.stream
    if record.ttft_ms is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = record.ttft_ms / 1000
    _put(attributes, "error.type", error_type(record.status, record.error_kind))
    if record.status:
        attributes["http.response.status_code"] = record.status
    _upstream(attributes, upstream)

    attributes["truckllm.request_id"] = record.request_id
    attributes["truckllm.endpoint"] = record.endpoint
    attributes["truckllm.dialect"] = record.dialect
    _put(attributes, "truckllm.alias", record.alias or None)
    _put(attributes, "truckllm.gateway_key", record.gateway_key)
    _put(attributes, "truckllm.provider", record.provider)
    _put(attributes, "truckllm.provider_type", record.provider_type)
    _put(attributes, "truckllm.deployment", record.deployment)
    _put(attributes, "truckllm.provider_key", record.provider_key)
    _put(attributes, "truckllm.team", record.team)
    _put(attributes, "truckllm.org", record.org)
    for name, value in record.metadata.items():  # config labels, bounded by the config
        attributes[f"truckllm.metadata.{name}"] = value
    attributes["truckllm.stream"] = record.stream
    attributes["truckllm.status"] = record.status
    attributes["truckllm.attempts"] = len(record.attempts)
    if record.fallbacks:
        attributes["truckllm.fallbacks"] = tuple(record.fallbacks)
    attributes["truckllm.latency_ms"] = record.latency_ms
    _put(attributes, "truckllm.ttft_ms", record.ttft_ms)
    _put(attributes, "truckllm.upstream_ms", record.upstream_ms)
    if record.upstream_ms is not None:
        attributes["truckllm.overhead_ms"] = round(max(0.0, record.latency_ms - record.upstream_ms), 3)
    if usage is not None:
        attributes["truckllm.usage.total_tokens"] = usage.total_tokens
    attributes["truckllm.cost_usd"] = record.cost_usd
    _put(attributes, "truckllm.error_kind", record.error_kind)
    _put(attributes, "truckllm.error_message", _message(record.error_message))
    if record.client_disconnected:
        attributes["truckllm.client_disconnected"] = True
    return attributes


def attempt_attributes(
    record: RequestRecord,
    number: int,
    attempt: AttemptRecord,
    provider_type: str | None = None,
    upstream: Upstream | None = None,
) -> Attributes:
    """One attempt span's attributes.

    :param record: the request the attempt belongs to.
    :param number: the attempt's position, from 1.
    :param attempt: the attempt.
    :param provider_type: the attempt's provider type, when known.
    :param upstream: where the attempt's provider is reached, when known.
    """
    attributes: Attributes = {"gen_ai.operation.name": operation_name(record.endpoint)}
    if provider_type:
        attributes["gen_ai.provider.name"] = provider_name(provider_type)
        attributes["gen_ai.system"] = provider_name(provider_type)
    _put(attributes, "gen_ai.request.model", attempt.model or None)
    _put(attributes, "error.type", error_type(attempt.status, attempt.error_kind))
    if attempt.status:
        attributes["http.response.status_code"] = attempt.status
    _upstream(attributes, upstream)
    attributes["truckllm.request_id"] = record.request_id
    attributes["truckllm.attempt"] = number
    _put(attributes, "truckllm.alias", attempt.alias or None)
    attributes["truckllm.provider"] = attempt.provider
    _put(attributes, "truckllm.provider_type", provider_type)
    attributes["truckllm.deployment"] = attempt.deployment
    attributes["truckllm.provider_key"] = attempt.provider_key
    attributes["truckllm.status"] = attempt.status
    attributes["truckllm.latency_ms"] = attempt.latency_ms
    _put(attributes, "truckllm.error_kind", attempt.error_kind)
    return attributes
