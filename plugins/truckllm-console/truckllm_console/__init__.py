"""TruckLLM's web console at ``/console``: a plugin mounting server-rendered pages.

Every figure it shows and every change it makes goes through the documented admin API
(``GatewayView.admin``), so a script can do the same; the kernel admits a page only with the
admin token or a signed-in admin session and checks the CSRF token of every form.
"""

from __future__ import annotations

from collections.abc import Callable

from truckllm import hookimpl
from truckllm.kit.web import Mount
from truckllm_console.app import PREFIX, console_routes

__all__ = ["PREFIX", "TRUCKLLM_API", "console_routes", "register_mounts"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


@hookimpl
def register_mounts(register: Callable[[Mount], None]) -> None:
    """Mount the console at :data:`PREFIX`; its sign-in page and static files are public."""
    register(
        Mount(
            name="console",
            prefix=PREFIX,
            routes=console_routes,
            public=("/login", "/static/"),
            login="/login",
        )
    )
