"""Conversation state: what one answered turn leaves behind for ``previous_response_id``.

A stored turn (:class:`Stored`, under ``resp:<id>`` in the request's
:class:`~truckllm.kit.dialect.DialectState`, which the kernel scopes to the gateway key) holds

- the Response object exactly as the client received it (``GET /v1/responses/{id}``);
- the full input of that turn, earlier turns included, every item with an id
  (``GET /v1/responses/{id}/input_items``, and the start of the next turn's conversation);
- where it was answered (:class:`Origin`): an OpenAI account that keeps the response itself is
  where the next turn goes first.

The next turn's conversation is the stored input, then the stored output, then its own input
(:func:`conversation`). ``instructions`` are not carried over (OpenAI's semantics): they are a
field of each call, never an item.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

import msgspec

from truckllm.errors import GatewayError
from truckllm.kit.dialect import DialectState, ServedBy

__all__ = [
    "ID_PREFIXES",
    "Origin",
    "Stored",
    "conversation",
    "keeps_state",
    "load",
    "mint",
    "name_of",
    "output_items",
    "previous",
    "remember",
    "upstream_items",
    "with_ids",
]

ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fc",
    "reasoning": "rs",
}
"""The id prefix of each item type the gateway mints ids for (``item`` for any other type)."""

_STATE = "resp:"


class Origin(msgspec.Struct, frozen=True, kw_only=True):
    """Where a stored turn was answered.

    :ivar provider: the ``providers.<name>`` entry.
    :ivar key: the provider key's name.
    :ivar upstream_state: that account keeps the response itself (an OpenAI Responses API
        deployment answered with ``store`` on): its ``resp_`` id means something only there.
    """

    provider: str
    key: str
    upstream_state: bool = False


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """One remembered turn.

    :ivar response: the Response object as returned to the client (raw JSON).
    :ivar items: the turn's whole input (earlier turns expanded), each item with an ``id``.
    :ivar origin: who answered it, when known.
    :ivar alias: the ``model`` the client asked for (a background response is polled through it).
    """

    response: msgspec.Raw
    items: list[dict[str, Any]]
    origin: Origin | None = None
    alias: str | None = None


_decoder = msgspec.json.Decoder(Stored)


def mint(prefix: str) -> str:
    """A fresh id in OpenAI's shape: ``<prefix>_`` and 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


def name_of(response_id: str) -> str:
    """The state name a response is stored under."""
    return _STATE + response_id


def with_ids(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` with an ``id`` given to each that has none (``msg_``, ``fc_``, ``rs_``...).

    The items are copied where changed, never modified in place.
    """
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item.get("id"), str) and item["id"]:
            out.append(item)
            continue
        kind = item.get("type", "message")
        out.append({"id": mint(ID_PREFIXES.get(kind, "item") if isinstance(kind, str) else "item"), **item})
    return out


def output_items(response: msgspec.Raw | bytes) -> list[dict[str, Any]]:
    """The ``output`` items of a Response object (``[]`` when it has none)."""
    decoded = msgspec.json.decode(response)
    output = decoded.get("output") if isinstance(decoded, dict) else None
    return [item for item in output if isinstance(item, dict)] if isinstance(output, list) else []


def conversation(stored: Stored, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The whole conversation of a turn that continues ``stored``: its input, its output, then
    this turn's ``items`` (each with an id).

    An ``item_reference`` to an item of the conversation becomes that item (so that any provider
    can be sent it); one to an unknown item stays as it is.
    """
    earlier = [*stored.items, *output_items(stored.response)]
    known = {item["id"]: item for item in earlier if isinstance(item.get("id"), str)}
    own = [
        known.get(item.get("id"), item) if item.get("type") == "item_reference" else item for item in items
    ]
    return [*earlier, *with_ids(own)]


def upstream_items(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A conversation as an OpenAI Responses API account that did not keep it accepts it.

    - reasoning items are dropped: OpenAI looks their ids up in the account that made them, and
      their ``encrypted_content`` opens only there (the thinking blocks of another provider, which
      the gateway seals in ``encrypted_content``, mean nothing to OpenAI at all);
    - the gateway's ids of input messages (user, system, developer) are removed: OpenAI's input
      message has no ``id`` (an assistant message keeps it: OpenAI's output message needs one,
      with its ``status``).
    """
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "reasoning":
            continue
        if kind == "message" and "id" in item and not (item.get("role") == "assistant" and "status" in item):
            item = {k: v for k, v in item.items() if k != "id"}
        out.append(item)
    return out


def keeps_state(served_by: ServedBy | None, source: str, store: bool) -> bool:
    """The account that answered keeps the response itself: OpenAI's own Responses API (an
    OpenAI-dialect provider that answered in the ``responses`` format) with ``store`` on."""
    return store and served_by is not None and served_by.dialect == "openai" and source == "responses"


def _not_found(response_id: str) -> GatewayError:
    return GatewayError(
        400,
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


async def load(state: DialectState | None, response_id: str) -> Stored | None:
    """The turn stored under ``response_id`` for this gateway key, or ``None``.

    A value that does not decode (written by another version, or damaged) counts as absent.
    """
    if state is None:
        return None
    raw = await state.get(name_of(response_id))
    if raw is None:
        return None
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


async def previous(state: DialectState | None, response_id: str) -> Stored:
    """The turn ``previous_response_id`` names.

    :raises GatewayError: 400 ``previous_response_not_found`` naming ``previous_response_id``
        (OpenAI's answer) when it is unknown to this gateway key, expired or deleted.
    """
    found = await load(state, response_id)
    if found is None:
        raise _not_found(response_id)
    return found


def remember(
    state: DialectState | None,
    response_id: str,
    response: bytes,
    items: list[dict[str, Any]],
    source: str,
    store: bool = True,
    alias: str | None = None,
) -> None:
    """Queue the write of one answered turn (nothing when ``store`` is off or there is no state).

    :param response: the Response object's JSON as the client receives it.
    :param items: the turn's whole input, each item with an id.
    :param source: the dialect the answer came in (``responses``: passed through).
    :param alias: the ``model`` the client asked for.
    """
    if state is None or not store or not response_id:
        return
    served_by = state.served_by
    origin = (
        None
        if served_by is None
        else Origin(
            provider=served_by.provider,
            key=served_by.key,
            upstream_state=keeps_state(served_by, source, store),
        )
    )
    value = msgspec.json.encode(
        Stored(response=msgspec.Raw(response), items=items, origin=origin, alias=alias)
    )
    state.put(name_of(response_id), value, state.ttl)
