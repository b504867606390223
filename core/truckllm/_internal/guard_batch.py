"""A batch input file's lines through the input guardrails, as its upload goes upstream.

A ``purpose=batch`` upload (``files.create``) is JSON Lines, one request per line:
``{"custom_id", "method", "url", "body"}``. Each line's ``body`` is read as a request to the
endpoint its ``url`` names (:data:`LINE_ENDPOINTS`: chat, completions, embeddings, Responses,
moderations; any other: every string under a text-like key) and checked by the entries that
apply both to ``files.create`` and to that endpoint (``exclude_endpoints: [files.create]`` skips
batch files). The file is read from its spooled copy a slice at a time (at most
:data:`READ_BYTES` of lines, and one line, in memory), never whole: a 200 MB file costs its
lines' checks, not its size in memory.

A ``block`` refuses the upload (400 naming the line); a ``modify`` rewrites that line's texts:
the lines are then written to a new file beside the spooled one, which replaces it once every
line is checked (the same path: whatever reads the upload later reads the masked lines). A line
that is not a JSON object goes on as it came (the batches dialect and the provider judge it).
The record keeps one result per guardrail (its strongest decision, the total time, the findings
summed over the lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from typing import IO

import msgspec

from truckllm._internal.guard_endpoints import request_of
from truckllm._internal.guard_text import request_tools, rewrite
from truckllm._internal.guardrails import BLOCKED_CODE, Entry, guards_of, merge, run_checks
from truckllm._internal.request import RequestContext
from truckllm._internal.runtime import Runtime
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest, GuardrailResult, GuardSubject, GuardText, Upload

__all__ = ["LINE_ENDPOINTS", "READ_BYTES", "check_batch_file"]

LINE_ENDPOINTS: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("chat", "openai"),
    "/v1/completions": ("completions", "openai"),
    "/v1/embeddings": ("embeddings", "openai"),
    "/v1/responses": ("chat", "responses"),
    "/v1/moderations": ("moderations", "openai"),
}
"""A batch line's ``url`` → the endpoint and dialect its ``body`` is read as."""
READ_BYTES = 1024 * 1024
"""Bytes of lines read from the spooled file at a time."""
_JSON = msgspec.json.Decoder()


def _read(handle: IO[bytes], limit: int) -> list[bytes]:
    """The next lines (about :data:`READ_BYTES` of them; each at most ``limit + 1`` bytes)."""
    lines: list[bytes] = []
    size = 0
    while size < READ_BYTES:
        line = handle.readline(limit + 1)
        if not line:
            break
        lines.append(line)
        size += len(line)
    return lines


def _copy_head(source: str, target: IO[bytes], length: int) -> None:
    """The first ``length`` bytes of ``source`` into ``target`` (the lines before the first
    masked one)."""
    with open(source, "rb") as handle:
        while length > 0:
            chunk = handle.read(min(length, READ_BYTES))
            if not chunk:
                break
            target.write(chunk)
            length -= len(chunk)


class _Lines:
    """One batch file's check: the applying entries per endpoint, the results, the rewrite."""

    def __init__(self, rt: Runtime, ctx: RequestContext, request: ChatRequest) -> None:
        self.guards = guards_of(rt)
        self.alias = request.model
        self.key = ctx.gateway_key
        self.entries: dict[str, tuple[Entry, ...]] = {}
        self.results: dict[str, GuardrailResult] = {}

    def applying(self, endpoint: str) -> tuple[Entry, ...]:
        if endpoint not in self.entries:
            self.entries[endpoint] = tuple(
                entry
                for entry in self.guards.applying("input", self.alias, self.key, endpoint)
                if entry.applies("input", self.alias, self.key, "files.create")
            )
        return self.entries[endpoint]

    async def line(self, number: int, raw: bytes) -> bytes | None:
        """The line's masked bytes, ``None`` when it goes on as it came.

        :raises GatewayError: 400 ``guardrail_blocked`` naming the line.
        """
        bare = raw.rstrip(b"\r\n")
        if not bare.strip():
            return None
        try:
            line = _JSON.decode(bare)
        except (msgspec.DecodeError, RecursionError):
            return None
        body = line.get("body") if isinstance(line, dict) else None
        if not isinstance(body, dict):
            return None
        url = line.get("url")
        endpoint, dialect = LINE_ENDPOINTS.get(url if isinstance(url, str) else "", ("batch", "batch"))
        entries = self.applying(endpoint)
        if not entries:
            return None
        found = request_of(endpoint, dialect, body)
        subject = GuardSubject(
            stage="input",
            texts=tuple(GuardText(role=f.role, text=f.text) for f in found),
            tools=request_tools(dialect, body),
            alias=self.alias,
            gateway_key=self.key,
            dialect=dialect,
            endpoint=endpoint,
            estimated_tokens=max(1, len(bare) // 4),
        )
        check = await run_checks(entries, subject)
        for result in check.results:
            merge(self.results, result)
        if check.error is not None:
            raise GatewayError(
                400,
                f"{check.error.message} (line {number} of the file)",
                type="invalid_request_error",
                code=BLOCKED_CODE,
                param="file",
            )
        if check.action != "modify":
            return None
        rewrite(body, found, check.texts)
        return msgspec.json.encode(line) + raw[len(bare) :]


async def check_batch_file(
    rt: Runtime, ctx: RequestContext, request: ChatRequest, upload: Upload
) -> Upload | None:
    """Check every line of a ``purpose=batch`` upload's file: ``None`` when none was masked,
    else the form with the file's new size (its spooled path now holds the masked lines).

    :raises GatewayError: 400 ``guardrail_blocked`` naming the first line a guardrail blocks, or
        a line longer than ``server.max_body_bytes`` (no request could be that long).
    """
    files = upload.named("file")
    if len(files) != 1:
        return None  # the dialect refuses it
    file = files[0]
    if not rt.config.guardrails:
        return None
    lines = _Lines(rt, ctx, request)
    limit = rt.config.server.max_body_bytes
    number = offset = 0
    out: IO[bytes] | None = None
    out_path = ""
    handle = await asyncio.to_thread(open, file.path, "rb")
    try:
        while chunk := await asyncio.to_thread(_read, handle, limit):
            written: list[bytes] = []
            for raw in chunk:
                number += 1
                if len(raw) > limit:
                    raise GatewayError(
                        400, f"Line {number} of the file is longer than {limit} bytes.", param="file"
                    )
                masked = await lines.line(number, raw)
                if masked is not None and out is None:
                    fd, out_path = tempfile.mkstemp(dir=os.path.dirname(file.path), prefix="masked-")
                    out = os.fdopen(fd, "wb")
                    await asyncio.to_thread(_copy_head, file.path, out, offset)
                if out is not None:
                    written.append(raw if masked is None else masked)
                offset += len(raw)
            if out is not None and written:
                await asyncio.to_thread(out.writelines, written)
    except BaseException:
        if out is not None:
            out.close()
            with contextlib.suppress(OSError):
                os.unlink(out_path)
        raise
    finally:
        handle.close()
        ctx.guardrails.extend(lines.results.values())
    if out is None:
        return None
    out.close()
    os.replace(out_path, file.path)  # the spool's own file: removed with the spool, as before
    size = (await asyncio.to_thread(os.stat, file.path)).st_size
    files_now = tuple(msgspec.structs.replace(f, size=size) if f is file else f for f in upload.files)
    return msgspec.structs.replace(upload, files=files_now)
