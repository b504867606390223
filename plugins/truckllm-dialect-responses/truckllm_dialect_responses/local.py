"""The Responses API's routes answered from stored state (a background response still running:
by the account that runs it, see :mod:`.background`).

- ``GET /v1/responses/{response_id}``: the Response object as it was returned (or, for a
  background response not finished when last seen, as its account answers now); ``?stream=true``
  (resuming a background response's stream) is refused with 400 naming ``stream``;
- ``DELETE /v1/responses/{response_id}``: ``{"id", "object": "response", "deleted": true}`` (the
  example of OpenAI's API reference);
- ``POST /v1/responses/{response_id}/cancel``: 400, as OpenAI answers, for a response that was not
  created with ``background: true``; a background response still running is cancelled by its
  account; one that has finished is answered unchanged (cancelling is idempotent at OpenAI);
- ``GET /v1/responses/{response_id}/input_items``: the turn's input items, one page of a cursor
  list (``limit`` 1..100, default 20; ``order`` ``asc`` or ``desc``, default ``desc``; ``after``
  an item id; ``include`` accepted and ignored).

A response another gateway key created, one stored with ``store: false``, an expired or deleted
one: all 404, the same answer as a response that never existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from truckllm.errors import GatewayError
from truckllm.kit.dialect import LocalAnswer, LocalCall

from .background import CANCEL, RETRIEVE, forward, is_background, pending
from .errors import shown
from .state import Stored, load, name_of, valid_id

__all__ = ["ROUTE_CANCEL", "ROUTE_INPUT_ITEMS", "ROUTE_RESPONSE", "input_items_page", "serve_local"]

ROUTE_RESPONSE = "response"
"""The name of ``GET``/``DELETE /v1/responses/{response_id}``."""
ROUTE_CANCEL = "cancel"
"""The name of ``POST /v1/responses/{response_id}/cancel``."""
ROUTE_INPUT_ITEMS = "input_items"
"""The name of ``GET /v1/responses/{response_id}/input_items``."""

_MAX_LIMIT = 100
_DEFAULT_LIMIT = 20


def _not_found(response_id: str) -> GatewayError:
    return GatewayError(404, f"Response with id '{shown(response_id)}' not found.", param="response_id")


def _json(value: object, status: int = 200) -> LocalAnswer:
    return LocalAnswer(status=status, body=msgspec.json.encode(value))


async def _stored(call: LocalCall, response_id: str) -> Stored:
    found = await load(call.state, response_id)
    if found is None:
        raise _not_found(response_id)
    return found


async def serve_local(route: str, call: LocalCall) -> LocalAnswer:
    """Answer one local route (``route`` is the :class:`DialectRoute` name).

    :raises GatewayError: 404 for an unknown response, 400 for a bad query parameter or the
        cancel of a response not made in the background; a forwarded call's failure.
    """
    response_id = call.path_params.get("response_id", "")
    if route == ROUTE_RESPONSE and call.method == "DELETE":
        if not valid_id(response_id) or not await call.state.delete(name_of(response_id)):
            raise _not_found(response_id)
        return _json({"id": response_id, "object": "response", "deleted": True})
    stored = await _stored(call, response_id)
    if route == ROUTE_RESPONSE:
        if call.query.get("stream", "false").lower() not in ("false", "0", ""):
            raise GatewayError(
                400,
                "Streaming a stored response ('stream=true') is not supported by this gateway: "
                "poll GET /v1/responses/{response_id} without it.",
                param="stream",
            )
        if pending(stored):
            return await forward(call, stored, response_id, RETRIEVE)
        return LocalAnswer(body=bytes(stored.response))
    if route == ROUTE_CANCEL:
        if not is_background(stored.response):
            raise GatewayError(400, "Cannot cancel a synchronous response.", param="response_id")
        if pending(stored):
            return await forward(call, stored, response_id, CANCEL)
        return LocalAnswer(body=bytes(stored.response))  # finished: OpenAI answers it unchanged
    if route == ROUTE_INPUT_ITEMS:
        return _json(input_items_page(stored.items, call.query))
    raise GatewayError(404, f"No such route: {route}.")


def _limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return _DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise GatewayError(
            400, f"Invalid 'limit': expected an integer, got '{shown(raw, 40)}'.", param="limit"
        ) from None
    if not 1 <= limit <= _MAX_LIMIT:
        raise GatewayError(
            400, f"Invalid 'limit': must be between 1 and {_MAX_LIMIT}, got {shown(raw, 40)}.", param="limit"
        )
    return limit


def input_items_page(items: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of ``items`` as OpenAI's ``input_items`` list answers it.

    :raises GatewayError: 400 naming ``limit``, ``order`` or ``after`` when one is invalid.
    """
    limit = _limit(query)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise GatewayError(
            400, f"Invalid 'order': expected 'asc' or 'desc', got '{shown(order, 40)}'.", param="order"
        )
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise GatewayError(
                400, f"Invalid 'after': no input item with id '{shown(after, 80)}'.", param="after"
            )
        # ids are unique in what is stored; were one repeated, its last place keeps paging finite
        ordered = ordered[len(ids) - ids[::-1].index(after) :]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(ordered) > limit,
    }
