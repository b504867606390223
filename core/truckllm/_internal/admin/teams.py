"""``GET /admin/v1/teams``: each team and organisation with its limits, budgets, keys and spend."""

from __future__ import annotations

import os
import time
from typing import Any

from loguru import logger
from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.admin.responses import JSON
from truckllm._internal.config.schema import BudgetConfig, Config
from truckllm._internal.gateway import Gateway
from truckllm._internal.store import Admission, BudgetCheck, Decision, budget_window

__all__ = ["PROBE_LIMIT", "teams"]

PROBE_LIMIT = 1e9
"""The limit of the spend probes (amount 0): what remains of it is ``PROBE_LIMIT`` minus spend."""


def _budget_rows(prefix: str, budgets: tuple[BudgetConfig, ...], now: float) -> list[dict[str, Any]]:
    return [
        {
            "usd": b.usd,
            "period": b.period,
            "window": budget_window(b.period, now),
            "store_key": f"{prefix}:budget:{b.period}",
        }
        for b in budgets
    ]


def _rows(config: Config, now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    members: dict[str, list[str]] = {}
    for key in config.keys or ():
        if key.team is not None:
            members.setdefault(key.team, []).append(key.name)
    team_rows = [
        {
            "name": name,
            "org": team.org,
            "rpm": team.rpm,
            "tpm": team.tpm,
            "models": list(team.models) if team.models is not None else None,
            "metadata": dict(team.metadata),
            "keys": sorted(members.get(name, [])),
            "budgets": _budget_rows(f"team:{name}", team.budgets, now),
        }
        for name, team in sorted(config.teams.items())
    ]
    org_rows = [
        {
            "name": name,
            "rpm": org.rpm,
            "tpm": org.tpm,
            "models": list(org.models) if org.models is not None else None,
            "metadata": dict(org.metadata),
            "teams": sorted(t for t, team in config.teams.items() if team.org == name),
            "budgets": _budget_rows(f"org:{name}", org.budgets, now),
        }
        for name, org in sorted(config.orgs.items())
    ]
    return team_rows, org_rows


async def _spend(gateway: Gateway, rows: list[dict[str, Any]]) -> Decision | None:
    """Every budget's spend (reserved included) in one admission of 0-USD probes."""
    store = gateway.store
    checks = tuple(
        BudgetCheck(key=b["store_key"], limit=PROBE_LIMIT, period=b["period"], amount=0.0)
        for row in rows
        for b in row["budgets"]
    )
    if store is None or not checks:
        return None
    try:
        decision: Decision = await store.admit(
            Admission(request_id="admin:teams:" + os.urandom(8).hex(), budgets=checks)
        )
    except Exception as exc:  # the store failed: the page shows limits without spend
        logger.bind(plugin="store").warning("reading team budgets failed: {}", type(exc).__name__)
        return None
    return decision


async def teams(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/teams``: ``teams`` (name, org, rpm, tpm, models, metadata, keys, budgets)
    and ``orgs`` (name, rpm, tpm, models, metadata, teams, budgets); each budget with its
    ``usd``, ``period``, current ``window`` and ``spent_usd`` so far (reserved included; ``null``
    without a store or while it is unreachable)."""
    team_rows, org_rows = _rows(gateway.runtime.config, time.time())
    decision = await _spend(gateway, team_rows + org_rows)
    for row in team_rows + org_rows:
        for budget in row["budgets"]:
            name = budget.pop("store_key")
            remaining = (
                decision.remaining.get(name) if decision is not None and not decision.degraded else None
            )
            budget["spent_usd"] = (
                round(max(PROBE_LIMIT - remaining, 0.0), 9) if remaining is not None else None
            )
    return JSON({"teams": team_rows, "orgs": org_rows})
