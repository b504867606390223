"""A chat-completions body made acceptable to a preset's service (see :mod:`.presets`)."""

from __future__ import annotations

import logging
from typing import Any

from truckllm.errors import UnsupportedRequest

from .presets import Preset

__all__ = ["adapt_chat_body"]

_log = logging.getLogger("truckllm_provider_openai")


def adapt_chat_body(preset: Preset, model: str, body: dict[str, Any]) -> list[str]:
    """Change ``body`` (a decoded chat-completions request) in place for ``preset``'s service.

    Refused fields are dropped, renamed ones renamed, ``tool_choice`` respelled; each change is
    logged at debug (field names only, never a value).

    :returns: what was changed, as ``dropped <field>`` / ``<old> -> <new>`` notes.
    :raises UnsupportedRequest: for a request the service cannot serve (a 400 naming the field;
        the kernel tries another deployment of the alias first).
    """
    for refusal in preset.refusals:
        refused = refusal(body)
        if refused is not None:
            param, message = refused
            raise UnsupportedRequest(f"{preset.name}: {message}", param=param)
    notes: list[str] = []
    for name in sorted(preset.dropped_for(model)):
        if name in body:
            del body[name]
            notes.append(f"dropped {name}")
    for old, new in preset.rename.items():
        if old in body:
            value = body.pop(old)
            if new in body:
                notes.append(f"dropped {old} ({new} given)")
            else:
                body[new] = value
                notes.append(f"{old} -> {new}")
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice in preset.tool_choice:
        body["tool_choice"] = preset.tool_choice[choice]
        notes.append(f"tool_choice {choice} -> {preset.tool_choice[choice]}")
    messages = body.get("messages")
    if preset.drop_in_messages and isinstance(messages, list):
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            for name in sorted(preset.drop_in_messages):
                if name == "name" and message.get("role") == "tool" and preset.tool_name_kept:
                    continue
                if name in message:
                    del message[name]
                    notes.append(f"dropped messages[{i}].{name}")
    if notes:
        _log.debug("preset %s, model %s: %s", preset.name, model, ", ".join(notes))
    return notes
