"""OpenAI's Files and Batch APIs for the fake OpenAI server (:class:`BatchesAPI`, mixed into ``FakeOpenAI``).

Endpoints: ``POST /v1/files`` (``multipart/form-data``: ``purpose``, ``file``), ``GET /v1/files``,
``GET``/``DELETE /v1/files/{file_id}``, ``GET /v1/files/{file_id}/content``, ``POST /v1/batches``,
``GET /v1/batches``, ``GET /v1/batches/{batch_id}``, ``POST /v1/batches/{batch_id}/cancel``.

Wire details reproduced:

- Files and batches belong to the API key (one key, one OpenAI account) that made them: another
  key gets 404 ``No such File object: <id>`` / ``No such batch: <id>`` (``param: "id"``).
- A file object: ``{"id": "file-...", "object": "file", "bytes", "created_at", "filename",
  "purpose", "status": "processed", "expires_at": null, "status_details": null}``.
- An upload must be ``multipart/form-data`` with exactly the fields ``purpose`` (one of
  :data:`PURPOSES`) and ``file`` (a file part): anything else is a violation.
- A batch's input file must be the caller's, of purpose ``batch``, JSON Lines of
  ``{"custom_id", "method": "POST", "url": <the batch's endpoint>, "body": {...}}`` with unique
  ``custom_id`` s and one ``body.model``; ``completion_window`` must be ``24h``.
- A batch is ``validating`` once created; the test decides when it finishes:
  :meth:`BatchesAPI.complete_batch` computes one chat completion per line (with ``usage``:
  prompt tokens = words of the messages + 1, completion tokens = words of the answer), writes
  the output file (``purpose: "batch_output"``) and makes the batch ``completed``;
  :attr:`BatchesAPI.output_override` replaces the output file's bytes (hostile answers).
  A cancel makes it ``cancelling`` (and ``cancelled`` at the next retrieve).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .base import Ctx, FakeUpstream, Problem, Route, count_words, rand_id

__all__ = ["PURPOSES", "BatchesAPI", "StoredBatch", "StoredFile"]

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
"""The ``purpose`` values an upload may name."""
BATCH_ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions")
"""The ``endpoint`` values a batch may name."""


@dataclass
class StoredFile:
    """A file one API key uploaded (or a batch wrote)."""

    id: str
    key: str
    filename: str
    purpose: str
    content: bytes
    content_type: str
    created_at: int

    def object(self) -> dict[str, Any]:
        """The File object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class StoredBatch:
    """A batch one API key created."""

    key: str
    body: dict[str, Any] = field(default_factory=dict)
    """The Batch object."""
    lines: list[dict[str, Any]] = field(default_factory=list)
    """The input file's requests."""
    cancel_requested: bool = False


def _multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, str, bytes]]:
    """``(name, filename, content_type, bytes)`` of every part of a ``multipart/form-data`` body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts: list[tuple[str, str | None, str, bytes]] = []
    if not message.is_multipart():
        return parts
    for part in message.iter_parts():
        disposition = part.get("content-disposition", "")
        params = dict(part.get_params(header="content-disposition") or [])
        if not str(disposition).startswith("form-data") or "name" not in params:
            continue
        payload = part.get_payload(decode=True)
        parts.append(
            (
                str(params["name"]),
                str(params["filename"]) if "filename" in params else None,
                part.get_content_type(),
                payload if isinstance(payload, bytes) else b"",
            )
        )
    return parts


class BatchesAPI(FakeUpstream):
    """The Files and Batch API endpoints, per API key; ``FakeOpenAI`` mixes it in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.files: dict[str, StoredFile] = {}
        """Every file, by id (uploads and batch outputs)."""
        self.batches: dict[str, StoredBatch] = {}
        """Every batch, by id."""
        self.output_override: bytes | None = None
        """When set, :meth:`complete_batch` writes these bytes as the output file."""
        self._files_lock = threading.Lock()

    # ------------------------------------------------------------------ public API

    def batches_routes(self) -> list[Route]:
        """The Files and Batch API routes."""
        return [
            Route("POST", "/v1/files", self._upload, self._validate_upload, needs_json=False),
            Route("GET", "/v1/files", self._list_files, needs_json=False),
            Route("GET", "/v1/files/{file_id}", self._get_file, needs_json=False),
            Route("DELETE", "/v1/files/{file_id}", self._delete_file, needs_json=False),
            Route("GET", "/v1/files/{file_id}/content", self._file_content, needs_json=False),
            Route("POST", "/v1/batches", self._create_batch, self._validate_batch),
            Route("GET", "/v1/batches", self._list_batches, needs_json=False),
            Route("GET", "/v1/batches/{batch_id}", self._get_batch, needs_json=False),
            Route("POST", "/v1/batches/{batch_id}/cancel", self._cancel_batch, needs_json=False),
        ]

    def reset(self) -> None:
        """Also forget files and batches."""
        super().reset()
        with self._files_lock:
            self.files.clear()
            self.batches.clear()
        self.output_override = None

    def complete_batch(self, batch_id: str) -> dict[str, Any]:
        """Finish ``batch_id``: one chat completion per line, the output file written, status
        ``completed``. Returns the Batch object."""
        with self._files_lock:
            batch = self.batches[batch_id]
            out: list[bytes] = []
            for line in batch.lines:
                out.append(json.dumps(self._output_line(line), separators=(",", ":")).encode())
            content = b"\n".join(out) + b"\n" if self.output_override is None else self.output_override
            now = int(time.time())
            output = StoredFile(
                id=rand_id("file-", 22),
                key=batch.key,
                filename="batch_output.jsonl",
                purpose="batch_output",
                content=content,
                content_type="application/octet-stream",
                created_at=now,
            )
            self.files[output.id] = output
            batch.body.update(
                status="completed",
                output_file_id=output.id,
                in_progress_at=batch.body["in_progress_at"] or now,
                finalizing_at=now,
                completed_at=now,
                request_counts={"total": len(batch.lines), "completed": len(batch.lines), "failed": 0},
            )
            return dict(batch.body)

    def batch_usage_of(self, batch_id: str) -> tuple[int, int]:
        """``(prompt_tokens, completion_tokens)`` summed over the batch's lines (what
        :meth:`complete_batch` reports)."""
        prompt = completion = 0
        for line in self.batches[batch_id].lines:
            usage = self._output_line(line)["response"]["body"]["usage"]
            prompt += usage["prompt_tokens"]
            completion += usage["completion_tokens"]
        return prompt, completion

    # ------------------------------------------------------------------ helpers

    def _output_line(self, line: dict[str, Any]) -> dict[str, Any]:
        body = line.get("body") or {}
        messages = body.get("messages") or []
        texts = [m["content"] for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]
        prompt = texts[-1] if texts else ""
        answer = "echo: " + prompt[:200]
        prompt_tokens = count_words(*texts) + 1
        completion_tokens = count_words(answer)
        custom = str(line.get("custom_id"))
        return {
            "id": "batch_req_" + custom,
            "custom_id": custom,
            "response": {
                "status_code": 200,
                "request_id": "req_" + custom,
                "body": {
                    "id": "chatcmpl-" + custom,
                    "object": "chat.completion",
                    "created": 1,
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            },
            "error": None,
        }

    def _missing(self, ctx: Ctx, what: str, ident: str) -> web.Response:
        return self.error(ctx, 404, "not_found", f"No such {what}: {ident}", "id")

    def _file(self, ctx: Ctx) -> StoredFile | None:
        found = self.files.get(ctx.request.match_info["file_id"])
        return found if found is not None and found.key == ctx.rec.api_key else None

    def _batch(self, ctx: Ctx) -> StoredBatch | None:
        found = self.batches.get(ctx.request.match_info["batch_id"])
        return found if found is not None and found.key == ctx.rec.api_key else None

    @staticmethod
    def _page(ctx: Ctx, rows: list[dict[str, Any]]) -> dict[str, Any]:
        limit = int(ctx.rec.query.get("limit", "20"))
        after = ctx.rec.query.get("after")
        if after is not None:
            ids = [row["id"] for row in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        page = rows[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(rows) > limit,
        }

    # ------------------------------------------------------------------ files

    def _validate_upload(self, ctx: Ctx) -> list[Problem]:
        content_type = ctx.rec.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return [Problem("The request must be multipart/form-data.", "file")]
        parts = _multipart(content_type, ctx.rec.body)
        names = [part[0] for part in parts]
        problems: list[Problem] = []
        if sorted(names) != ["file", "purpose"]:
            problems.append(Problem(f"Expected the form fields 'file' and 'purpose', got {names}.", "file"))
        for name, filename, _, payload in parts:
            if name == "purpose" and (filename is not None or payload.decode() not in PURPOSES):
                problems.append(Problem(f"Invalid value for 'purpose': {payload[:40]!r}.", "purpose"))
            if name == "file" and filename is None:
                problems.append(Problem("'file' must be a file part.", "file"))
        return problems

    async def _upload(self, ctx: Ctx) -> web.StreamResponse:
        parts = {part[0]: part for part in _multipart(ctx.rec.headers["content-type"], ctx.rec.body)}
        _, filename, content_type, content = parts["file"]
        stored = StoredFile(
            id=rand_id("file-", 22),
            key=ctx.rec.api_key or "",
            filename=filename or "upload",
            purpose=parts["purpose"][3].decode(),
            content=content,
            content_type=content_type,
            created_at=int(time.time()),
        )
        with self._files_lock:
            self.files[stored.id] = stored
        return self.json_response(ctx, stored.object())

    async def _list_files(self, ctx: Ctx) -> web.StreamResponse:
        purpose = ctx.rec.query.get("purpose")
        rows = [
            f.object()
            for f in self.files.values()
            if f.key == ctx.rec.api_key and (purpose is None or f.purpose == purpose)
        ]
        return self.json_response(ctx, self._page(ctx, rows))

    async def _get_file(self, ctx: Ctx) -> web.StreamResponse:
        found = self._file(ctx)
        if found is None:
            return self._missing(ctx, "File object", ctx.request.match_info["file_id"])
        return self.json_response(ctx, found.object())

    async def _delete_file(self, ctx: Ctx) -> web.StreamResponse:
        found = self._file(ctx)
        if found is None:
            return self._missing(ctx, "File object", ctx.request.match_info["file_id"])
        with self._files_lock:
            del self.files[found.id]
        return self.json_response(ctx, {"id": found.id, "object": "file", "deleted": True})

    async def _file_content(self, ctx: Ctx) -> web.StreamResponse:
        found = self._file(ctx)
        if found is None:
            return self._missing(ctx, "File object", ctx.request.match_info["file_id"])
        headers = {"Content-Type": "application/octet-stream", **self.success_headers(ctx)}
        return web.Response(body=found.content, headers=headers)

    # ------------------------------------------------------------------ batches

    def _validate_batch(self, ctx: Ctx) -> list[Problem]:
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem("The body must be a JSON object.")]
        allowed = ("input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after")
        problems = [
            Problem(f"Unrecognized request argument supplied: {name}") for name in body if name not in allowed
        ]
        if body.get("endpoint") not in BATCH_ENDPOINTS:
            problems.append(Problem(f"Invalid value for 'endpoint': {body.get('endpoint')!r}.", "endpoint"))
        if body.get("completion_window") != "24h":
            problems.append(
                Problem("Invalid value for 'completion_window': must be '24h'.", "completion_window")
            )
        metadata = body.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
        ):
            problems.append(Problem("Invalid 'metadata': expected an object of strings.", "metadata"))
        if not isinstance(body.get("input_file_id"), str):
            problems.append(Problem("Missing required parameter: 'input_file_id'.", "input_file_id"))
        return problems

    def _lines(self, stored: StoredFile, endpoint: str) -> list[dict[str, Any]] | str:
        lines: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        for number, raw in enumerate(stored.content.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                return f"line {number}: not JSON"
            if not isinstance(line, dict) or set(line) != {"custom_id", "method", "url", "body"}:
                return f"line {number}: expected custom_id, method, url, body"
            if line["method"] != "POST" or line["url"] != endpoint or not isinstance(line["body"], dict):
                return f"line {number}: method must be POST and url {endpoint}"
            if line["custom_id"] in seen:
                return f"line {number}: duplicate custom_id {line['custom_id']}"
            seen.add(line["custom_id"])
            models.add(str(line["body"].get("model")))
            lines.append(line)
        if len(models) > 1:
            return "every line must name the same model"
        if not lines:
            return "the file has no requests"
        return lines

    async def _create_batch(self, ctx: Ctx) -> web.StreamResponse:
        body = ctx.body
        source = self.files.get(body["input_file_id"])
        if source is None or source.key != ctx.rec.api_key:
            return self._missing(ctx, "File object", body["input_file_id"])
        lines = (
            self._lines(source, body["endpoint"]) if source.purpose == "batch" else "purpose must be batch"
        )
        if isinstance(lines, str):
            ctx.rec.violations.append(lines)
            self.violations.append(lines)
            return self.error(ctx, 400, "bad_request", f"Invalid input file: {lines}", "input_file_id")
        now = int(time.time())
        batch_id = "batch_" + secrets.token_hex(12)
        batch = StoredBatch(
            key=ctx.rec.api_key or "",
            lines=lines,
            body={
                "id": batch_id,
                "object": "batch",
                "endpoint": body["endpoint"],
                "model": lines[0]["body"].get("model"),
                "errors": None,
                "input_file_id": body["input_file_id"],
                "completion_window": "24h",
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": now,
                "in_progress_at": None,
                "expires_at": now + 86400,
                "finalizing_at": None,
                "completed_at": None,
                "failed_at": None,
                "expired_at": None,
                "cancelling_at": None,
                "cancelled_at": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "usage": None,
                "metadata": body.get("metadata"),
            },
        )
        with self._files_lock:
            self.batches[batch_id] = batch
        return self.json_response(ctx, batch.body)

    async def _get_batch(self, ctx: Ctx) -> web.StreamResponse:
        found = self._batch(ctx)
        if found is None:
            return self._missing(ctx, "batch", ctx.request.match_info["batch_id"])
        if found.body["status"] == "cancelling":
            found.body.update(status="cancelled", cancelled_at=int(time.time()))
        return self.json_response(ctx, found.body)

    async def _cancel_batch(self, ctx: Ctx) -> web.StreamResponse:
        found = self._batch(ctx)
        if found is None:
            return self._missing(ctx, "batch", ctx.request.match_info["batch_id"])
        if found.body["status"] in ("validating", "in_progress"):
            found.body.update(status="cancelling", cancelling_at=int(time.time()))
        return self.json_response(ctx, found.body)

    async def _list_batches(self, ctx: Ctx) -> web.StreamResponse:
        rows = [b.body for b in self.batches.values() if b.key == ctx.rec.api_key]
        return self.json_response(ctx, self._page(ctx, rows))
