"""Gateway-key limits and budgets, checked through the store before a request goes upstream.

One :meth:`Store.admit` call per request (the only store call on the hot path): the key's rpm
and tpm (GCRA) and its spend budget, reserved from an estimate and settled with the real usage
once the request is finished.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from loguru import logger

from truckllm._internal.auth import GatewayKey
from truckllm._internal.pricebook import worst_cost
from truckllm._internal.runtime import AliasPlan, Runtime
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm._internal.store import Admission, BudgetCheck, Decision, RateCheck, Settlement
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest, Usage

__all__ = [
    "Reservation",
    "admit",
    "check_priced",
    "content_size",
    "estimate_tokens",
    "serving_plans",
    "settlement",
    "usd",
]

DEFAULT_COMPLETION_ESTIMATE = 1024


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
    limit = getattr(typed, "max_completion_tokens", None) or getattr(typed, "max_tokens", None)
    if request.endpoint == "embeddings":
        return prompt, 0
    completion = limit if isinstance(limit, int) and limit > 0 else DEFAULT_COMPLETION_ESTIMATE
    return prompt, completion


class Reservation:
    """What was reserved for one request, to settle afterwards."""

    __slots__ = ("budget_key", "budget_period", "request_id", "reserved_tokens", "reserved_usd", "tpm_key")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.tpm_key: str | None = None
        self.reserved_tokens = 0
        self.budget_key: str | None = None
        self.budget_period: Any = "month"
        self.reserved_usd = 0.0


def serving_plans(rt: Runtime, plan: AliasPlan) -> tuple[AliasPlan, ...]:
    """``plan`` and the plans of its fallbacks (every alias that may serve a request for it)."""
    plans = [plan]
    for alias in (*plan.fallbacks, *plan.context_window_fallbacks):
        fallback = rt.plan(alias)
        if fallback is not None and fallback not in plans:
            plans.append(fallback)
    return tuple(plans)


def check_priced(rt: Runtime, plan: AliasPlan) -> None:
    """A key with a budget may only be served by deployments whose cost is known: when no
    candidate of ``plan`` (or of its fallbacks) has a ``price``, refuse with 403 ``cost_unknown``.
    (Unpriced candidates of a priced alias are skipped by the pipeline for such keys.)"""
    for serving in serving_plans(rt, plan):
        if any(c.deployment.price is not None for c in serving.candidates):
            return
    raise GatewayError(
        403,
        f"The model '{plan.alias}' has no price (neither price: in the config nor the price book knows "
        "it), and this API key has a budget: a request whose cost cannot be counted is refused. "
        "Configure a price for its deployments.",
        type="invalid_request_error",
        code="cost_unknown",
        param="model",
    )


def _max_cost(plans: Sequence[AliasPlan], prompt: int, completion: int) -> float:
    """The worst case over every priced candidate that may serve (fallbacks included)."""
    costs = [
        worst_cost(c.deployment.price, prompt, completion)
        for plan in plans
        for c in plan.candidates
        if c.deployment.price is not None
    ]
    return max(costs, default=0.0)


async def admit(
    store: Any,
    key: GatewayKey,
    plans: Sequence[AliasPlan],
    estimate: tuple[int, int],
    request_id: str,
) -> Reservation | None:
    """Check the key's limits and budget; raise 429 when over; return what to settle later.

    :param estimate: the request's (prompt, completion) tokens, from :func:`estimate_tokens`.
    """
    config = key.config
    if config.rpm is None and config.tpm is None and config.budget is None:
        return None
    prompt, completion = estimate
    reservation = Reservation(request_id)
    rates: list[RateCheck] = []
    budgets: list[BudgetCheck] = []
    if config.rpm is not None:
        rates.append(RateCheck(key=f"gk:{key.name}:rpm", rate=config.rpm))
    if config.tpm is not None:
        reservation.tpm_key = f"gk:{key.name}:tpm"
        reservation.reserved_tokens = min(prompt + completion, config.tpm)
        rates.append(RateCheck(key=reservation.tpm_key, rate=config.tpm, cost=reservation.reserved_tokens))
    if config.budget is not None:
        reservation.budget_key = f"gk:{key.name}:budget"
        reservation.budget_period = config.budget.period
        reservation.reserved_usd = _max_cost(plans, prompt, completion)
        budgets.append(
            BudgetCheck(
                key=reservation.budget_key,
                limit=config.budget.usd,
                period=config.budget.period,
                amount=reservation.reserved_usd,
            )
        )
    try:
        decision: Decision = await store.admit(
            Admission(request_id=request_id, rates=tuple(rates), budgets=tuple(budgets))
        )
    except Exception as exc:  # a store plugin's failure must not take requests down
        logger.bind(plugin="store").error("store admit failed; admitting: {}", exc)
        return None
    if decision.allowed:
        return reservation
    if decision.degraded and decision.kind == "budget":
        raise GatewayError(
            503,
            "Spend limits cannot be checked right now (the shared store is unreachable); retry shortly.",
            type="api_error",
            code="store_unavailable",
            headers={"retry-after": "1"},
        )
    if decision.kind == "budget":
        raise GatewayError(
            429,
            f"The API key '{key.name}' has used its budget of "
            f"${usd(config.budget.usd if config.budget else 0)} "
            f"for this {config.budget.period if config.budget else 'period'}.",
            type="insufficient_quota",
            code="budget_exceeded",
        )
    retry = max(1, math.ceil(decision.retry_after or 1))
    what = "tokens" if decision.denied_by and decision.denied_by.endswith(":tpm") else "requests"
    raise GatewayError(
        429,
        f"Rate limit reached for API key '{key.name}' ({what} per minute). Please try again in {retry}s.",
        type="rate_limit_error" if what == "requests" else "tokens",
        code="rate_limit_exceeded",
        headers={"retry-after": str(retry)},
    )


def usd(amount: float) -> str:
    """``amount`` dollars in plain decimals, as many places as it needs and no trailing zeros:
    ``0.00006``, ``5``, ``12.5`` (never ``6e-05``)."""
    text = format(Decimal(repr(float(amount))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def settlement(reservation: Reservation, usage: Usage | None, cost_usd: float) -> Settlement:
    """The corrections once real usage is known (a failed request gives its reservation back)."""
    rate_adjust: dict[str, int] = {}
    budget_adjust: dict[str, Any] = {}
    if reservation.tpm_key is not None:
        actual = usage.total_tokens if usage is not None else 0
        rate_adjust[reservation.tpm_key] = actual - reservation.reserved_tokens
    if reservation.budget_key is not None:
        budget_adjust[reservation.budget_key] = (
            reservation.budget_period,
            cost_usd - reservation.reserved_usd,
        )
    return Settlement(request_id=reservation.request_id, rate_adjust=rate_adjust, budget_adjust=budget_adjust)
