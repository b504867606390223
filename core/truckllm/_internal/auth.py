"""Gateway keys: stored as SHA-256 digests, looked up by digest, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from truckllm._internal.config.schema import GatewayKeyConfig
from truckllm.errors import GatewayError

if TYPE_CHECKING:
    from truckllm._internal.config.schema import Config

__all__ = ["GatewayKey", "KeyRing", "hash_key", "narrow"]


def _allows(name: str, allowed: frozenset[str]) -> bool:
    if name in allowed:
        return True
    provider, sep, _ = name.partition("/")
    return bool(sep) and f"{provider}/*" in allowed


def narrow(*lists: frozenset[str] | None) -> frozenset[str] | None:
    """The models every one of ``lists`` allows (``None``: all; entries are aliases,
    ``provider/model`` or ``provider/*``)."""
    result: frozenset[str] | None = None
    for allowed in lists:
        if allowed is None:
            continue
        if result is None:
            result = allowed
            continue
        result = frozenset(
            {n for n in result if _allows(n, allowed)} | {n for n in allowed if _allows(n, result)}
        )
    return result


def hash_key(value: str) -> str:
    """``sha256:<hex>`` of a key value."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _parse_expiry(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        day = date.fromisoformat(text)
        when = datetime(day.year, day.month, day.day, 23, 59, 59)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class GatewayKey:
    """A gateway key as the kernel holds it: its name, digest and permissions.

    :ivar models: the models it may use (``None``: all); once :meth:`KeyRing.scoped`, narrowed by
        its team's and organisation's.
    :ivar team: its team (``keys[].team``), once scoped; ``org`` that team's organisation.
    :ivar metadata: once scoped, the default metadata of its requests: its organisation's
        ``metadata``, then its team's over it (empty without a team).
    """

    name: str
    digest: str
    models: frozenset[str] | None
    rpm: int | None
    tpm: int | None
    expires: datetime | None
    config: GatewayKeyConfig
    team: str | None = None
    org: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class KeyRing:
    """Every gateway key of a config, by digest."""

    def __init__(self, keys: tuple[GatewayKeyConfig, ...] | None) -> None:
        self.open = keys is None
        self.by_digest: dict[str, GatewayKey] = {}
        self._by_name: dict[str, GatewayKey] = {}
        self._scoped: dict[str, GatewayKey] = {}
        for key in keys or ():
            digest = key.hash if key.hash is not None else hash_key(key.value.reveal() if key.value else "")
            built = self.by_digest[digest] = GatewayKey(
                name=key.name,
                digest=digest,
                models=frozenset(key.models) if key.models is not None else None,
                rpm=key.rpm,
                tpm=key.tpm,
                expires=_parse_expiry(key.expires),
                config=key,
            )
            self._by_name.setdefault(key.name, built)  # names are unique in a valid config

    def scoped(self, key: GatewayKey, config: Config) -> GatewayKey:
        """``key`` with its team, organisation and their merged ``metadata`` set and its ``models``
        narrowed by theirs (made once per key for this ring, i.e. per config version; ``config``
        is the ring's)."""
        done = self._scoped.get(key.digest)
        if done is not None:
            return done
        team = config.teams.get(key.config.team) if key.config.team is not None else None
        org_name = team.org if team is not None else None
        org = config.orgs.get(org_name) if org_name is not None else None
        models = narrow(
            key.models,
            frozenset(team.models) if team is not None and team.models is not None else None,
            frozenset(org.models) if org is not None and org.models is not None else None,
        )
        metadata = {
            **(org.metadata if org is not None else {}),
            **(team.metadata if team is not None else {}),
        }
        done = replace(
            key,
            models=models,
            team=key.config.team if team is not None else None,
            org=org_name if org is not None else None,
            metadata=MappingProxyType(metadata),
        )
        self._scoped[key.digest] = done
        return done

    def named(self, name: str, config: Config) -> GatewayKey | None:
        """The key called ``name``, :meth:`scoped` (``None`` when the ring has none by that name)."""
        key = self._by_name.get(name)
        return self.scoped(key, config) if key is not None else None

    def authenticate(self, token: str | None) -> GatewayKey | None:
        """The key for a presented token; ``None`` when the ring is open (no ``keys:``).

        :raises GatewayError: 401 for a missing, unknown or expired key.
        """
        if self.open:
            return None
        if not token:
            raise GatewayError(
                401,
                "You didn't provide an API key. Pass it as 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
            )
        digest = hash_key(token)
        key = self.by_digest.get(digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            raise GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")
        if key.expires is not None and datetime.now(UTC) >= key.expires:
            raise GatewayError(401, "This API key has expired.", code="invalid_api_key")
        return key


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
