"""``GET /admin/v1/models``: every alias, its deployments, and what each is charged."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.admin.responses import JSON
from truckllm._internal.gateway import Gateway
from truckllm._internal.price_report import plan_rows

__all__ = ["models"]


async def models(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/models``: per alias, its strategy, fallbacks and deployments, each with its
    price (USD per million tokens), where the price came from (``config``, ``book`` with the
    book's date and source, or ``none``) and the book's context window and max output tokens;
    ``direct``: the ``provider/model`` plans served so far; ``unpriced``: the deployments that
    have no price (their cost counts as $0; keys with a budget are not served by them)."""
    rt = gateway.runtime
    aliases = []
    unpriced = []
    for alias, plan in rt.aliases.items():
        rows = plan_rows(rt, plan)
        unpriced += [row["deployment"] for row in rows if row["price"] is None]
        aliases.append(
            {
                "alias": alias,
                "strategy": plan.strategy,
                "fallbacks": list(plan.fallbacks),
                "context_window_fallbacks": list(plan.context_window_fallbacks),
                "deployments": rows,
            }
        )
    direct = [row for plan in list(rt.direct.values()) for row in plan_rows(rt, plan)]
    return JSON({"models": aliases, "direct": direct, "unpriced": unpriced})
