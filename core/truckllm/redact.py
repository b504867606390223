"""Redaction for everything the gateway shows: admin answers, error messages, logs.

:class:`~truckllm.secrets.Secret` values render as ``<secret>`` by themselves; this module also
covers what is not typed as a secret: option dicts (``password``, ``token``...), header values
that carry credentials, and provider error messages that echo part of a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from truckllm.secrets import REDACTED, Secret, enc_hook

__all__ = ["redact_text", "redacted_config"]

_SENSITIVE = re.compile(
    r"(pass(word)?|secret|token|api[-_]?key|authorization|credential|hash|^value$|^key$)", re.I
)
_KEY_PATTERNS = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{20,}|tllm_[A-Za-z0-9_\-]{8,}|"
    r"(?i:bearer)\s+[A-Za-z0-9._\-~+/=]{8,})"
)


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                REDACTED
                if _SENSITIVE.search(str(k)) and v not in (None, "") and not isinstance(v, dict | list)
                else _walk(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_walk(v) for v in node]
    return node


def redacted_config(config: Any) -> Any:
    """The config as JSON-able builtins with every secret replaced by ``<secret>``."""
    return _walk(msgspec.to_builtins(config, enc_hook=enc_hook))


def redact_text(text: str, secrets: Iterable[Secret | str] = ()) -> str:
    """``text`` with known secret values and key-looking strings replaced by ``<secret>``."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= 4 and value in text:
            text = text.replace(value, REDACTED)
    return _KEY_PATTERNS.sub(REDACTED, text)
