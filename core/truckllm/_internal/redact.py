"""Redaction for everything the gateway shows: admin answers, error messages, logs.

:class:`~truckllm.kit.options.Secret` values render as ``<secret>`` by themselves, and the admin config
view hides every value the schema or a plugin's ``Options`` types as secret. Only what carries no
type falls back to names: option maps of plugins without ``Options`` (``password``, ``token``...)
and header values that carry credentials; provider error messages that echo part of a key are
scrubbed by pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import msgspec

from truckllm._internal.config.schema import Config
from truckllm._internal.config.typed import map_typed
from truckllm._internal.secrets import REDACTED, Secret, enc_hook

__all__ = ["redact_text", "redacted_config"]

_SENSITIVE = re.compile(
    r"(pass(word)?|secret|token|api[-_]?key|authorization|credential|hash|^value$|^key$)", re.I
)
_KEY_PATTERNS = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{20,}|tllm_[A-Za-z0-9_\-]{8,}|"
    r"ya29\.[A-Za-z0-9_\-.]{8,}|(?:AKIA|ASIA)[A-Z0-9]{16}|"  # Google access tokens, AWS key ids
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

    Secrets are known by their type: fields typed :class:`~truckllm.kit.options.Secret` (or marked
    secret, :data:`~truckllm._internal.config.typed.SECRET`) in the schema and in the plugins' ``Options``
    structs. ``option_types`` maps ``store``, ``logger:<name>`` and ``provider:<name>`` to the
    plugin's ``Options`` struct. Only maps without a type, a provider's ``headers`` and the
    options of a plugin that declares no ``Options``, fall back to the name rule (``password``,
    ``token``, ``authorization``...). URL credentials and query strings are masked everywhere.
    """
    types = option_types or {}
    tree = msgspec.to_builtins(config, enc_hook=enc_hook)
    tree = map_typed(tree, Config, secret=_hidden, free=lambda v: v)
    for name, provider in (tree.get("providers") or {}).items():
        if isinstance(provider, dict):
            provider["headers"] = _walk(provider.get("headers") or {})
            provider["options"] = _options(provider.get("options") or {}, types.get(f"provider:{name}"))
    store = dict(tree.get("store") or {})
    store_type = store.pop("type", None)
    tree["store"] = {"type": store_type, **_options(store, types.get("store"))}
    entries = []
    for entry in tree.get("loggers") or []:
        if isinstance(entry, dict):
            entry = {name: _options(opts or {}, types.get(f"logger:{name}")) for name, opts in entry.items()}
        entries.append(entry)
    tree["loggers"] = entries
    return _urls(tree)


def _hidden(value: Any) -> Any:
    return REDACTED if value not in (None, "") else value


def _options(options: Any, options_type: Any) -> Any:
    """A plugin's options: walked with its ``Options`` type, or with the name rule when it has none."""
    if options_type is None:
        return _walk(options)
    return map_typed(options, options_type, secret=_hidden, free=_walk)


def redact_text(text: str, secrets: Iterable[Secret | str] = ()) -> str:
    """``text`` with known secret values and key-looking strings replaced by ``<secret>``."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= 4 and value in text:
            text = text.replace(value, REDACTED)
    return _KEY_PATTERNS.sub(REDACTED, text)
