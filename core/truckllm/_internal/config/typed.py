"""Plain config data (YAML/JSON builtins) walked with its schema: which values are secret by type.

A value is secret when the schema types it as :class:`~truckllm.kit.options.Secret`, or as a string
annotated ``Meta(extra={"secret": True})`` (:data:`SECRET`); nothing is guessed from a field's
name. Only free-form maps (``dict[str, Any]`` or ``dict[str, str]``: options of a plugin that
declares no ``Options`` type, a provider's ``headers``) carry no type; the caller decides how to
treat them. Used to keep secret values out of config problem messages and out of the admin
config view.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import msgspec.inspect as mi

from truckllm._internal.secrets import Secret

__all__ = ["SECRET", "map_typed", "secret_strings"]

SECRET = {"secret": True}
"""``Meta(extra=SECRET)`` marks a string field as secret (shown as ``<secret>``) without typing it
:class:`~truckllm.kit.options.Secret` (``keys[].hash``)."""

Leaf = Callable[[Any], Any]
_LISTS = (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)
_MAPPINGS = (mi.StructType, mi.DictType, mi.TypedDictType, mi.DataclassType)


@cache
def _info(type_: Any) -> mi.Type:
    return mi.type_info(type_)


def map_typed(value: Any, type_: Any, *, secret: Leaf, free: Leaf) -> Any:
    """A copy of ``value`` with ``secret(v)`` for every secret-typed value and ``free(m)`` for every
    free-form map (or value typed ``Any``); the rest is copied as is. Values that do not match
    their type (an invalid config) are walked as far as they match."""
    return _map(value, _info(type_), secret, free)


def secret_strings(value: Any, type_: Any) -> list[str]:
    """Every non-empty string in ``value`` that ``type_`` types as a secret."""
    found: list[str] = []

    def keep(leaf: Any) -> Any:
        if isinstance(leaf, str) and leaf:
            found.append(leaf)
        return leaf

    map_typed(value, type_, secret=keep, free=lambda v: v)
    return found


def _is_secret(t: mi.Type) -> bool:
    if isinstance(t, mi.CustomType):
        return isinstance(t.cls, type) and issubclass(t.cls, Secret)
    return isinstance(t, mi.Metadata) and bool((t.extra or {}).get("secret"))


def _accepts(t: mi.Type, value: Any) -> bool:
    if isinstance(t, mi.Metadata):
        return (_is_secret(t) and isinstance(value, str)) or _accepts(t.type, value)
    if isinstance(t, mi.NoneType):
        return value is None
    if isinstance(t, _MAPPINGS):
        return isinstance(value, dict)
    if isinstance(t, (*_LISTS, mi.TupleType)):
        return isinstance(value, list | tuple)
    if isinstance(t, mi.StrType | mi.LiteralType):
        return isinstance(value, str)
    if isinstance(t, mi.CustomType):
        return not _is_secret(t) or isinstance(value, str)
    if isinstance(t, mi.BoolType):
        return isinstance(value, bool)
    if isinstance(t, mi.IntType | mi.FloatType):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(t, mi.AnyType)


def _map(value: Any, t: mi.Type, secret: Leaf, free: Leaf) -> Any:
    if value is None:
        return None
    if _is_secret(t):
        return secret(value)
    if isinstance(t, mi.Metadata):
        return _map(value, t.type, secret, free)
    if isinstance(t, mi.UnionType):
        for member in t.types:
            if _accepts(member, value):
                return _map(value, member, secret, free)
        return value
    if isinstance(t, mi.AnyType):
        return free(value)
    if isinstance(t, mi.StructType) and isinstance(value, dict):
        out = dict(value)
        for f in t.fields:
            if f.encode_name in out:
                out[f.encode_name] = _map(out[f.encode_name], f.type, secret, free)
        return out
    if isinstance(t, mi.DictType) and isinstance(value, dict):
        if isinstance(t.value_type, mi.AnyType | mi.StrType):
            return free(value)  # a free-form map: its names are all that tells what it holds
        return {k: _map(v, t.value_type, secret, free) for k, v in value.items()}
    if isinstance(t, _LISTS) and isinstance(value, list | tuple):
        return [_map(v, t.item_type, secret, free) for v in value]
    if isinstance(t, mi.TupleType) and isinstance(value, list | tuple):
        return [_map(v, i, secret, free) for v, i in zip(value, t.item_types, strict=False)]
    return value
