"""Redaction for everything the gateway shows: admin answers, error messages, logs.

:class:`~truckllm.secrets.Secret` values render as ``<secret>`` by themselves; this module also
covers what is not typed as a secret: option dicts (``password``, ``token``...), header values
that carry credentials, and provider error messages that echo part of a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

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


def _mask_url(text: str) -> str:
    """Credentials and query values of a URL replaced (``https://u:p@h/x?token=1`` → ``https://h/x?token=<secret>``)."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "redis", "rediss") or not parts.netloc:
        return text
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = "&".join(f"{k}={REDACTED}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _urls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _urls(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_urls(v) for v in node]
    if isinstance(node, str) and "://" in node:
        return _mask_url(node)
    return node


def redacted_config(config: Any, option_types: Mapping[str, Any] | None = None) -> Any:
    """The config as JSON-able builtins with every secret replaced by ``<secret>``.

    ``option_types`` maps ``store`` and ``logger:<name>`` to the plugin's ``Options`` struct:
    those sections are decoded with it so that fields typed as secrets render as ``<secret>``
    whatever their name. Keys that look sensitive and URL credentials or query strings are
    masked too.
    """
    tree = msgspec.to_builtins(config, enc_hook=enc_hook)
    for name, options_type in (option_types or {}).items():
        tree = _typed_section(tree, name, options_type)
    return _urls(_walk(tree))


def _typed_section(tree: dict[str, Any], name: str, options_type: Any) -> dict[str, Any]:
    def render(options: dict[str, Any]) -> Any:
        try:
            decoded = msgspec.convert(options, type=options_type, strict=False, dec_hook=_secret_hook)
        except (msgspec.ValidationError, TypeError, ValueError):
            return {k: REDACTED for k in options}  # cannot tell: hide it all
        return msgspec.to_builtins(decoded, enc_hook=enc_hook)

    if name == "store":
        store = dict(tree.get("store") or {})
        store_type = store.pop("type", None)
        tree["store"] = {"type": store_type, **render(store)}
    elif name.startswith("logger:"):
        logger_name = name.split(":", 1)[1]
        entries = []
        for entry in tree.get("loggers") or []:
            if isinstance(entry, dict) and logger_name in entry:
                entry = {logger_name: render(entry[logger_name] or {})}
            entries.append(entry)
        tree["loggers"] = entries
    return tree


def _secret_hook(type_: type, obj: Any) -> Any:
    if type_ is Secret:
        return Secret(str(obj))
    if isinstance(obj, int | float | str):
        try:
            return type_(obj)
        except Exception:
            return obj
    raise NotImplementedError(type_)


def redact_text(text: str, secrets: Iterable[Secret | str] = ()) -> str:
    """``text`` with known secret values and key-looking strings replaced by ``<secret>``."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= 4 and value in text:
            text = text.replace(value, REDACTED)
    return _KEY_PATTERNS.sub(REDACTED, text)
