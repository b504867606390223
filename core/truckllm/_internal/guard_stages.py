"""The guardrails' two stages on whole bodies: a request before it goes upstream, an answer before
the client reads it (streams: :mod:`truckllm._internal.guard_stream`).

Both read the body by its endpoint (:mod:`truckllm._internal.guard_endpoints`) or, for the
chat-like endpoints, in the client's dialect (:mod:`truckllm._internal.guard_text`), ask the
applying guardrails, and on ``modify`` write the replacement texts back at their places and
re-encode; on ``block`` they raise the 400 the endpoint renders in the client's error format.

A multipart upload is checked by its text fields (:func:`check_upload`: the files are never read,
but a batch input file, read line by line: :mod:`truckllm._internal.guard_batch`); a masked
field is replaced in the form the provider rebuilds. A transcript answered as plain text
(``text``, ``srt``, ``vtt``) is checked line by line. Requests a dialect forwards itself (its
``local`` routes: files, batches, a stored response) pass the same stages
(:func:`guard_forwarded`, :func:`check_answer`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm._internal.admission import estimate_tokens
from truckllm._internal.guard_batch import check_batch_file
from truckllm._internal.guard_endpoints import (
    NO_TEXT,
    TRANSCRIPTIONS,
    answer_of,
    plain_lines,
    request_of,
    upload_fields,
)
from truckllm._internal.guard_text import request_tools, rewrite
from truckllm._internal.guardrails import guards_of, run_checks
from truckllm._internal.request import RequestContext
from truckllm._internal.runtime import Runtime
from truckllm.types import ChatRequest, GuardSubject, GuardText, Upload

__all__ = ["check_answer", "check_request", "check_upload", "guard_forwarded"]

_JSON = msgspec.json.Decoder()


def _decode(body: bytes) -> Any:
    try:
        return _JSON.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None  # not JSON: no text a guardrail could read in it


async def check_request(rt: Runtime, ctx: RequestContext, request: ChatRequest) -> bytes | None:
    """The input stage: ``None`` when the request goes on as it is, else its new body (masked).

    :raises GatewayError: 400 ``guardrail_blocked`` when a guardrail blocks it.
    """
    if request.endpoint in NO_TEXT:
        return None
    entries = guards_of(rt).applying("input", request.model, ctx.gateway_key, request.endpoint)
    if not entries:
        return None
    body = _decode(request.body)
    found = request_of(request.endpoint, request.dialect, body)
    subject = GuardSubject(
        stage="input",
        texts=tuple(GuardText(role=f.role, text=f.text) for f in found),
        tools=request_tools(request.dialect, body),
        alias=request.model,
        gateway_key=ctx.gateway_key,
        dialect=request.dialect,
        endpoint=request.endpoint,
        estimated_tokens=estimate_tokens(request)[0],
    )
    check = await run_checks(entries, subject)
    ctx.guardrails.extend(check.results)
    if check.error is not None:
        raise check.error
    if check.action != "modify":
        return None
    return msgspec.json.encode(rewrite(body, found, check.texts))


async def check_upload(rt: Runtime, ctx: RequestContext, request: ChatRequest) -> Upload | None:
    """The input stage of a multipart upload: ``None`` when it goes on as it is, else the form
    with its text fields masked (the files as they came; a batch file's masked lines written
    back to its spooled file).

    :raises GatewayError: 400 ``guardrail_blocked`` when a guardrail blocks it.
    """
    upload = request.upload
    if upload is None:
        return None
    if request.endpoint == "files.create" and upload.fields.get("purpose") == "batch":
        return await check_batch_file(rt, ctx, request, upload)
    entries = guards_of(rt).applying("input", request.model, ctx.gateway_key, request.endpoint)
    if not entries:
        return None
    places = [
        (name, i)
        for name in upload_fields(request.endpoint, upload.multi)
        for i in range(len(upload.multi[name]))
    ]
    texts = [upload.multi[name][i] for name, i in places]
    subject = GuardSubject(
        stage="input",
        texts=tuple(GuardText(role="user", text=text) for text in texts),
        alias=request.model,
        gateway_key=ctx.gateway_key,
        dialect=request.dialect,
        endpoint=request.endpoint,
        estimated_tokens=max(1, sum(len(text) for text in texts) // 4),
    )
    check = await run_checks(entries, subject)
    ctx.guardrails.extend(check.results)
    if check.error is not None:
        raise check.error
    if check.action != "modify":
        return None
    multi = {name: list(values) for name, values in upload.multi.items()}
    for (name, i), text in zip(places, check.texts, strict=True):
        multi[name][i] = text
    fields = dict(upload.fields)
    fields.update((name, multi[name][-1]) for name, _ in places)  # the last value wins, as read
    return msgspec.structs.replace(
        upload, fields=fields, multi={name: tuple(values) for name, values in multi.items()}
    )


async def guard_forwarded(rt: Runtime, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
    """The input stage of a request a dialect forwards itself (a ``local`` route's): the request
    to serve (masked: its body, typed form or form rewritten).

    :raises GatewayError: 400 ``guardrail_blocked`` when a guardrail blocks it.
    """
    if not rt.config.guardrails:
        return request
    if request.upload is not None:
        upload = await check_upload(rt, ctx, request)
        if upload is not None:
            request.upload = upload
        return request
    masked = await check_request(rt, ctx, request)
    if masked is None:
        return request
    typed = request.typed
    if typed is not None:
        typed = msgspec.json.decode(masked, type=type(typed))
    return msgspec.structs.replace(request, body=masked, typed=typed, _fields=None)


async def check_answer(
    rt: Runtime, ctx: RequestContext, dialect: str, body: bytes, content_type: str = "application/json"
) -> bytes:
    """The output stage of a whole answer (in the client's dialect): the body to send.

    :raises GatewayError: 400 ``guardrail_blocked`` when a guardrail blocks it (the upstream's
        usage is still recorded and charged).
    """
    if ctx.endpoint in NO_TEXT:
        return body
    entries = guards_of(rt).applying("output", ctx.alias or "", ctx.gateway_key, ctx.endpoint)
    if not entries:
        return body
    if ctx.endpoint in TRANSCRIPTIONS and not content_type.startswith("application/json"):
        return await _check_plain(ctx, entries, dialect, body)
    decoded = _decode(body)
    found = answer_of(ctx.endpoint, dialect, decoded)
    subject = GuardSubject(
        stage="output",
        texts=tuple(GuardText(role=f.role, text=f.text) for f in found),
        tools=_called_tools(decoded),
        alias=ctx.alias or "",
        gateway_key=ctx.gateway_key,
        dialect=dialect,
        endpoint=ctx.endpoint,
    )
    check = await run_checks(entries, subject)
    ctx.guardrails.extend(check.results)
    if (check.error is not None or check.action == "modify") and ctx.state is not None:
        ctx.state.discard()  # a stateful dialect's copy of the unmasked answer is never stored
    if check.error is not None:
        raise check.error
    if check.action != "modify":
        return body
    return msgspec.json.encode(rewrite(decoded, found, check.texts))


async def _check_plain(ctx: RequestContext, entries: Any, dialect: str, body: bytes) -> bytes:
    """A plain-text transcript (``text``, ``srt``, ``vtt``): its text lines checked, masked ones
    written back in place (a replacement's line breaks made spaces: the cues keep their shape)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")  # still checked: what the client would read
    lines = plain_lines(text)
    subject = GuardSubject(
        stage="output",
        texts=tuple(GuardText(role="assistant", text=line.rstrip("\r")) for _, line in lines),
        alias=ctx.alias or "",
        gateway_key=ctx.gateway_key,
        dialect=dialect,
        endpoint=ctx.endpoint,
    )
    check = await run_checks(entries, subject)
    ctx.guardrails.extend(check.results)
    if check.error is not None:
        raise check.error
    if check.action != "modify":
        return body
    rows = text.split("\n")
    for (i, line), new in zip(lines, check.texts, strict=True):
        ending = "\r" if line.endswith("\r") else ""
        rows[i] = new.replace("\r", " ").replace("\n", " ") + ending
    return "\n".join(rows).encode()


def _called_tools(body: Any) -> tuple[str, ...]:
    """The names of the tools an answer calls (OpenAI, Anthropic, Gemini and Responses forms)."""
    names: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(node, dict):
            function = node.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
            elif node.get("type") in ("tool_use", "function_call") and isinstance(node.get("name"), str):
                names.append(node["name"])
            call = node.get("functionCall")
            if isinstance(call, dict) and isinstance(call.get("name"), str):
                names.append(call["name"])
            for value in node.values():
                walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                walk(value, depth + 1)

    walk(body, 0)
    return tuple(names)
