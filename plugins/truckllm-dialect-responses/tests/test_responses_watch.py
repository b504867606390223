"""The stream side of remembering: a pass-through stream watched (frames unchanged, its final
response handed on, split anywhere) and a translated one's final Response; failure frames."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import ResponseErrorEvent, ResponseFailedEvent
from truckllm_dialect_responses.passthrough import Remembering, Watch
from truckllm_dialect_responses.request import read_request
from truckllm_dialect_responses.response import Shape, response_from_chat

from truckllm.errors import GatewayError


def _response() -> dict[str, Any]:
    """A whole Response object (as OpenAI's ``response.created`` carries), in progress."""
    call = read_request(b'{"model": "gpt", "input": "hi"}')
    chat = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}'
    made = response_from_chat(chat, Shape(id="resp_up", created_at=1, alias="gpt", call=call))
    return {**made, "status": "in_progress", "output": [], "usage": None}


RESPONSE = _response()


def _frame(kind: str, number: int, **fields: Any) -> bytes:
    return (
        f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': number, **fields})}\n\n".encode()
    )


def _stream() -> bytes:
    done = {**RESPONSE, "status": "completed", "output": [{"id": "msg_1", "type": "message"}]}
    return b"".join(
        [
            _frame("response.created", 0, response=RESPONSE),
            _frame("response.in_progress", 1, response=RESPONSE),
            _frame(
                "response.output_text.delta", 2, item_id="msg_1", output_index=0, content_index=0, delta="hi"
            ),
            _frame("response.completed", 3, response=done),
        ]
    )


@pytest.mark.parametrize("cut", [1, 7, 40, 100, 200])
def test_watch_relays_unchanged_and_hands_on_the_final_response(cut: int) -> None:
    seen: list[bytes] = []
    watch = Watch(seen.append)
    whole = _stream()
    out = b""
    for start in range(0, len(whole), cut):
        out += watch.feed(whole[start : start + cut])
    out += watch.close()
    assert out == whole
    (final,) = seen
    assert json.loads(final)["status"] == "completed" and json.loads(final)["id"] == "resp_up"


def test_watch_remembers_nothing_without_a_terminal_event() -> None:
    seen: list[bytes] = []
    watch = Watch(seen.append)
    watch.feed(_stream().split(b"event: response.completed")[0])
    watch.close()
    assert seen == []


def test_watch_failure_frames_are_what_the_sdk_reads() -> None:
    watch = Watch(lambda _: None)
    watch.feed(_stream().split(b"event: response.completed")[0])
    frames = watch.error(GatewayError(503, "upstream overloaded", type="server_error", code="overloaded"))
    events = [json.loads(line[6:]) for line in frames.split(b"\n") if line.startswith(b"data: ")]
    error = ResponseErrorEvent.model_validate(events[0])
    assert error.sequence_number == 3 and error.message == "upstream overloaded"
    failed = ResponseFailedEvent.model_validate(events[1])
    assert (
        failed.sequence_number == 4 and failed.response.status == "failed" and failed.response.id == "resp_up"
    )


class _Translator:
    def __init__(self) -> None:
        self.final: dict[str, Any] | None = None

    def feed(self, frames: bytes) -> bytes:
        return b"x" + frames

    def close(self) -> bytes:
        self.final = {"id": "resp_gw"}
        return b"closed"

    def error(self, error: GatewayError) -> bytes:
        return b"failed"


def test_remembering_hands_on_the_translators_final_response_only_on_close() -> None:
    seen: list[bytes] = []
    wrapped = Remembering(_Translator(), seen.append)
    assert wrapped.feed(b"a") == b"xa" and seen == []
    assert wrapped.error(GatewayError(500, "boom")) == b"failed" and seen == []
    assert wrapped.close() == b"closed" and [json.loads(s) for s in seen] == [{"id": "resp_gw"}]


def test_watch_hands_on_the_final_response_in_the_feed_that_completes_its_event() -> None:
    """The kernel writes what a feed() queued before it sends that feed's bytes: the turn is
    stored before ``response.completed`` reaches the client, however long the body stays open."""
    seen: list[bytes] = []
    watch = Watch(seen.append)
    whole = _stream()
    end = whole.index(b"event: response.completed")
    watch.feed(whole[: end + 20])
    assert seen == []  # the terminal event is not complete yet
    watch.feed(whole[end + 20 :])
    assert len(seen) == 1 and json.loads(seen[0])["status"] == "completed"
    watch.feed(_frame("response.completed", 4, response={**RESPONSE, "id": "resp_other"}))
    watch.close()
    assert len(seen) == 1  # once: a second terminal event changes nothing


class _EarlyTranslator(_Translator):
    def feed(self, frames: bytes) -> bytes:
        if frames == b"[DONE]":
            self.final = {"id": "resp_gw"}
        return frames


def test_remembering_hands_on_the_final_response_once_from_the_feed_that_made_it() -> None:
    seen: list[bytes] = []
    wrapped = Remembering(_EarlyTranslator(), seen.append)
    wrapped.feed(b"a")
    assert seen == []
    wrapped.feed(b"[DONE]")
    assert [json.loads(s) for s in seen] == [{"id": "resp_gw"}]
    wrapped.close()
    assert len(seen) == 1
