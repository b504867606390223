"""Decoding JSON that came from outside the gateway: bounded nesting, no repeated keys.

Every front door decodes a client's body through :func:`decode_json`: the kernel's OpenAI dialect,
the Anthropic and Gemini dialect plugins, and the admin API. Whatever the schema, a body is refused
with a 400 (a :class:`JSONBodyError`, which each dialect renders in its own format) when

- it is nested more than :data:`MAX_DEPTH` levels deep: nothing after the front door (a
  translation, a schema walk, a re-encoding) can then run out of Python's recursion limit, and a
  100,000-level body never reaches a traceback;
- an object names the same key twice: the gateway reads the last value (as msgspec and Python's
  ``json`` do) while an upstream that is sent the same bytes may read the first, so the model,
  ``max_tokens`` or ``stream`` the gateway checked and priced could differ from what is served.
  Refusing is simpler to reason about than re-encoding, keeps pass-through byte for byte, and
  RFC 8259 already says names should be unique.

The check is one pass of Python's C JSON scanner with a small hook per object (see
:func:`check_json`); size limits are the caller's (``server.max_body_bytes``, 413).
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

from truckllm.errors import GatewayError

__all__ = ["MAX_DEPTH", "JSONBodyError", "check_json", "decode_json"]

MAX_DEPTH: Final = 128
"""The deepest nesting of arrays and objects a decoded body may have (``[]`` is 1 level)."""


class JSONBodyError(GatewayError):
    """A 400 for a JSON body refused whatever its schema.

    :ivar reason: ``too_deep`` or ``duplicate_key``.
    :ivar key: the repeated key, for ``duplicate_key``.
    """

    def __init__(self, reason: str, message: str, key: str | None = None) -> None:
        super().__init__(400, message)
        self.reason = reason
        self.key = key


def too_deep() -> JSONBodyError:
    """The error for a body nested deeper than :data:`MAX_DEPTH`."""
    return JSONBodyError(
        "too_deep",
        f"The JSON body is nested too deeply: the limit is {MAX_DEPTH} levels of arrays and objects.",
    )


def duplicate_key(key: str) -> JSONBodyError:
    """The error for an object that repeats ``key``."""
    shown = json.dumps(key[:64] + ("..." if len(key) > 64 else ""))
    return JSONBodyError(
        "duplicate_key",
        f"The JSON body repeats the key {shown} in one object: each key may appear once.",
        key=key,
    )


class _Depth(int):
    """Stands in for a decoded object during the scan: the object's nesting depth."""

    __slots__ = ()


_DEPTHS = tuple(_Depth(i) for i in range(MAX_DEPTH + 1))
_SCALARS = frozenset({str, int, float, bool, type(None)})


class _Refused(Exception):
    def __init__(self, error: JSONBodyError) -> None:
        self.error = error


def _list_depth(items: list[Any]) -> int:
    """Levels of ``items``: 1 plus its deepest element (objects in it are already :class:`_Depth`)."""
    deepest = 1
    stack: list[tuple[list[Any], int]] = [(items, 1)]
    while stack:
        node, level = stack.pop()
        if level > MAX_DEPTH:
            raise _Refused(too_deep())
        if level > deepest:
            deepest = level
        if len(node) > 8 and _SCALARS.issuperset(map(type, node)):
            continue  # a long array of scalars (token ids...): one pass in C
        for value in node:
            cls = value.__class__
            if cls is _Depth:
                if level + value > deepest:
                    deepest = level + value
            elif cls is list:
                stack.append((value, level + 1))
    if deepest > MAX_DEPTH:
        raise _Refused(too_deep())
    return deepest


def _object(pairs: list[tuple[str, Any]]) -> _Depth:
    count = len(pairs)
    if count > 1 and len(dict(pairs)) != count:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(duplicate_key(key))
            seen.add(key)
    depth = 1
    for _, value in pairs:
        cls = value.__class__
        if cls is _Depth:
            if value >= depth:
                depth = value + 1
        elif cls is list:
            inner = _list_depth(value) + 1
            if inner > depth:
                depth = inner
    if depth > MAX_DEPTH:
        raise _Refused(too_deep())
    return _DEPTHS[depth]


_SCANNER = json.JSONDecoder(object_pairs_hook=_object, strict=False)


def check_json(body: bytes | str) -> None:
    """Refuse ``body`` (already known to be valid JSON) if it is too deep or repeats a key.

    :raises JSONBodyError: ``too_deep`` or ``duplicate_key``; also a 400 if ``body`` is not JSON
        after all (this is not meant to validate syntax: decode first).
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        top = _SCANNER.decode(text)
        if top.__class__ is list:
            _list_depth(top)
    except _Refused as refused:
        raise refused.error from None
    except RecursionError:
        raise too_deep() from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise GatewayError(400, "The request body is not valid JSON.") from None


def decode_json(body: bytes, type: Any = Any, *, decoder: Any = None) -> Any:
    """Decode a client's JSON ``body`` (as ``type``, or with ``decoder``) and check it (:func:`check_json`).

    Syntax and schema errors are msgspec's (``msgspec.DecodeError`` / ``ValidationError``), left
    for the caller to word in its API's format; nesting beyond msgspec's own recursion limit and
    everything :func:`check_json` refuses raise :class:`JSONBodyError`.
    """
    try:
        value = decoder.decode(body) if decoder is not None else msgspec.json.decode(body, type=type)
    except RecursionError:
        raise too_deep() from None
    check_json(body)
    return value
