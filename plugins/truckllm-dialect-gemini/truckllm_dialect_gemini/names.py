"""The model a Gemini client names in its URL path (``/v1beta/models/{model}:generateContent``).

The server has already percent-decoded the path once (ASGI's ``path``); the name is taken as it
is, never decoded again (``%252F`` stays ``%2F``, and is then refused), and checked here once: a
model is 1 to :data:`MAX_MODEL` characters of :data:`MODEL`. Anything else (``..``, ``?``, ``#``,
``%``, ``/``, spaces, control characters) is a 400 ``INVALID_ARGUMENT`` naming ``model``, before
any alias is looked up. The name is an alias of the gateway's config: it never reaches an upstream
URL (a Gemini deployment's URL is built by its provider plugin from the deployment's model,
encoded there as one path segment).
"""

from __future__ import annotations

import re

from truckllm.errors import GatewayError

__all__ = ["MAX_MODEL", "METHOD", "MODEL", "method_not_found", "url_model"]

MAX_MODEL = 256
"""The longest model name accepted in a URL."""

MODEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:@+~-]*")
"""A model name in a URL: letters, digits and ``. _ : @ + ~ -``, not starting with a dot."""

METHOD = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
"""A Gemini method name (``generateContent``)."""


def method_not_found(raw_model: str, method: str) -> str:
    """The 404 message for an unknown method; it quotes the path only when both parts are names
    (client text with control characters never reaches an answer, a record or a log line)."""
    name = raw_model.removeprefix("models/")
    if name and len(name) <= MAX_MODEL and MODEL.fullmatch(name) and METHOD.fullmatch(method):
        return f"Method not found: models/{name}:{method}."
    return "Method not found."


def url_model(raw: str) -> str:
    """The alias a URL's ``models/{model}`` names (``models/`` removed when doubled).

    :param raw: the ``{model}`` path parameter, as the server decoded it.
    :raises GatewayError: 400 naming ``model`` when it cannot be a model name.
    """
    alias = raw.removeprefix("models/")
    if not alias:
        raise GatewayError(400, "* model: the model name is empty", param="model")
    if len(alias) > MAX_MODEL or not MODEL.fullmatch(alias):
        raise GatewayError(
            400,
            f"* model: unexpected model name format (at most {MAX_MODEL} letters, digits and "
            "'.', '_', ':', '@', '+', '~', '-')",
            param="model",
        )
    return alias
