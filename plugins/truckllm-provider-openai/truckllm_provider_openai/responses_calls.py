"""Calls on one response OpenAI keeps: retrieve (poll) and cancel a background response.

The Responses dialect forwards a client's ``GET /v1/responses/{id}`` and
``POST /v1/responses/{id}/cancel`` of a background response that has not finished to the account
that runs it, as the kernel endpoints ``responses.retrieve`` and ``responses.cancel`` with the
body ``{"response_id": "resp_...", "bill": true|false}``. They become
``GET {base_url}/responses/{id}`` and ``POST {base_url}/responses/{id}/cancel`` (no body).

``bill`` says whether this call may carry the response's usage: the dialect lets exactly one
call per background response do so, and only its answer with a terminal ``status``
(``completed``, ``incomplete``, ``failed``, ``cancelled``) is counted (:func:`call_usage`).

The id is checked against ``^resp_[A-Za-z0-9_-]+$`` (at most 256 characters) before it is put
in a URL (and percent-encoded all the same): nothing else ever reaches one.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import msgspec
from msgspec import Struct

from truckllm.errors import UnsupportedRequest
from truckllm.types import ChatRequest, Usage

from .usage import parse_responses_usage

__all__ = [
    "CANCEL",
    "ENDPOINTS",
    "RETRIEVE",
    "TERMINAL",
    "ResponseCall",
    "call_path",
    "call_usage",
    "pollable",
    "read_call",
]

RETRIEVE = "responses.retrieve"
"""The kernel endpoint of a poll: ``GET {base_url}/responses/{id}``."""
CANCEL = "responses.cancel"
"""The kernel endpoint of a cancel: ``POST {base_url}/responses/{id}/cancel``."""
ENDPOINTS = frozenset({RETRIEVE, CANCEL})
"""Both, as the provider lists them."""
TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})
"""The statuses a response never leaves."""

_ID = re.compile(r"resp_[A-Za-z0-9_-]{1,251}")


class ResponseCall(Struct, forbid_unknown_fields=True):
    """The body the dialect sends for a retrieve or a cancel.

    :ivar response_id: OpenAI's id of the response.
    :ivar bill: this call may carry the response's usage.
    """

    response_id: str
    bill: bool = False


class _Answer(Struct):
    status: Any = None
    usage: msgspec.Raw = msgspec.Raw()


_CALL = msgspec.json.Decoder(ResponseCall)
_ANSWER = msgspec.json.Decoder(_Answer)


def pollable(response_id: object) -> bool:
    """``response_id`` is one a retrieve or a cancel can carry (``resp_`` and URL-safe characters,
    at most 256)."""
    return isinstance(response_id, str) and _ID.fullmatch(response_id) is not None


def read_call(request: ChatRequest) -> ResponseCall:
    """The call ``request`` asks for.

    :raises UnsupportedRequest: the body is not such a call, or its id is not a ``resp_`` id.
    """
    try:
        call = _CALL.decode(request.body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise UnsupportedRequest(
            f"a {request.endpoint} call needs a body {{'response_id': 'resp_...'}}", param="response_id"
        ) from None
    if not pollable(call.response_id):
        raise UnsupportedRequest("'response_id' is not an OpenAI response id", param="response_id")
    return call


def call_path(request: ChatRequest) -> tuple[str, str]:
    """``(method, path under base_url)`` of a retrieve or a cancel.

    :raises UnsupportedRequest: see :func:`read_call`.
    """
    path = "/responses/" + quote(read_call(request).response_id, safe="")
    if request.endpoint == CANCEL:
        return "POST", path + "/cancel"
    return "GET", path


def call_usage(request: ChatRequest, body: bytes) -> Usage:
    """The usage a retrieve or cancel answer carries: the Response's own when the call may bill
    and the response has finished, else none (zero)."""
    try:
        if not _CALL.decode(request.body).bill:
            return Usage()
        answer = _ANSWER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return Usage()
    if not isinstance(answer.status, str) or answer.status not in TERMINAL:
        return Usage()
    usage = parse_responses_usage(answer.usage)
    return usage if usage is not None else Usage()
