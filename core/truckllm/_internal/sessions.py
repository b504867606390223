"""Admin sessions: the admin token exchanged for a signed cookie, for pages a browser opens.

A session cookie is ``v1.<expires>.<nonce>.<mac>``: the MAC is an HMAC-SHA256 under a key derived
from the admin token, so every worker and replica with the same token accepts it, and changing
the token signs every session out. Signing out revokes the nonce in the runtime store's state
(every process sees it when the store keeps state; else this process) until the cookie would have
expired. The CSRF token of a session is an HMAC of its nonce: no server-side state. Nothing here
logs or returns the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from truckllm._internal.dialect_state import backend_of
from truckllm._internal.mounts import SESSION_COOKIE

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from truckllm._internal.gateway import Gateway

__all__ = ["AdminSessions"]

_VERSION = "v1"
_REVOKED = "admin-session-revoked:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _cookie_of(scope: Any) -> str | None:
    """The session cookie's value in an ASGI scope's ``cookie`` header(s)."""
    for name, value in scope.get("headers", ()):
        if name != b"cookie":
            continue
        text: str = value.decode("latin-1")
        for part in text.split(";"):
            key, _, val = part.strip().partition("=")
            if key == SESSION_COOKIE and val:
                return val
    return None


class AdminSessions:
    """Sign admins in and out of pages mounted with ``register_mounts`` (``GatewayView.sessions``)."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    # --- keys and values -------------------------------------------------------------------------

    def _token(self) -> bytes | None:
        token = self._gateway.runtime.config.admin.token
        if token is None or not token.reveal():
            return None
        return token.reveal().encode()

    def _key(self) -> bytes | None:
        token = self._token()
        if token is None:
            return None
        return hmac.new(token, b"truckllm admin session key v1", hashlib.sha256).digest()

    @staticmethod
    def _mac(key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())

    def _parse(self, value: str | None) -> tuple[int, str] | None:
        """``(expires, nonce)`` of a well-signed, unexpired cookie value."""
        key = self._key()
        if key is None or value is None or len(value) > 256:
            return None
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
            return None
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(self._mac(key, payload), parts[3]):
            return None
        expires = int(parts[1])
        if expires <= time.time():
            return None
        return expires, parts[2]

    @property
    def ttl(self) -> float:
        """How long a session lasts (``admin.session_ttl``)."""
        return float(self._gateway.runtime.config.admin.session_ttl)

    def _state(self) -> Any:
        gw = self._gateway
        return backend_of(gw.store, gw.memory_state)

    # --- the API -----------------------------------------------------------------------------------

    def check_token(self, given: str) -> bool:
        """Whether ``given`` is the admin token (constant time; ``False`` while the admin API is off)."""
        token = self._token()
        return token is not None and hmac.compare_digest(given.encode(), token)

    async def sign_in(self, request: Request, response: Response, token: str) -> bool:
        """Check ``token`` against the admin token; when it is right, set a new session's cookie
        on ``response`` (HttpOnly, SameSite=Strict, Path=/, Secure when the request came over
        TLS or ``admin.secure_cookie`` is set) and return ``True``."""
        key = self._key()
        if key is None or not self.check_token(token):
            logger.warning("admin sign-in refused from {}", request.client.host if request.client else "?")
            return False
        expires = int(time.time() + self.ttl)
        payload = f"{_VERSION}.{expires}.{_b64(secrets.token_bytes(18))}"
        response.set_cookie(
            SESSION_COOKIE,
            f"{payload}.{self._mac(key, payload)}",
            max_age=int(self.ttl),
            path="/",
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )
        logger.info("admin signed in from {}", request.client.host if request.client else "?")
        return True

    async def sign_out(self, request: Request, response: Response) -> None:
        """End the request's session: revoke it everywhere the store reaches, clear the cookie."""
        parsed = self._parse(_cookie_of(request.scope))
        if parsed is not None:
            expires, nonce = parsed
            try:
                await self._state().put_state(_REVOKED + nonce, b"1", max(1.0, expires - time.time()))
            except Exception as exc:  # the cookie is cleared still; the store's failure is logged
                logger.bind(plugin="store").error("cannot revoke an admin session: {}", type(exc).__name__)
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=self._secure(request)
        )

    def _secure(self, request: Request) -> bool:
        """Whether the session cookie is ``Secure``: over TLS, or behind a TLS-terminating proxy
        the config names (``admin.secure_cookie``)."""
        return request.url.scheme == "https" or self._gateway.runtime.config.admin.secure_cookie

    async def session_of(self, scope: Any) -> str | None:
        """The nonce of the signed-in, unrevoked session whose cookie the request carries."""
        parsed = self._parse(_cookie_of(scope))
        if parsed is None:
            return None
        try:
            revoked = await self._state().get_state(_REVOKED + parsed[1])
        except Exception:
            return None  # cannot tell: fail closed
        return None if revoked is not None else parsed[1]

    async def signed_in(self, request: Request) -> bool:
        """Whether the request carries a signed-in session's cookie."""
        return await self.session_of(request.scope) is not None

    def csrf_for(self, nonce: str) -> str:
        """The CSRF token of the session ``nonce``."""
        key = self._key()
        return "" if key is None else self._mac(key, "csrf." + nonce)

    def csrf_token(self, request: Request) -> str:
        """The CSRF token to put in the forms of a page for this request's session ("" when the
        request carries no valid session cookie)."""
        parsed = self._parse(_cookie_of(request.scope))
        return "" if parsed is None else self.csrf_for(parsed[1])
