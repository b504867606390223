"""Pages and JSON endpoints a plugin mounts (``register_mounts``), behind the admin sign-in, or
APIs for clients behind a gateway key (``Mount(auth="gateway_key")``).

- :class:`Mount`: a plugin's prefix, its starlette routes, its public paths and sign-in page, and
  who may call it (``auth``).
- :class:`GatewayCaller`, :func:`gateway_caller`: the gateway key (name, team, organisation,
  tags; never its value) that called a ``gateway_key`` mount's route.
- :class:`AdminSessions`: sign an admin in with the admin token (an HttpOnly, SameSite=Strict
  cookie; Secure over TLS), sign out, and the CSRF token of a signed-in session
  (``GatewayView.sessions``).
- :class:`AdminAnswer`: what an admin endpoint answered an in-process call
  (``await GatewayView.admin("GET", "/admin/v1/providers")``), so that pages show exactly what
  the documented admin API gives scripts.
- :data:`CSRF_FIELD`, :data:`CSRF_HEADER`: where a signed-in form or script puts the CSRF token;
  :data:`SESSION_COOKIE`: the cookie's name; :func:`admin_identity`: how a request was admitted.
"""

from truckllm._internal.mounts import CSRF_FIELD as CSRF_FIELD
from truckllm._internal.mounts import CSRF_HEADER as CSRF_HEADER
from truckllm._internal.mounts import SESSION_COOKIE as SESSION_COOKIE
from truckllm._internal.mounts import AdminAnswer as AdminAnswer
from truckllm._internal.mounts import GatewayCaller as GatewayCaller
from truckllm._internal.mounts import Mount as Mount
from truckllm._internal.mounts import admin_identity as admin_identity
from truckllm._internal.mounts import gateway_caller as gateway_caller
from truckllm._internal.sessions import AdminSessions as AdminSessions

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AdminAnswer",
    "AdminSessions",
    "GatewayCaller",
    "Mount",
    "admin_identity",
    "gateway_caller",
]
