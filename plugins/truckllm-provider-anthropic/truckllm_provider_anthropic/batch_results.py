"""Anthropic Message Batch results (JSON Lines) → OpenAI batch output lines, and their usage.

One result line, ``{"custom_id", "result": {"type": "succeeded", "message": {...}}}`` (or
``errored`` with an ``error``, ``canceled``, ``expired``), becomes OpenAI's output line
``{"id", "custom_id", "response": {"status_code": 200, "request_id", "body": <chat.completion>},
"error": null}``; a request that did not succeed gets ``"response": null`` and ``"error": {"code",
"message"}``; a line that cannot be read gets ``error.code = "bad_response"`` (never a crash, and
never usage). Files are read as they arrive (:class:`ResultsToOutput`, :class:`ResultsUsage`):
line by line, a line longer than :data:`MAX_LINE_BYTES` is answered as unreadable.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Raw, Struct

from truckllm.types import RateLimits, Usage

from .response import UnreadableAnswer, parse_usage_body, translate_message

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_LINE_TOKENS",
    "ResultsToOutput",
    "ResultsUsage",
    "output_line",
    "result_usage",
    "whole_usage",
]

MAX_LINE_BYTES = 64 * 1024 * 1024
"""The longest result line read (a longer one is an unreadable line)."""
MAX_LINE_TOKENS = 100_000_000
"""The most tokens of one kind one result counts (a line reporting more counts nothing)."""
_MAX_MESSAGE = 500
_MAX_ID = 64
_NOT_DONE = {
    "canceled": ("batch_cancelled", "The request was canceled before it was processed."),
    "expired": ("batch_expired", "The batch expired before the request was processed."),
}


class _ErrorDetail(Struct):
    type: Any = None
    message: Any = None


class _ErrorBody(Struct):
    error: _ErrorDetail | None = None


class _Result(Struct):
    type: str
    message: Raw = Raw()
    error: _ErrorBody | None = None


class _Line(Struct):
    custom_id: Any = None
    result: _Result | None = None


_LINE = msgspec.json.Decoder(_Line)
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _failed(custom_id: str | None, code: str, message: str) -> dict[str, Any]:
    return {
        "id": "batch_req_" + (custom_id or "unknown"),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def output_line(raw: bytes, model: str) -> bytes:
    """The OpenAI output line (with its newline) for one Anthropic result line (``model``: what
    an answer naming no model reports)."""
    try:
        line = _LINE.decode(raw)
    except _UNREADABLE:
        line = _Line()
    custom_id = _text(line.custom_id, _MAX_ID)
    result = line.result
    if result is None:
        out = _failed(custom_id, "bad_response", "The provider's result line could not be read.")
    elif result.type == "succeeded":
        try:
            body = translate_message(
                bytes(result.message), endpoint="chat", json_tool=True, fallback_model=model
            )
            message_id = msgspec.json.decode(result.message, type=dict[str, Any]).get("id")
        except (UnreadableAnswer, *_UNREADABLE):
            out = _failed(
                custom_id, "bad_response", "The provider's answer to this request could not be read."
            )
        else:
            response = {"status_code": 200, "request_id": _text(message_id, _MAX_ID), "body": Raw(body)}
            out = {
                "id": "batch_req_" + (custom_id or "unknown"),
                "custom_id": custom_id,
                "response": response,
            }
            out["error"] = None
    elif result.type == "errored":
        detail = result.error.error if result.error is not None else None
        code = _text(detail.type, _MAX_ID) if detail is not None else None
        message = _text(detail.message, _MAX_MESSAGE) if detail is not None else None
        out = _failed(custom_id, code or "api_error", message or "The request failed.")
    elif result.type in _NOT_DONE:
        out = _failed(custom_id, *_NOT_DONE[result.type])
    else:
        out = _failed(custom_id, "bad_response", "The provider's result has an unknown type.")
    return msgspec.json.encode(out) + b"\n"


def result_usage(raw: bytes) -> Usage:
    """The usage of one result line: its message's when it succeeded (counts made sane; over
    :data:`MAX_LINE_TOKENS` prompt or completion tokens, nothing), else nothing."""
    try:
        line = _LINE.decode(raw)
    except _UNREADABLE:
        return Usage()
    if line.result is None or line.result.type != "succeeded":
        return Usage()
    usage = parse_usage_body(bytes(line.result.message))
    if usage is None or max(usage.prompt_tokens, usage.completion_tokens) > MAX_LINE_TOKENS:
        return Usage()  # a hostile count never over-charges: the line counts nothing
    return usage


class _Lines:
    """Complete lines out of chunks cut anywhere; a line over :data:`MAX_LINE_BYTES` is ``None``."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._skipping = False

    def feed(self, chunk: bytes) -> list[bytes | None]:
        lines: list[bytes | None] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if self._skipping:
                self._skipping = False
                lines.append(None)
            else:
                self._pending += chunk[start:end]
                lines.append(bytes(self._pending))
            self._pending.clear()
            start = end + 1
        if not self._skipping:
            self._pending += chunk[start:]
            if len(self._pending) > MAX_LINE_BYTES:
                self._pending.clear()
                self._skipping = True
        return lines

    def close(self) -> list[bytes | None]:
        last: list[bytes | None] = [None] if self._skipping else []
        if self._pending.strip():
            last.append(bytes(self._pending))
        self._pending.clear()
        self._skipping = False
        return last


class ResultsToOutput:
    """The results file relayed as OpenAI output lines, each translated once complete. A failure
    after the first byte ends the file without an error event (it would corrupt it)."""

    dialect = "openai"
    content_type = "application/jsonl"

    def __init__(self, model: str, limits: RateLimits | None) -> None:
        self.model = model
        self.usage: Usage | None = Usage()  # reading a file costs nothing: its usage is billed once
        self.limits = limits
        self._lines = _Lines()

    def _out(self, lines: list[bytes | None]) -> bytes:
        return b"".join(
            output_line(line if line is not None else b"", self.model)
            for line in lines
            if line is None or line.strip()
        )

    def feed(self, chunk: bytes) -> bytes:
        """The output lines of the result lines completed by ``chunk``."""
        return self._out(self._lines.feed(chunk))

    def close(self) -> bytes:
        """The last line (one without a newline)."""
        return self._out(self._lines.close())

    def error(self, error: object) -> bytes:
        """Nothing: the file just ends."""
        return b""


class ResultsUsage:
    """The results file read for its usage, line by line (:func:`result_usage` summed into
    :attr:`usage`); relays one ``.`` per chunk, never the content."""

    dialect = "openai"
    content_type = "application/octet-stream"

    def __init__(self, limits: RateLimits | None) -> None:
        self.usage: Usage | None = Usage()
        self.limits = limits
        self.lines = 0
        self._lines = _Lines()

    def _count(self, lines: list[bytes | None]) -> None:
        for line in lines:
            if line is not None and line.strip():
                self.lines += 1
                assert self.usage is not None
                self.usage = self.usage + result_usage(line)

    def feed(self, chunk: bytes) -> bytes:
        """Count the lines ``chunk`` completes."""
        self._count(self._lines.feed(chunk))
        return b"."

    def close(self) -> bytes:
        """Count the last line."""
        self._count(self._lines.close())
        return b""

    def error(self, error: object) -> bytes:
        """Nothing."""
        return b""


def whole_usage(body: bytes) -> Usage:
    """The usage of a whole results file."""
    reader = ResultsUsage(None)
    reader.feed(body)
    reader.close()
    return reader.usage or Usage()
