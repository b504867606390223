"""How the fake OpenAI renders a Responses answer: the ``Response`` object, its output items and
the stream's events, in OpenAI's wire format (pure functions; :mod:`.openai_responses` serves them).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from .base import Answer, rand_id, split_text
from .openai_responses_checks import is_reasoning_model

__all__ = [
    "INCOMPLETE",
    "conversation_texts",
    "echo",
    "event",
    "events",
    "head",
    "hex_id",
    "output_items",
    "usage",
]

INCOMPLETE = {
    "max_output_tokens": "max_output_tokens",
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}
"""Stop reasons (``Reply.finish`` or the answer's own) that make a response ``incomplete``."""

_FIRST = ("instructions", "max_output_tokens", "max_tool_calls", "model")
"""Echoed fields that come before ``output`` in a Response object."""


def hex_id(prefix: str) -> str:
    """An id as OpenAI shapes them: ``resp_``, ``msg_``, ``rs_``, ``fc_`` and 48 hex digits."""
    return prefix + secrets.token_hex(24)


def conversation_texts(items: Sequence[dict[str, Any]]) -> tuple[list[str], str]:
    """Every text of a conversation (for token counts) and the last user text (for the echo)."""
    texts: list[str] = []
    last_user = ""
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            found = (
                [content]
                if isinstance(content, str)
                else [
                    p["text"] for p in content or [] if isinstance(p, dict) and isinstance(p.get("text"), str)
                ]
            )
            texts.extend(found)
            if item.get("role") == "user" and found:
                last_user = " ".join(found)
        elif kind == "function_call_output" and isinstance(item.get("output"), str):
            texts.append(item["output"])
    return texts, last_user


def echo(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The request parameters a ``Response`` object repeats, with the API's defaults."""
    asked = body.get("reasoning")
    reasoning: dict[str, Any] = asked if isinstance(asked, dict) else {}
    text = dict(body["text"]) if isinstance(body.get("text"), dict) else {}
    text.setdefault("format", {"type": "text"})
    text.setdefault("verbosity", "medium")
    tools = []
    for given in body.get("tools") or []:
        tool = dict(given)
        if tool.get("type") == "function":
            tool.setdefault("description", None)
            tool.setdefault("parameters", None)
            tool.setdefault("strict", True)
        tools.append(tool)
    tier = body.get("service_tier")
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "prompt_cache_retention": body.get("prompt_cache_retention"),
        "reasoning": {
            "effort": reasoning.get("effort", "medium" if is_reasoning_model(model) else None),
            "summary": reasoning.get("summary", reasoning.get("generate_summary")),
        },
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "priority" if tier == "fast" else (tier if tier not in (None, "auto") else "default"),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": text,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
    }


def head(response_id: str, body: dict[str, Any], model: str, status: str) -> dict[str, Any]:
    """A ``Response`` object with no output and no usage yet (``response.created``'s)."""
    echoed = echo(body, model)
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": body.get("background", False),
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        **{k: echoed[k] for k in _FIRST},
        "output": [],
        **{k: v for k, v in echoed.items() if k not in _FIRST},
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def usage(answer: Answer) -> dict[str, Any]:
    """``ResponseUsage``: input tokens with cache reads and writes, output with reasoning."""
    return {
        "input_tokens": answer.prompt_tokens,
        "input_tokens_details": {
            "cache_write_tokens": answer.cache_write_tokens,
            "cached_tokens": answer.cached_tokens,
        },
        "output_tokens": answer.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def output_items(
    body: dict[str, Any], answer: Answer, incomplete: bool, seal: Callable[[str, str], str]
) -> list[dict[str, Any]]:
    """The output items: a reasoning item (when the answer thinks and the request asks for
    ``reasoning``; ``seal(item_id, text)`` gives its ``encrypted_content`` when ``include`` asks),
    a message (text or refusal), a function call per tool call."""
    items: list[dict[str, Any]] = []
    if answer.thinking and isinstance(body.get("reasoning"), dict):
        reasoning: dict[str, Any] = {
            "id": hex_id("rs_"),
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": answer.thinking}],
        }
        if "reasoning.encrypted_content" in (body.get("include") or []):
            reasoning["encrypted_content"] = seal(reasoning["id"], answer.thinking)
        items.append(reasoning)
    if answer.text or not answer.tool_calls:
        part: dict[str, Any] = (
            {"type": "refusal", "refusal": answer.text}
            if answer.finish == "refusal"
            else {"type": "output_text", "annotations": [], "logprobs": [], "text": answer.text}
        )
        items.append(
            {
                "id": hex_id("msg_"),
                "type": "message",
                "status": "incomplete" if incomplete else "completed",
                "content": [part],
                "role": "assistant",
            }
        )
    for call in answer.tool_calls:
        items.append(
            {
                "id": hex_id("fc_"),
                "type": "function_call",
                "status": "completed",
                "arguments": json.dumps(call.arguments, separators=(",", ":")),
                "call_id": call.id,
                "name": call.name,
            }
        )
    return items


def event(kind: str, number: int, **fields: Any) -> bytes:
    """One stream event: ``event: <type>`` and ``data: <json>`` with its ``sequence_number``."""
    data = json.dumps(
        {"type": kind, "sequence_number": number, **fields}, ensure_ascii=False, separators=(",", ":")
    ).encode()
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def events(started: dict[str, Any], final: dict[str, Any], obfuscate: bool, chunks: int) -> list[bytes]:
    """The stream of ``final``: created and in_progress (``started``), per output item its added
    event, parts and deltas (``chunks`` pieces) and done events, then completed or incomplete."""
    out: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        out.append(event(kind, len(out), **fields))

    def noise() -> dict[str, str]:
        return {"obfuscation": rand_id("", secrets.randbelow(12) + 1)} if obfuscate else {}

    emit("response.created", response=started)
    emit("response.in_progress", response=started)
    for index, item in enumerate(final["output"]):
        at = {"item_id": item["id"], "output_index": index}
        kind = item["type"]
        if kind == "reasoning":
            emit("response.output_item.added", output_index=index, item={**item, "summary": []})
            for s, summary in enumerate(item["summary"]):
                empty = {"type": "summary_text", "text": ""}
                emit("response.reasoning_summary_part.added", **at, summary_index=s, part=empty)
                for piece in split_text(summary["text"], chunks):
                    emit(
                        "response.reasoning_summary_text.delta", **at, summary_index=s, delta=piece, **noise()
                    )
                emit("response.reasoning_summary_text.done", **at, summary_index=s, text=summary["text"])
                emit("response.reasoning_summary_part.done", **at, summary_index=s, part=summary)
        elif kind == "message":
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            for c, part in enumerate(item["content"]):
                where = {**at, "content_index": c}
                if part["type"] == "refusal":
                    emit("response.content_part.added", **where, part={"type": "refusal", "refusal": ""})
                    for piece in split_text(part["refusal"], chunks):
                        emit("response.refusal.delta", **where, delta=piece)
                    emit("response.refusal.done", **where, refusal=part["refusal"])
                else:
                    emit("response.content_part.added", **where, part={**part, "text": ""})
                    for piece in split_text(part["text"], chunks):
                        emit("response.output_text.delta", **where, delta=piece, logprobs=[], **noise())
                    emit("response.output_text.done", **where, text=part["text"], logprobs=[])
                emit("response.content_part.done", **where, part=part)
        else:
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in split_text(item["arguments"], chunks):
                emit("response.function_call_arguments.delta", **at, delta=piece, **noise())
            emit("response.function_call_arguments.done", **at, arguments=item["arguments"])
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final)
    return out
