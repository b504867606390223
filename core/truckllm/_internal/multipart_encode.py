"""Building a ``multipart/form-data`` upstream body from spooled files, without holding it (the
implementation behind :mod:`truckllm.kit.multipart`).

A provider plugin serving an upload route (``ChatRequest.upload``) rebuilds the form for its
upstream, usually with ``model`` rewritten::

    fields = [(k, model if k == "model" else v) for k, v in request.upload.items()]
    content_type, length, stream = encode(fields, request.upload.files)
    return UpstreamRequest(
        url=..., headers={"content-type": content_type, "content-length": str(length)},
        body_stream=stream,
    )

:func:`encode` computes the body's exact length up front (the upstream gets a
``content-length``, not a chunked body) and returns a factory: each call streams the body afresh
from the files on disk, chunk by chunk, so that a failover attempt replays it byte-exact.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence

from truckllm.types import UploadedFile

__all__ = ["CHUNK", "encode", "quote"]

CHUNK = 256 * 1024
"""Bytes read from a file at a time."""


_ESCAPES = {code: f"%{code:02X}" for code in (*range(0x09), *range(0x0A, 0x20), 0x7F, ord('"'))}
_DROPPED = dict.fromkeys((*range(0x09), *range(0x0A, 0x20), 0x7F))


def quote(value: str) -> str:
    """A name or file name as a quoted-string parameter of ``Content-Disposition`` (the HTML
    form encoding: ``"``, CR and LF percent-encoded, and so is every other control character
    but tab, so that a name can neither end nor corrupt the header)."""
    return value.translate(_ESCAPES)


def _field_head(boundary: str, name: str) -> bytes:
    return f'--{boundary}\r\nContent-Disposition: form-data; name="{quote(name)}"\r\n\r\n'.encode()


def _file_head(boundary: str, file: UploadedFile) -> bytes:
    content_type = file.content_type.translate(_DROPPED) or "application/octet-stream"
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{quote(file.field)}"; '
        f'filename="{quote(file.filename)}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()


def encode(
    fields: Mapping[str, str] | Iterable[tuple[str, str]],
    files: Sequence[UploadedFile],
    *,
    boundary: str | None = None,
) -> tuple[str, int, Callable[[], AsyncIterator[bytes]]]:
    """The form ``fields`` (a mapping, or ``(name, value)`` pairs: a name may repeat) then
    ``files`` (read from their ``path``, ``size`` bytes each) as ``multipart/form-data``.

    :param boundary: the boundary (a random one by default).
    :returns: ``(content_type, length, stream_factory)``: the ``content-type`` header value with
        its boundary, the body's exact size in bytes, and a factory of fresh async iterators over
        the body's chunks.
    """
    boundary = boundary or "truckllm-" + os.urandom(16).hex()
    pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    head = b"".join(_field_head(boundary, name) + value.encode() + b"\r\n" for name, value in pairs)
    heads = [_file_head(boundary, file) for file in files]
    tail = f"--{boundary}--\r\n".encode()
    length = len(head) + sum(len(h) + file.size + 2 for h, file in zip(heads, files, strict=True)) + len(tail)
    parts = tuple(zip(heads, files, strict=True))

    async def stream() -> AsyncIterator[bytes]:
        if head:
            yield head
        for file_head, file in parts:
            yield file_head
            async for chunk in _read(file):
                yield chunk
            yield b"\r\n"
        yield tail

    return f"multipart/form-data; boundary={boundary}", length, stream


async def _read(file: UploadedFile) -> AsyncIterator[bytes]:
    """``file.size`` bytes of ``file.path`` in chunks, read in a thread (never on the loop)."""
    left = file.size
    handle = await asyncio.to_thread(open, file.path, "rb")
    try:
        while left > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, left))
            if not chunk:
                raise OSError(f"the spooled file {file.field!r} is shorter than its {file.size} bytes")
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()
