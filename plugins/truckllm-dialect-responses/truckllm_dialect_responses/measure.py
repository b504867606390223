"""The chat form the kernel measures a request by when it has none to send.

A request only OpenAI can serve (a built-in tool, an ``item_reference``, ``conversation``,
``prompt``, an image or a file by id, ``background``...) carries a ``refusal`` that keeps it from
deployments of other dialects; yet the kernel's input limits (``server.limits``: messages, tools,
content bytes) and its budget estimate (``max_output_tokens``) read ``ChatRequest.typed``.
:func:`measured` gives such a request a chat form that is never sent: the same translation, with
what only OpenAI serves stood in for by something of its size:

- a built-in tool: a function tool (it counts towards ``max_tools``); ``tool_choice`` left out;
- a built-in tool's item (``web_search_call``, ``computer_call_output``...): a ``user`` message
  holding the item's JSON;
- an image or a file by id or URL, and any part of a system or developer message that is not
  text: a text part holding the part's JSON;
- an ``item_reference`` (what it names is kept by OpenAI), ``conversation``, ``prompt``: left out.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from truckllm.errors import GatewayError, UnsupportedRequest
from truckllm.kit.openai_schemas import ChatCompletionRequest

from .items import TRANSLATED_ITEM_TYPES
from .request import ResponsesCall, translate

__all__ = ["measured"]

_LEFT_OUT = ("conversation", "prompt", "tool_choice")


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _sendable(part: dict[str, Any]) -> bool:
    """The chat form can hold this media part (an image by URL, a file's data, audio)."""
    kind = part.get("type")
    if kind == "input_image":
        return isinstance(part.get("image_url"), str) and bool(part["image_url"])
    if kind == "input_file":
        return isinstance(part.get("file_data"), str)
    return kind == "input_audio"


def _part(part: object, text_only: bool) -> object:
    """A content part as the chat form can hold it (its JSON as text when it cannot)."""
    if not isinstance(part, dict) or part.get("type") in ("input_text", "output_text", "refusal"):
        return part
    if _sendable(part) and not text_only:
        return part
    return {"type": "input_text", "text": _json(part)}


def _item(item: dict[str, Any]) -> dict[str, Any] | None:
    """An item as the chat form can hold it (``None``: left out)."""
    kind = item.get("type", "message")
    if kind == "item_reference":
        return None
    if kind not in TRANSLATED_ITEM_TYPES:  # a built-in tool's item: its bytes as a user message
        return {"type": "message", "role": "user", "content": _json(item)}
    if kind == "message" and isinstance(item.get("content"), list):
        text_only = item.get("role") in ("system", "developer")
        return {**item, "content": [_part(part, text_only) for part in item["content"]]}
    if kind == "function_call_output" and isinstance(item.get("output"), list):
        return {**item, "output": [_part(part, False) for part in item["output"]]}
    return item


def measured(call: ResponsesCall, items: list[dict[str, Any]]) -> ChatCompletionRequest:
    """The chat form ``call`` (with ``items`` as its whole conversation) is measured by; never
    sent (see the module's notes). A request with nothing left to measure has no messages."""
    fields = {name: value for name, value in call.fields.items() if name not in _LEFT_OUT}
    tools = fields.get("tools")
    if isinstance(tools, list):
        fields["tools"] = [
            tool if tool.get("type") == "function" else {"type": "function", "name": f"builtin_{i}"}
            for i, tool in enumerate(tools)
        ]
    kept = [found for found in (_item(item) for item in items) if found is not None]
    stand_in = dataclasses.replace(call, fields=fields)
    try:
        return translate(stand_in, kept).typed
    except (UnsupportedRequest, GatewayError):  # no message left (only references): tools and settings
        pass
    try:
        typed = translate(stand_in, [{"type": "message", "role": "user", "content": "-"}]).typed
    except (UnsupportedRequest, GatewayError):  # pragma: no cover - every refused piece stood in for
        return ChatCompletionRequest(model=call.model, messages=[])
    typed.messages = []
    return typed
