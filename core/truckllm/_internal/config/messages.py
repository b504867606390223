"""msgspec's validation messages in plain words, and the closest known name for an unknown field.

``Expected `int`, got `str``` becomes "expected a whole number, got text"; ``Expected `int` >= 1``
"expected a whole number of at least 1"; ``Invalid enum value 'texty'`` "expected one of 'json',
'text', got 'texty'"; an unknown field says which known field it is probably a typo of (difflib),
or which fields the place takes. The problem's ``field`` names where; these words say what.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from msgspec import inspect as mi

__all__ = ["fields_at", "plain", "type_at", "unknown_field"]

_TYPES = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "null": "null",
    "array": "a list",
    "object": "a mapping",
}
_GOT = {
    "int": "a whole number",
    "float": "a number with a fraction",
    "str": "text",
    "bool": "a true/false value",
    "null": "nothing (null)",
    "array": "a list",
    "object": "a mapping",
}
_BOUNDS = {">=": "of at least", ">": "greater than", "<=": "of at most", "<": "less than"}
_LENGTHS = {">=": "at least", "<=": "at most"}
_NAME_PATTERN = "^[A-Za-z0-9_.:@/+-]+$"
_EXPECTED_GOT = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")
_BOUND = re.compile(r"Expected `([^`]+)` (>=|<=|>|<) (\S+)")
_LENGTH = re.compile(r"Expected `(str|array|object)` of length (>=|<=) (\d+)")
_PATTERN = re.compile(r"Expected `str` matching regex '(.*)'")
_ENUM = re.compile(r"Invalid enum value (.+)")
_MAX_LISTED = 12


def _expected(names: str) -> str:
    """``int | null`` as "a whole number or null"."""
    return " or ".join(_TYPES.get(n, f"`{n}`") for n in names.split(" | "))


def type_at(type_: Any, path: Sequence[str | int]) -> mi.Type | None:
    """The type msgspec decodes at ``path`` inside ``type_`` (``None`` when it cannot tell)."""
    try:
        info: mi.Type | None = mi.type_info(type_)
    except Exception:  # a type msgspec cannot describe
        return None
    for part in path:
        info = _step(info, part) if info is not None else None
    return info


def _bare(info: mi.Type) -> mi.Type:
    """``info`` without its ``Annotated`` metadata."""
    while isinstance(info, mi.Metadata):
        info = info.type
    return info


def _step(info: mi.Type, part: str | int) -> mi.Type | None:
    """One level down ``info``: a struct's field, a mapping's value, a list's item."""
    info = _bare(info)
    if isinstance(info, mi.UnionType):
        for member in info.types:
            found = _step(member, part)
            if found is not None:
                return found
        return None
    if isinstance(info, mi.StructType) and isinstance(part, str):
        return next((f.type for f in info.fields if f.encode_name == part), None)
    if isinstance(info, mi.DictType) and isinstance(part, str):
        return info.value_type
    if isinstance(info, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType) and isinstance(
        part, int
    ):
        return info.item_type
    if isinstance(info, mi.TupleType) and isinstance(part, int) and part < len(info.item_types):
        return info.item_types[part]
    return None


def fields_at(type_: Any, path: Sequence[str | int]) -> list[str] | None:
    """The field names of the struct at ``path`` inside ``type_``, or ``None``."""
    info = type_at(type_, path)
    info = _bare(info) if info is not None else None
    members = info.types if isinstance(info, mi.UnionType) else (info,)
    for member in map(_bare, (m for m in members if m is not None)):
        if isinstance(member, mi.StructType):
            return [f.encode_name for f in member.fields]
    return None


def unknown_field(name: str, known: Iterable[str] | None) -> str:
    """The message of an unknown field ``name``: the closest known name, else the known names."""
    if not known:
        return "unknown field"
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"unknown field: did you mean `{close[0]}`?"
    listed = ", ".join(names[:_MAX_LISTED]) + (", ..." if len(names) > _MAX_LISTED else "")
    return f"unknown field (the fields here: {listed})"


def _choices(info: mi.Type | None) -> list[str] | None:
    info = _bare(info) if info is not None else None
    members = info.types if isinstance(info, mi.UnionType) else (info,)
    values: list[str] = []
    for member in map(_bare, (m for m in members if m is not None)):
        if isinstance(member, mi.LiteralType):
            values += [repr(v) for v in member.values]
        elif isinstance(member, mi.EnumType):
            values += [repr(m.value) for m in member.cls]
    return values or None


def plain(message: str, type_: Any = None, path: Sequence[str | int] = ()) -> str:
    """msgspec's ``message`` (without its ``- at `$...``` suffix) in plain words; ``type_`` and
    ``path`` (where the value failed, inside ``type_``) let an enum name its values. A message in
    no form known here (a plugin's own) is returned unchanged."""
    found = _EXPECTED_GOT.fullmatch(message)
    if found:
        return f"expected {_expected(found.group(1))}, got {_GOT.get(found.group(2), found.group(2))}"
    found = _LENGTH.fullmatch(message)
    if found:
        what, op, count = found.groups()
        unit = {"str": "character", "array": "item", "object": "entry"}[what]
        return f"expected {_TYPES[what]} of {_LENGTHS[op]} {count} {unit}{'' if count == '1' else 's'}"
    found = _BOUND.fullmatch(message)
    if found:
        return f"expected {_expected(found.group(1))} {_BOUNDS[found.group(2)]} {found.group(3)}"
    found = _PATTERN.fullmatch(message)
    if found:
        if found.group(1) == _NAME_PATTERN:
            return "expected a name: letters, digits and _ . : @ / + - only"
        return f"expected text matching the pattern {found.group(1)}"
    found = _ENUM.fullmatch(message)
    if found:
        choices = _choices(type_at(type_, path)) if type_ is not None else None
        if choices:
            return f"expected one of {', '.join(choices)}, got {found.group(1)}"
        return f"invalid value {found.group(1)}"
    return message
