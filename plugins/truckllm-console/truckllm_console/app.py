"""The console's routes: every page under one router, static files, and the security headers."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Mount, Router
from starlette.staticfiles import StaticFiles

from truckllm_console.console import AdminView, Console
from truckllm_console.headers import SecurityHeaders
from truckllm_console.pages import auth, keys, overview, providers, requests, settings, teams, usage

if TYPE_CHECKING:
    from truckllm.kit.view import GatewayView

__all__ = ["PREFIX", "build_routes", "console_routes"]

PREFIX = "/console"
"""Where the console lives."""


def build_routes(
    view: AdminView, prefix: str = PREFIX, clock: Callable[[], float] = time.time
) -> Sequence[BaseRoute]:
    """The console's routes relative to ``prefix``, for any view with ``admin`` and ``sessions``."""
    console = Console(view, prefix, clock)
    static = StaticFiles(directory=str(resources.files("truckllm_console") / "static"))
    pages: list[BaseRoute] = [
        *auth.routes(console),
        *overview.routes(console),
        *providers.routes(console),
        *requests.routes(console),
        *keys.routes(console),
        *usage.routes(console),
        *teams.routes(console),
        *settings.routes(console),
        Mount("/static", app=static, name="static"),
    ]
    return [Mount("", app=SecurityHeaders(Router(routes=pages)))]


def console_routes(view: GatewayView) -> Sequence[BaseRoute]:
    """``Mount.routes``: the console's routes for the running gateway."""
    return build_routes(view)
