"""Inputs the property tests once broke the Anthropic translation with, kept as explicit cases."""

from __future__ import annotations

from typing import Any

from truckllm.errors import UpstreamFailure

MESSAGE = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":'
    b'[{"type":"text","text":"caf\x80"}],"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":1,"output_tokens":1}}'
)


def test_invalid_utf8_inside_a_string_is_a_failed_attempt_not_an_exception(kit: Any) -> None:
    result = kit.respond(MESSAGE)  # once escaped as UnicodeDecodeError from msgspec
    assert result.error is not None and result.error.kind == "bad_response"


def test_invalid_utf8_in_a_stream_event_is_an_upstream_failure(kit: Any) -> None:
    translator = kit.translator()
    events = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
        b'"role":"assistant","model":"claude","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"thinking_delta","thinking":"\xff"}}\n\n'
    )
    try:
        translator.feed(events)
        translator.close()
    except UpstreamFailure:
        pass  # a clean, classified failure is fine; anything else would have escaped here
