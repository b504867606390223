"""One scrubber for every string that comes from upstream, applied before any cut.

An upstream's error can echo the key it was sent (in its message, its ``param``, its ``code``, a
nested field...), whole or in part. Every :class:`~truckllm.types.UpstreamError` a plugin
produces passes :func:`scrub_error` in the kernel before it reaches a client, a log line, a
record or a metric: every string field is scrubbed of key-looking strings and of every fragment
of at least :data:`MIN_FRAGMENT` characters of a configured secret, and only then cut to its
bound, so that a secret straddling the cut cannot leak its first characters.
"""

from __future__ import annotations

from collections.abc import Iterable

from truckllm._internal.redact import redact_text
from truckllm._internal.secrets import REDACTED, Secret
from truckllm.types import UpstreamError

__all__ = ["MAX_FIELD", "MAX_MESSAGE", "MIN_FRAGMENT", "Scrubber", "config_secrets", "cut", "scrub_error"]

MIN_FRAGMENT = 8
"""A run of this many characters of a configured secret is treated as the secret."""
MAX_MESSAGE = 1000
"""An upstream error message is cut to this many characters (after scrubbing)."""
MAX_FIELD = 128
"""``type``, ``code`` and ``param`` from upstream are cut to this many characters (after scrubbing)."""


class Scrubber:
    """Removes configured secrets, and any fragment of them of ``MIN_FRAGMENT`` or more characters,
    and key-looking strings (``sk-...``, ``AIza...``, ``Bearer ...``) from text.

    Built once per config version from every secret the config holds; :meth:`text` costs one
    set lookup per character of the text.
    """

    __slots__ = ("_grams", "_short", "longest")

    def __init__(self, secrets: Iterable[Secret | str]) -> None:
        grams: set[str] = set()
        short: set[str] = set()
        self.longest = 0
        for secret in secrets:
            value = secret.reveal() if isinstance(secret, Secret) else secret
            if not value:
                continue
            self.longest = max(self.longest, len(value))
            if len(value) < MIN_FRAGMENT:
                if len(value) >= 4:
                    short.add(value)
                continue
            for i in range(len(value) - MIN_FRAGMENT + 1):
                grams.add(value[i : i + MIN_FRAGMENT])
        self._grams = frozenset(grams)
        self._short = tuple(sorted(short, key=len, reverse=True))

    @classmethod
    def union(cls, first: Scrubber, second: Scrubber) -> Scrubber:
        """One scrubber removing what either removes (in one pass, before any cut)."""
        merged = cls(())
        merged._grams = first._grams | second._grams
        merged._short = tuple(sorted({*first._short, *second._short}, key=len, reverse=True))
        merged.longest = max(first.longest, second.longest)
        return merged

    def text(self, text: str) -> str:
        """``text`` with every secret fragment and key-looking string replaced by ``<secret>``."""
        if not text:
            return text
        grams = self._grams
        if grams and len(text) >= MIN_FRAGMENT:  # long secrets first: a short one may lie inside one
            text = self._fragments(text, grams)
        for value in self._short:
            if value in text:
                text = text.replace(value, REDACTED)
        return redact_text(text)

    @staticmethod
    def _fragments(text: str, grams: frozenset[str]) -> str:
        out: list[str] = []
        covered = 0  # text[:covered] is decided
        run_start = -1
        run_end = -1
        for i in range(len(text) - MIN_FRAGMENT + 1):
            if text[i : i + MIN_FRAGMENT] in grams:
                if run_start >= 0 and i <= run_end:
                    run_end = i + MIN_FRAGMENT
                else:
                    if run_start >= 0:
                        out.append(text[covered:run_start])
                        out.append(REDACTED)
                        covered = run_end
                    run_start, run_end = i, i + MIN_FRAGMENT
        if run_start < 0:
            return text
        out.append(text[covered:run_start])
        out.append(REDACTED)
        out.append(text[run_end:])
        return "".join(out)


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters (an ellipsis marks a cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub_error(error: UpstreamError, scrubber: Scrubber) -> UpstreamError:
    """``error`` with every string field scrubbed, then cut to its bound (changed in place).

    A field is first trimmed to its bound plus the longest secret (and a margin for key-looking
    strings): a secret that starts before the bound lies whole in what is scrubbed, and what
    starts after it is cut away; so a 64 MiB error body costs no more than a short one.
    """
    keep = scrubber.longest + 256
    error.message = _scrub_field(scrubber, error.message, MAX_MESSAGE, keep)
    error.type = _scrub_field(scrubber, error.type or "server_error", MAX_FIELD, keep)
    if error.code is not None:
        error.code = _scrub_field(scrubber, error.code, MAX_FIELD, keep)
    if error.param is not None:
        error.param = _scrub_field(scrubber, error.param, MAX_FIELD, keep)
    return error


def _scrub_field(scrubber: Scrubber, value: object, limit: int, keep: int) -> str:
    text = value if isinstance(value, str) else str(value)
    return cut(scrubber.text(text[: limit + keep]), limit)


def config_secrets(node: object) -> list[Secret | str]:
    """Every secret a config holds: each :class:`Secret` anywhere in it, and the values of
    sensitive-looking option names (``password``, ``token``...) in untyped option dicts."""
    found: list[Secret | str] = []
    _collect(node, found, sensitive=False)
    return found


_SENSITIVE_NAMES = ("password", "secret", "token", "api_key", "apikey", "credential")


def _collect(node: object, found: list[Secret | str], sensitive: bool) -> None:
    if isinstance(node, Secret):
        found.append(node)
    elif isinstance(node, str):
        if sensitive and len(node) >= 4 and not node.startswith("${"):
            found.append(node)
    elif isinstance(node, dict):
        for key, value in node.items():
            name = str(key).lower()
            _collect(value, found, sensitive or any(s in name for s in _SENSITIVE_NAMES))
    elif isinstance(node, list | tuple):
        for value in node:
            _collect(value, found, sensitive)
    elif hasattr(node, "__struct_fields__"):
        for name in node.__struct_fields__:
            _collect(getattr(node, name), found, sensitive=False)
