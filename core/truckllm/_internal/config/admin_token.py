"""Whether an admin token is good enough to guard the admin API on a reachable address.

The admin API can change the config, mint gateway keys and read usage. A token that is empty,
a well-known placeholder (the shipped ``change-me``...), short or repetitive is refused at start-up
and on reload unless the gateway listens on loopback only; there it is allowed with a loud warning.
No message ever shows the token.
"""

from __future__ import annotations

from typing import Final

from truckllm._internal.secrets import Secret

__all__ = ["MIN_LENGTH", "WELL_KNOWN", "is_loopback", "weak_admin_token"]

MIN_LENGTH: Final = 16
"""The shortest admin token accepted on a non-loopback address."""

WELL_KNOWN: Final = frozenset(
    {
        "admin",
        "administrator",
        "change-me",
        "change_me",
        "changeit",
        "changeme",
        "default",
        "letmein",
        "password",
        "root",
        "secret",
        "test",
        "token",
    }
)
"""Placeholders and guesses, refused whatever their case."""

_PLACEHOLDERS: Final = ("change-me", "change_me", "changeme", "changeit", "replace-me", "password")
"""Refused inside a longer token too (``change-me-in-production``)."""
_MIN_DISTINCT = 6


def weak_admin_token(token: Secret | None) -> str | None:
    """Why ``token`` is too weak to expose, or ``None`` (also when the admin API is off: no token)."""
    if token is None:
        return None
    value = token.reveal()
    folded = value.strip().lower()
    if not folded:
        return "the admin token is empty (the admin API is off)"
    if folded in WELL_KNOWN or any(word in folded for word in _PLACEHOLDERS):
        return "the admin token is a well-known placeholder"
    if len(value) < MIN_LENGTH:
        return f"the admin token is shorter than {MIN_LENGTH} characters"
    if len(set(value)) < _MIN_DISTINCT:
        return f"the admin token has fewer than {_MIN_DISTINCT} distinct characters"
    return None


def is_loopback(listen: str) -> bool:
    """Whether ``host:port`` binds a loopback address only (``127.x``, ``::1``, ``localhost``)."""
    if listen.startswith("fd://") or listen.startswith("unix:"):
        return False
    host = listen.rsplit(":", 1)[0].strip("[]").lower() if ":" in listen else listen.lower()
    return host in ("localhost", "::1") or host.startswith("127.")
