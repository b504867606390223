"""Whole answers in OpenAI's form → Gemini's ``GenerateContentResponse``, embeddings, token counts.

Gemini's JSON is proto3 JSON: members that are zero or unset are left out (``index: 0``,
``candidatesTokenCount: 0``...). A function call ends a turn with ``finishReason: "STOP"`` (Gemini
has no tool finish reason); its ``args`` are a JSON object, never a string.

The answer is read leniently (a member of an unexpected type counts as absent): the upstream
already answered 200 and its provider plugin already checked it.
"""

from __future__ import annotations

from typing import Any

import msgspec
from loguru import logger

from truckllm.errors import GatewayError

__all__ = [
    "FINISH_REASONS",
    "count_tokens_body",
    "embedding_body",
    "finish_reason",
    "function_call",
    "generate_body",
    "parse_arguments",
    "usage_metadata",
]

FINISH_REASONS = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}
"""OpenAI ``finish_reason`` → Gemini ``finishReason``."""

_JSON = msgspec.json.Decoder()


def decode_object(body: bytes, what: str) -> dict[str, Any]:
    """The upstream's JSON object; 502 when it is not one."""
    try:
        decoded = _JSON.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: deep JSON
        decoded = None
    if not isinstance(decoded, dict):
        raise GatewayError(502, f"the upstream's {what} could not be read", type="server_error")
    return decoded


def finish_reason(reason: Any) -> str:
    """Gemini's ``finishReason`` for an OpenAI ``finish_reason`` (``OTHER`` for one it does not know)."""
    if reason is None:
        return "STOP"
    return FINISH_REASONS.get(str(reason), "OTHER")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_metadata(usage: Any) -> dict[str, int] | None:
    """``usageMetadata`` for an OpenAI ``usage`` object (zero counts left out, as Gemini does).

    OpenAI's completion tokens include reasoning; Gemini's ``candidatesTokenCount`` does not
    (reasoning is ``thoughtsTokenCount``).
    """
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    thoughts = _int(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else 0
    total = _int(usage.get("total_tokens")) or prompt + completion
    counts = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(0, completion - thoughts),
        "totalTokenCount": total,
        "cachedContentTokenCount": cached,
        "thoughtsTokenCount": thoughts,
    }
    return {name: value for name, value in counts.items() if value}


def parse_arguments(arguments: Any) -> tuple[dict[str, Any], bool]:
    """A tool call's JSON-text arguments as an object (``""`` is ``{}``); whether they were valid."""
    if isinstance(arguments, dict):
        return arguments, True
    if not isinstance(arguments, str) or not arguments.strip():
        return {}, arguments is None or isinstance(arguments, str)
    try:
        value = _JSON.decode(arguments)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: deep JSON from the upstream
        return {}, False
    return (value, True) if isinstance(value, dict) else ({}, False)


def function_call(call: Any) -> dict[str, Any] | None:
    """A ``functionCall`` part for one OpenAI tool call (``None`` for something else)."""
    if not isinstance(call, dict):
        return None
    function = call.get("function")
    function = function if isinstance(function, dict) else {}
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return None
    args, valid = parse_arguments(function.get("arguments"))
    if not valid:
        # the name is upstream text: it is not written to the log (only scrubbed errors are)
        logger.warning("a tool call's arguments from the upstream are not a JSON object; sent as {}")
    out: dict[str, Any] = {"name": name, "args": args}
    ident = call.get("id")
    if isinstance(ident, str) and ident:
        out = {"id": ident, **out}
    return {"functionCall": out}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts (some OpenAI-compatible servers)
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def candidate(choice: dict[str, Any], include_thoughts: bool) -> dict[str, Any]:
    """One ``candidates[]`` entry for one OpenAI choice."""
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    parts: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if include_thoughts and isinstance(reasoning, str) and reasoning:
        parts.append({"text": reasoning, "thought": True})
    text = _text(message.get("content"))
    refusal = message.get("refusal")
    refused = not text and isinstance(refusal, str) and bool(refusal)
    if refused:  # the refusal's explanation is the answer's text
        text = str(refusal)
    if text:
        parts.append({"text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        part = function_call(call)
        if part is not None:
            parts.append(part)
    legacy = message.get("function_call")
    if legacy is not None and not isinstance(calls, list):
        part = function_call({"function": legacy})
        if part is not None:
            parts.append(part)
    reason = choice.get("finish_reason")
    out: dict[str, Any] = {}
    if parts:
        out["content"] = {"parts": parts, "role": "model"}
    out["finishReason"] = "SAFETY" if refused and reason != "length" else finish_reason(reason)
    index = choice.get("index")
    if isinstance(index, int) and not isinstance(index, bool) and index > 0:
        out["index"] = index
    return out


def generate_body(body: bytes, model: str, include_thoughts: bool = False) -> bytes:
    """An OpenAI ``chat.completion`` as a ``GenerateContentResponse``.

    :param body: the OpenAI answer.
    :param model: the alias, reported as ``modelVersion`` when the answer names no model.
    :param include_thoughts: the client asked for thought parts (``thinkingConfig.includeThoughts``).
    """
    answer = decode_object(body, "answer")
    choices = answer.get("choices")
    candidates = [
        candidate(choice, include_thoughts)
        for choice in (choices if isinstance(choices, list) else ())
        if isinstance(choice, dict)
    ]
    out: dict[str, Any] = {}
    if candidates:
        out["candidates"] = candidates
    else:
        out["promptFeedback"] = {"blockReason": "OTHER"}
    usage = usage_metadata(answer.get("usage"))
    if usage is not None:
        out["usageMetadata"] = usage
    version = answer.get("model")
    out["modelVersion"] = version if isinstance(version, str) and version else model
    ident = answer.get("id")
    if isinstance(ident, str) and ident:
        out["responseId"] = ident
    return msgspec.json.encode(out)


def embedding_body(body: bytes, single: bool) -> bytes:
    """An OpenAI embedding list as ``{"embedding": {...}}`` (``embedContent``) or
    ``{"embeddings": [...]}`` (``batchEmbedContents``), in input order."""
    answer = decode_object(body, "embeddings")
    data = answer.get("data")
    items = [item for item in (data if isinstance(data, list) else ()) if isinstance(item, dict)]
    items.sort(key=lambda item: item["index"] if isinstance(item.get("index"), int) else 0)
    vectors: list[dict[str, Any]] = []
    for item in items:
        values = item.get("embedding")
        if not isinstance(values, list):
            raise GatewayError(502, "the upstream's embeddings could not be read", type="server_error")
        vectors.append({"values": values})
    if single:
        if not vectors:
            raise GatewayError(502, "the upstream returned no embedding", type="server_error")
        return msgspec.json.encode({"embedding": vectors[0]})
    return msgspec.json.encode({"embeddings": vectors})


def count_tokens_body(body: bytes) -> bytes:
    """A token count in any provider's words as Gemini's ``{"totalTokens": N}``.

    Accepts ``totalTokens`` (Gemini), ``input_tokens`` (Anthropic), ``prompt_tokens`` or
    ``usage.prompt_tokens`` (OpenAI style).
    """
    answer = decode_object(body, "token count")
    usage = answer.get("usage")
    for value in (
        answer.get("totalTokens"),
        answer.get("input_tokens"),
        answer.get("prompt_tokens"),
        usage.get("prompt_tokens") if isinstance(usage, dict) else None,
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return msgspec.json.encode({"totalTokens": value} if value else {})
    raise GatewayError(502, "the upstream's token count could not be read", type="server_error")
