"""The guardrails' two stages on whole bodies: a request before it goes upstream, an answer before
the client reads it (streams: :mod:`truckllm._internal.guard_stream`).

Both read the body in the client's dialect (:mod:`truckllm._internal.guard_text`), ask the
applying guardrails, and on ``modify`` write the replacement texts back at their places and
re-encode; on ``block`` they raise the 400 the endpoint renders in the client's error format.
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm._internal.admission import estimate_tokens
from truckllm._internal.guard_text import answer_texts, request_texts, request_tools, rewrite
from truckllm._internal.guardrails import guards_of, run_checks
from truckllm._internal.request import RequestContext
from truckllm._internal.runtime import Runtime
from truckllm.types import ChatRequest, GuardSubject, GuardText

__all__ = ["check_answer", "check_request"]

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
    entries = guards_of(rt).applying("input", request.model, ctx.gateway_key)
    if not entries:
        return None
    body = _decode(request.body)
    found = request_texts(request.dialect, body)
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


async def check_answer(rt: Runtime, ctx: RequestContext, dialect: str, body: bytes) -> bytes:
    """The output stage of a whole answer (in the client's dialect): the body to send.

    :raises GatewayError: 400 ``guardrail_blocked`` when a guardrail blocks it (the upstream's
        usage is still recorded and charged).
    """
    entries = guards_of(rt).applying("output", ctx.alias or "", ctx.gateway_key)
    if not entries:
        return body
    decoded = _decode(body)
    found = answer_texts(dialect, decoded)
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
