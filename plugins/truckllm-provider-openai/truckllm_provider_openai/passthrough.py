"""Responses API pass-through: a Responses client's answers, checked and relayed unchanged.

- :func:`check_response`: a 2xx whole answer must be a Response (``object: response``; a token
  count's ``object: response.input_tokens`` for ``/responses/input_tokens``); a Response whose
  ``status`` is ``failed`` is the failure its ``error`` says; a background Response that has not
  finished must have an id it can be polled by (``resp_...``).
- :class:`ResponsesPassthrough`: a stream relayed event by event (each one checked first).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from truckllm.kit.sse import SSEEvent, event_frame
from truckllm.types import RateLimits, UpstreamError

from .errors import bad_response, responses_failure
from .responses_calls import TERMINAL, pollable
from .responses_events import ResponsesEvent, ResponsesReader

__all__ = ["ResponsesPassthrough", "check_response"]


class _Answer(Struct):
    object: Any = None
    status: Any = None
    error: Any = None
    input_tokens: Any = None
    id: Any = None
    background: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)


def check_response(endpoint: str, body: bytes) -> UpstreamError | None:
    """``None`` when ``body`` is a valid answer for ``endpoint`` (``chat``, ``responses.retrieve``,
    ``responses.cancel``: a Response; ``count_tokens``: a token count), else the failure it is.

    A created Response whose ``status`` is ``failed`` is that failure (another account may serve
    the request); a polled or cancelled one is the answer (the response failed upstream)."""
    try:
        answer = _ANSWER.decode(body)
        if not body.isascii():
            body.decode()  # the members skipped above were not checked to be UTF-8
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        if not body.strip():
            return bad_response("upstream answered 2xx with an empty body")
        return bad_response("upstream answered 2xx with a body that is not a JSON object")
    if endpoint == "count_tokens":
        if answer.object != "response.input_tokens" or type(answer.input_tokens) is not int:
            return bad_response("upstream answered 2xx with JSON that is not a Responses API token count")
        return None
    if answer.object != "response":
        return bad_response("upstream answered 2xx with JSON that is not a Responses API Response")
    if answer.status == "failed" and endpoint == "chat":  # a poll's failed Response is its answer
        return responses_failure(answer.error, "server", "upstream response failed")
    finished = isinstance(answer.status, str) and answer.status in TERMINAL
    if answer.background is True and not finished and not pollable(answer.id):
        # it runs at the account, yet no poll nor cancel could ever name it
        return bad_response("upstream answered a background response whose id is not a response id")
    return None


def _payload(data: bytes) -> bytes:
    """An event's JSON on one line (a ``data`` split over lines is JSON whose breaks are spaces)."""
    data = data.strip()
    if b"\n" in data or b"\r" in data:
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return data


class ResponsesPassthrough(ResponsesReader):
    """Relays a Responses stream to a Responses client, event by event, unchanged.

    Each event is written as OpenAI writes it (``event: <type>`` and ``data: <json>``), rebuilt
    from its checked ``type`` and its data as received (no stray ``id:``/``retry:`` field or
    comment reaches the client). Usage comes from ``response.completed``/``response.incomplete``.
    """

    dialect = "responses"

    def __init__(self, limits: RateLimits | None = None) -> None:
        super().__init__(limits)

    def on_event(self, event: SSEEvent, data: ResponsesEvent, out: list[bytes]) -> None:
        """Relay the event."""
        out.append(event_frame(data.type, _payload(event.data)))
