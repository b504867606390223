"""Whether a candidate may take a request now, why not, and the error when none may.

One function, :func:`unusable`, decides for selection (before the strategy orders the
candidates), again just before each attempt is sent (a key cooled down by another request in the
meantime is re-selected away from), and for the error a client gets when nothing could serve it
(which names every candidate's reason and the soonest moment one becomes usable).
"""

from __future__ import annotations

from collections.abc import Iterable

from truckllm._internal.health import HealthRegistry, PairStats, pair_stats
from truckllm._internal.units import covers
from truckllm.types import Candidate, UpstreamError

__all__ = ["MAX_REASONS", "exhausted", "ready_at", "unusable"]

MAX_REASONS = 8
"""How many candidates' reasons an error message lists (then ``and N more``)."""


def unusable(
    cand: Candidate, now: float, health: HealthRegistry, *, priced_only: bool = False, endpoint: str = "chat"
) -> str | None:
    """Why ``cand`` may not take a request at ``now`` (``None``: it may); ``priced_only``: it needs
    a price charging for ``endpoint``'s work (:func:`~truckllm._internal.units.covers`)."""
    stats = cand.stats
    state = (stats if type(stats) is PairStats else pair_stats(cand)).key_state  # checked once made
    if state.disabled:
        return "disabled: the provider refused the key (401/403) until an enable or a reload"
    if state.credential_until <= now:
        if state.credential_refused:
            return "its credential was refused (401): a fresh one is being fetched"
        if state.credential_until == float("-inf"):
            return "its credential is not ready: the first refresh has not succeeded"
        return "its credential expired: the refresh is failing"
    if state.ejected_until > now:
        return f"ejected for {state.ejected_until - now:.0f}s after repeated failures"
    if state.cooldown_until > now:
        why = state.cooldown_reason or "cooldown"
        return f"cooling down for {state.cooldown_until - now:.0f}s ({why})"
    if state.half_open and health.probing(state, now):  # (only a half-open key probes)
        return "recovering: its one probe request is in flight"
    key = cand.key
    if key.max_in_flight is not None and state.in_flight >= key.max_in_flight:
        return f"at its max_in_flight ({key.max_in_flight})"
    if key.rpm is not None and state.requests.total(now) >= key.rpm:
        return f"over its rpm ({key.rpm})"
    if key.tpm is not None and state.tokens.total(now) >= key.tpm:
        return f"over its tpm ({key.tpm})"
    if priced_only and not covers(cand.deployment.price, endpoint):
        if cand.deployment.price is None:
            return "no price (config or price book; the gateway key has a budget)"
        return f"no price for the {endpoint} endpoint (config or price book; the gateway key has a budget)"
    return None


def ready_at(cand: Candidate, now: float) -> float:
    """When ``cand`` may take traffic again as far as time alone decides (``inf``: not by itself)."""
    state = pair_stats(cand).key_state
    at = state.available_at(now)
    key = cand.key
    if at != float("inf") and (
        (key.rpm is not None and state.requests.total(now) >= key.rpm)
        or (key.tpm is not None and state.tokens.total(now) >= key.tpm)
    ):
        at = max(at, now + 1.0)
    return at


def _limited(cand: Candidate, now: float) -> bool:
    state = pair_stats(cand).key_state
    key = cand.key
    return (
        (state.cooldown_until > now and state.cooldown_reason in ("rate_limit", "quota", "shared"))
        or (key.rpm is not None and state.requests.total(now) >= key.rpm)
        or (key.tpm is not None and state.tokens.total(now) >= key.tpm)
        or (key.max_in_flight is not None and state.in_flight >= key.max_in_flight)
    )


def exhausted(
    alias: str,
    candidates: Iterable[Candidate],
    now: float,
    health: HealthRegistry,
    *,
    tried: int,
    max_retry_after: float,
    priced_only: bool = False,
    endpoint: str = "chat",
) -> UpstreamError:
    """The error when no candidate of ``alias`` could serve: 429 when they are rate-limited (with
    ``Retry-After`` the soonest recovery, capped at ``max_retry_after``), 503 when they are
    failing; the message names the alias, how many candidates were tried and why each one that
    was not usable was not."""
    cands = list(candidates)
    reasons: list[str] = []
    for cand in cands:
        why = unusable(cand, now, health, priced_only=priced_only, endpoint=endpoint)
        if why is not None:
            reasons.append(f"{cand.provider.name}/{cand.key.name} ({cand.deployment.model}): {why}")
    listed = "; ".join(reasons[:MAX_REASONS])
    if len(reasons) > MAX_REASONS:
        listed += f"; and {len(reasons) - MAX_REASONS} more"
    summary = f"no deployment of {alias!r} could serve this request: {len(cands)} candidates, {tried} tried"
    message = f"{summary}; {listed}" if listed else summary
    times = [at for at in (ready_at(c, now) for c in cands) if at != float("inf") and at > now]
    retry_after = min(min(times) - now, max_retry_after) if times else None
    if any(_limited(c, now) for c in cands):
        return UpstreamError(
            status=429,
            kind="rate_limit",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            message=message,
            retry_after=max(retry_after if retry_after is not None else 1.0, 1.0),
        )
    return UpstreamError(
        status=503, kind="overloaded" if times else "server", message=message, retry_after=retry_after
    )
