"""A string type for secrets whose every rendering is ``<secret>``.

Every API key value the gateway holds is a :class:`Secret`. ``str``, ``repr``, f-strings,
``format``, JSON encoding (through :func:`enc_hook`), loguru records and tracebacks all show
``<secret>``; only :meth:`Secret.reveal` returns the value, and the kernel calls it at the one
place it builds an upstream request.
"""

from __future__ import annotations

import hmac
from typing import Any, Final

__all__ = ["REDACTED", "Secret", "enc_hook"]

REDACTED: Final = "<secret>"


class Secret:
    """An opaque secret string. Compares in constant time; never prints its value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: Any) -> None:  # immutable
        raise AttributeError("Secret is immutable")

    def reveal(self) -> str:
        """The plain value. Call only where the value leaves for its destination."""
        return str(object.__getattribute__(self, "_value"))

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(object.__getattribute__(self, "_value"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash((Secret, self.reveal()))

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("Secret cannot be pickled")

    def __len__(self) -> int:
        return len(self.reveal())


def enc_hook(obj: Any) -> Any:
    """msgspec ``enc_hook`` that renders secrets as ``<secret>``."""
    if isinstance(obj, Secret):
        return REDACTED
    if isinstance(obj, float):  # float subclasses such as config durations
        return float(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")
