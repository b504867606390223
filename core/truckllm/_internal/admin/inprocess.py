"""Calling the admin API in this process (``GatewayView.admin``): the same handlers, the same
answers as over HTTP, without the admin token (the caller holds the admin's authority: a page the
kernel admitted as the admin's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Message

from truckllm._internal.admin.responses import error_response
from truckllm._internal.mounts import AdminAnswer
from truckllm.errors import GatewayError

if TYPE_CHECKING:
    from truckllm._internal.admin import AdminRoute
    from truckllm._internal.gateway import Gateway

__all__ = ["call_admin"]


def _match(
    routes: tuple[AdminRoute, ...], method: str, path: str
) -> tuple[AdminRoute, dict[str, Any]] | None:
    probe = {"type": "http", "path": path, "root_path": "", "method": method}
    for row in routes:
        if row.method != method:
            continue
        match, child = Route(row.path, endpoint=_never, methods=[row.method]).matches(probe)
        if match is Match.FULL:
            return row, dict(child.get("path_params", {}))
    return None


async def _never(request: Request) -> None:  # pragma: no cover - only matched
    return None


async def call_admin(
    gateway: Gateway,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    body: object = None,
    client: str = "in-process",
) -> AdminAnswer:
    """Answer ``method path`` as the admin API would (see ``GatewayView.admin``)."""
    from truckllm._internal.admin import ROUTES

    method = method.upper()
    found = _match(ROUTES, method, path)
    if found is None:
        return AdminAnswer(status=404, body={"error": {"message": f"No admin endpoint {method} {path}."}})
    row, params = found
    if body is None:
        payload = b""
    elif isinstance(body, str):
        payload = body.encode()
    else:
        payload = msgspec.json.encode(body)
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        return {"type": "http.disconnect"}

    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": urlencode(dict(query or {})).encode(),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ],
        "client": (client, 0),
        "server": ("in-process", 0),
        "path_params": params,
    }
    try:
        response = await row.handler(gateway, Request(scope, receive))
    except GatewayError as exc:
        response = error_response(exc)
    raw = bytes(response.body)
    decoded: Any = None
    if raw:
        try:
            decoded = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            decoded = raw.decode("utf-8", "replace")
    headers = {k.lower(): v for k, v in response.headers.items()}
    return AdminAnswer(status=response.status_code, body=decoded, headers=headers)
