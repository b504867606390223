"""The credential of each ``type: azure`` key: an API key, or Entra ID tokens through azure-identity.

- :class:`ApiKeySource`: ``auth: api-key``; the key's value, which never expires.
- :class:`EntraSource`: ``auth: entra``; an access token for the provider's scope, fetched by an
  azure-identity credential in a worker thread (``refresh()``) and handed out as it is
  (``current()``, sent as ``Authorization: Bearer``).
- :func:`read_login`: what an ``entra`` key's value asks for (client credentials, a managed
  identity, or azure-identity's default chain); :func:`identity_credential` builds it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Literal, Protocol

import msgspec
from azure.core.credentials import AccessToken

__all__ = [
    "ApiKeySource",
    "CredentialFactory",
    "EntraLogin",
    "EntraSource",
    "TokenCredential",
    "identity_credential",
    "read_login",
]


class TokenCredential(Protocol):
    """What :class:`EntraSource` needs of an azure-identity credential."""

    def get_token(self, *scopes: str) -> AccessToken:
        """A token for ``scopes`` (blocking I/O)."""
        ...

    def close(self) -> None:
        """Release the credential's transport."""
        ...


class EntraLogin(msgspec.Struct, frozen=True, kw_only=True):
    """How an ``entra`` key gets its tokens.

    :ivar kind: ``client_secret`` (a service principal), ``managed_identity`` (system-assigned,
        or user-assigned when ``client_id`` is given), or ``default`` (azure-identity's
        ``DefaultAzureCredential``: environment, workload identity, managed identity...).
    """

    kind: Literal["client_secret", "managed_identity", "default"]
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    authority: str | None = None


class _LoginFields(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    authority: str | None = None


CredentialFactory = Callable[[EntraLogin], TokenCredential]
"""Builds the token credential of an ``entra`` key (tests inject a fake one)."""


def read_login(value: str) -> EntraLogin:
    """What an ``entra`` key's ``value`` asks for.

    ``""`` or ``managed-identity``: the system-assigned managed identity; ``default``:
    ``DefaultAzureCredential``; a JSON object with ``tenant_id``, ``client_id`` and
    ``client_secret`` (and optionally ``authority``): client credentials; a JSON object with
    ``client_id`` alone: that user-assigned managed identity.

    :raises ValueError: naming what is wrong (never quoting the value: it may hold a secret).
    """
    text = value.strip()
    if text in ("", "managed-identity"):
        return EntraLogin(kind="managed_identity")
    if text == "default":
        return EntraLogin(kind="default")
    try:
        fields = msgspec.json.decode(text, type=_LoginFields)
    except msgspec.ValidationError as exc:
        raise ValueError(f"an entra key's JSON value is not valid: {exc}") from None
    except msgspec.DecodeError:
        raise ValueError(
            "an entra key's value is managed-identity, default, or a JSON object "
            "(tenant_id, client_id, client_secret)"
        ) from None
    if fields.client_secret is None and fields.tenant_id is None and fields.authority is None:
        if fields.client_id is None:
            return EntraLogin(kind="managed_identity")
        return EntraLogin(kind="managed_identity", client_id=fields.client_id)
    missing = [name for name in ("tenant_id", "client_id", "client_secret") if not getattr(fields, name)]
    if missing:
        raise ValueError(f"an entra key with client credentials lacks {', '.join(missing)}")
    return EntraLogin(
        kind="client_secret",
        tenant_id=fields.tenant_id,
        client_id=fields.client_id,
        client_secret=fields.client_secret,
        authority=fields.authority,
    )


def identity_credential(login: EntraLogin) -> TokenCredential:
    """The azure-identity credential for ``login`` (imported here: only ``entra`` keys need it)."""
    from azure import identity

    if login.kind == "client_secret":
        assert login.tenant_id and login.client_id and login.client_secret  # read_login checked
        if login.authority:
            return identity.ClientSecretCredential(
                login.tenant_id, login.client_id, login.client_secret, authority=login.authority
            )
        return identity.ClientSecretCredential(login.tenant_id, login.client_id, login.client_secret)
    if login.kind == "managed_identity":
        if login.client_id:
            return identity.ManagedIdentityCredential(client_id=login.client_id)
        return identity.ManagedIdentityCredential()
    return identity.DefaultAzureCredential(exclude_interactive_browser_credential=True)


class ApiKeySource:
    """An ``api-key`` key: its value, sent as it is, never refreshed."""

    def __init__(self, value: str) -> None:
        self._value = value

    async def refresh(self) -> float:
        """Nothing to fetch: the key never expires."""
        return math.inf

    def current(self) -> str:
        """The key."""
        return self._value

    async def close(self) -> None:
        """Nothing to release."""


class EntraSource:
    """An ``entra`` key: Entra ID access tokens for ``scope``, fetched off the request path.

    :param login: how tokens are got (:func:`read_login`).
    :param scope: the scope asked for (``https://cognitiveservices.azure.com/.default``).
    :param factory: builds the token credential (default :func:`identity_credential`), once, on
        the first refresh.
    """

    def __init__(
        self, login: EntraLogin, scope: str, factory: CredentialFactory = identity_credential
    ) -> None:
        self._login = login
        self._scope = scope
        self._factory = factory
        self._credential: TokenCredential | None = None
        self._token = ""

    async def refresh(self) -> float:
        """Get a fresh token in a worker thread; return when it expires (unix time).

        :raises RuntimeError: naming the failure's type and the login kind, never a secret.
        """
        try:
            token = await asyncio.to_thread(self._fetch)
        except Exception as exc:
            raise RuntimeError(
                f"Entra ID token ({self._login.kind}) could not be fetched: {self._why(exc)}"
            ) from None
        if not isinstance(token.token, str) or not token.token:
            raise RuntimeError(f"Entra ID token ({self._login.kind}): the credential gave an empty token")
        self._token = token.token
        return float(token.expires_on)

    def _why(self, exc: Exception) -> str:
        """The failure's type and first line, the client secret masked, at most 300 characters."""
        text = (str(exc).strip().splitlines() or [""])[0]
        if self._login.client_secret:
            text = text.replace(self._login.client_secret, "[secret]")
        return f"{type(exc).__name__}: {text}"[:300]

    def _fetch(self) -> AccessToken:
        if self._credential is None:
            self._credential = self._factory(self._login)
        return self._credential.get_token(self._scope)

    def current(self) -> str:
        """The last token fetched (``""`` before the first refresh)."""
        return self._token

    async def close(self) -> None:
        """Close the credential's transport."""
        credential, self._credential = self._credential, None
        if credential is not None:
            await asyncio.to_thread(credential.close)
