"""Google access tokens for Vertex AI, fetched and refreshed by google-auth off the request path.

One :class:`GoogleTokenSource` per provider key. The key's value says whose token it is:

- a service-account key (or an ``authorized_user`` file) as JSON, inline (``value: ${SA_JSON}``);
- the path of such a file (``value: /etc/truckllm/vertex-sa.json``);
- ``""`` (or no key at all): application default credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
  ``gcloud auth application-default login``, the metadata server of GCE, GKE and Cloud Run).

:meth:`GoogleTokenSource.refresh` runs google-auth's own refresh in a thread (scope
``cloud-platform``) and returns the token's expiry; :meth:`GoogleTokenSource.current` returns the
token, with no I/O. The token endpoint is reached through :class:`QuietTransport`, which sends
google-auth's requests with ``requests`` without google-auth's debug logging of requests and
responses (the signed assertion and the token would be in them). Errors name what failed, never
the key's value, the assertion or a token.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import google.auth
import google.auth.exceptions
import google.auth.transport
import google.oauth2.credentials
import requests
from google.oauth2 import service_account

__all__ = ["SCOPES", "CredentialError", "GoogleTokenSource", "QuietTransport", "load_credentials"]

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
"""The OAuth scope Vertex AI calls need."""

TOKEN_TIMEOUT = 30.0
"""Seconds allowed for one call to the token endpoint."""


class CredentialError(Exception):
    """A key's credentials could not be loaded or refreshed (the message holds no secret)."""


class GoogleCredentials(Protocol):
    """What this module uses of a ``google.auth.credentials.Credentials``."""

    token: str | None
    expiry: datetime | None

    def refresh(self, request: google.auth.transport.Request) -> None:
        """Fetch a new token (blocking I/O)."""


class _Answer(google.auth.transport.Response):
    """A ``requests`` response as google-auth reads it."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class QuietTransport(google.auth.transport.Request):
    """google-auth's HTTP transport over one ``requests.Session``, logging nothing.

    (google-auth's own ``transport.requests.Request`` logs every request and response at debug
    level once the ``google`` logger is configured: the token endpoint's are credentials.)
    The session honours ``HTTPS_PROXY`` and ``REQUESTS_CA_BUNDLE`` as ``requests`` does.
    """

    def __init__(self, session: requests.Session | None = None) -> None:
        self.session = session or requests.Session()

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        try:
            response = self.session.request(
                method, url, data=body, headers=headers, timeout=timeout or TOKEN_TIMEOUT, **kwargs
            )
        except requests.RequestException as exc:
            # google-auth retries TransportError; the message names the failure, not the body
            raise google.auth.exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"{type(exc).__name__} calling {url}"
            ) from None
        return _Answer(response)

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


def load_credentials(value: str) -> GoogleCredentials:
    """google-auth credentials for a key value: JSON text, a JSON file's path, or ``""`` (ADC).

    A document must be a ``service_account`` key or an ``authorized_user`` file (what
    ``gcloud auth application-default login`` writes); other types (workload identity federation,
    impersonation) are loaded by application default credentials: leave the value empty and set
    ``GOOGLE_APPLICATION_CREDENTIALS``. Blocking (reads files; ADC may probe the metadata
    server): call it in a thread.

    :raises CredentialError: naming the problem, never quoting the value.
    """
    text = value.strip()
    try:
        if not text:
            credentials, _ = google.auth.default(scopes=SCOPES)
            return cast(GoogleCredentials, credentials)
        if text[0] in "{[":  # JSON text (a path never starts so)
            try:
                info = json.loads(text)
            except ValueError:
                raise CredentialError("the key is not valid JSON (expected a service-account key)") from None
        else:
            if not os.path.isfile(text):
                raise CredentialError(
                    "the key is neither JSON nor the path of a readable file (a service-account key)"
                )
            try:
                with open(text, encoding="utf-8") as file:
                    info = json.load(file)
            except (OSError, ValueError):
                raise CredentialError("the key file could not be read as JSON") from None
        return _from_info(info)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise CredentialError(f"google-auth could not load the credentials: {_first_line(exc)}") from None
    except (ValueError, KeyError, TypeError) as exc:  # a document of the right type with bad fields
        raise CredentialError(f"the credentials document is not usable ({type(exc).__name__})") from None


def _from_info(info: object) -> GoogleCredentials:
    if not isinstance(info, dict):
        raise CredentialError("the key's JSON is not an object (expected a service-account key)")
    kind = info.get("type")
    if kind == "service_account":
        return cast(
            GoogleCredentials,
            service_account.Credentials.from_service_account_info(info, scopes=SCOPES),  # type: ignore[no-untyped-call]
        )
    if kind == "authorized_user":
        return cast(
            GoogleCredentials,
            google.oauth2.credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES),  # type: ignore[no-untyped-call]
        )
    shown = kind if isinstance(kind, str) and kind.isidentifier() and len(kind) <= 40 else "unknown"
    raise CredentialError(
        f"credentials of type {shown!r} are not taken as a key value: use a service_account key, or "
        "leave the value empty and point GOOGLE_APPLICATION_CREDENTIALS at the file"
    )


def _first_line(exc: BaseException) -> str:
    """google-auth's own explanation, one line of at most 200 characters (it quotes no secret)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:200]


def _unix(expiry: datetime | None) -> float:
    """google-auth's expiry (a naive UTC datetime, or ``None``: never) as a unix time."""
    if expiry is None:
        return math.inf
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    return expiry.timestamp()


class GoogleTokenSource:
    """A :class:`truckllm.kit.credentials.CredentialSource` of Google OAuth access tokens.

    :param value: the key's value (JSON, a path, or ``""`` for application default credentials).
    :param loader: makes the credentials from ``value`` (injectable for tests).
    :param transport: the HTTP transport google-auth refreshes through (default: a
        :class:`QuietTransport` of its own, closed by :meth:`close`).
    """

    def __init__(
        self,
        value: str,
        *,
        loader: Callable[[str], GoogleCredentials] = load_credentials,
        transport: QuietTransport | None = None,
    ) -> None:
        self._value = value
        self._loader = loader
        self._transport = transport or QuietTransport()
        self._credentials: GoogleCredentials | None = None
        self._token = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>)"

    def _refresh_blocking(self) -> float:
        if self._credentials is None:
            self._credentials = self._loader(self._value)
        credentials = self._credentials
        try:
            credentials.refresh(self._transport)
        except google.auth.exceptions.RefreshError as exc:
            raise CredentialError(f"the token endpoint refused: {_refresh_reason(exc)}") from None
        except google.auth.exceptions.TransportError as exc:
            raise CredentialError(f"the token endpoint could not be reached: {_first_line(exc)}") from None
        except google.auth.exceptions.GoogleAuthError as exc:
            raise CredentialError(f"google-auth failed ({type(exc).__name__})") from None
        token = credentials.token
        if not isinstance(token, str) or not token:
            raise CredentialError("google-auth returned no access token")
        self._token = token
        return _unix(credentials.expiry)

    async def refresh(self) -> float:
        """Fetch a new access token (google-auth, in a thread); return its expiry as a unix time."""
        return await asyncio.to_thread(self._refresh_blocking)

    def current(self) -> str:
        """The latest access token (``""`` before the first successful refresh). No I/O."""
        return self._token

    async def close(self) -> None:
        """Forget the token and close the transport's connections."""
        self._token = ""
        await asyncio.to_thread(self._transport.close)


def _refresh_reason(exc: google.auth.exceptions.RefreshError) -> str:
    """The OAuth error of a refused refresh (``invalid_grant: Invalid JWT Signature.``).

    google-auth's message is the token endpoint's error code and description; the response it
    quotes is an error answer, which holds no token.
    """
    first = exc.args[0] if exc.args else exc
    return _first_line(first if isinstance(first, BaseException) else Exception(str(first)))
