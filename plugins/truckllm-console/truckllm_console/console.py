"""The console's shared machinery: the view it reads through, its templates, and the small steps
every page takes (one admin call, a rendered page, a redirect after a change, the CSRF check).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from truckllm.kit.web import CSRF_FIELD, AdminAnswer, admin_identity
from truckllm_console import fmt

__all__ = ["AdminView", "Console", "Fetched", "Sessions", "make_environment"]


class Sessions(Protocol):
    """What the console uses of ``GatewayView.sessions`` (:class:`truckllm.kit.web.AdminSessions`)."""

    async def sign_in(self, request: Request, response: Response, token: str) -> bool:
        """Sign in with ``token``; set the session cookie on ``response``."""

    async def sign_out(self, request: Request, response: Response) -> None:
        """End the request's session; clear its cookie on ``response``."""

    def csrf_token(self, request: Request) -> str:
        """The CSRF token of the request's session ("" without one)."""

    async def signed_in(self, request: Request) -> bool:
        """Whether the request carries a signed-in session's cookie."""


class AdminView(Protocol):
    """What the console uses of :class:`truckllm.kit.view.GatewayView`."""

    @property
    def sessions(self) -> Sessions:
        """Admin sign-in."""

    async def admin(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: object = None,
    ) -> AdminAnswer:
        """Call the admin API in process."""


@dataclass(frozen=True)
class Fetched:
    """One admin call's outcome as a page uses it: the body, or a readable error.

    :ivar answer: what the admin API answered.
    :ivar error: a sentence for the page when it did not answer 2xx, else ``None``.
    :ivar code: the error's ``code`` (``no_request_log``, ``not_found``...), when it gave one.
    """

    answer: AdminAnswer
    error: str | None
    code: str | None

    @property
    def body(self) -> Any:
        """The decoded JSON body."""
        return self.answer.body


def _error_of(answer: AdminAnswer) -> tuple[str | None, str | None]:
    """A readable sentence and the error code of a non-2xx answer."""
    if answer.ok:
        return None, None
    code = None
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        raw = body["error"].get("code")
        code = str(raw) if raw is not None else None
    message = answer.error
    if message is None and isinstance(body, dict) and isinstance(body.get("problems"), list):
        message = "; ".join(str(p.get("message", p)) for p in body["problems"] if isinstance(p, dict))
    return f"The admin API answered {answer.status}: {message or 'no details'}", code


def make_environment() -> Environment:
    """The console's Jinja2 environment: its packaged templates, autoescaped."""
    templates = resources.files("truckllm_console") / "templates"
    env = Environment(
        loader=FileSystemLoader(str(templates)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt.FILTERS)
    return env


class Console:
    """The pages' shared state: the gateway's view, the templates, the prefix, the wall clock."""

    def __init__(self, view: AdminView, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self.view = view
        self.prefix = prefix
        self.clock = clock
        self.env = make_environment()

    def url(self, path: str) -> str:
        """``path`` (relative to the console, ``/requests``) as an absolute path."""
        return self.prefix + path

    async def fetch(
        self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: object = None
    ) -> Fetched:
        """One admin call; a failure becomes a readable error, never an exception."""
        try:
            answer = await self.view.admin(method, path, query=query, body=body)
        except Exception as exc:  # the page says so instead of a 500
            answer = AdminAnswer(status=500, body={"error": {"message": type(exc).__name__}})
        error, code = _error_of(answer)
        return Fetched(answer=answer, error=error, code=code)

    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """A page (or an htmx fragment) rendered with the layout's context."""
        page = self.env.get_template(template).render(
            prefix=self.prefix,
            path=request.url.path,
            csrf_field=CSRF_FIELD,
            csrf=self.view.sessions.csrf_token(request),
            signed_in=admin_identity(request.scope) is not None,
            **context,
        )
        return HTMLResponse(page, status_code=status_code)

    def redirect(self, path: str, query: Mapping[str, str] | None = None) -> RedirectResponse:
        """A 303 to ``path`` under the console (Post/Redirect/Get)."""
        target = self.url(path) + ("?" + urlencode(dict(query)) if query else "")
        return RedirectResponse(target, status_code=303)

    async def form(self, request: Request) -> dict[str, str] | None:
        """A POSTed form's text fields, or ``None`` when a cookie-admitted request's CSRF token is
        missing or wrong (the kernel checks it first; checked again here in depth)."""
        data = await request.form()
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        if admin_identity(request.scope) == "token":
            return fields
        expected = self.view.sessions.csrf_token(request)
        given = fields.get(CSRF_FIELD, "")
        if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
            return None
        return fields

    def forbidden(self, request: Request) -> HTMLResponse:
        """The page of a form refused for its CSRF token."""
        return self.render(
            request,
            "message.html",
            status_code=403,
            title="Refused",
            message="This form's security token is missing or out of date: reload the page and try again.",
        )
