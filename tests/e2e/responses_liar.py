"""A hostile OpenAI Responses API upstream (``POST /v1/responses``) for pass-through trust tests.

:class:`ResponsesLiar` answers every ``/v1/responses`` call with a small valid Response (or its
valid event stream) unless an act is scripted with :meth:`ResponsesLiar.script`: the first queued
:class:`Lie` whose ``stream`` matches the request is used (``times`` of them, ``-1`` for ever).
Every string that must never reach a client carries :data:`MARKER` or one of the ``secrets`` the
liar was told to echo (the provider key the request carried is always echoed too).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from truckllm_testing.loopback import LoopbackServer

__all__ = ["ACTS", "MARKER", "Lie", "ResponsesLiar"]

MARKER = "RESPONSES-LIAR-GARBAGE"
"""In every junk frame and junk body: never seen by a client."""

ACTS: dict[str, str] = {
    "valid": "a valid Response, or its valid event stream",
    "no_terminal": "stream: valid events, then the end of the body without response.completed",
    "junk_frame": "stream: valid events, then a data frame that is not JSON",
    "raw_line": "stream: valid events, then a line that is not SSE",
    "huge_frame": "stream: valid events, then one data line of ``size`` bytes that never ends",
    "error_event": "stream: valid events, then an ``error`` event with the secrets in every field",
    "failed_event": "stream: valid events, then ``response.failed`` whose error holds the secrets",
    "cut": "stream: valid events, then the connection is closed",
    "not_a_response": "whole: 200 with JSON that is not a Response (a chat completion)",
    "garbage": "whole: 200 with bytes that are not JSON",
    "failed_response": "whole: 200 with a Response of status failed whose error holds the secrets",
    "error_status": "an error (``status``) in OpenAI's shape with the secrets in every field",
    "usage": "a valid answer whose every token count is ``tokens``",
    "deep": "a valid answer (whole or streamed) whose output text part carries ``size`` levels of "
    "nested arrays in its ``annotations``",
    "slow_close": "stream: a valid stream, then ``pause`` seconds before the body ends",
    "named": "whole: a valid Response whose ``id`` is ``rid`` (``status: queued`` when the call asked "
    "for ``background``); any later call (a poll, a cancel) is answered with it, ``completed``",
}
"""Every act, with what it sends."""

_STREAM_ONLY = frozenset(
    {
        "no_terminal",
        "junk_frame",
        "raw_line",
        "huge_frame",
        "error_event",
        "failed_event",
        "cut",
        "slow_close",
    }
)
_WHOLE_ONLY = frozenset({"not_a_response", "garbage", "failed_response", "named"})


@dataclass
class Lie:
    """One scripted act for the next ``times`` matching calls."""

    act: str
    """A name of :data:`ACTS`."""
    status: int = 400
    """``error_status``: the HTTP status."""
    tokens: Any = 5
    """``usage``: every token count."""
    size: int = 17 * 1024 * 1024
    """``huge_frame``: bytes of the frame that never ends."""
    times: int = 1
    """How many calls it applies to (``-1``: for ever)."""
    rid: str = ""
    """``named``: the response id to answer with."""
    pause: float = 0.05
    """Stream acts: seconds between the valid events and the lie (so that the valid ones reach
    the client first and the lie comes after the stream started)."""

    def __post_init__(self) -> None:
        if self.act not in ACTS:
            raise ValueError(f"unknown act {self.act!r}")


def _frame(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **payload}).encode() + b"\n\n"


def _response(rid: str, model: str, status: str, tokens: Any, text: str) -> dict[str, Any]:
    output = [
        {
            "id": "msg_liar",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }
    ]
    done = status in ("completed", "incomplete")
    return {
        "id": rid,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": output if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens,
        }
        if done
        else None,
    }


def _deepen(value: dict[str, Any], levels: int) -> bytes:
    """``value`` as JSON with ``levels`` of nested arrays as the first output text's annotations."""
    marker = '"annotations": []'
    text = json.dumps(value)
    assert marker in text
    return text.replace(marker, '"annotations": ' + "[" * levels + "]" * levels, 1).encode()


class ResponsesLiar(LoopbackServer):
    """The hostile ``/v1/responses`` server (see the module docstring).

    :param secrets: strings echoed in every hostile error field besides the request's own key.
    """

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = secrets
        self.calls: list[dict[str, Any]] = []
        """Each call's decoded body (``{}`` when not JSON), with ``_key`` the key it carried, ``_method``
        and ``_target`` (the raw request target, percent-encoding untouched)."""
        self.named: str | None = None
        self._queue: list[list[Any]] = []
        self._lock = threading.Lock()
        self._count = 0

    @property
    def base_url(self) -> str:
        """The provider ``base_url`` to configure."""
        origin: str = self.origin
        return origin + "/v1"

    def script(self, lie: Lie) -> None:
        """Queue ``lie`` for the next matching call(s)."""
        with self._lock:
            self._queue.append([lie, lie.times])

    def reset(self) -> None:
        """Forget queued acts, recorded calls and the named response."""
        with self._lock:
            self._queue.clear()
            self.calls.clear()
            self.named = None

    def _take(self, stream: bool) -> Lie:
        with self._lock:
            for entry in self._queue:
                lie: Lie = entry[0]
                if (lie.act in _STREAM_ONLY and not stream) or (lie.act in _WHOLE_ONLY and stream):
                    continue
                if entry[1] > 0:
                    entry[1] -= 1
                    if entry[1] == 0:
                        self._queue.remove(entry)
                return lie
        return Lie("valid")

    def app(self) -> web.Application:
        """``POST /v1/responses`` (and any other path: 404)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def _echoed(self, key: str) -> list[str]:
        return [key, *self.secrets]

    def _error_fields(self, key: str) -> dict[str, Any]:
        said = " ".join(self._echoed(key))
        return {
            "message": f"Incorrect API key provided: {said}. " + "x" * 3000 + f" {said}",
            "type": said,
            "param": said,
            "code": said,
        }

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            self.calls.append({**body, "_key": key, "_method": request.method, "_target": request.raw_path})
            self._count += 1
            rid = f"resp_liar{self._count:08d}"
        if request.path != "/v1/responses":
            if self.named is not None:  # a poll or a cancel of the named response: it is done
                done = _response(self.named, "m", "completed", 5, "liar")
                return web.json_response({**done, "background": True})
            return web.json_response({"error": {"message": "no such path", "type": "x"}}, status=404)
        stream = body.get("stream") is True
        lie = self._take(stream)
        asked = body.get("model")
        model = asked if isinstance(asked, str) else "m"
        if lie.act == "error_status":
            return web.json_response({"error": self._error_fields(key)}, status=lie.status)
        if lie.act == "named":
            self.named = lie.rid
            background = body.get("background") is True
            named = _response(lie.rid, model, "queued" if background else "completed", 5, "liar")
            return web.json_response({**named, "background": background})
        if not stream:
            return self._whole(lie, rid, model, key)
        return await self._stream(request, lie, rid, model, key)

    def _whole(self, lie: Lie, rid: str, model: str, key: str) -> web.Response:
        if lie.act == "not_a_response":
            chat = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [], "marker": MARKER}
            return web.json_response(chat)
        if lie.act == "garbage":
            return web.Response(
                body=b"<html>" + MARKER.encode() + b"\xff\xfe", content_type="application/json"
            )
        tokens = lie.tokens if lie.act == "usage" else 5
        answer = _response(rid, model, "completed", tokens, "liar says hi")
        if lie.act == "deep":
            return web.Response(body=_deepen(answer, lie.size), content_type="application/json")
        if lie.act == "failed_response":
            answer["status"] = "failed"
            answer["error"] = {
                "code": self._error_fields(key)["code"],
                "message": self._error_fields(key)["message"],
            }
        return web.json_response(answer)

    async def _stream(
        self, request: web.Request, lie: Lie, rid: str, model: str, key: str
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        tokens = lie.tokens if lie.act == "usage" else 5
        start = _response(rid, model, "in_progress", None, "")
        events = [
            _frame("response.created", {"response": start, "sequence_number": 0}),
            _frame("response.in_progress", {"response": start, "sequence_number": 1}),
            _frame(
                "response.output_text.delta",
                {
                    "item_id": "msg_liar",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": "liar",
                    "sequence_number": 2,
                },
            ),
        ]
        for event in events:
            await resp.write(event)
        act = lie.act
        if act not in ("valid", "usage", "deep", "slow_close"):
            await asyncio.sleep(lie.pause)
        fields = self._error_fields(key)
        if act in ("valid", "usage", "slow_close"):
            final = _response(rid, model, "completed", tokens, "liar")
            await resp.write(_frame("response.completed", {"response": final, "sequence_number": 3}))
            if act == "slow_close":
                await asyncio.sleep(lie.pause)
        elif act == "deep":
            final = _response(rid, model, "completed", tokens, "liar")
            completed = {"type": "response.completed", "response": final, "sequence_number": 3}
            await resp.write(b"event: response.completed\ndata: " + _deepen(completed, lie.size) + b"\n\n")
        elif act == "junk_frame":
            await resp.write(b"data: " + MARKER.encode() + b" not json\n\n")
        elif act == "raw_line":
            await resp.write(b"<html>" + MARKER.encode() + b"</html>\n\n")
        elif act == "huge_frame":
            chunk = b"x" * (1024 * 1024)
            await resp.write(b"data: " + MARKER.encode())
            for _ in range(lie.size // len(chunk) + 1):
                await resp.write(chunk)
        elif act == "error_event":
            nested = {**fields, "type": fields["type"]}
            own = {name: fields[name] for name in ("code", "message", "param")}
            await resp.write(_frame("error", {**own, "error": nested, "sequence_number": 3}))
        elif act == "failed_event":
            failed = {
                **start,
                "status": "failed",
                "error": {"code": fields["code"], "message": fields["message"]},
            }
            await resp.write(_frame("response.failed", {"response": failed, "sequence_number": 3}))
        elif act == "cut":
            if request.transport is not None:
                request.transport.close()
            return resp
        await resp.write_eof()
        return resp
