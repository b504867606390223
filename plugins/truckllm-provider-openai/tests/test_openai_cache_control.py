"""``cache_control`` marks in the typed form (another dialect's translation): never sent to an
OpenAI chat upstream (it refuses unknown members), ``prompt_cache_breakpoint`` through ``/responses``."""

from __future__ import annotations

import json
from typing import Any

from truckllm_provider_openai import transform_request

MARK = {"type": "ephemeral"}
MARKED = {
    "model": "alias",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "rules", "cache_control": MARK}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "doc", "cache_control": MARK},
                {"type": "image_url", "image_url": {"url": "https://x/i.png"}, "cache_control": MARK},
                {"type": "text", "text": "question"},
            ],
        },
        {"role": "assistant", "content": "ok", "cache_control": MARK},
        {"role": "user", "content": "again", "cache_control": MARK},
    ],
    "tools": [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}},
            "cache_control": MARK,
        }
    ],
}


def sent(kit: Any, model: str, **options: Any) -> dict[str, Any]:
    request = kit.chat_request(MARKED, dialect="responses-translated")
    upstream = transform_request(provider=kit.provider(**options), model=model, request=request, api_key="k")
    assert upstream is not None
    body: dict[str, Any] = json.loads(upstream.body)
    return body


def test_a_chat_upstream_never_gets_cache_control(kit: Any) -> None:
    body = sent(kit, "gpt-4o")
    assert "cache_control" not in json.dumps(body)
    assert body["messages"][1]["content"][0] == {"type": "text", "text": "doc"}
    assert body["tools"][0] == {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object"}},
    }


def test_marks_on_user_parts_become_responses_breakpoints(kit: Any) -> None:
    body = sent(kit, "o3-pro")
    text = json.dumps(body)
    assert "cache_control" not in text
    first, last = body["input"][0]["content"], body["input"][-1]["content"]
    point = {"mode": "explicit"}
    assert [part.get("prompt_cache_breakpoint") for part in first] == [point, point, None]
    assert last == [{"type": "input_text", "text": "again", "prompt_cache_breakpoint": point}]
    assert text.count("prompt_cache_breakpoint") == 3  # system, assistant, tools: no breakpoint there
