"""AWS credentials for Bedrock, fetched and refreshed off the request path.

:class:`BedrockCredentials` is the :class:`~truckllm.kit.credentials.CredentialSource` the kernel
keeps per ``(provider, key)``. Its ``current()`` is JSON (``{"access_key", "secret_key",
"token"}``) that :func:`decode_credential` reads back in ``transform_request``; with
``auth: api_key`` it is the Bedrock API key itself.

Where the credentials come from (the key's value):

- ``ACCESS_KEY_ID:SECRET`` or ``ACCESS_KEY_ID:SECRET:SESSION_TOKEN``: those, never expiring;
- empty (or a keyless provider entry): botocore's credential chain, as the AWS SDKs resolve it
  (environment, shared config and credentials files with ``options.profile``, web identity
  for pods, SSO, container and instance metadata). Temporary credentials are refreshed by
  botocore; :meth:`BedrockCredentials.refresh` runs the chain in a thread and returns their
  expiry so that the kernel comes back before it;
- with ``auth: api_key``: the Bedrock API key (empty: ``AWS_BEARER_TOKEN_BEDROCK``).
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable
from typing import Any

import msgspec

from truckllm.errors import CredentialError
from truckllm.types import Provider

from .options import DEFAULT_OPTIONS, Options

__all__ = [
    "AwsCredential",
    "BedrockCredentials",
    "CredentialResolver",
    "NoCredentials",
    "botocore_resolver",
    "decode_credential",
    "make_source",
]


class AwsCredential(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One set of AWS credentials, as ``current()`` hands it to ``transform_request``."""

    access_key: str
    secret_key: str
    token: str | None = None


class NoCredentials(CredentialError):
    """No usable credential (the message says where it looked, never a secret: the kernel logs it)."""


CredentialResolver = Callable[[], tuple[AwsCredential, float]]
"""Blocking: the current credentials and their expiry (unix time, ``math.inf``: never)."""

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(AwsCredential)


def static_credential(value: str) -> AwsCredential | None:
    """``ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]`` read, ``None`` when ``value`` is not that form."""
    parts = value.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1] or not parts[0].isalnum():
        return None
    return AwsCredential(parts[0], parts[1], parts[2] if len(parts) == 3 and parts[2] else None)


def decode_credential(api_key: str) -> AwsCredential | None:
    """The credentials in ``transform_request``'s ``api_key``: a source's JSON, or (when the
    kernel hands the key's value itself) ``ACCESS_KEY_ID:SECRET[:TOKEN]``; ``None`` otherwise."""
    if api_key.startswith("{"):
        try:
            return _DECODER.decode(api_key)
        except msgspec.DecodeError:
            return None
    return static_credential(api_key)


def botocore_resolver(profile: str | None) -> CredentialResolver:
    """A resolver running botocore's credential chain for ``profile`` (one session, reused, so
    that botocore refreshes temporary credentials itself)."""
    state: dict[str, Any] = {}

    def resolve() -> tuple[AwsCredential, float]:
        credentials = state.get("credentials")
        if credentials is None:
            import botocore.session
            from botocore.exceptions import BotoCoreError

            try:
                credentials = botocore.session.Session(profile=profile).get_credentials()
            except BotoCoreError as exc:  # its message may quote what it read: the type only
                raise NoCredentials(f"the AWS credential chain failed ({type(exc).__name__})") from None
            if credentials is None:
                where = f"profile {profile!r}" if profile else "the default chain"
                raise NoCredentials(f"no AWS credentials found ({where})")
            state["credentials"] = credentials
        try:
            frozen = credentials.get_frozen_credentials()
        except Exception as exc:  # a refresh of temporary credentials failed
            raise NoCredentials(f"refreshing the AWS credentials failed ({type(exc).__name__})") from None
        expiry = getattr(credentials, "_expiry_time", None)  # refreshable credentials only
        credential = AwsCredential(
            str(frozen.access_key or ""), str(frozen.secret_key or ""), frozen.token or None
        )
        return credential, float(expiry.timestamp()) if expiry is not None else math.inf

    return resolve


class BedrockCredentials:
    """One provider key's AWS credentials (or Bedrock API key), refreshed in the background.

    :param value: the key's configured value (see the module docstring).
    :param options: the provider's options (``auth``, ``profile``).
    :param resolver: where chain credentials come from (default: botocore's chain); tests
        inject their own.
    :param environ: the environment read for ``AWS_BEARER_TOKEN_BEDROCK``.
    """

    def __init__(
        self,
        value: str,
        options: Options,
        *,
        resolver: CredentialResolver | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self._value = value
        self._options = options
        self._resolver = resolver
        self._environ = environ
        self._current = ""

    async def refresh(self) -> float:
        """Resolve the credentials (the chain in a thread); returns their expiry."""
        if self._options.auth == "api_key":
            environ = os.environ if self._environ is None else self._environ
            token = self._value or environ.get("AWS_BEARER_TOKEN_BEDROCK", "")
            if not token:
                raise NoCredentials("auth: api_key needs a key value or AWS_BEARER_TOKEN_BEDROCK")
            self._current = token
            return math.inf
        if self._value:
            static = static_credential(self._value)
            if static is None:
                raise NoCredentials("the key is not ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]")
            self._current = _ENCODER.encode(static).decode()
            return math.inf
        resolver = self._resolver or botocore_resolver(self._options.profile)
        self._resolver = resolver
        credential, expiry = await asyncio.to_thread(resolver)
        if not credential.access_key or not credential.secret_key:
            raise NoCredentials("the AWS credential chain gave an incomplete credential")
        self._current = _ENCODER.encode(credential).decode()
        return expiry

    def current(self) -> str:
        """The credential JSON (or API key) of the last successful refresh; ``""`` before one."""
        return self._current

    async def close(self) -> None:
        """Nothing is held open (botocore's metadata clients close with their requests)."""
        self._current = ""


def make_source(provider: Provider, value: str) -> BedrockCredentials:
    """``ProviderSpec.credentials``: one source per (provider, key value)."""
    options = provider.options if isinstance(provider.options, Options) else DEFAULT_OPTIONS
    return BedrockCredentials(value, options)
