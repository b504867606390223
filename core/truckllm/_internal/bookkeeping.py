"""What one attempt's end tells the kernel: the attempt record, usage, and the key's health.

Every failed attempt passes :func:`on_failure` first: its error is scrubbed (every field, then
cut) and its numbers clamped before anything reads them; then the key cools down (429), is out
of quota, is disabled (401/403), or counts a failure towards ejection. A plugin's own error
says nothing about the key.
"""

from __future__ import annotations

import time

from loguru import logger

from truckllm._internal.numbers import clamp_seconds, sane_usage
from truckllm._internal.run import AttemptState, RequestRun
from truckllm._internal.scrub import scrub_error
from truckllm.types import CLIENT_KINDS, AttemptRecord, UpstreamError, Usage

__all__ = ["account", "on_failure", "on_success", "record_attempt", "release"]


def record_attempt(
    run: RequestRun, attempt: AttemptState, status: int, kind: str | None, elapsed: float | None = None
) -> None:
    """Add the attempt to the request's record (``elapsed``: its seconds, when already read)."""
    cand = attempt.candidate
    deployment = cand.deployment
    if elapsed is None:
        elapsed = time.monotonic() - attempt.started
    run.ctx.attempts.append(
        AttemptRecord(
            provider=cand.provider.name,
            provider_key=cand.key.name,
            deployment=deployment.label,
            model=deployment.model,
            alias=deployment.alias,
            status=status,
            latency_ms=round(elapsed * 1000, 3),
            error_kind=kind,
        )
    )


def account(run: RequestRun, attempt: AttemptState, usage: Usage | None) -> None:
    """The attempt that answers the request: its candidate, clamped usage and upstream time."""
    ctx = run.ctx
    ctx.candidate = attempt.candidate
    usage = ctx.usage = sane_usage(usage)
    ctx.upstream_ms = (time.monotonic() - attempt.started) * 1000
    if usage is not None:
        attempt.key_state.tokens.add(run.gw.clock(), usage.total_tokens)


def on_success(run: RequestRun, attempt: AttemptState, usage: Usage | None, ttft: float | None) -> None:
    """A successful attempt: the key is healthy, its latency observed, the usage accounted (the
    attempt's time read once, for its record, its latency and the request's upstream time)."""
    elapsed = time.monotonic() - attempt.started
    record_attempt(run, attempt, 200, None, elapsed)
    gw = run.gw
    state = attempt.key_state
    gw.health.record_success(state)
    gw.budget.succeeded(attempt.routing.retry_budget)
    attempt.stats.observe(elapsed, ttft)
    ctx = run.ctx  # as account(), without the call and with the time read above
    ctx.candidate = attempt.candidate
    usage = ctx.usage = sane_usage(usage)
    ctx.upstream_ms = elapsed * 1000
    if usage is not None:
        state.tokens.add(gw.clock(), usage.total_tokens)


def on_failure(
    run: RequestRun, attempt: AttemptState, error: UpstreamError, count_health: bool = True
) -> None:
    """Book one failed attempt: scrub the error (every field, before anything reads it), record
    the attempt, and tell the key's health what the failure says about the key."""
    gw = run.gw
    scrub_error(error, gw.credentials.scrubber(run.rt.scrubber))  # config secrets and handed-out tokens
    run.last_kind = error.kind
    cooldown = attempt.routing.cooldown
    if error.retry_after is not None:
        error.retry_after = clamp_seconds(error.retry_after, cooldown.max_retry_after)
    record_attempt(run, attempt, error.status, error.kind)
    cand = attempt.candidate
    attempt.stats.failures += 1
    kind = error.kind
    if not count_health or kind == "plugin":
        return  # a plugin's bug says nothing about the key
    state = attempt.key_state
    now = gw.clock()
    name = f"{cand.provider.name}/{cand.key.name}"
    if kind == "rate_limit":
        seconds = error.retry_after if error.retry_after is not None else cooldown.duration
        state.cool(now, seconds, "rate_limit")
        gw.share_cooldown(cand.provider.name, cand.key.name, seconds, "rate_limit")
        logger.info("key {} cooling down {:.1f}s after 429", name, seconds)
    elif kind == "quota":
        state.cool(now, cooldown.max_duration, "quota")
        gw.share_cooldown(cand.provider.name, cand.key.name, cooldown.max_duration, "quota")
        logger.warning("key {} is out of quota; out for {:.0f}s", name, cooldown.max_duration)
    elif (
        kind == "auth"
        and gw.credentials.entries
        and gw.credentials.refused(cand.provider.name, cand.key.name, attempt.started)
    ):
        pass  # a refreshed credential refused: the key waits for a fresh one (Credentials.refused)
    elif kind in ("auth", "permission"):
        code = "401" if kind == "auth" else "403"  # the provider's; error.status is the client's (502)
        state.disabled = f"{code} {kind}: {error.message}"[:200]
        logger.error("key {} REJECTED by the provider ({}); disabled until reload or re-enable", name, code)
        gw.alerts.key_event(
            "key_disabled",
            cand.provider.name,
            cand.key.name,
            f"provider key {name} refused by the provider ({code} {kind}); "
            "disabled until a reload or an operator's enable",
        )
    elif kind not in CLIENT_KINDS:
        if gw.health.record_failure(state, cooldown, now, kind):
            logger.warning(
                "key {} ejected for {:.0f}s after repeated failures ({})",
                name,
                state.ejected_until - now,
                kind,
            )
            seconds = state.ejected_until - now
            until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(gw.wall_clock() + seconds))
            gw.alerts.key_event(
                "key_ejected",
                cand.provider.name,
                cand.key.name,
                f"provider key {name} ejected after {state.ejected_reason} ({kind}); "
                f"out for {seconds:.0f}s, until {until}",
            )
        gw.budget.failed(attempt.routing.retry_budget)


def release(attempt: AttemptState) -> None:
    """The attempt no longer holds its key's in-flight slot nor its upstream connection."""
    attempt.key_state.in_flight -= 1
    attempt.stats.in_flight -= 1
    if attempt.response is not None:
        attempt.response.release()
        attempt.response = None
