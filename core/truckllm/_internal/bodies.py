"""Request and answer bodies kept in a request's record, where the gateway key or the alias opts
in (``log_bodies: true``).

While the request runs, :class:`BodyCapture` only keeps references and copies at most the first
``limit`` bytes of the answer plus a margin (a stream's frames as they are sent). After the
response, off the request path, :meth:`BodyCapture.bodies` decodes, scrubs every configured secret
and credential from the WHOLE captured text, and only then cuts each to ``limit`` UTF-8 bytes: a
secret straddling the cut is removed before the cut could leave a piece of it.

A record's body is text the scrubber read, or absent: an answer whose content type is not text
(speech audio, any ``audio/*``, ``image/*`` or ``application/octet-stream``), or whose bytes are
not UTF-8 text (invalid UTF-8, or a NUL byte) whatever its content type says, is not kept;
``RecordBodies.response`` is then empty and ``response_type`` / ``response_bytes`` say what it
was (its content type, scrubbed and cut to :data:`MAX_TYPE_CHARS`, and its size). JSON answers
(images' ``b64_json`` included) and text answers (a transcription as ``text``, ``srt``, ``vtt``)
are kept, cut as above. An upload's request body is the form's summary (:func:`form_summary`):
its fields and each file's name, content type and size, never the files' bytes.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from truckllm.types import RecordBodies, Upload

if TYPE_CHECKING:
    from truckllm._internal.scrub import Scrubber

__all__ = ["MARGIN", "MAX_TYPE_CHARS", "BodyCapture", "cut_utf8", "form_summary", "is_text", "textual_type"]

MARGIN = 4096
"""Bytes captured past the limit, so that a secret across the limit is seen whole by the scrubber."""
MAX_TYPE_CHARS = 200
"""Characters of a content type kept in a record."""
_TEXT_APPLICATION = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/jsonl",
        "application/xml",
        "application/javascript",
        "application/x-www-form-urlencoded",
    }
)


def textual_type(content_type: str) -> bool:
    """Whether an answer of this ``content-type`` is text (none given: the gateway's JSON)."""
    kind = content_type.partition(";")[0].strip().lower()
    if not kind:
        return True
    return (
        kind.startswith("text/")
        or kind in _TEXT_APPLICATION
        or (kind.startswith("application/") and kind.endswith(("+json", "+xml")))
    )


def is_text(raw: bytes, complete: bool = True) -> bool:
    """Whether ``raw`` is UTF-8 text without a NUL byte (``complete=False``: a prefix of a longer
    body, which may end inside a character)."""
    if b"\x00" in raw:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def form_summary(upload: Upload) -> bytes:
    """An upload's request body as a record keeps it: its fields, each file's field, name,
    content type and size (JSON; the files' bytes are never read)."""
    return msgspec.json.encode(
        {
            "fields": {name: list(values) for name, values in upload.multi.items()},
            "files": [
                {"field": f.field, "filename": f.filename, "content_type": f.content_type, "size": f.size}
                for f in upload.files
            ],
        }
    )


def cut_utf8(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary; and whether it was."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", "ignore"), True


@dataclass(slots=True)
class BodyCapture:
    """One request's bodies while it runs.

    :ivar limit: ``server.log_bodies_max_bytes``.
    :ivar request: the client's body as received.
    :ivar response: the answer's first ``limit + margin`` bytes.
    :ivar response_size: the answer's whole size.
    :ivar response_type: the answer's ``content-type`` (set before its first bytes are added).
    """

    limit: int
    request: bytes = b""
    response: bytearray = field(default_factory=bytearray)
    response_size: int = 0
    response_type: str = ""
    margin: int = MARGIN

    def add(self, chunk: bytes) -> None:
        """Bytes sent to the client (a whole answer, or one stream frame)."""
        self.response_size += len(chunk)
        if not textual_type(self.response_type):
            return  # never kept: nothing to copy
        room = self.limit + self.margin - len(self.response)
        if room > 0:
            self.response += chunk[:room]

    def bodies(self, scrubber: Scrubber) -> RecordBodies:
        """The record's bodies: decoded, scrubbed, then cut (see the module docstring)."""
        keep = self.limit + self.margin
        request, request_cut = self._text(self.request[:keep], scrubber, len(self.request) > self.limit)
        raw = bytes(self.response)
        if textual_type(self.response_type) and is_text(raw, complete=len(raw) == self.response_size):
            response, response_cut = self._text(raw, scrubber, self.response_size > self.limit)
            return RecordBodies(
                request=request,
                response=response,
                request_truncated=request_cut,
                response_truncated=response_cut,
            )
        kind, _ = cut_utf8(scrubber.text(self.response_type or "application/octet-stream"), MAX_TYPE_CHARS)
        return RecordBodies(
            request=request,
            request_truncated=request_cut,
            response_type=kind,
            response_bytes=self.response_size,
        )

    def _text(self, raw: bytes, scrubber: Scrubber, longer: bool) -> tuple[str, bool]:
        text = scrubber.text(raw.decode("utf-8", "replace"))
        cut, was_cut = cut_utf8(text, self.limit)
        return cut, was_cut or longer
