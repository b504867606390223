"""What each deployment is charged and where its price came from: one list of rows for
``truckllm prices`` and ``GET /admin/v1/models``."""

from __future__ import annotations

from typing import Any

from truckllm._internal.pricebook import Pricing
from truckllm._internal.runtime import AliasPlan, Runtime

__all__ = ["direct_row", "plan_rows", "price_rows"]


def _row(
    alias: str, index: int, provider: str, provider_type: str, model: str, pricing: Pricing
) -> dict[str, Any]:
    return {
        "alias": alias,
        "deployment": f"{alias}#{index}",
        "provider": provider,
        "provider_type": provider_type,
        "model": model,
        **pricing.describe(),
    }


def plan_rows(rt: Runtime, plan: AliasPlan) -> list[dict[str, Any]]:
    """One row per deployment of ``plan``: alias, deployment, provider, its type, upstream model,
    price (USD per million tokens of each kind), where it came from and the book's limits."""
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for cand in plan.candidates:
        dep = cand.deployment
        if dep.index in seen or dep.index >= len(plan.pricing):
            continue
        seen.add(dep.index)
        rows.append(
            _row(plan.alias, dep.index, dep.provider, cand.provider.type, dep.model, plan.pricing[dep.index])
        )
    return rows


def direct_row(rt: Runtime, name: str) -> dict[str, Any] | None:
    """The row ``provider/model`` would be charged by, whether or not a key may reach it (``None``
    when ``name`` names no configured provider)."""
    provider, sep, model = name.partition("/")
    if not sep or not model or provider not in rt.providers:
        return None
    return _row(name, 0, provider, rt.providers[provider].type, model, rt.direct_pricing(provider, model))


def _matches(row: dict[str, Any], model: str) -> bool:
    return model in (row["alias"], row["model"], f"{row['provider']}/{row['model']}")


def price_rows(rt: Runtime, model: str | None = None) -> list[dict[str, Any]]:
    """Every alias deployment's row (those whose alias, upstream model or ``provider/model`` is
    ``model``, when given); ``model`` as ``provider/model`` that no alias serves gets the row of
    its direct price."""
    rows = [row for plan in rt.aliases.values() for row in plan_rows(rt, plan)]
    if model is None:
        return rows
    chosen = [row for row in rows if _matches(row, model)]
    if not chosen:
        direct = direct_row(rt, model)
        if direct is not None:
            chosen.append(direct)
    return chosen
