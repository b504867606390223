"""Anthropic's Message Batches API for the fake Anthropic server (:class:`MessageBatchesAPI`,
mixed into ``FakeAnthropic``).

Endpoints: ``POST /v1/messages/batches``, ``GET /v1/messages/batches``, ``GET
/v1/messages/batches/{id}``, ``POST /v1/messages/batches/{id}/cancel``, ``GET
/v1/messages/batches/{id}/results``.

Wire details reproduced (``anthropic.types.messages``):

- A batch belongs to the API key that created it (another key: 404 ``not_found_error``).
- Create: ``{"requests": [{"custom_id", "params"}]}``, nothing else; 1 to 100,000 requests;
  ``custom_id`` matching ``^[a-zA-Z0-9_-]{1,64}$`` and unique; ``params`` a Messages request
  checked exactly as ``POST /v1/messages`` checks it, and not streaming.
- A MessageBatch: ``{"id": "msgbatch_...", "type": "message_batch", "processing_status":
  "in_progress" | "canceling" | "ended", "request_counts": {"processing", "succeeded",
  "errored", "canceled", "expired"}, "created_at", "expires_at", "ended_at",
  "cancel_initiated_at", "archived_at", "results_url"}`` (RFC 3339 times).
- Results (once ended): JSON Lines of ``{"custom_id", "result": {"type": "succeeded", "message"}
  | {"type": "errored", "error": {...}} | {"type": "canceled"} | {"type": "expired"}}``;
  before: 400.

The test decides when a batch ends: :meth:`MessageBatchesAPI.end_batch` answers every request
(``"echo: <last user text>"``; usage: input tokens = words of the request's texts + 1, output
tokens = words of the answer), or errors those named. :attr:`results_override` replaces the
results' bytes (hostile files); :attr:`results_gate` holds the results after their first
:attr:`results_first` bytes until the test sets it (a relay that must start before the end).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from .base import Ctx, FakeUpstream, Problem, Route, count_words

__all__ = ["MessageBatchesAPI", "StoredMessageBatch"]

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_REQUESTS = 100_000


def _rfc3339(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class StoredMessageBatch:
    """One Message Batch one API key created."""

    def __init__(self, key: str, requests: list[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        self.key = key
        self.requests = requests
        self.results: bytes | None = None
        self.body: dict[str, Any] = {
            "id": "msgbatch_" + secrets.token_hex(12),
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": len(requests),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": _rfc3339(now),
            "expires_at": _rfc3339(now + timedelta(hours=24)),
            "ended_at": None,
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": None,
        }


class MessageBatchesAPI(FakeUpstream):
    """The Message Batches endpoints, per API key; ``FakeAnthropic`` mixes it in (it needs the
    host's ``_validate_messages`` and ``_validate_version``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.message_batches: dict[str, StoredMessageBatch] = {}
        """Every batch, by id."""
        self.results_override: bytes | None = None
        """When set, the results' bytes of every ended batch."""
        self.results_gate: threading.Event | None = None
        """When set, results are sent up to :attr:`results_first` bytes, then wait for it."""
        self.results_first = 65536
        self.results_sent_first = threading.Event()
        """Set as the first part of gated results starts to go out (the rest waits on the gate)."""
        self._batches_lock = threading.Lock()

    def batches_routes(self) -> list[Route]:
        """The Message Batches routes."""
        base = "/v1/messages/batches"
        return [
            Route("POST", base, self._create, self._validate_create),
            Route("GET", base, self._list, self._version, needs_json=False),
            Route("GET", base + "/{batch_id}", self._get, self._version, needs_json=False),
            Route("POST", base + "/{batch_id}/cancel", self._cancel, self._version, needs_json=False),
            Route("GET", base + "/{batch_id}/results", self._results, self._version, needs_json=False),
        ]

    def reset(self) -> None:
        """Also forget batches."""
        super().reset()
        with self._batches_lock:
            self.message_batches.clear()
        self.results_override = None
        self.results_gate = None
        self.results_sent_first = threading.Event()

    # ------------------------------------------------------------------ test control

    def end_batch(self, batch_id: str, errored: frozenset[str] = frozenset()) -> dict[str, Any]:
        """End ``batch_id``: every request answered (those in ``errored`` fail). Returns the
        MessageBatch."""
        with self._batches_lock:
            batch = self.message_batches[batch_id]
            lines = []
            for request in batch.requests:
                custom_id = request["custom_id"]
                if batch.body["cancel_initiated_at"] is not None:
                    result: dict[str, Any] = {"type": "canceled"}
                elif custom_id in errored:
                    result = {
                        "type": "errored",
                        "error": {
                            "type": "error",
                            "error": {"type": "invalid_request_error", "message": "bad request " + custom_id},
                        },
                    }
                else:
                    result = {"type": "succeeded", "message": self._message(request)}
                lines.append(json.dumps({"custom_id": custom_id, "result": result}, separators=(",", ":")))
            batch.results = ("\n".join(lines) + "\n").encode()
            counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
            for line in lines:
                kind = json.loads(line)["result"]["type"]
                counts[kind] += 1
            batch.body.update(
                processing_status="ended",
                request_counts=counts,
                ended_at=_rfc3339(datetime.now(UTC)),
                results_url=f"{self.base_url}/v1/messages/batches/{batch_id}/results",
            )
            return dict(batch.body)

    def message_usage_of(self, batch_id: str) -> tuple[int, int]:
        """``(input_tokens, output_tokens)`` summed over the batch's succeeded requests (as
        :meth:`end_batch` answers every request)."""
        prompt = completion = 0
        for request in self.message_batches[batch_id].requests:
            usage = self._message(request)["usage"]
            prompt += usage["input_tokens"]
            completion += usage["output_tokens"]
        return prompt, completion

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _message(request: dict[str, Any]) -> dict[str, Any]:
        params = request["params"]
        texts: list[str] = []
        for message in params.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(
                    b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
                )
        answer = "echo: " + (texts[-1] if texts else "")[:200]
        return {
            "id": "msg_" + request["custom_id"],
            "type": "message",
            "role": "assistant",
            "model": params.get("model"),
            "content": [{"type": "text", "text": answer}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": count_words(*texts) + 1,
                "output_tokens": count_words(answer),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    def _version(self, ctx: Ctx) -> list[Problem]:
        """The host fake's ``anthropic-version`` check."""
        check: Any = getattr(self, "_validate_version")  # noqa: B009 (the host fake's)
        return list(check(ctx))

    def _params_problems(self, ctx: Ctx) -> list[Problem]:
        """The host fake's check of a Messages request."""
        check: Any = getattr(self, "_validate_messages")  # noqa: B009 (the host fake's)
        return list(check(ctx))

    def _batch(self, ctx: Ctx) -> StoredMessageBatch | None:
        found = self.message_batches.get(ctx.request.match_info["batch_id"])
        return found if found is not None and found.key == ctx.rec.api_key else None

    def _missing(self, ctx: Ctx) -> web.Response:
        return self.error(
            ctx, 404, "not_found", f"No such message batch: {ctx.request.match_info['batch_id']}"
        )

    # ------------------------------------------------------------------ handlers

    def _validate_create(self, ctx: Ctx) -> list[Problem]:
        problems: list[Problem] = list(self._version(ctx))
        body = ctx.body
        if not isinstance(body, dict):
            return [*problems, Problem("Input should be a valid dictionary")]
        problems.extend(
            Problem(f"{name}: Extra inputs are not permitted") for name in body if name != "requests"
        )
        requests = body.get("requests")
        if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS:
            return [*problems, Problem(f"requests: a list of 1 to {MAX_REQUESTS} requests")]
        seen: set[str] = set()
        for index, request in enumerate(requests):
            at = f"requests.{index}"
            if not isinstance(request, dict) or set(request) != {"custom_id", "params"}:
                problems.append(Problem(f"{at}: expected exactly custom_id and params"))
                continue
            custom_id = request["custom_id"]
            if not isinstance(custom_id, str) or _CUSTOM_ID.match(custom_id) is None:
                problems.append(
                    Problem(f"{at}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
                )
            elif custom_id in seen:
                problems.append(Problem(f"{at}.custom_id: duplicate custom_id {custom_id}"))
            else:
                seen.add(custom_id)
            params = request["params"]
            if isinstance(params, dict) and params.get("stream") is True:
                problems.append(Problem(f"{at}.params.stream: a batch request cannot stream"))
            inner = Ctx(request=ctx.request, rec=ctx.rec, body=params)
            problems.extend(
                Problem(f"{at}.params.{p.message}", p.param)
                for p in self._params_problems(inner)
                if "anthropic-version" not in p.message
            )
        return problems

    async def _create(self, ctx: Ctx) -> web.StreamResponse:
        batch = StoredMessageBatch(ctx.rec.api_key or "", list(ctx.body["requests"]))
        with self._batches_lock:
            self.message_batches[batch.body["id"]] = batch
        return self.json_response(ctx, batch.body)

    async def _list(self, ctx: Ctx) -> web.StreamResponse:
        rows = [b.body for b in self.message_batches.values() if b.key == ctx.rec.api_key]
        return self.json_response(
            ctx,
            {
                "data": rows,
                "has_more": False,
                "first_id": rows[0]["id"] if rows else None,
                "last_id": rows[-1]["id"] if rows else None,
            },
        )

    async def _get(self, ctx: Ctx) -> web.StreamResponse:
        found = self._batch(ctx)
        return self._missing(ctx) if found is None else self.json_response(ctx, found.body)

    async def _cancel(self, ctx: Ctx) -> web.StreamResponse:
        found = self._batch(ctx)
        if found is None:
            return self._missing(ctx)
        if found.body["processing_status"] == "in_progress":
            found.body.update(processing_status="canceling", cancel_initiated_at=_rfc3339(datetime.now(UTC)))
        return self.json_response(ctx, found.body)

    async def _results(self, ctx: Ctx) -> web.StreamResponse:
        found = self._batch(ctx)
        if found is None:
            return self._missing(ctx)
        if found.body["processing_status"] != "ended" or found.results is None:
            return self.error(ctx, 400, "bad_request", "Message Batch has not ended: no results yet.")
        content = self.results_override if self.results_override is not None else found.results
        response = web.StreamResponse(
            headers={"Content-Type": "application/binary", **self.success_headers(ctx)}
        )
        await response.prepare(ctx.request)
        gate = self.results_gate
        if gate is None:
            await response.write(content)
        else:
            # marked before the write: the write can wait on drain while the gateway already
            # relays these bytes, so a client may hold them before the write returns
            self.results_sent_first.set()
            await response.write(content[: self.results_first])
            await asyncio.to_thread(gate.wait, 60)
            for start in range(self.results_first, len(content), 1 << 20):
                await response.write(content[start : start + (1 << 20)])
        await response.write_eof()
        return response
