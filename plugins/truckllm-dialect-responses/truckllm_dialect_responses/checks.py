"""Field checks for request validation, answering OpenAI's 400s (``param`` names the field).

Each check reads one member of a decoded JSON object: :func:`need` (required) and :func:`opt`
(``None`` and absent are alike) with a kind (:data:`STRING`, :data:`INTEGER`...), and
:func:`number_in` / :func:`one_of` for ranges and enumerations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .errors import invalid, invalid_type, invalid_value, missing

__all__ = [
    "ARRAY",
    "BOOLEAN",
    "INTEGER",
    "NUMBER",
    "OBJECT",
    "STRING",
    "Kind",
    "join",
    "need",
    "number_in",
    "one_of",
    "opt",
]


class Kind(NamedTuple):
    """A JSON kind: its test and its name in OpenAI's messages (``a string``...)."""

    test: Callable[[object], bool]
    name: str


STRING = Kind(lambda v: isinstance(v, str), "a string")
"""A JSON string."""
BOOLEAN = Kind(lambda v: isinstance(v, bool), "a boolean")
"""``true`` or ``false``."""
INTEGER = Kind(lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
"""A JSON integer."""
NUMBER = Kind(lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number")
"""A JSON number."""
OBJECT = Kind(lambda v: isinstance(v, dict), "an object")
"""A JSON object."""
ARRAY = Kind(lambda v: isinstance(v, list), "an array")
"""A JSON array."""


def join(at: str, name: str) -> str:
    """The path of member ``name`` of the object at ``at`` (``input[0]`` + ``content``)."""
    return f"{at}.{name}" if at else name


def need(obj: dict[str, Any], name: str, at: str, kind: Kind) -> Any:
    """``obj[name]``, required (``null`` counts as absent) and of ``kind``."""
    value = obj.get(name)
    if value is None:
        raise missing(join(at, name))
    if not kind.test(value):
        raise invalid_type(join(at, name), kind.name, value)
    return value


def opt(obj: dict[str, Any], name: str, at: str, kind: Kind) -> Any:
    """``obj[name]`` when given (``None`` when absent or ``null``), of ``kind``."""
    value = obj.get(name)
    if value is None:
        return None
    if not kind.test(value):
        raise invalid_type(join(at, name), kind.name, value)
    return value


def number_in(value: float | None, param: str, low: float, high: float) -> None:
    """``value`` (when given) lies in ``[low, high]``."""
    if value is None:
        return
    if value < low:
        raise invalid(
            f"Invalid '{param}': number below minimum value. Expected a value >= {low:g}, "
            f"but got {value:g} instead.",
            param,
            "decimal_below_min_value" if isinstance(value, float) else "integer_below_min_value",
        )
    if value > high:
        raise invalid(
            f"Invalid '{param}': number above maximum value. Expected a value <= {high:g}, "
            f"but got {value:g} instead.",
            param,
            "decimal_above_max_value" if isinstance(value, float) else "integer_above_max_value",
        )


def one_of(value: object, param: str, supported: tuple[str, ...]) -> None:
    """``value`` (when given) is one of ``supported``."""
    if value is not None and value not in supported:
        raise invalid_value(param, value, supported)
