"""``GET /admin/v1/requests``, ``/admin/v1/requests/{request_id}`` and
``/admin/v1/requests/stats``: the request log, from the first running logger that keeps one
(:class:`~truckllm._internal.request_log.RequestLog`, e.g. ``truckllm-logger-sql``)."""

from __future__ import annotations

import msgspec
from loguru import logger
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.admin.params import when
from truckllm._internal.admin.responses import JSON
from truckllm._internal.gateway import Gateway
from truckllm._internal.request_log import MAX_PAGE, LogQuery, RequestLog, SeriesQuery, status_filter
from truckllm._internal.view import request_log_of
from truckllm.errors import GatewayError

__all__ = ["MAX_BUCKETS", "MAX_FILTER_CHARS", "get_request", "search_requests", "stats"]

MAX_FILTER_CHARS = 256
"""The longest value a text filter may have."""

MAX_BUCKETS = 10_000
"""The most buckets one stats answer holds ((until - since) / step)."""

_STEPS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}
_TEXT_FILTERS = {
    "key": "gateway_key",
    "alias": "alias",
    "provider": "provider",
    "model": "model",
    "dialect": "dialect",
    "endpoint": "endpoint",
    "request_id": "request_id",
    "team": "team",
    "user": "user",
    "tag": "tag",
}


def _text(params: QueryParams, name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_FILTER_CHARS or "\x00" in value:
        raise GatewayError(400, f"{name} is too long or holds a NUL character", param=name)
    return value


def _int(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise GatewayError(400, f"{name} must be a whole number from {low} to {high}", param=name)
    return int(value)


def _log(gateway: Gateway) -> RequestLog:
    found = request_log_of(gateway.loggers)
    if found is None:
        raise GatewayError(
            404,
            "No request log: enable a logger that keeps one (loggers: [{sql: {}}], truckllm-logger-sql).",
            code="no_request_log",
        )
    return found


def _failed(exc: Exception) -> GatewayError:
    logger.bind(plugin="logger").opt(exception=exc).error("the request log failed a query")
    return GatewayError(
        503, "The request log is unavailable.", type="server_error", headers={"retry-after": "1"}
    )


def _range(params: QueryParams) -> tuple[float | None, float | None]:
    since, until = when(params, "since"), when(params, "until")
    if since is not None and until is not None and until < since:
        raise GatewayError(400, "until is before since", param="until")
    return since, until


async def search_requests(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/requests``: one page, newest first (``next_cursor`` for the older one)."""
    params = request.query_params
    since, until = _range(params)
    status = _text(params, "status")
    if status is not None:
        try:
            status_filter(status)
        except ValueError as exc:
            raise GatewayError(400, str(exc), param="status") from None
    cursor = _text(params, "cursor")
    query = LogQuery(
        since=since,
        until=until,
        status=status,
        limit=_int(params, "limit", 50, 1, MAX_PAGE),
        cursor=cursor,
        **{field: _text(params, name) for name, field in _TEXT_FILTERS.items()},
    )
    log = _log(gateway)
    try:
        page = await log.search(query)
    except ValueError:
        raise GatewayError(400, "cursor is not one this log gave", param="cursor") from None
    except Exception as exc:
        raise _failed(exc) from None
    data = [msgspec.to_builtins(r) for r in page.records]
    return JSON({"object": "list", "data": data, "next_cursor": page.next_cursor})


async def get_request(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/requests/{request_id}``: one record, with its bodies when recorded."""
    request_id = request.path_params["request_id"]
    if len(request_id) > MAX_FILTER_CHARS:
        raise GatewayError(400, "request_id is too long", param="request_id")
    log = _log(gateway)
    try:
        record = await log.get(request_id)
    except Exception as exc:
        raise _failed(exc) from None
    if record is None:
        raise GatewayError(404, f"No request {request_id!r} in the log.", code="not_found")
    return JSON(msgspec.to_builtins(record))


async def stats(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/requests/stats``: figures per bucket from the log's pre-aggregated tables."""
    params = request.query_params
    step = params.get("step") or "minute"
    if step not in _STEPS:
        raise GatewayError(400, "step must be minute, hour or day", param="step")
    since, until = _range(params)
    now = gateway.wall_clock()
    until = now if until is None else until
    since = until - 3600.0 if since is None else since
    if (until - since) / _STEPS[step] > MAX_BUCKETS:
        raise GatewayError(400, f"too many {step}s: at most {MAX_BUCKETS} buckets", param="step")
    query = SeriesQuery(
        since=since,
        until=until,
        step=step,  # type: ignore[arg-type]
        gateway_key=_text(params, "key"),
        alias=_text(params, "alias"),
        provider=_text(params, "provider"),
        model=_text(params, "model"),
        top=_int(params, "top", 5, 0, 100),
    )
    log = _log(gateway)
    try:
        series = await log.series(query)
    except Exception as exc:
        raise _failed(exc) from None
    return JSON(msgspec.to_builtins(series))
