"""The guardrails' output stage on a stream: frames held back in windows, checked, released.

The client-dialect frames are held until ``window`` characters of answer text have arrived (or
the stream ends, or the text moves on to another choice, content block or output part), then the
window's text is checked (``subject.final`` on the last one) and the frames released (the
frames before the first text wait for the first window). On
``modify`` the window's replacement goes into its first held text delta and the others are
emptied (each frame stays a valid event of its dialect). Events that repeat a part's whole text
(Responses' ``*.done``, ``response.completed``) get the part's released (masked) text. On
``block`` the stream ends with the dialect's stream error event; a block before any frame was
released becomes a plain 400 answer in the client's error format.

The delay this adds is the time the model takes to write ``window`` characters (the smallest
``window`` of the applying entries) plus the checks' own time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec

from truckllm._internal.guard_endpoints import event_of
from truckllm._internal.guard_text import Found, rewrite
from truckllm._internal.guardrails import Entry, guards_of, merge, run_checks
from truckllm._internal.request import RequestContext
from truckllm._internal.runtime import Runtime
from truckllm.errors import GatewayError
from truckllm.types import GuardrailResult, GuardSubject, GuardText

__all__ = ["StreamGuard", "guard_stream"]

_JSON = msgspec.json.Decoder()
_EVENT_END = re.compile(rb"\r?\n\r?\n")


class _Frame:
    """One held frame: its bytes, and its decoded JSON payload when it has one."""

    __slots__ = ("dirty", "event", "prefix", "raw", "suffix")

    def __init__(self, raw: bytes, event: Any = None, prefix: bytes = b"", suffix: bytes = b"") -> None:
        self.raw = raw
        self.event = event
        self.prefix = prefix
        self.suffix = suffix
        self.dirty = False

    def encode(self) -> bytes:
        """The frame as it goes to the client (re-encoded when a text in it was replaced)."""
        if not self.dirty:
            return self.raw
        return self.prefix + msgspec.json.encode(self.event) + self.suffix


def _sse_frame(raw: bytes) -> _Frame:
    """An SSE event: its ``data:`` lines decoded as JSON (else the frame is opaque)."""
    lines = raw.splitlines()
    data = [line for line in lines if line.startswith(b"data:")]
    if not data:
        return _Frame(raw)
    payload = b"\n".join(line[5:].lstrip(b" ") for line in data)
    try:
        event = _JSON.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return _Frame(raw)
    if not isinstance(event, dict):
        return _Frame(raw)
    prefix = b"".join(line + b"\n" for line in lines if line and not line.startswith(b"data:"))
    return _Frame(raw, event, prefix + b"data: ", b"\n\n")


def _json_frame(raw: bytes) -> _Frame:
    """A JSON-array stream's element (``[{...}``, ``,\\r\\n{...}``): the object decoded."""
    start, end = raw.find(b"{"), raw.rfind(b"}")
    if start < 0 or end < start:
        return _Frame(raw)
    try:
        event = _JSON.decode(raw[start : end + 1])
    except (msgspec.DecodeError, RecursionError):
        return _Frame(raw)
    return _Frame(raw, event, raw[:start], raw[end + 1 :])


def _json_elements(buffer: bytes) -> tuple[list[_Frame], bytes]:
    """The complete top-level objects of a JSON-array stream's bytes (each with the separators
    before it), and the bytes left over (a partial element, or the array's end)."""
    frames: list[_Frame] = []
    depth = 0
    in_string = escaped = False
    start = 0
    for i, byte in enumerate(buffer):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = depth > 0
        elif byte == 0x7B:  # {
            depth += 1
        elif byte == 0x7D and depth > 0:  # }
            depth -= 1
            if depth == 0:
                frames.append(_json_frame(buffer[start : i + 1]))
                start = i + 1
    return frames, buffer[start:]


class StreamGuard:
    """Holds, checks and releases one stream's frames (see the module's docstring)."""

    def __init__(self, entries: Sequence[Entry], base: GuardSubject, sse: bool) -> None:
        self.entries = tuple(entries)
        self.base = base
        self.sse = sse
        self.window = min(e.config.window for e in entries)
        self.buffer = b""
        self.held: list[_Frame] = []
        self.places: list[tuple[_Frame, Found]] = []
        self.size = 0
        self.channel: tuple[Any, ...] | None = None
        self.blocked: GatewayError | None = None  # set when a guardrail blocked the stream
        self.checked = False  # a window was checked: text-less frames may go out as they come
        self.released: dict[tuple[Any, ...], tuple[str, str]] = {}  # channel: (original, as released)
        self._results: dict[str, GuardrailResult] = {}

    def results(self) -> list[GuardrailResult]:
        """One result per guardrail: its strongest decision over the windows, their total ms."""
        return list(self._results.values())

    async def feed(self, chunk: bytes) -> bytes:
        """Take a chunk of frames; return what may be released now (when a guardrail blocks, what
        was released before, with :attr:`blocked` set: nothing after it goes out)."""
        out: list[bytes] = []
        try:
            for frame in self._frames(chunk):
                out.append(await self._take(frame))
        except GatewayError as exc:
            self.blocked = exc
        return b"".join(out)

    async def close(self) -> bytes:
        """The stream ended: check what is held (``final``) and release it (and any partial
        frame left in the buffer, as it came); :attr:`blocked` is set when a guardrail blocks."""
        if self.buffer:
            self.held.append(_Frame(self.buffer))
            self.buffer = b""
        try:
            return await self._flush(final=True)
        except GatewayError as exc:
            self.blocked = exc
            return b""

    def _frames(self, chunk: bytes) -> list[_Frame]:
        self.buffer += chunk
        if not self.sse:
            frames, self.buffer = _json_elements(self.buffer)
            return frames
        frames = []
        start = 0
        for match in _EVENT_END.finditer(self.buffer):
            frames.append(_sse_frame(self.buffer[start : match.end()]))
            start = match.end()
        self.buffer = self.buffer[start:]
        return frames

    async def _take(self, frame: _Frame) -> bytes:
        found = (
            event_of(self.base.endpoint, self.base.dialect, frame.event) if frame.event is not None else []
        )
        out = b""
        if any(f.full for f in found):
            if self.places:
                out = await self._flush(final=False)  # the part's own deltas are checked first
            await self._whole(frame, [f for f in found if f.full])
        deltas = [f for f in found if not f.full and f.text]
        if deltas and self.channel is not None and deltas[0].channel != self.channel:
            out += await self._flush(final=False)  # one window never mixes two running texts
        self.held.append(frame)
        for place in deltas:
            self.places.append((frame, place))
            self.size += len(place.text)
        if deltas and self.channel is None:
            self.channel = deltas[0].channel
        if (not self.places and self.checked) or self.size >= self.window:
            out += await self._flush(final=False)
        return out

    async def _check(self, role: str, text: str, final: bool) -> str:
        subject = msgspec.structs.replace(self.base, texts=(GuardText(role=role, text=text),), final=final)
        check = await run_checks(self.entries, subject)
        for result in check.results:
            self._merge(result)
        if check.error is not None:
            raise check.error
        return check.texts[0] if check.action == "modify" else text

    async def _flush(self, final: bool) -> bytes:
        places = self.places
        if places:
            text = "".join(place.text for _, place in places)
            new = await self._check(places[0][1].role, text, final)
            self.checked = True
            if new != text:
                for i, (frame, place) in enumerate(places):
                    rewrite(frame.event, [place], [new if i == 0 else ""])
                    frame.dirty = True
            channel = self.channel or ()
            original, released = self.released.get(channel, ("", ""))
            self.released[channel] = (original + text, released + new)
        out = b"".join(frame.encode() for frame in self.held)
        self.held.clear()
        self.places = []
        self.size = 0
        self.channel = None
        return out

    async def _whole(self, frame: _Frame, found: list[Found]) -> None:
        """Texts that repeat a part's whole text: the part's text as released, else checked."""
        texts = []
        for place in found:
            original, released = self.released.get(place.channel, (None, None))
            if place.text == original and released is not None:
                texts.append(released)
            elif place.text:
                texts.append(await self._check(place.role, place.text, False))
            else:
                texts.append(place.text)
        if texts != [place.text for place in found]:
            rewrite(frame.event, found, texts)
            frame.dirty = True

    def _merge(self, result: GuardrailResult) -> None:
        merge(self._results, result)


def guard_stream(
    rt: Runtime, ctx: RequestContext, dialect: str, content_type: str, stream: AsyncIterator[bytes]
) -> AsyncIterator[bytes] | None:
    """``stream`` wrapped by the output guardrails that apply to this request (``None``: none)."""
    entries = guards_of(rt).applying("output", ctx.alias or "", ctx.gateway_key, ctx.endpoint)
    if not entries:
        return None
    base = GuardSubject(
        stage="output",
        alias=ctx.alias or "",
        gateway_key=ctx.gateway_key,
        dialect=dialect,
        endpoint=ctx.endpoint,
        final=False,
    )
    guard = StreamGuard(entries, base, "event-stream" in content_type)
    if ctx.state is not None:
        ctx.state.held = True  # what a stateful dialect stores waits for the last window's verdict
    return _guarded(ctx, guard, stream)


async def _guarded(
    ctx: RequestContext, guard: StreamGuard, stream: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    sent = False
    blocked: GatewayError | None = None
    try:
        async for chunk in stream:
            out = await guard.feed(chunk)
            if out:
                sent = True
                yield out
            if guard.blocked is not None:
                break
        else:
            out = await guard.close()
            await _settle_state(ctx, guard)  # stored (or not) before the last frames announce it
            if out:
                sent = True
                yield out
        blocked = guard.blocked
        if blocked is not None and sent:
            ctx.rejected_kind = "bad_request"
            ctx.rejected_message = blocked.message
            yield ctx.dialect.stream_error(blocked)
    finally:
        if ctx.state is not None and ctx.state.held:  # ended early (blocked, the client left)
            ctx.state.discard()
            ctx.state.held = False
        ctx.guardrails.extend(guard.results())
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        if blocked is not None:  # the upstream was closed by us, not by the client
            ctx.client_disconnected = False
            ctx.status = blocked.status
    if blocked is not None and not sent:
        raise blocked


async def _settle_state(ctx: RequestContext, guard: StreamGuard) -> None:
    """At a guarded stream's end: a stateful dialect's queued writes are stored when every
    window went out as the upstream wrote it, and dropped when a guardrail masked or blocked any
    (the stored answer would not be the one the client got)."""
    state = ctx.state
    if state is None:
        return
    state.held = False
    if guard.blocked is not None or any(r.action != "allow" for r in guard.results()):
        state.discard()
    else:
        await state.flush()
