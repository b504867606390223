"""Secrets encrypted at rest: ``enc:v1:<kid>:<binding>:<nonce>:<ciphertext>``.

AES-256-GCM (``cryptography``) with a random 12-byte nonce per value, under a 32-byte master key
from ``TRUCKLLM_MASTER_KEY`` (base64 or hex). ``kid`` (the first 8 hex digits of the key's
SHA-256) says which master key sealed a value, so that rotation works: older keys listed in
``TRUCKLLM_OLD_MASTER_KEYS`` (comma-separated) still open what they sealed, and
``truckllm rotate-key`` re-seals a config under the current one. ``binding`` (optional, e.g.
``openai/oa-main``) is authenticated data: a value sealed for one key cannot be moved to another
place in the config. Plaintext lives only in memory, as :class:`~truckllm.kit.options.Secret`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["PREFIX", "CryptoError", "Keyring", "seal", "unseal"]

PREFIX = "enc:v1:"
_ENVELOPE = re.compile(r"enc:v1:([0-9a-f]{8}):([A-Za-z0-9_\-=]*):([A-Za-z0-9_\-=]+):([A-Za-z0-9_\-=]+)")


class CryptoError(Exception):
    """A value cannot be sealed or opened (the message never contains a secret)."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_master_key(text: str) -> bytes:
    """32 bytes from base64 (standard or URL-safe) or 64 hex digits."""
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(
            text + "=" * (-len(text) % 4),
            altchars=b"-_" if "-" in text or "_" in text else None,
            validate=True,
        )
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise CryptoError("a master key is 32 bytes, given as base64 or 64 hex digits")
    return raw


def key_id(key: bytes) -> str:
    """The id of a master key: 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


class Keyring:
    """The current master key and older ones still accepted for opening."""

    def __init__(self, current: bytes | None, older: tuple[bytes, ...] = ()) -> None:
        self.current = current
        self.keys = {key_id(k): k for k in (*older, *((current,) if current else ()))}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Keyring:
        """From ``TRUCKLLM_MASTER_KEY`` and ``TRUCKLLM_OLD_MASTER_KEYS``."""
        env = os.environ if env is None else env
        current = env.get("TRUCKLLM_MASTER_KEY")
        older = [k for k in (env.get("TRUCKLLM_OLD_MASTER_KEYS") or "").split(",") if k.strip()]
        return cls(parse_master_key(current) if current else None, tuple(parse_master_key(k) for k in older))


def seal(plaintext: str, keyring: Keyring, binding: str = "") -> str:
    """Encrypt ``plaintext`` under the current master key, bound to ``binding``."""
    if keyring.current is None:
        raise CryptoError("TRUCKLLM_MASTER_KEY is not set")
    nonce = os.urandom(12)
    aad = b"truckllm:" + binding.encode()
    ciphertext = AESGCM(keyring.current).encrypt(nonce, plaintext.encode(), aad)
    return f"{PREFIX}{key_id(keyring.current)}:{_b64e(binding.encode())}:{_b64e(nonce)}:{_b64e(ciphertext)}"


def unseal(envelope: str, keyring: Keyring, where: str = "") -> str:
    """Decrypt an ``enc:v1:`` value found at ``where`` (its binding, when it has one, must match)."""
    match = _ENVELOPE.fullmatch(envelope.strip())
    if match is None:
        raise CryptoError("malformed enc:v1 value")
    kid, binding_b64, nonce_b64, ct_b64 = match.groups()
    key = keyring.keys.get(kid)
    if key is None:
        raise CryptoError(
            f"sealed with master key {kid}, which is not in TRUCKLLM_MASTER_KEY / TRUCKLLM_OLD_MASTER_KEYS"
        )
    binding = _b64d(binding_b64).decode("utf-8", "replace")
    if binding and where and binding != where:
        raise CryptoError(f"sealed for {binding!r}, found at {where!r}")
    try:
        plain = AESGCM(key).decrypt(_b64d(nonce_b64), _b64d(ct_b64), b"truckllm:" + binding.encode())
    except (InvalidTag, ValueError, binascii.Error):
        raise CryptoError("cannot decrypt (corrupted value or wrong master key)") from None
    return plain.decode()


def reseal_text(text: str, old: Keyring, new: Keyring) -> tuple[str, int]:
    """``text`` with every ``enc:v1:`` value re-sealed under ``new``'s current key; and how many."""
    count = 0

    def repl(match: re.Match[str]) -> str:
        nonlocal count
        binding = _b64d(match.group(2)).decode("utf-8", "replace")
        plain = unseal(match.group(0), old)
        count += 1
        return seal(plain, new, binding)

    return _ENVELOPE.sub(repl, text), count
