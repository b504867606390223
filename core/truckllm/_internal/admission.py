"""Limits and budgets, checked through the store before a request goes upstream.

One :meth:`Store.admit` call per request (the only store call on the hot path): the rpm and tpm
(GCRA) and spend budgets of every level that applies (gateway key, team, organisation, end user,
tags), reserved from an estimate (the worst case over every deployment that may serve, fallbacks
included) and settled at every level with the real cost once the request is finished. After an
admission that reserved against budgets, each configured threshold the spend has reached is an
alert (sent once per budget window across processes by the alert sender).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from loguru import logger

from truckllm._internal.auth import GatewayKey
from truckllm._internal.config.schema import BudgetConfig
from truckllm._internal.governance import Level, key_level
from truckllm._internal.localstate import window_end
from truckllm._internal.pricebook import worst_cost
from truckllm._internal.runtime import AliasPlan, Runtime
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm._internal.schemas.rerank import RerankRequest, rerank_size
from truckllm._internal.store import Admission, BudgetCheck, Decision, RateCheck, Settlement, budget_window
from truckllm._internal.units import covers
from truckllm.errors import GatewayError
from truckllm.types import Alert, ChatRequest, Usage

__all__ = [
    "TOTAL_ALERT_EVERY",
    "AlertSink",
    "Reservation",
    "admit",
    "budget_alerts",
    "charge_only",
    "check_priced",
    "content_size",
    "estimate_tokens",
    "serving_plans",
    "settlement",
    "usd",
]

DEFAULT_COMPLETION_ESTIMATE = 1024
NO_COMPLETION_ENDPOINTS = frozenset({"embeddings", "moderations", "rerank"})
"""Endpoints whose answers are not generated text: no completion tokens are reserved for them."""
TOKEN_ENDPOINTS = frozenset({"chat", "completions", "embeddings", "count_tokens"})
"""Endpoints charged by tokens alone."""
TOTAL_ALERT_EVERY = 10 * 365 * 86400.0
"""Seconds a ``total`` budget's threshold alert is not repeated (its window never ends)."""

AlertSink = Callable[[Alert, float], None]
"""Where budget alerts go: ``gateway.alerts.emit(alert, every)``."""


def content_size(typed: ChatCompletionRequest) -> int:
    """Bytes of text and inline media in the messages (what an upstream has to read)."""
    total = 0
    for message in typed.messages:
        content = getattr(message, "content", None)
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                text = getattr(part, "text", None)
                if text is not None:
                    total += len(text)
                image = getattr(part, "image_url", None)
                if image is not None:
                    total += len(image.url)
                audio = getattr(part, "input_audio", None)
                if audio is not None:
                    total += len(audio.data)
                file = getattr(part, "file", None)
                if file is not None and isinstance(file.file_data, str):
                    total += len(file.file_data)
    return total


def estimate_tokens(request: ChatRequest) -> tuple[int, int]:
    """(prompt estimate, completion estimate): body bytes / 4 (or the typed form's content / 4
    when larger: a follow-up sent by reference reads its whole conversation), and ``max_tokens``
    or a default."""
    typed = request.typed
    prompt = max(1, len(request.body) // 4)
    if isinstance(typed, ChatCompletionRequest):
        prompt = max(prompt, content_size(typed) // 4)
    elif isinstance(typed, RerankRequest):  # the query is read once per document
        prompt = max(prompt, rerank_size(typed) // 4)
    limit = getattr(typed, "max_completion_tokens", None) or getattr(typed, "max_tokens", None)
    if request.endpoint in ("embeddings", "rerank"):
        return prompt, 0
    if request.endpoint in NO_COMPLETION_ENDPOINTS:
        return prompt, 0
    completion = limit if isinstance(limit, int) and limit > 0 else DEFAULT_COMPLETION_ESTIMATE
    return prompt, completion


class Reservation:
    """What was reserved for one request, to settle afterwards.

    :ivar tokens: per token-rate key (``gk:<key>:tpm``, ``team:<team>:tpm``...), the tokens taken.
    :ivar budgets: per budget key, its period and the USD reserved.
    """

    __slots__ = ("budgets", "request_id", "tokens")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.tokens: dict[str, int] = {}
        self.budgets: dict[str, tuple[Any, float]] = {}


def serving_plans(rt: Runtime, plan: AliasPlan) -> tuple[AliasPlan, ...]:
    """``plan`` and the plans of its fallbacks (every alias that may serve a request for it)."""
    plans = [plan]
    for alias in (*plan.fallbacks, *plan.context_window_fallbacks):
        fallback = rt.plan(alias)
        if fallback is not None and fallback not in plans:
            plans.append(fallback)
    return tuple(plans)


def check_priced(rt: Runtime, plan: AliasPlan, endpoint: str = "chat") -> None:
    """A key with a budget may only be served by deployments whose cost is known: when no
    candidate of ``plan`` (or of its fallbacks) has a ``price`` that charges for ``endpoint``'s
    work (:func:`~truckllm._internal.units.covers`: images, seconds, characters...), refuse with
    403 ``cost_unknown``. (Unpriced candidates of a priced alias are skipped by the pipeline for
    such keys.)"""
    for serving in serving_plans(rt, plan):
        if any(covers(c.deployment.price, endpoint) for c in serving.candidates):
            return
    what = "has no price" if endpoint in TOKEN_ENDPOINTS else f"has no price for the {endpoint} endpoint"
    raise GatewayError(
        403,
        f"The model '{plan.alias}' {what} (neither price: in the config nor the price book knows "
        "it), and this API key has a budget: a request whose cost cannot be counted is refused. "
        "Configure a price for its deployments.",
        type="invalid_request_error",
        code="cost_unknown",
        param="model",
    )


def _max_cost(
    plans: Sequence[AliasPlan], prompt: int, completion: int, units: Usage | None = None, tier: str = ""
) -> float:
    """The worst case over every priced candidate that may serve (fallbacks included)."""
    costs = [
        worst_cost(c.deployment.price, prompt, completion, units, tier)
        for plan in plans
        for c in plan.candidates
        if c.deployment.price is not None
    ]
    return max(costs, default=0.0)


async def admit(
    store: Any,
    key: GatewayKey | None,
    plans: Sequence[AliasPlan],
    estimate: tuple[int, int],
    request_id: str,
    *,
    levels: Sequence[Level] | None = None,
    alerts: AlertSink | None = None,
    thresholds: Sequence[float] = (),
    units: Usage | None = None,
    tier: str = "",
) -> Reservation | None:
    """Check every level's limits and budgets in one store admission; raise 429 when one is over;
    return what to settle later.

    :param estimate: the request's (prompt, completion) tokens, from :func:`estimate_tokens`.
    :param levels: the levels that apply (:func:`~truckllm._internal.governance.levels`); by
        default the gateway key's alone.
    :param alerts: told of every budget threshold crossed (``gateway.alerts.emit``).
    :param thresholds: the budget fractions that alert (``alerts.thresholds``).
    :param units: the most units of work the request may use besides tokens (images, seconds...:
        :func:`~truckllm._internal.units.request_units`), reserved at their rates.
    :param tier: the size and quality its images are asked at (``images`` rates).
    """
    if levels is None:
        levels = [key_level(key)] if key is not None else []
    if not any(level.limited for level in levels):
        return None
    prompt, completion = estimate
    reservation = Reservation(request_id)
    rates: list[RateCheck] = []
    budgets: list[BudgetCheck] = []
    owners: dict[str, tuple[Level, BudgetConfig | None]] = {}
    worst: float | None = None
    for level in levels:
        if level.rpm is not None:
            rates.append(RateCheck(key=f"{level.prefix}:rpm", rate=level.rpm))
            owners[f"{level.prefix}:rpm"] = (level, None)
        if level.tpm is not None:
            name = f"{level.prefix}:tpm"
            taken = reservation.tokens[name] = min(prompt + completion, level.tpm)
            rates.append(RateCheck(key=name, rate=level.tpm, cost=taken))
            owners[name] = (level, None)
        for budget, name in level.budget_keys():
            if worst is None:
                worst = _max_cost(plans, prompt, completion, units, tier)
            reservation.budgets[name] = (budget.period, worst)
            budgets.append(BudgetCheck(key=name, limit=budget.usd, period=budget.period, amount=worst))
            owners[name] = (level, budget)
    try:
        decision: Decision = await store.admit(
            Admission(request_id=request_id, rates=tuple(rates), budgets=tuple(budgets))
        )
    except Exception as exc:  # a store plugin's failure must not take requests down
        logger.bind(plugin="store").error("store admit failed; admitting: {}", exc)
        return None
    if decision.allowed:
        if alerts is not None and budgets and thresholds and not decision.degraded:
            budget_alerts(decision, budgets, owners, thresholds, alerts)
        return reservation
    if decision.degraded and decision.kind == "budget":
        raise GatewayError(
            503,
            "Spend limits cannot be checked right now (the shared store is unreachable); retry shortly.",
            type="api_error",
            code="store_unavailable",
            headers={"retry-after": "1"},
        )
    level, denied = owners.get(decision.denied_by or "", (levels[0], None))
    if decision.kind == "budget" and alerts is not None and thresholds and denied is not None:
        # refused by a budget: it is used up (every threshold reached, 100% included)
        refused = [b for b in budgets if b.key == decision.denied_by]
        budget_alerts(
            Decision(allowed=False, remaining={b.key: 0.0 for b in refused}),
            refused,
            owners,
            thresholds,
            alerts,
        )
    if decision.kind == "budget":
        limit = denied.usd if denied is not None else 0
        period = denied.period if denied is not None else "period"
        raise GatewayError(
            429,
            f"{level.title} has used its budget of ${usd(limit)} for this {period}.",
            type="insufficient_quota",
            code="budget_exceeded",
        )
    retry = max(1, math.ceil(decision.retry_after or 1))
    what = "tokens" if decision.denied_by and decision.denied_by.endswith(":tpm") else "requests"
    raise GatewayError(
        429,
        f"Rate limit reached for {level.title[4:]} ({what} per minute). Please try again in {retry}s.",
        type="rate_limit_error" if what == "requests" else "tokens",
        code="rate_limit_exceeded",
        headers={"retry-after": str(retry)},
    )


def charge_only(request_id: str, levels: Sequence[Level]) -> Reservation | None:
    """What to settle for a request whose spend must be recorded whatever the limits say (a
    finished batch's usage, the gateway's own background calls): nothing is taken from any rate
    limit and nothing is checked or reserved (no store call, no refusal), and every budget of
    every level is settled with the request's real cost (the store adds a correction it holds no
    reservation of to the current window's spend). ``None`` when no level has a budget."""
    budgets = [(budget, name) for level in levels for budget, name in level.budget_keys()]
    if not budgets:
        return None
    reservation = Reservation(request_id)
    for budget, name in budgets:
        reservation.budgets[name] = (budget.period, 0.0)
    return reservation


def budget_alerts(
    decision: Decision,
    budgets: Sequence[BudgetCheck],
    owners: dict[str, tuple[Level, BudgetConfig | None]],
    thresholds: Sequence[float],
    alerts: AlertSink,
    now: float | None = None,
) -> None:
    """Tell ``alerts`` of each threshold a budget has reached after this admission (spent =
    limit minus what the store says remains; a budget that refused the request is used up); the
    alert sender dedupes per window."""
    at = time.time() if now is None else now
    for check in budgets:
        remaining = decision.remaining.get(check.key)
        if remaining is None or check.limit <= 0:
            continue
        spent = max(check.limit - remaining, 0.0)
        fraction = spent / check.limit
        reached = [t for t in thresholds if fraction >= t]
        if not reached:
            continue
        level = owners[check.key][0]
        window = budget_window(check.period, at)
        end = window_end(check.period, at)
        every = max(1.0, (end - at) if end is not None else TOTAL_ALERT_EVERY)
        for threshold in reached:
            alerts(
                Alert(
                    id=f"budget:{level.kind}:{level.name}:{check.period}:{window}:{threshold:g}",
                    kind="budget",
                    subject=level.subject,
                    message=(
                        f"{level.title} has used {fraction:.0%} of its budget of ${usd(check.limit)} "
                        f"for this {check.period} ({window}): ${usd(round(spent, 6))}."
                    ),
                    at=at,
                    threshold=threshold,
                    period=window,
                    spent_usd=spent,
                    limit_usd=check.limit,
                ),
                every,
            )


def usd(amount: float) -> str:
    """``amount`` dollars in plain decimals, as many places as it needs and no trailing zeros:
    ``0.00006``, ``5``, ``12.5`` (never ``6e-05``)."""
    text = format(Decimal(repr(float(amount))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def settlement(reservation: Reservation, usage: Usage | None, cost_usd: float) -> Settlement:
    """The corrections once real usage is known, at every level (a failed request gives its
    reservation back)."""
    actual = usage.total_tokens if usage is not None else 0
    return Settlement(
        request_id=reservation.request_id,
        rate_adjust={name: actual - taken for name, taken in reservation.tokens.items()},
        budget_adjust={
            name: (period, cost_usd - reserved) for name, (period, reserved) in reservation.budgets.items()
        },
    )
