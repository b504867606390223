"""Routes a plugin mounts under its own prefix (``register_mounts``), behind the admin sign-in
or, for an API served to clients (``Mount(auth="gateway_key")``), behind a gateway key.

A :class:`Mount` names a prefix (``/console``) and a factory of starlette routes relative to it.
The kernel serves them in front of the dialects' routes and admits a request to them only when
it carries the admin token (``Authorization: Bearer``) or a signed-in admin session's cookie
(:class:`truckllm._internal.sessions.AdminSessions`); a route listed in :attr:`Mount.public`
needs neither. A request admitted by its cookie that could change something (any method but
GET, HEAD and OPTIONS) must also carry the session's CSRF token, as the form field
:data:`CSRF_FIELD` or the header :data:`CSRF_HEADER`; the kernel checks it before the plugin runs.

A mount with ``auth="gateway_key"`` is for clients instead (an MCP endpoint): every request needs
a gateway key (``Authorization: Bearer``, the keys of ``/v1/chat/completions``), checked like on
the request path (401 when missing, unknown or expired; 503 while draining), and the plugin reads
who called with :func:`gateway_caller`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from truckllm._internal.view import GatewayView

__all__ = [
    "ADMIN_SCOPE_KEY",
    "CALLER_SCOPE_KEY",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "RESERVED_PREFIXES",
    "SESSION_COOKIE",
    "AdminAnswer",
    "GatewayCaller",
    "Mount",
    "admin_identity",
    "check_prefix",
    "gateway_caller",
]

CSRF_FIELD = "csrf_token"
"""The form field carrying the session's CSRF token on a form a signed-in admin submits."""

CSRF_HEADER = "x-csrf-token"
"""The header carrying it on a script's (``fetch``/htmx) request."""

SESSION_COOKIE = "truckllm_admin"
"""The admin session cookie's name."""

ADMIN_SCOPE_KEY = "truckllm.admin"
"""The ASGI scope entry the kernel sets on an admitted request: ``token`` or ``session``."""

CALLER_SCOPE_KEY = "truckllm.caller"
"""The ASGI scope entry holding the :class:`GatewayCaller` of a ``gateway_key`` mount's request."""

RESERVED_PREFIXES = ("/v1", "/v1beta", "/admin", "/metrics", "/health")
"""Prefixes no mount may take (or fall under)."""

_PREFIX = re.compile(r"^(/[a-z0-9][a-z0-9._-]*)+$")


@dataclass(frozen=True)
class Mount:
    """What a plugin gives ``register_mounts``.

    :ivar name: the mount's name (``console``); two mounts of one name stop start-up.
    :ivar prefix: where its routes live (``/console``): lower-case path segments, not under
        :data:`RESERVED_PREFIXES`, not overlapping another mount's.
    :ivar routes: called once per start with the gateway's view; returns starlette routes whose
        paths are relative to ``prefix`` (``Route("/", ...)`` answers ``/console/``).
    :ivar public: paths relative to ``prefix`` served to anyone (a sign-in page, static files):
        exact, or every path under it when the entry ends in ``/``.
    :ivar login: a path relative to ``prefix``: a signed-out browser's ``GET`` of a page (it
        accepts ``text/html``) is redirected there with ``?next=<the page>``; others get a 401.
    :ivar auth: who may call its routes: ``admin`` (the admin token or a signed-in session, the
        default) or ``gateway_key`` (any valid gateway key, as on ``/v1``; ``public``, ``login``
        and the CSRF check do not apply; :func:`gateway_caller` tells which key called).
    """

    name: str
    prefix: str
    routes: Callable[[GatewayView], Sequence[BaseRoute]]
    public: tuple[str, ...] = ()
    login: str | None = None
    auth: Literal["admin", "gateway_key"] = "admin"

    def is_public(self, relative: str) -> bool:
        """Whether ``relative`` (a path under the prefix) needs no sign-in."""
        for entry in self.public:
            if relative == entry or (entry.endswith("/") and relative.startswith(entry)):
                return True
        return False


class AdminAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What an admin endpoint answered an in-process call (``GatewayView.admin``).

    :ivar status: the HTTP status.
    :ivar body: the decoded JSON body (``None`` when empty or not JSON).
    :ivar headers: the response headers (lower-case names).
    """

    status: int
    body: Any = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300

    @property
    def error(self) -> str | None:
        """The error message of an OpenAI-shaped error answer."""
        if self.ok or not isinstance(self.body, dict):
            return None
        error = self.body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        return None


@dataclass(frozen=True)
class GatewayCaller:
    """Who called a ``gateway_key`` mount: the gateway key's name and what it belongs to, never its
    value or digest.

    :ivar name: the gateway key's name (``keys[].name``); ``None`` on a gateway without ``keys:``
        (open, loopback only).
    :ivar team: its team (``keys[].team``), when that team is configured.
    :ivar org: that team's organisation.
    :ivar tags: the key's own tags (``keys[].tags``).
    :ivar rpm: the key's own requests-per-minute limit (``None``: none).
    """

    name: str | None
    team: str | None = None
    org: str | None = None
    tags: tuple[str, ...] = ()
    rpm: int | None = None


def gateway_caller(scope: Any) -> GatewayCaller | None:
    """The caller the kernel admitted to a ``gateway_key`` mount (``None`` on any other route)."""
    value = scope.get(CALLER_SCOPE_KEY)
    return value if isinstance(value, GatewayCaller) else None


def admin_identity(scope: Any) -> Literal["token", "session"] | None:
    """How the kernel admitted this request: by the admin ``token``, a ``session`` cookie, or
    ``None`` (a public route, not signed in)."""
    value = scope.get(ADMIN_SCOPE_KEY)
    return value if value in ("token", "session") else None


def check_prefix(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a mount's prefix, or ``None`` when it can."""
    if not _PREFIX.match(prefix):
        return "a prefix is one or more lower-case path segments: /console, /ops/panel"
    for reserved in RESERVED_PREFIXES:
        if prefix == reserved or prefix.startswith(reserved + "/") or prefix.startswith(reserved + "."):
            return f"{reserved} belongs to the kernel"
    return None
