"""OpenAI's Files and Batch APIs, as the batches dialect (``truckllm-batches``) forwards them.

The dialect keeps which account holds each file and batch and sends every call on one to that
account, as these kernel endpoints (the body is the dialect's; ids are the account's own):

=====================  ===============================================  ==========================
endpoint               upstream call                                    body from the dialect
=====================  ===============================================  ==========================
``files.create``       ``POST /files`` (``multipart/form-data``)        the upload (``purpose``,
                                                                        ``file``), streamed from disk
``files.retrieve``     ``GET /files/{id}``                              ``{"id"}``
``files.delete``       ``DELETE /files/{id}``                           ``{"id"}``
``files.content``      ``GET /files/{id}/content``                      ``{"id"}``
``batches.create``     ``POST /batches``                                the Batch create body
``batches.retrieve``   ``GET /batches/{id}``                            ``{"id"}``
``batches.cancel``     ``POST /batches/{id}/cancel``                    ``{"id"}``
``batches.usage``      ``GET /files/{id}/content`` (the output file)    ``{"id"}``
=====================  ===============================================  ==========================

A ``purpose=batch`` upload is sent with every line's ``body.model`` rewritten to the deployment's
model (the client names the alias): the lines are read from the spooled file and rewritten one
by one as the body streams (chunked: its length is known only once written).

Only ``batches.usage`` carries usage: the sum of its output lines' (:func:`batch_usage`); the
dialect sends it once per batch. Both reads of a file (``files.content`` and ``batches.usage``)
may be asked as streams (``request.stream``): the content is then relayed as it arrives
(:class:`RawContent`) and the usage summed line by line (:class:`UsageLines`), never held whole.
An id is checked (letters, digits, ``_ - .``, at most 256) and percent-encoded before it is put
in a URL.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from typing import IO, Any
from urllib.parse import quote

import msgspec

from truckllm.errors import UnsupportedRequest
from truckllm.kit.multipart import CHUNK, encode
from truckllm.kit.multipart import quote as form_quote
from truckllm.types import ChatRequest, RateLimits, UploadedFile, UpstreamError, Usage

from .errors import bad_response

__all__ = [
    "ENDPOINTS",
    "JSON_ENDPOINTS",
    "MAX_LINE_TOKENS",
    "STREAMED",
    "RawContent",
    "UsageLines",
    "batch_form",
    "batch_stream",
    "batch_usage",
    "build_call",
    "check_answer",
    "line_usage",
    "rewrite_line",
]

ENDPOINTS = frozenset(
    {
        "files.create",
        "files.retrieve",
        "files.delete",
        "files.content",
        "batches.create",
        "batches.retrieve",
        "batches.cancel",
        "batches.usage",
    }
)
"""The kernel endpoints of the Files and Batch APIs."""
JSON_ENDPOINTS = ENDPOINTS - {"files.content", "batches.usage"}
"""Those answered with a JSON object."""
STREAMED = frozenset({"files.content", "batches.usage"})
"""Those that may be asked as a stream (``request.stream``)."""
MAX_LINE_BYTES = 64 * 1024 * 1024
"""The longest output line whose usage is read (a longer one counts nothing)."""
MAX_LINE_TOKENS = 100_000_000
"""The most tokens of one kind one output line counts (a larger or unreadable count is 0)."""

_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_PATHS = {
    "files.retrieve": ("GET", "/files/{}"),
    "files.delete": ("DELETE", "/files/{}"),
    "files.content": ("GET", "/files/{}/content"),
    "batches.retrieve": ("GET", "/batches/{}"),
    "batches.cancel": ("POST", "/batches/{}/cancel"),
    "batches.usage": ("GET", "/files/{}/content"),
}


class _IdCall(msgspec.Struct):
    id: str


_ID_CALL = msgspec.json.Decoder(_IdCall)


def _id(request: ChatRequest) -> str:
    try:
        ident = _ID_CALL.decode(request.body).id
    except (msgspec.DecodeError, msgspec.ValidationError):
        message = f"a {request.endpoint} call needs a body {{'id': ...}}"
        raise UnsupportedRequest(message, param="id") from None
    if _ID.fullmatch(ident) is None:
        raise UnsupportedRequest(f"'{ident[:80]}' is not an OpenAI id", param="id")
    return quote(ident, safe="")


def rewrite_line(line: bytes, model: str) -> bytes:
    """One batch input line with ``body.model`` set to ``model`` (every other byte of ``body``
    kept); a line that is not such an object is sent as it is (the upstream judges it)."""
    try:
        fields = msgspec.json.decode(line, type=dict[str, msgspec.Raw])
        body = msgspec.json.decode(fields["body"], type=dict[str, msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, RecursionError):
        return line
    body["model"] = msgspec.Raw(msgspec.json.encode(model))
    fields["body"] = msgspec.Raw(msgspec.json.encode(body))
    return msgspec.json.encode(fields) + b"\n"


def _lines(handle: IO[bytes]) -> list[bytes]:
    """Whole lines of about :data:`CHUNK` bytes from ``handle`` (``[]`` at its end)."""
    return handle.readlines(CHUNK)


def batch_form(
    purpose: str, file: UploadedFile, model: str
) -> tuple[str, Callable[[], AsyncIterator[bytes]]]:
    """``(content_type, stream_factory)`` of the upload of a batch file, its lines rewritten for
    ``model`` (:func:`rewrite_line`) as they are read from disk, in a thread."""
    boundary = "truckllm-" + os.urandom(16).hex()
    content_type = file.content_type.replace("\r", "").replace("\n", "") or "application/octet-stream"
    filename = form_quote(file.filename)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def stream() -> AsyncIterator[bytes]:
        yield head
        handle = await asyncio.to_thread(open, file.path, "rb")
        try:
            while lines := await asyncio.to_thread(_lines, handle):
                yield b"".join(rewrite_line(line, model) if line.strip() else line for line in lines)
        finally:
            handle.close()
        yield tail

    return f"multipart/form-data; boundary={boundary}", stream


def build_call(request: ChatRequest, model: str) -> tuple[str, str, dict[str, str], bytes, Any]:
    """``(method, path under base_url, headers, body, body_stream)`` of one call.

    :raises UnsupportedRequest: a body the endpoint cannot carry (a bad id, no upload).
    """
    endpoint = request.endpoint
    if endpoint == "files.create":
        upload = request.upload
        files = upload.named("file") if upload is not None else ()
        if upload is None or len(files) != 1:
            raise UnsupportedRequest("an upload needs exactly one 'file' part", param="file")
        purpose = upload.fields.get("purpose", "")
        if purpose == "batch":
            content_type, batch_stream = batch_form(purpose, files[0], model)
            return "POST", "/files", {"content-type": content_type}, b"", batch_stream
        content_type, length, stream = encode([("purpose", purpose)], files)
        headers = {"content-type": content_type, "content-length": str(length)}
        return "POST", "/files", headers, b"", stream
    if endpoint == "batches.create":
        return "POST", "/batches", {"content-type": "application/json"}, request.body, None
    method, path = _PATHS[endpoint]
    return method, path.format(_id(request)), {}, b"", None


def check_answer(endpoint: str, body: bytes) -> UpstreamError | None:
    """``None`` when ``body`` is a valid answer of ``endpoint`` (a JSON object with a string
    ``id``; any bytes for a file's content)."""
    if endpoint not in JSON_ENDPOINTS:
        return None
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return bad_response(f"the {endpoint} answer is not JSON")
    if not isinstance(decoded, dict) or not isinstance(decoded.get("id"), str):
        return bad_response(f"the {endpoint} answer is not an object with an id")
    return None


def _count(value: Any) -> int:
    """A token count as a line reports it: a non-negative integer up to :data:`MAX_LINE_TOKENS`
    (anything else, a boolean or a float included, counts 0)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LINE_TOKENS:
        return 0
    return value


def _line_usage(usage: dict[str, Any]) -> Usage:
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    out_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    prompt = _count(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = _count(usage.get("completion_tokens", usage.get("output_tokens")))
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    reasoning = _count(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=min(cached, prompt),
        reasoning_tokens=min(reasoning, completion),
    )


def line_usage(raw: bytes) -> Usage:
    """The usage of one output line: its ``response.body.usage`` when it was answered 2xx (chat
    completions' or Responses' names); nothing for a line that is not JSON, not such an object,
    or whose counts are not sane integers (a hostile file never over-charges)."""
    if not raw.strip():
        return Usage()
    try:
        line = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return Usage()
    response = line.get("response") if isinstance(line, dict) else None
    if not isinstance(response, dict):
        return Usage()
    status = response.get("status_code")
    answer = response.get("body")
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status < 300:
        return Usage()
    usage = answer.get("usage") if isinstance(answer, dict) else None
    return _line_usage(usage) if isinstance(usage, dict) else Usage()


def batch_usage(body: bytes) -> Usage:
    """The usage of a batch: the sum of :func:`line_usage` over its output lines."""
    total = Usage()
    for raw in body.splitlines():
        total = total + line_usage(raw)
    return total


class RawContent:
    """A file's bytes relayed as they arrive; a failure after the first byte ends them without
    an error event (it would corrupt the file). Costs nothing."""

    dialect = "openai"

    def __init__(self, content_type: str, limits: RateLimits | None) -> None:
        self.content_type = content_type
        self.usage: Usage | None = Usage()
        self.limits = limits

    def feed(self, chunk: bytes) -> bytes:
        """The chunk, as it came."""
        return chunk

    def close(self) -> bytes:
        """Nothing more."""
        return b""

    def error(self, error: object) -> bytes:
        """Nothing: the content just ends."""
        return b""


class UsageLines:
    """An output file read for its usage, line by line as it arrives (:func:`line_usage` of each
    complete line summed into :attr:`usage`); what it relays is one ``.`` per chunk (progress,
    for the dialect that reads it to its end), never the content."""

    dialect = "openai"
    content_type = "application/octet-stream"

    def __init__(self, limits: RateLimits | None, read_line: Callable[[bytes], Usage] = line_usage) -> None:
        self.usage: Usage | None = Usage()
        self.limits = limits
        self.lines = 0
        self._read_line = read_line
        self._pending = bytearray()
        self._skipping = False  # inside a line longer than MAX_LINE_BYTES

    def _line(self, raw: bytes) -> None:
        self.lines += 1
        assert self.usage is not None
        self.usage = self.usage + self._read_line(raw)

    def feed(self, chunk: bytes) -> bytes:
        """Count the complete lines of ``chunk`` (with what came before)."""
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if self._skipping:
                self._skipping = False
            else:
                self._pending += chunk[start:end]
                self._line(bytes(self._pending))
            self._pending.clear()
            start = end + 1
        if not self._skipping:
            self._pending += chunk[start:]
            if len(self._pending) > MAX_LINE_BYTES:
                self._pending.clear()
                self._skipping = True
        return b"."

    def close(self) -> bytes:
        """The last line (one without a newline), then nothing."""
        if self._pending and not self._skipping:
            self._line(bytes(self._pending))
        self._pending.clear()
        return b""

    def error(self, error: object) -> bytes:
        """Nothing."""
        return b""


def batch_stream(
    request: ChatRequest, content_type: str, limits: RateLimits | None
) -> RawContent | UsageLines:
    """The translator of a streamed ``files.content`` (the bytes) or ``batches.usage`` (the sum)."""
    if request.endpoint == "batches.usage":
        return UsageLines(limits)
    return RawContent(content_type or "application/octet-stream", limits)
