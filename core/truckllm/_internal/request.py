"""One request's record: what the kernel tracks while it runs, and the one place it ends.

:class:`RequestContext` is made by the endpoint when a request arrives and filled in as it goes
(key, alias, attempts, usage, status). :func:`end_request` is called once, by the endpoint, when
the answer has been sent or abandoned (whole or stream, success, rejection or error): it builds
the :class:`RequestRecord`, queues it for ``store_usage`` and ``emit_log``, and settles the
request's reservation with its real cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from truckllm._internal.admission import Reservation, settlement
from truckllm._internal.background import PendingRecord
from truckllm._internal.bodies import BodyCapture
from truckllm._internal.dialect import InboundDialect
from truckllm._internal.dialect_state import RequestState
from truckllm._internal.gateway import Gateway
from truckllm._internal.runtime import UNKNOWN_ALIAS, AliasPlan, Runtime
from truckllm._internal.units import image_tier, unit_cost
from truckllm.types import (
    AttemptRecord,
    Candidate,
    ChatRequest,
    GuardrailResult,
    RequestRecord,
    UpstreamError,
    Usage,
)

__all__ = ["Outcome", "RequestContext", "cost", "end_request"]


@dataclass
class RequestContext:
    """What the kernel tracks about one request while it runs."""

    request_id: str
    dialect: InboundDialect
    endpoint: str = "chat"
    gateway_key: str | None = None
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    attempts: list[AttemptRecord] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    candidate: Candidate | None = None
    upstream_ms: float | None = None
    ttft_ms: float | None = None
    usage: Usage | None = None
    error: UpstreamError | None = None
    status: int = 200
    client_disconnected: bool = False
    reservation: Reservation | None = None
    rejected_kind: str | None = None
    request: ChatRequest | None = None
    rejected_message: str | None = None
    alias: str | None = None  # the alias (or provider/model) served, once resolved
    plan: AliasPlan | None = None  # resolved once, by the endpoint, with the key's allow-list
    priced_only: bool = False  # the gateway key has a budget: unpriced deployments may not serve
    estimated_tokens: tuple[int, int] | None = None  # (prompt, completion), estimated once
    state: RequestState | None = None  # a stateful dialect's stored state (writes flushed before the end)
    pin_read: tuple[str, asyncio.Future[bytes | None]] | None = None  # affinity: a pin read begun early
    conversation: tuple[ChatRequest, str] | None = None  # affinity: a request and its key, worked out once
    bodies: BodyCapture | None = None  # the key or the alias keeps bodies (log_bodies)
    stream_cut: bool = False  # a raw stream failed mid-body: its connection closes without the end
    team: str | None = None  # the gateway key's team and org
    org: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)  # the team's and org's (config)
    user: str | None = None  # the end user the client named (bounded)
    tags: tuple[str, ...] = ()  # the request's tags (bounded)
    guardrails: list[GuardrailResult] = field(default_factory=list)  # what each guardrail decided


@dataclass
class Outcome:
    """A response ready to send: a whole ``body``, or a ``stream`` of frames."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


BATCH_USAGE = "batches.usage"
"""The endpoint of a batch's one usage record (sent by the batches dialect when it completes)."""
DEFAULT_BATCH_FRACTION = 0.5
"""The fraction of the normal price a batch is charged when its price sets no ``batch``."""


def cost(candidate: Candidate, usage: Usage | None, request: ChatRequest | None = None) -> float:
    """USD for ``usage`` at the deployment's price (0 when either is unknown).

    Each kind of token at its own rate: cached prompt tokens at ``cached_input``, cache writes at
    ``cache_write``, the rest of the prompt at ``input``; reasoning tokens (part of the completion)
    at ``reasoning``, the rest of the completion at ``output``. An unset rate is the ``input``
    (cached, cache writes) or ``output`` (reasoning) rate. Units of work (images at the size and
    quality ``request`` asked for, seconds, characters, search units, calls) are added at their
    rates (:func:`truckllm._internal.units.unit_cost`). A batch's usage (the endpoint
    :data:`BATCH_USAGE`) is charged at ``price.batch`` of all that (0.5 when unset).
    """
    price = candidate.deployment.price
    if price is None or usage is None:
        return 0.0
    units = (
        unit_cost(price, usage, image_tier(request))
        if usage.requests
        or usage.images
        or usage.audio_seconds
        or usage.characters
        or usage.search_units
        or price.request
        else 0.0
    )
    cached = usage.cached_tokens
    cached_price = price.cached_input if price.cached_input is not None else price.input
    write_price = price.cache_write if price.cache_write is not None else price.input
    reasoning_price = price.reasoning if price.reasoning is not None else price.output
    fresh = max(usage.prompt_tokens - cached - usage.cache_write_tokens, 0)
    reasoning = min(max(usage.reasoning_tokens, 0), max(usage.completion_tokens, 0))
    total = (
        fresh * price.input
        + cached * cached_price
        + usage.cache_write_tokens * write_price
        + (usage.completion_tokens - reasoning) * price.output
        + reasoning * reasoning_price
    ) / 1_000_000 + units
    if request is not None and request.endpoint == BATCH_USAGE:
        total *= price.batch if price.batch is not None else DEFAULT_BATCH_FRACTION
    return total


def end_request(gw: Gateway, rt: Runtime, ctx: RequestContext) -> None:
    """The request is over: queue its record for ``store_usage`` and ``emit_log`` and settle its
    reservation. Called once per request, by the endpoint.

    A request rejected before it was decoded has no ``ctx.request``: its record has the endpoint
    and dialect from ``ctx`` and no alias; one naming a model the config does not serve is
    recorded under :data:`~truckllm._internal.runtime.UNKNOWN_ALIAS`.
    """
    if ctx.pin_read is not None:  # begun at admission and never used (the request ended first)
        _discard(ctx.pin_read[1])
        ctx.pin_read = None
    request = ctx.request
    cand = ctx.candidate
    record = RequestRecord(
        request_id=ctx.request_id,
        started_at=ctx.started_wall,
        endpoint=request.endpoint if request else ctx.endpoint,
        dialect=request.dialect if request else ctx.dialect.name,
        alias=ctx.alias if ctx.alias is not None else (UNKNOWN_ALIAS if request else ""),
        gateway_key=ctx.gateway_key,
        stream=request.stream if request else False,
        status=ctx.status,
        latency_ms=round((time.monotonic() - ctx.started) * 1000, 3),
        ttft_ms=round(ctx.ttft_ms, 3) if ctx.ttft_ms is not None else None,
        upstream_ms=round(ctx.upstream_ms, 3) if ctx.upstream_ms is not None else None,
        provider=cand.provider.name if cand else None,
        provider_type=cand.provider.type if cand else None,
        deployment=cand.deployment.label if cand else None,
        model=cand.deployment.model if cand else None,
        provider_key=cand.key.name if cand else None,
        attempts=tuple(ctx.attempts),
        fallbacks=tuple(ctx.fallbacks),
        usage=ctx.usage,
        cost_usd=cost(cand, ctx.usage, request) if cand else 0.0,
        error_kind=ctx.error.kind if ctx.error else ctx.rejected_kind,
        error_message=ctx.error.message if ctx.error else ctx.rejected_message,
        client_disconnected=ctx.client_disconnected,
        team=ctx.team,
        org=ctx.org,
        metadata=dict(ctx.metadata),  # the record's own copy: loggers never share one
        user=ctx.user,
        tags=ctx.tags,
        guardrails=tuple(ctx.guardrails),
    )
    if ctx.bodies is not None:
        scrubber = gw.credentials.scrubber(rt.scrubber)  # config secrets and handed-out tokens
        gw.background.submit(rt.host, PendingRecord(record=record, capture=ctx.bodies, scrubber=scrubber))
    else:
        gw.background.submit(rt.host, record)
    if ctx.reservation is not None and gw.store is not None:
        gw.background.settle(gw.store, settlement(ctx.reservation, ctx.usage, record.cost_usd))


def _discard(read: asyncio.Future[bytes | None]) -> None:
    """Cancel a read nobody will await (its failure, if any, is not an error of the request)."""
    if read.done():
        if not read.cancelled():
            read.exception()  # retrieved: no "exception was never retrieved" warning
    else:
        read.cancel()
