"""Background responses: polled and cancelled at the OpenAI account that runs them.

``background: true`` runs only on OpenAI Responses API deployments (anywhere else the request is
refused with 400 naming ``background``). Its create call answers at once (``status: queued``);
that answer is stored like any other, under OpenAI's id, with the account that holds it.

While the stored status is not terminal (``queued``, ``in_progress``), ``GET
/v1/responses/{id}`` and ``POST /v1/responses/{id}/cancel`` are forwarded to that account only
(:class:`~truckllm.kit.dialect.Affinity` with no ``elsewhere``), as the kernel endpoints
``responses.retrieve`` / ``responses.cancel`` through the request path, as the caller's gateway
key (its allow-list, limits and budget; one usage record per forwarded call). Once the stored
status is terminal (``completed``, ``incomplete``, ``failed``, ``cancelled``) both are answered
here, with no upstream call.

Usage is counted once per background response. The create answer has none. A *bill token*
(``bill:<id>``), stored with a response that has not finished, is taken (an atomic delete) by
the forwarded call that may carry the usage (``"bill": true`` in its body, read by the provider):
only that call's answer is written back as the stored response, and it carries the usage when
it is terminal; when it is not, the token is put back with it. A call made while another holds
the token (two polls at once) answers the client with what OpenAI said and writes nothing, so
no two calls ever count the same response.
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm.kit.dialect import Affinity, LocalAnswer, LocalCall
from truckllm.types import ChatRequest, DialectState

from .state import Stored, name_of, valid_id

__all__ = [
    "CANCEL",
    "REFUSAL",
    "RETRIEVE",
    "TERMINAL",
    "PollRequest",
    "answered",
    "bill_name",
    "forward",
    "is_background",
    "pending",
    "start",
    "status_of",
]

RETRIEVE = "responses.retrieve"
"""The kernel endpoint of a forwarded ``GET /v1/responses/{id}``."""
CANCEL = "responses.cancel"
"""The kernel endpoint of a forwarded ``POST /v1/responses/{id}/cancel``."""
TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})
"""The statuses a response never leaves."""
REFUSAL = (
    "background responses run only on OpenAI Responses API deployments: this model is served "
    "elsewhere. Leave 'background' unset or false."
)
"""Why a background request is refused by a deployment that is not OpenAI's Responses API."""

_BILL = "bill:"
_TOKEN = b"1"


class _Head(msgspec.Struct):
    status: Any = None
    background: Any = None


_head = msgspec.json.Decoder(_Head)


class PollRequest(ChatRequest, kw_only=True):
    """A forwarded retrieve or cancel, with what its answer updates.

    :ivar response_id: OpenAI's id of the response.
    :ivar stored: the stored turn when the call was made.
    :ivar bill: this call holds the bill token: its answer is written back and may be counted.
    """

    response_id: str
    stored: Stored
    bill: bool = False


def bill_name(response_id: str) -> str:
    """The state name of a response's bill token."""
    return _BILL + response_id


def _read(response: msgspec.Raw | bytes) -> _Head:
    try:
        return _head.decode(response)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return _Head()


def status_of(response: msgspec.Raw | bytes) -> str | None:
    """The ``status`` of a Response object (``None`` when it has none)."""
    status = _read(response).status
    return status if isinstance(status, str) else None


def is_background(response: msgspec.Raw | bytes) -> bool:
    """The Response object was created with ``background: true``."""
    return _read(response).background is True


def _unfinished(response: msgspec.Raw | bytes) -> bool:
    head = _read(response)
    return head.background is True and isinstance(head.status, str) and head.status not in TERMINAL


def pending(stored: Stored) -> bool:
    """``stored`` is a background response that has not finished, held by an OpenAI account the
    gateway can ask (its alias and account known)."""
    origin = stored.origin
    return (
        origin is not None
        and origin.upstream_state
        and stored.alias is not None
        and _unfinished(stored.response)
    )


def start(state: DialectState | None, response_id: str, response: bytes, store: bool) -> None:
    """Queue the bill token of a just-created background response that has not finished (its
    create answer carried no usage: a later call will)."""
    if state is not None and store and valid_id(response_id) and _unfinished(response):
        state.put(bill_name(response_id), _TOKEN, state.ttl)


async def forward(call: LocalCall, stored: Stored, response_id: str, endpoint: str) -> LocalAnswer:
    """Forward a retrieve or cancel of ``stored`` to the account that holds it.

    The bill token is taken first; if the call fails, it is put back.

    :raises GatewayError: the forwarded call's failure (404 ``model``: the alias is gone;
        the account's own error...).
    """
    assert stored.origin is not None and stored.alias is not None  # see pending()
    bill = await call.state.delete(bill_name(response_id))
    request = PollRequest(
        endpoint=endpoint,
        dialect="responses",
        body=msgspec.json.encode({"response_id": response_id, "bill": bill}),
        model=stored.alias,
        affinity=Affinity(provider=stored.origin.provider, key=stored.origin.key, elsewhere=None),
        refusal=REFUSAL,
        refusal_param="background",
        response_id=response_id,
        stored=stored,
        bill=bill,
    )
    try:
        return await call.forward(request)
    except BaseException:
        if bill:
            call.state.put(bill_name(response_id), _TOKEN, call.state.ttl)
        raise


def answered(request: ChatRequest, body: bytes) -> bytes:
    """A forwarded call's answer (the Response as OpenAI gave it), written back as the stored
    response when the call holds the bill token (with the token again if it has not finished)."""
    state = request.state
    if not isinstance(request, PollRequest) or not request.bill or state is None:
        return body
    updated = msgspec.structs.replace(request.stored, response=msgspec.Raw(body))
    state.put(name_of(request.response_id), msgspec.json.encode(updated), state.ttl)
    if status_of(body) not in TERMINAL:
        state.put(bill_name(request.response_id), _TOKEN, state.ttl)
    return body
