"""OpenAI's Responses API for the fake OpenAI server (:class:`ResponsesAPI`, mixed into ``FakeOpenAI``).

Endpoints: ``POST /v1/responses`` (stream and not), ``GET``/``DELETE /v1/responses/{id}``,
``POST /v1/responses/{id}/cancel``, ``GET /v1/responses/{id}/input_items`` and
``POST /v1/responses/input_tokens``.  Wire details reproduced:

- The ``Response`` object with every field the API echoes (``instructions``, ``reasoning``,
  ``text``, ``tools``, ``tool_choice``, ``store``...), pretty-printed like the rest of OpenAI.
- Output items: a ``reasoning`` item ``rs_...`` when the scripted reply thinks and the request
  asks for ``reasoning`` (its summary is the thinking; ``encrypted_content`` when ``include``
  has ``"reasoning.encrypted_content"``), a ``message`` ``msg_...`` with ``output_text`` (or a
  ``refusal`` for ``Reply(finish="refusal")``), a ``function_call`` ``fc_...`` per tool call.
- ``status`` ``incomplete`` with ``incomplete_details.reason`` ``max_output_tokens`` when the
  text is cut at ``max_output_tokens`` words (or ``Reply(finish="max_output_tokens"`` /
  ``"content_filter")``).
- Streams: ``event: <type>`` + ``data: <json>`` frames, ``sequence_number`` from 0, the real
  event sequence; deltas carry ``obfuscation`` unless ``stream_options.include_obfuscation`` is
  false.  A mid-stream error (``Fault(error_after=...)``) is an ``error`` event then
  ``response.failed``.
- State, per API key (one key, one OpenAI account): with ``store`` (the default) a response is
  kept; ``previous_response_id`` must name a response kept for that key, or 400
  ``previous_response_not_found``.  Reasoning items sent back without ``encrypted_content`` and
  ``item_reference`` items must name an item kept for that key; ``encrypted_content`` must come
  from this fake and that key.  Function calls and their outputs must pair up across the whole
  conversation (``No tool output found for function call ...``).
- ``background: true`` answers ``status: "queued"`` at once; the response is then retrievable,
  completed, or, with :attr:`ResponsesAPI.background_polls` set, unfinished (``queued``, then
  ``in_progress``, no output) for that many polls, and ``cancelled`` by a cancel meanwhile; a
  cancel of a finished one answers it unchanged, of a synchronous one 400.

:attr:`ResponsesAPI.response_turns` records, per answered create, the conversation the model
"saw": the previous responses' input and output items followed by this request's input.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from . import openai_responses_render as render
from .base import (
    Ctx,
    FakeUpstream,
    Problem,
    Received,
    Route,
    count_words,
    is_int,
)
from .openai_responses_checks import check_count, check_create, error_code

__all__ = ["ResponseTurn", "ResponsesAPI", "StoredResponse"]

_NOT_PERSISTED = (
    "Items are not persisted when `store` is set to false. Try again with `store` set to true, "
    "or remove this item from your input."
)
_STREAM_ERROR = (
    "The server had an error processing your request. Sorry about that! You can retry your "
    "request, or contact us through our help center at help.openai.com if you keep seeing this error."
)


@dataclass
class StoredResponse:
    """A response kept for one API key (``store: true``)."""

    response: dict[str, Any]
    """The final ``Response`` object, as ``GET /v1/responses/{id}`` returns it."""
    input_items: list[dict[str, Any]]
    """This request's own input items, with ids (``input_items`` lists them)."""
    conversation: list[dict[str, Any]]
    """Everything a follow-up continues from: the expanded input, then the output items."""
    background: bool = False
    """Created with ``background: true``."""
    polls: int = 0
    """Polls (``GET``) answered unfinished so far (background responses)."""


@dataclass
class ResponseTurn:
    """One answered ``POST /v1/responses``: what the model saw."""

    request: Received
    """The request record."""
    response_id: str
    """The id answered."""
    api_key: str | None
    """The key (account) it was made with."""
    instructions: str | None
    """The request's ``instructions`` (never carried over from a previous response)."""
    items: list[dict[str, Any]] = field(default_factory=list)
    """The expanded conversation: previous responses' items, then this request's input."""


@dataclass
class _Expanded:
    items: list[dict[str, Any]]
    """The previous responses' items, then this request's input (references resolved)."""
    own: list[dict[str, Any]]
    """This request's input alone, references resolved."""
    problems: list[Problem]


class ResponsesAPI(FakeUpstream):
    """The Responses API endpoints, with per-key stored responses; ``FakeOpenAI`` mixes it in."""

    def __init__(
        self,
        keys: Collection[str] = ("test-key",),
        *,
        chunks: int = 3,
        chunk_delay: float = 0.0,
        strict: bool = True,
        models: Collection[str] | None = None,
    ) -> None:
        super().__init__(keys, chunks=chunks, chunk_delay=chunk_delay, strict=strict, models=models)
        self.response_turns: list[ResponseTurn] = []
        """Every answered create, in order, with the conversation the model saw."""
        self.background_polls = 0
        """Polls a background response answers unfinished (``queued`` first, then ``in_progress``)
        before it is completed; a cancel meanwhile makes it ``cancelled``. 0: finished at once."""
        self._accounts: dict[str, dict[str, StoredResponse]] = {}
        self._items: dict[str, dict[str, dict[str, Any]]] = {}
        self._live: dict[int, dict[str, Any]] = {}
        self._secret = secrets.token_bytes(16)
        self._store_lock = threading.Lock()

    # ------------------------------------------------------------------ public API

    def responses_routes(self) -> list[Route]:
        """The Responses API routes."""
        return [
            Route("POST", "/v1/responses/input_tokens", self._count_tokens, self._validate_count),
            Route("POST", "/v1/responses", self._create, self._validate_create),
            Route("GET", "/v1/responses/{response_id}", self._retrieve, needs_json=False),
            Route("DELETE", "/v1/responses/{response_id}", self._delete, needs_json=False),
            Route("POST", "/v1/responses/{response_id}/cancel", self._cancel, needs_json=False),
            Route("GET", "/v1/responses/{response_id}/input_items", self._input_items, needs_json=False),
        ]

    def stored(self, api_key: str | None, response_id: str) -> StoredResponse | None:
        """The response kept for ``api_key`` under ``response_id``, if any."""
        with self._store_lock:
            return self._accounts.get(api_key or "", {}).get(response_id)

    def stored_ids(self, api_key: str | None) -> list[str]:
        """Ids of the responses kept for ``api_key``, oldest first."""
        with self._store_lock:
            return list(self._accounts.get(api_key or "", {}))

    def reset(self) -> None:
        """Also forget stored responses and recorded turns."""
        super().reset()
        with self._store_lock:
            self._accounts.clear()
            self._items.clear()
        self.response_turns.clear()

    def responses_error_code(self, ctx: Ctx, status: int, kind: str, message: str | None) -> str | None:
        """The ``code`` of a Responses 400 (``previous_response_not_found``, ``unknown_parameter``...)."""
        if status == 400 and kind == "bad_request" and message and ctx.rec.path.startswith("/v1/responses"):
            return error_code(message)
        return None

    def responses_stream_error(self, ctx: Ctx, kind: str | None, index: int) -> bytes:
        """An ``error`` event then ``response.failed``, numbered from ``index``."""
        limited = kind in ("rate_limit", "rate_limit_requests")
        code = "rate_limit_exceeded" if limited else "server_error"
        message = (
            str(self.error_body(ctx, 429, kind or "rate_limit", None, None)["error"]["message"])
            if limited
            else _STREAM_ERROR
        )
        error = render.event("error", index, code=code, message=message, param=None)
        response = dict(self._live.get(id(ctx), {}))
        response.update(status="failed", error={"code": code, "message": message}, usage=None)
        response.setdefault("output", [])
        return error + render.event("response.failed", index + 1, response=response)

    # ------------------------------------------------------------------ validation

    def _validate_create(self, ctx: Ctx) -> list[Problem]:
        problems = check_create(ctx.body)
        if problems:
            return problems
        return self._expand(ctx).problems

    def _validate_count(self, ctx: Ctx) -> list[Problem]:
        problems = check_count(ctx.body)
        if problems:
            return problems
        return self._expand(ctx).problems

    def _expand(self, ctx: Ctx) -> _Expanded:
        """The conversation a request continues, with what is wrong with it."""
        body: dict[str, Any] = ctx.body
        key = ctx.rec.api_key or ""
        problems: list[Problem] = []
        items: list[dict[str, Any]] = []
        resolved: list[dict[str, Any]] = []
        previous = body.get("previous_response_id")
        if isinstance(previous, str):
            stored = self.stored(key, previous)
            if stored is None:
                problems.append(
                    Problem(f"Previous response with id '{previous}' not found.", "previous_response_id")
                )
            else:
                items.extend(stored.conversation)
        own = self._input_of(body)
        store = body.get("store") is not False
        with self._store_lock:
            known = dict(self._items.get(key, {}))
        for i, item in enumerate(own):
            kind = item.get("type")
            where = f"input[{i}]"
            if kind == "reasoning" and item.get("encrypted_content") is not None:
                if not self._verify(key, item):
                    problems.append(
                        Problem(
                            f"The encrypted content for item {item.get('id')} could not be verified. "
                            "Reason: Encrypted content could not be decrypted or parsed.",
                            where,
                        )
                    )
            elif kind in ("reasoning", "item_reference") and isinstance(item.get("id"), str):
                if item["id"] not in known:
                    note = f" {_NOT_PERSISTED}" if not store else ""
                    problems.append(Problem(f"Item with id '{item['id']}' not found.{note}", "input"))
                    continue
                if kind == "item_reference":
                    item = known[item["id"]]
            resolved.append(item)
        items.extend(resolved)
        problems.extend(self._pairing(items))
        return _Expanded(items, resolved, problems)

    @staticmethod
    def _pairing(items: Sequence[dict[str, Any]]) -> list[Problem]:
        calls: list[str] = []
        outputs: set[str] = set()
        problems: list[Problem] = []
        for item in items:
            if item.get("type") == "function_call":
                calls.append(str(item.get("call_id")))
            elif item.get("type") == "function_call_output":
                call_id = str(item.get("call_id"))
                if call_id not in calls:
                    problems.append(
                        Problem(
                            f"No tool call found for function call output with call_id {call_id}.", "input"
                        )
                    )
                outputs.add(call_id)
        problems.extend(
            Problem(f"No tool output found for function call {call_id}.", "input")
            for call_id in calls
            if call_id not in outputs
        )
        return problems

    @staticmethod
    def _input_of(body: dict[str, Any]) -> list[dict[str, Any]]:
        raw = body.get("input")
        if isinstance(raw, str):
            return [{"role": "user", "content": raw}]
        if isinstance(raw, list):
            return [item for item in raw if isinstance(item, dict)]
        return []

    # ------------------------------------------------------------------ encrypted reasoning

    def _seal(self, key: str, item_id: str, text: str) -> str:
        payload = json.dumps({"id": item_id, "text": text}, separators=(",", ":")).encode()
        mac = hmac.new(self._secret, key.encode() + b"\0" + payload, hashlib.sha256).digest()[:16]
        return "gAAAAAB" + base64.urlsafe_b64encode(mac + payload).decode()

    def _verify(self, key: str, item: dict[str, Any]) -> bool:
        sealed = item.get("encrypted_content")
        if not isinstance(sealed, str) or not sealed.startswith("gAAAAAB"):
            return False
        try:
            raw = base64.urlsafe_b64decode(sealed[7:])
        except ValueError:
            return False
        mac, payload = raw[:16], raw[16:]
        good = hmac.new(self._secret, key.encode() + b"\0" + payload, hashlib.sha256).digest()[:16]
        return hmac.compare_digest(mac, good)

    # ------------------------------------------------------------------ create

    async def _create(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        key = ctx.rec.api_key or ""
        seen = self._expand(ctx)
        expanded = seen.items
        instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else None
        texts, prompt = render.conversation_texts(expanded)
        max_tokens = body.get("max_output_tokens")
        answer = self.build_answer(
            ctx,
            texts=[*([instructions] if instructions else []), *texts],
            prompt=prompt,
            max_tokens=max_tokens if is_int(max_tokens) else None,
            id_prefix="call_",
            id_length=24,
        )
        reason = render.INCOMPLETE.get(answer.finish or "") or render.INCOMPLETE.get(answer.reason)
        response_id = render.hex_id("resp_")
        model = ctx.rec.model or ""
        head = render.head(response_id, body, model, "in_progress")
        output = render.output_items(body, answer, reason is not None, partial(self._seal, key))
        usage = render.usage(answer)
        ctx.tokens = usage["total_tokens"]
        final = {
            **head,
            "status": "incomplete" if reason else "completed",
            "completed_at": None if reason else int(time.time()),
            "incomplete_details": {"reason": reason} if reason else None,
            "output": output,
            "usage": usage,
        }
        self.response_turns.append(
            ResponseTurn(ctx.rec, response_id, ctx.rec.api_key, instructions, expanded)
        )
        stream = ctx.rec.stream
        failing = ctx.fault is not None and ctx.fault.error_after is not None and stream
        if body.get("store") is not False:
            kept = dict(final)
            if failing:
                kept.update(status="failed", usage=None, completed_at=None)
            self._keep(key, kept, seen.own, expanded, output, body.get("background") is True)
        if not stream:
            if body.get("background") is True:
                return self.json_response(ctx, {**head, "status": "queued"})
            return self.json_response(ctx, final)
        obfuscate = (body.get("stream_options") or {}).get("include_obfuscation") is not False
        events = render.events(head, final, obfuscate, self.chunks)
        self._live[id(ctx)] = head
        try:
            return await self.send_stream(ctx, events, content_type="text/event-stream; charset=utf-8")
        finally:
            self._live.pop(id(ctx), None)

    def _keep(
        self,
        key: str,
        response: dict[str, Any],
        own: list[dict[str, Any]],
        expanded: list[dict[str, Any]],
        output: list[dict[str, Any]],
        background: bool,
    ) -> None:
        listed = [self._as_item(item) for item in own]
        stored = StoredResponse(response, listed, [*expanded, *output], background)
        with self._store_lock:
            self._accounts.setdefault(key, {})[response["id"]] = stored
            index = self._items.setdefault(key, {})
            for item in [*listed, *output]:
                index[item["id"]] = item

    @staticmethod
    def _as_item(item: dict[str, Any]) -> dict[str, Any]:
        """An input item as ``input_items`` lists it: with an id, a type and a status."""
        out = dict(item)
        kind = out.setdefault("type", "message")
        if kind == "message":
            content = out.get("content")
            if isinstance(content, str):
                part = "output_text" if out.get("role") == "assistant" else "input_text"
                extra: dict[str, Any] = {"annotations": []} if part == "output_text" else {}
                out["content"] = [{"type": part, "text": content, **extra}]
            out.setdefault("status", "completed")
            out.setdefault("id", render.hex_id("msg_"))
        elif kind == "function_call_output":
            out.setdefault("status", "completed")
            out.setdefault("id", render.hex_id("fco_"))
        elif kind == "function_call":
            out.setdefault("status", "completed")
            out.setdefault("id", render.hex_id("fc_"))
        else:
            out.setdefault("id", render.hex_id("item_"))
        return out

    # ------------------------------------------------------------------ the other endpoints

    def _not_found(self, ctx: Ctx, response_id: str) -> web.Response:
        return self.error(ctx, 404, "response_not_found", f"Response with id '{response_id}' not found.")

    @staticmethod
    def _background_unfinished(stored: StoredResponse, status: str) -> dict[str, Any]:
        return {**stored.response, "status": status, "output": [], "usage": None, "completed_at": None}

    def _background_running(self, stored: StoredResponse) -> bool:
        """A background response still unfinished (not polled enough, not cancelled)."""
        return (
            stored.background
            and stored.polls < self.background_polls
            and stored.response.get("status") != "cancelled"
        )

    async def _retrieve(self, ctx: Ctx) -> web.StreamResponse:
        response_id = ctx.request.match_info["response_id"]
        stored = self.stored(ctx.rec.api_key, response_id)
        if stored is None:
            return self._not_found(ctx, response_id)
        if self._background_running(stored):
            stored.polls += 1
            status = "queued" if stored.polls == 1 else "in_progress"
            return self.json_response(ctx, self._background_unfinished(stored, status))
        return self.json_response(ctx, stored.response)

    async def _delete(self, ctx: Ctx) -> web.StreamResponse:
        response_id = ctx.request.match_info["response_id"]
        key = ctx.rec.api_key or ""
        with self._store_lock:
            stored = self._accounts.get(key, {}).pop(response_id, None)
            if stored is not None:
                index = self._items.get(key, {})
                for item in [*stored.input_items, *stored.response.get("output", [])]:
                    index.pop(item.get("id"), None)
        if stored is None:
            return self._not_found(ctx, response_id)
        return self.json_response(ctx, {"id": response_id, "object": "response", "deleted": True})

    async def _cancel(self, ctx: Ctx) -> web.StreamResponse:
        response_id = ctx.request.match_info["response_id"]
        stored = self.stored(ctx.rec.api_key, response_id)
        if stored is None:
            return self._not_found(ctx, response_id)
        if not stored.background:
            return self.error(ctx, 400, "bad_request", "Cannot cancel a synchronous response.", None)
        if self._background_running(stored):
            stored.response = self._background_unfinished(stored, "cancelled")
        return self.json_response(ctx, stored.response)

    async def _input_items(self, ctx: Ctx) -> web.StreamResponse:
        response_id = ctx.request.match_info["response_id"]
        stored = self.stored(ctx.rec.api_key, response_id)
        if stored is None:
            return self._not_found(ctx, response_id)
        query = ctx.request.query
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            return self.error(
                ctx,
                400,
                "bad_request",
                f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
                "order",
            )
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return self.error(
                ctx, 400, "bad_request", "Invalid 'limit': expected an integer between 1 and 100.", "limit"
            )
        items = list(stored.input_items)
        if order == "desc":
            items.reverse()
        after = query.get("after")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return self.json_response(
            ctx,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            },
        )

    async def _count_tokens(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        texts, _ = render.conversation_texts(self._expand(ctx).items)
        instructions = body.get("instructions")
        if isinstance(instructions, str) and instructions:
            texts.insert(0, instructions)
        return self.json_response(
            ctx, {"object": "response.input_tokens", "input_tokens": count_words(*texts) + 1}
        )
