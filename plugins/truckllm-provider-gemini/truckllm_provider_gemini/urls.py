"""Gemini method URLs, built only from a model name checked to be one.

The model reaches this plugin from the config, or from the client itself (``provider/model``
addressing), so it is untrusted text that must never shape the URL: ``gem/../../zzz#`` or
``x?key=evil&`` would otherwise reach other paths or add query parameters, sent with the
provider's key. A model is therefore an optional collection (``models/``, the default, or
``tunedModels/``) and one name of :data:`NAME_PATTERN`; anything else is refused with
:class:`~truckllm.errors.UnsupportedRequest` (the kernel answers 400, and the key is not blamed).
The name is also percent-encoded as one path segment, so the URL is always
``{base_url}/{collection}/{name}:{method}`` plus this plugin's own ``alt=sse`` for streams.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from truckllm.errors import UnsupportedRequest

__all__ = ["COLLECTIONS", "MAX_NAME", "NAME_PATTERN", "method_url", "model_resource", "split_model"]

COLLECTIONS = ("models", "tunedModels")
"""The model collections a name may start with (``tunedModels/my-model``); ``models`` by default."""

MAX_NAME = 256
"""The longest model name accepted (Gemini's are under 64 characters)."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+~-]*")
"""A model name: letters, digits and ``. _ @ + ~ -``, not starting with a dot (no ``..``)."""

_SHOWN = 80


def _refuse(model: str, why: str) -> UnsupportedRequest:
    shown = repr(model)  # control characters escaped, and at most _SHOWN characters of it
    if len(shown) > _SHOWN:
        shown = shown[:_SHOWN] + "..."
    return UnsupportedRequest(f"{shown} is not a Gemini model name: {why}", param="model")


def split_model(model: str) -> tuple[str, str]:
    """``(collection, name)`` of a model (``gemini-2.5-flash``, ``models/x``, ``tunedModels/x``).

    :raises UnsupportedRequest: when ``model`` cannot be a Gemini model name.
    """
    collection, sep, name = model.partition("/")
    if not sep:
        collection, name = "models", model
    elif collection not in COLLECTIONS:
        raise _refuse(model, f"a collection must be one of {', '.join(COLLECTIONS)}")
    if not name:
        raise _refuse(model, "the name is empty")
    if len(name) > MAX_NAME:
        raise _refuse(model, f"longer than {MAX_NAME} characters")
    if not NAME_PATTERN.fullmatch(name):
        raise _refuse(model, "use letters, digits and . _ @ + ~ - only, not starting with a dot")
    return collection, name


def model_resource(model: str) -> str:
    """The resource name sent in request bodies: ``models/<name>`` or ``tunedModels/<name>``."""
    collection, name = split_model(model)
    return f"{collection}/{name}"


def method_url(base_url: str, model: str, method: str, stream: bool = False) -> str:
    """``{base_url}/{collection}/{name}:{method}``, with ``?alt=sse`` for a stream.

    :param base_url: the provider's API root (from the config, never ending in ``/``).
    :param model: the model, checked by :func:`split_model`.
    :param method: this plugin's own method name (``generateContent``...).
    :param stream: add ``alt=sse`` (the only query parameter this plugin ever sends).
    """
    collection, name = split_model(model)
    url = f"{base_url}/{collection}/{quote(name, safe='')}:{method}"
    return url + "?alt=sse" if stream else url
