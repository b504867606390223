"""Audio (transcriptions, translations, speech) and image edits, passed through to OpenAI.

Transcriptions, translations and image edits arrive as an upload (``ChatRequest.upload``: the
form's fields, its files spooled on disk by the kernel); the form is rebuilt for the upstream
with ``model`` rewritten and streamed from disk (:func:`truckllm.kit.multipart.encode`: its exact
length is sent, and each attempt reads the files afresh). Speech is JSON with ``model``
rewritten; its audio comes back as a stream relayed as it arrives, with the upstream's content
type (``stream_format: "sse"``: the events pass through).

Usage: a transcription's or translation's seconds are the answer's (``usage.seconds``,
``duration``), its tokens when it reports tokens (``gpt-4o-transcribe``); an answer that says
neither (``response_format`` ``text``, ``srt``, ``vtt``) is counted from its last subtitle
timestamp (``srt``, ``vtt``) or estimated from the file's size at :data:`BYTES_PER_SECOND`. Speech
counts the characters of ``input`` (and the tokens its events report). An image edit counts its
images and the tokens it reports.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from truckllm.errors import UpstreamFailure
from truckllm.kit.multipart import encode
from truckllm.kit.sse import SSEParser
from truckllm.types import ChatRequest, ProviderResult, RateLimits, UpstreamError, Usage

from .errors import bad_response, read_error

__all__ = [
    "BYTES_PER_SECOND",
    "ENDPOINTS",
    "PATHS",
    "MediaEvents",
    "RawAudio",
    "build_media",
    "media_stream",
    "media_usage",
    "read_media",
]

PATHS = {
    "audio.transcriptions": "/audio/transcriptions",
    "audio.translations": "/audio/translations",
    "audio.speech": "/audio/speech",
    "images.edits": "/images/edits",
}
"""The path of each endpoint under the API root."""
ENDPOINTS = frozenset(PATHS)
"""The endpoints this module serves."""
BYTES_PER_SECOND = 16_000
"""A transcription's seconds when its answer says none: the file's bytes at 128 kbit/s (MP3)."""
_TRANSCRIBED = frozenset({"audio.transcriptions", "audio.translations"})
_TEXT_FORMATS = {"text": "text/plain; charset=utf-8", "srt": "text/plain; charset=utf-8", "vtt": "text/vtt"}
_TIMESTAMP = re.compile(rb"(\d+):(\d\d):(\d\d)[,.](\d{3})")
_DONE_EVENTS = frozenset({"transcript.text.done", "speech.audio.done", "image_edit.completed"})
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


class _TokenDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    type: str | None = None
    seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: _TokenDetails | None = None


class _Answer(msgspec.Struct):
    """What a transcription, image edit or final event says that matters here."""

    type: str | None = None
    text: Any = None
    duration: float | None = None
    usage: _Usage | None = None
    data: Any = None
    error: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)


def build_media(request: ChatRequest, model: str) -> tuple[str, dict[str, str], bytes, Any, bool]:
    """``(path, headers, body, body_stream, stream)`` of the upstream call."""
    path = PATHS[request.endpoint]
    upload = request.upload
    if upload is None:  # speech: JSON
        headers = {"content-type": "application/json"}
        return path, headers, request.with_model(model), None, True
    fields = [(name, model if name == "model" else value) for name, value in upload.items()]
    content_type, length, body_stream = encode(fields, upload.files)
    headers = {
        "content-type": content_type,
        "content-length": str(length),
        "accept": "text/event-stream" if request.stream else "application/json",
    }
    return path, headers, b"", body_stream, request.stream


def _format(request: ChatRequest) -> str:
    upload = request.upload
    return (upload.fields.get("response_format") if upload is not None else None) or "json"


def read_media(request: ChatRequest, body: bytes, limits: RateLimits | None) -> ProviderResult:
    """A whole successful answer checked: a transcription in its format, an image edit's JSON."""
    if request.endpoint in _TRANSCRIBED and _format(request) in _TEXT_FORMATS:
        try:
            body.decode()
        except UnicodeDecodeError:
            return ProviderResult(
                error=bad_response("upstream transcription is not UTF-8 text"), limits=limits
            )
        return ProviderResult(body=body, limits=limits, content_type=_TEXT_FORMATS[_format(request)])
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return ProviderResult(error=bad_response("upstream answer is not a JSON object"), limits=limits)
    if request.endpoint in _TRANSCRIBED and not isinstance(answer.text, str):
        return ProviderResult(error=bad_response("upstream transcription has no text"), limits=limits)
    if request.endpoint == "images.edits" and not isinstance(answer.data, list):
        return ProviderResult(error=bad_response("upstream image edit has no data"), limits=limits)
    return ProviderResult(body=body, limits=limits)


def _tokens(usage: _Usage | None) -> Usage:
    if usage is None or (usage.input_tokens is None and usage.output_tokens is None):
        return Usage()
    prompt = max(0, usage.input_tokens or 0)
    completion = max(0, usage.output_tokens or 0)
    cached = usage.input_tokens_details.cached_tokens if usage.input_tokens_details else None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=min(prompt, max(0, cached or 0)),
    )


def _last_timestamp(body: bytes) -> float | None:
    last = None
    for match in _TIMESTAMP.finditer(body):
        last = match
    if last is None:
        return None
    hours, minutes, seconds, millis = (int(g) for g in last.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _estimated(request: ChatRequest) -> float:
    upload = request.upload
    return round(upload.size / BYTES_PER_SECOND, 3) if upload is not None else 0.0


def _seconds(value: float | None) -> float | None:
    return value if value is not None and 0 <= value < 1e7 else None


def media_usage(request: ChatRequest, body: bytes) -> Usage:
    """The usage of a whole answer (see the module's docstring)."""
    if request.endpoint in _TRANSCRIBED:
        if _format(request) in _TEXT_FORMATS:
            seconds = _last_timestamp(body) if _format(request) != "text" else None
            return Usage(audio_seconds=seconds if seconds is not None else _estimated(request))
        try:
            answer = _ANSWER.decode(body)
        except _UNREADABLE:
            return Usage(audio_seconds=_estimated(request))
        return _transcribed(request, answer)
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return Usage()
    usage = _tokens(answer.usage)
    usage.images = len(answer.data) if isinstance(answer.data, list) else 0
    return usage


def _transcribed(request: ChatRequest, answer: _Answer) -> Usage:
    usage = _tokens(answer.usage)
    seconds = _seconds(answer.usage.seconds if answer.usage is not None else None)
    if seconds is None:
        seconds = _seconds(answer.duration)
    if seconds is None and not usage.total_tokens:
        seconds = _estimated(request)
    usage.audio_seconds = seconds or 0.0
    return usage


def _characters(request: ChatRequest) -> int:
    try:
        raw = request.fields().get("input")
        value = msgspec.json.decode(raw) if raw is not None else ""
    except _UNREADABLE:
        return 0
    return len(value) if isinstance(value, str) else 0


class RawAudio:
    """Speech audio relayed as it arrives, byte for byte, with the upstream's content type; a
    failure after the first byte ends it without an error event (it would corrupt the audio)."""

    dialect = "openai"

    def __init__(self, content_type: str, characters: int, limits: RateLimits | None) -> None:
        self.content_type = content_type
        self.usage: Usage | None = Usage(characters=characters)
        self.limits = limits

    def feed(self, chunk: bytes) -> bytes:
        """The chunk, as it came."""
        return chunk

    def close(self) -> bytes:
        """Nothing more."""
        return b""

    def error(self, error: object) -> bytes:
        """Nothing: the audio just ends."""
        return b""


class MediaEvents:
    """An event stream (transcription deltas, speech audio deltas, partial images) relayed
    as it arrives; its final event's usage read, an error event or a stream cut before its final
    event is a failure."""

    dialect = "openai"
    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, request: ChatRequest, limits: RateLimits | None) -> None:
        self.request = request
        self.limits = limits
        self.usage: Usage | None = None
        self.parser = SSEParser()
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        """The chunk, as it came (its complete events read on the side)."""
        for event in self.parser.feed(chunk):
            self._read(event.data)
        return chunk

    def _read(self, data: bytes) -> None:
        if not data or data == b"[DONE]":
            return
        try:
            answer = _ANSWER.decode(data)
        except _UNREADABLE:
            raise UpstreamFailure(bad_response("upstream event is not a JSON object")) from None
        if answer.error is not None or answer.type == "error":
            raise UpstreamFailure(
                read_error(500, {}, b'{"error":' + msgspec.json.encode(answer.error) + b"}")
            )
        if answer.type in _DONE_EVENTS:
            self.done = True
            usage = _tokens(answer.usage)
            if self.request.endpoint == "audio.speech":
                usage.characters = _characters(self.request)
            elif self.request.endpoint in _TRANSCRIBED:
                usage = _transcribed(self.request, answer)
            else:
                usage.images = 1
            self.usage = usage

    def close(self) -> bytes:
        """The end: a stream without its final event was cut short."""
        for event in self.parser.close():
            self._read(event.data)
        if not self.done:
            raise UpstreamFailure(
                UpstreamError(
                    status=502, kind="stream", message="upstream stream ended before its final event"
                )
            )
        return b""


def media_stream(request: ChatRequest, headers: Any, limits: RateLimits | None) -> RawAudio | MediaEvents:
    """The translator of a streamed media answer: events, or speech's raw audio."""
    content_type = str(headers.get("content-type") or "")
    if content_type.lower().startswith("text/event-stream"):
        return MediaEvents(request, limits)
    if request.endpoint != "audio.speech":
        raise UpstreamFailure(bad_response("upstream answered a stream request without an event stream"))
    return RawAudio(content_type or "application/octet-stream", _characters(request), limits)
