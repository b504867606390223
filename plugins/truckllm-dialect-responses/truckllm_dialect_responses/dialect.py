"""OpenAI's Responses API as an inbound dialect of the gateway.

Routes:

- ``POST /v1/responses`` (the kernel's ``chat`` endpoint), whole answers and streams;
- ``POST /v1/responses/input_tokens`` (``count_tokens``: answered by deployments whose provider
  lists that endpoint);
- ``GET`` / ``DELETE /v1/responses/{response_id}``, ``POST /v1/responses/{response_id}/cancel``,
  ``GET /v1/responses/{response_id}/input_items``: answered from stored state (:mod:`.local`).

A request keeps its bytes (OpenAI Responses API deployments get them as they came, but for
``model``) and gets its chat-completions form for every other deployment. Conversation state
(``store``, ``previous_response_id``) is kept through ``ChatRequest.state``: see :mod:`.state`.
``background: true`` runs on OpenAI Responses API deployments only (any other refuses it with
400 naming ``background``); its polls and cancels go to the account that runs it: see
:mod:`.background`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from truckllm.errors import GatewayError, UnsupportedRequest
from truckllm.kit.dialect import Affinity, DialectRoute, FrameTranslator, LocalAnswer, LocalCall, bearer
from truckllm.kit.openai_schemas import ChatCompletionRequest
from truckllm.types import ChatRequest

from .background import CANCEL, REFUSAL, RETRIEVE, answered, pending, start
from .errors import error_body, stream_error
from .local import ROUTE_CANCEL, ROUTE_INPUT_ITEMS, ROUTE_RESPONSE, serve_local
from .measure import measured
from .passthrough import Remembering, Watch
from .request import ResponsesCall, read_request, to_chat
from .response import Shape, count_from_chat, response_from_chat
from .state import Thread, conversation, identify, mint, previous, remember, resolve_minted, upstream_items
from .stream import ChatToResponses

__all__ = ["NAME", "ResponsesDialect", "ResponsesRequest", "Turn"]

NAME = "responses"
"""The dialect's name: ``ChatRequest.dialect``, the label in records and metrics."""


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """What the dialect knows of one call beyond its bytes.

    :ivar call: the call as the client made it (its own fields: ``instructions``, ``tools``...).
    :ivar items: the whole conversation this call continues and adds to, each item with an id
        unique in it (what is stored as the turn's input).
    :ivar minted: the ids in ``items`` the gateway made.
    """

    call: Any  # ResponsesCall
    items: list[dict[str, Any]]
    minted: frozenset[str] = frozenset()


class ResponsesRequest(ChatRequest, kw_only=True):
    """A :class:`~truckllm.types.ChatRequest` that carries its :class:`Turn` to the answer.

    :ivar turn: the call and its conversation (``None``: read again from ``body``).
    """

    turn: Turn | None = None


def _typed(call: ResponsesCall, items: list[dict[str, Any]]) -> tuple[ChatCompletionRequest, dict[str, Any]]:
    """The chat-completions form and, when it cannot be sent, why (``refusal``,
    ``refusal_param``): then it is only what the kernel's limits measure (see :mod:`.measure`)."""
    refusal: dict[str, Any] = {}
    if call.background:  # only an OpenAI Responses API deployment runs (and keeps) it
        refusal = {"refusal": REFUSAL, "refusal_param": "background"}
    try:
        return to_chat(call, items), refusal
    except UnsupportedRequest as exc:
        return measured(call, items), refusal or {"refusal": exc.message, "refusal_param": exc.param}


def _turn(request: ChatRequest) -> Turn:
    if isinstance(request, ResponsesRequest) and request.turn is not None:
        return request.turn
    call = read_request(request.body)
    thread = identify(call.input)
    return Turn(call=call, items=thread.items, minted=thread.minted)


def _response_id(response: bytes) -> str:
    try:
        found = msgspec.json.decode(response, type=dict[str, msgspec.Raw]).get("id")
        value = msgspec.json.decode(found) if found is not None else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""
    return value if isinstance(value, str) else ""


class ResponsesDialect:
    """OpenAI's Responses API at the gateway's front door, with its conversation state.

    :ivar clock: unix time, for ``created_at`` (injected by tests).
    """

    name = NAME
    reframes_own = True  # pass-through answers are seen too: every answer is remembered
    routes = (
        DialectRoute(path="/v1/responses", endpoint="chat", name="responses"),
        DialectRoute(path="/v1/responses/input_tokens", endpoint="count_tokens", name="input_tokens"),
        DialectRoute(
            path="/v1/responses/{response_id}",
            endpoint="local",
            methods=("GET", "DELETE"),
            name=ROUTE_RESPONSE,
        ),
        DialectRoute(
            path="/v1/responses/{response_id}/cancel", endpoint="local", methods=("POST",), name=ROUTE_CANCEL
        ),
        DialectRoute(
            path="/v1/responses/{response_id}/input_items",
            endpoint="local",
            methods=("GET",),
            name=ROUTE_INPUT_ITEMS,
        ),
    )

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def credentials(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The gateway key: ``Authorization: Bearer``."""
        return bearer(headers.get("authorization"))

    def parse(
        self,
        route: DialectRoute,
        body: bytes,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> ChatRequest:
        """Validate a Responses API call; keep its bytes; add its chat-completions form.

        A call that continues a conversation gets that form in :meth:`prepare`, once the earlier
        turns are read. A call with a built-in tool has none: it carries ``refusal`` instead (an
        OpenAI Responses API deployment serves it; any other answers 400 naming the tool), as does
        a ``background`` call; its ``typed`` form is then only what the kernel's limits measure.

        :raises GatewayError: 400 naming the field at fault (``stream`` for a token count: not a
            field of ``input_tokens``, as OpenAI answers).
        """
        call = read_request(body)
        if route.endpoint == "count_tokens" and "stream" in call.fields:
            raise GatewayError(400, "Unknown parameter: 'stream'.", param="stream", code="unknown_parameter")
        thread = identify(call.input)
        typed, refusal = (None, {}) if call.previous_response_id else _typed(call, thread.items)
        return ResponsesRequest(
            endpoint=route.endpoint,
            dialect=NAME,
            body=body,
            model=call.model,
            stream=call.stream,
            include_usage=call.stream,
            typed=typed,
            headers=headers,
            turn=Turn(call=call, items=thread.items, minted=thread.minted),
            **refusal,
        )

    async def prepare(self, request: ChatRequest) -> ChatRequest:
        """Continue a stored conversation (``previous_response_id``).

        The conversation is the stored turn's input and output, then this call's input. When an
        OpenAI account that keeps responses itself answered that turn, the request goes back there
        first as it came (its ``previous_response_id`` means something only there; an
        ``item_reference`` to an item id the gateway made, which that account never saw, is
        replaced by the item), and anywhere else with the conversation spelled out.

        :raises GatewayError: 400 ``previous_response_not_found`` naming ``previous_response_id``
            (OpenAI's answer) when this gateway key has no such response (never stored,
            ``store: false``, another key's, expired or deleted).
        """
        turn = _turn(request)
        call: ResponsesCall = turn.call
        if not call.previous_response_id:
            return request
        stored = await previous(request.state, call.previous_response_id)
        thread = conversation(stored, Thread(turn.items, turn.minted))
        typed, refusal = _typed(call, thread.items)
        expanded = ResponsesRequest(
            endpoint=request.endpoint,
            dialect=NAME,
            body=request.encode(previous_response_id=None, input=upstream_items(thread.items)),
            model=request.model,
            stream=request.stream,
            include_usage=request.include_usage,
            typed=typed,
            headers=request.headers,
            state=request.state,
            turn=Turn(call=call, items=thread.items, minted=thread.minted),
            **refusal,
        )
        origin = stored.origin
        if origin is None or not origin.upstream_state:
            return expanded
        # a background response still running has no output here yet: only its account continues it
        elsewhere = None if pending(stored) else expanded
        own = resolve_minted(stored, call.input)
        return msgspec.structs.replace(
            request,
            body=request.body if own is None else request.encode(input=own),
            _fields=None,
            typed=typed,
            turn=expanded.turn,
            refusal=expanded.refusal,
            refusal_param=expanded.refusal_param,
            affinity=Affinity(provider=origin.provider, key=origin.key, elsewhere=elsewhere),
        )

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        """An answer as a Response object, remembered when the call asked to ``store`` it.

        A chat completion (a deployment of another dialect) becomes a Response with ids minted
        here (``model`` = the alias asked for); an OpenAI Responses API answer is unchanged, kept
        under OpenAI's own id.
        """
        if source not in (NAME, "openai"):
            raise GatewayError(502, f"cannot turn a {source} answer into a Response", type="server_error")
        if request.endpoint == "count_tokens":
            return body if source == NAME else count_from_chat(body)
        if request.endpoint in (RETRIEVE, CANCEL):  # a background response polled or cancelled
            return answered(request, body)
        turn = _turn(request)
        if source == NAME:
            out = body
        else:
            shape = Shape(id=mint("resp"), created_at=int(self.clock()), alias=request.model, call=turn.call)
            out = msgspec.json.encode(response_from_chat(body, shape))
        response_id = _response_id(out)
        remember(
            request.state,
            response_id,
            out,
            turn.items,
            source,
            turn.call.store,
            request.model,
            turn.minted,
        )
        if turn.call.background:
            start(request.state, response_id, out, turn.call.store)
        return out

    def stream(self, request: ChatRequest, source: str) -> FrameTranslator:
        """A translator of ``source``'s stream into Responses events; the final Response is
        remembered as soon as its terminal event is seen (the kernel writes it before that
        event's bytes are sent)."""
        if source not in (NAME, "openai"):
            raise GatewayError(
                502, f"cannot turn a {source} stream into Responses events", type="server_error"
            )
        turn = _turn(request)

        def on_final(response: bytes) -> None:
            remember(
                request.state,
                _response_id(response),
                response,
                turn.items,
                source,
                turn.call.store,
                request.model,
                turn.minted,
            )

        if source == NAME:
            return Watch(on_final)
        shape = Shape(id=mint("resp"), created_at=int(self.clock()), alias=request.model, call=turn.call)
        return Remembering(ChatToResponses(shape), on_final)

    async def serve_local(self, route: DialectRoute, call: LocalCall) -> LocalAnswer:
        """``GET``/``DELETE`` a stored response, ``cancel`` it, list its input items (a background
        response still running: its account is asked)."""
        return await serve_local(route.name, call)

    def error_body(self, error: GatewayError) -> bytes:
        """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
        return error_body(error)

    def stream_error(self, error: GatewayError) -> bytes:
        """An ``event: error`` frame (the stream translators' own ``error()`` is preferred)."""
        return stream_error(error)

    def stream_content_type(self, request: ChatRequest) -> str:
        """Server-sent events."""
        return "text/event-stream"
