"""Conversation state: what one answered turn leaves behind for ``previous_response_id``.

A stored turn (:class:`Stored`, under ``resp:<id>`` in the request's
:class:`~truckllm.kit.dialect.DialectState`, which the kernel scopes to the gateway key) holds

- the Response object exactly as the client received it (``GET /v1/responses/{id}``);
- the full input of that turn, earlier turns included, every item with an id
  (``GET /v1/responses/{id}/input_items``, and the start of the next turn's conversation);
- where it was answered (:class:`Origin`): an OpenAI account that keeps the response itself is
  where the next turn goes first;
- which item ids the gateway made (``minted``): the account that keeps the turn never saw them,
  so an ``item_reference`` to one is resolved here before the next turn goes there.

Every stored item has an id unique in its conversation (:func:`identify`), so that
``input_items`` pages by ``after`` always end and never skip. A response id is looked up or
stored only when it has a response id's shape (:func:`valid_id`: short, of URL-safe characters);
any other is unknown without a store call (no client-made name of any length reaches a store).

The next turn's conversation is the stored input, then the stored output, then its own input
(:func:`conversation`). ``instructions`` are not carried over (OpenAI's semantics): they are a
field of each call, never an item.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from typing import Any

import msgspec

from truckllm.errors import GatewayError
from truckllm.kit.dialect import DialectState, ServedBy

from .errors import shown

__all__ = [
    "ID_PREFIXES",
    "MAX_ID",
    "Origin",
    "Stored",
    "Thread",
    "conversation",
    "identify",
    "keeps_state",
    "load",
    "mint",
    "name_of",
    "output_items",
    "previous",
    "remember",
    "resolve_minted",
    "upstream_items",
    "valid_id",
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

MAX_ID = 256
"""The longest response id looked up or stored (OpenAI's and the gateway's are about 55
characters; an OpenAI-compatible server's base64 ids about 200)."""

_ID_SHAPE = re.compile(rf"[A-Za-z0-9_.:=+-]{{1,{MAX_ID}}}")


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
    :ivar minted: the ids in ``items`` the gateway made (absent from the account that keeps the
        turn: an ``item_reference`` to one is resolved before it goes there).
    """

    response: msgspec.Raw
    items: list[dict[str, Any]]
    origin: Origin | None = None
    alias: str | None = None
    minted: list[str] = []


class Thread(msgspec.Struct, frozen=True):
    """Items of a conversation, each with a unique id, and the ids among them the gateway made.

    :ivar items: the items.
    :ivar minted: the ids the gateway made.
    """

    items: list[dict[str, Any]]
    minted: frozenset[str] = frozenset()


_decoder = msgspec.json.Decoder(Stored)


def mint(prefix: str) -> str:
    """A fresh id in OpenAI's shape: ``<prefix>_`` and 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


def name_of(response_id: str) -> str:
    """The state name a response is stored under."""
    return _STATE + response_id


def valid_id(response_id: str) -> bool:
    """``response_id`` has a response id's shape: 1 to :data:`MAX_ID` letters, digits and
    ``_ - . : = +`` (anything else is no response: unknown without a store call)."""
    return _ID_SHAPE.fullmatch(response_id) is not None


def identify(items: Iterable[dict[str, Any]], taken: Iterable[str] = ()) -> Thread:
    """``items``, each with an id unique among them, and the ids made here.

    An item keeps its id when it is a non-empty string not seen before (nor in ``taken``); any
    other item (no id, a blank or non-string one, a repeat) gets a fresh one (``msg_``, ``fc_``,
    ``rs_``...). An ``item_reference`` keeps its id (it names another item). The items are copied
    where changed, never modified in place.
    """
    seen = set(taken)
    minted: set[str] = set()
    out: list[dict[str, Any]] = []
    for item in items:
        given = item.get("id")
        kind = item.get("type", "message")
        if kind == "item_reference" or (isinstance(given, str) and given and given not in seen):
            if isinstance(given, str):
                seen.add(given)
            out.append(item)
            continue
        fresh = mint(ID_PREFIXES.get(kind, "item") if isinstance(kind, str) else "item")
        seen.add(fresh)
        minted.add(fresh)
        out.append({**item, "id": fresh})
    return Thread(out, frozenset(minted))


def with_ids(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` each with a unique id (see :func:`identify`)."""
    return identify(items).items


def output_items(response: msgspec.Raw | bytes) -> list[dict[str, Any]]:
    """The ``output`` items of a Response object (``[]`` when it has none)."""
    decoded = msgspec.json.decode(response)
    output = decoded.get("output") if isinstance(decoded, dict) else None
    return [item for item in output if isinstance(item, dict)] if isinstance(output, list) else []


def conversation(stored: Stored, thread: Thread) -> Thread:
    """The whole conversation of a turn that continues ``stored``: its input, its output, then
    this turn's items (``thread``, each with an id).

    An ``item_reference`` to an item of the conversation becomes that item (so that any provider
    can be sent it); one to an unknown item stays as it is. A repeated id (a resolved reference,
    an item sent again) is replaced by a fresh one. The ids the gateway made are those of
    ``stored`` and ``thread``, and the output's when the stored turn was translated.
    """
    output = output_items(stored.response)
    earlier = [*stored.items, *output]
    made = {*stored.minted, *thread.minted}
    if stored.origin is None or not stored.origin.upstream_state:  # the gateway made the output
        made.update(item["id"] for item in output if isinstance(item.get("id"), str))
    known = {item["id"]: item for item in earlier if isinstance(item.get("id"), str)}
    own = [
        known.get(item.get("id"), item) if item.get("type") == "item_reference" else item
        for item in thread.items
    ]
    whole = identify([*earlier, *own])
    ids = {item.get("id") for item in whole.items}
    return Thread(whole.items, frozenset((made | whole.minted) & ids))


def resolve_minted(stored: Stored, items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """``items`` (a call's own input) with each ``item_reference`` to an item of ``stored`` whose
    id the gateway made replaced by that item, as an account that never saw the id takes it
    (see :func:`upstream_items`; a function call or output without the id), or ``None`` when
    there is no such reference."""
    made = set(stored.minted)
    known = {item["id"]: item for item in stored.items if item.get("id") in made}
    if not any(item.get("type") == "item_reference" and item.get("id") in known for item in items):
        return None
    out: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") != "item_reference" or item.get("id") not in known:
            out.append(item)
            continue
        for resolved in upstream_items([known[item["id"]]]):
            if resolved.get("type", "message") != "message":
                resolved = {k: v for k, v in resolved.items() if k != "id"}
            out.append(resolved)
    return out


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
        f"Previous response with id '{shown(response_id)}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


async def load(state: DialectState | None, response_id: str) -> Stored | None:
    """The turn stored under ``response_id`` for this gateway key, or ``None``.

    A value that does not decode (written by another version, or damaged) counts as absent, as
    does an id without a response id's shape (:func:`valid_id`: never sent to the store).
    """
    if state is None or not valid_id(response_id):
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
    minted: Iterable[str] = (),
) -> None:
    """Queue the write of one answered turn (nothing when ``store`` is off, there is no state, or
    the response id has no response id's shape: :func:`valid_id`).

    :param response: the Response object's JSON as the client receives it.
    :param items: the turn's whole input, each item with an id.
    :param source: the dialect the answer came in (``responses``: passed through).
    :param alias: the ``model`` the client asked for.
    :param minted: the ids in ``items`` the gateway made.
    """
    if state is None or not store or not valid_id(response_id):
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
        Stored(
            response=msgspec.Raw(response),
            items=items,
            origin=origin,
            alias=alias,
            minted=sorted(set(minted) & {item.get("id") for item in items}),
        )
    )
    state.put(name_of(response_id), value, state.ttl)
