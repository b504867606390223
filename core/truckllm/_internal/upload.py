"""Streamed ``multipart/form-data`` request bodies (routes with ``DialectRoute.upload``).

The body is parsed as it arrives (python-multipart's push parser): each file part goes to a
temporary file in a private directory (mode 0700, files 0600) that :class:`Spool` removes when the
request ends, however it ends; the small fields stay in memory, bounded in count and size. The
whole body is capped by ``server.limits.max_upload_bytes``: a declared ``content-length`` over it
is refused before a byte is read, and a body that passes it is refused as soon as it does. The
client may stay silent at most ``server.read_timeout`` between two chunks (408), and take at most
``server.request_timeout`` for the whole body. File bytes are written in a thread, at most
:data:`WRITE_BUFFER` bytes at a time: a request holds about that much in memory whatever its size.

Names are checked: a field name, file name or content type with a control character (NUL, CR,
LF...) is refused (400 naming the field), and each is bounded (python-multipart bounds a part's
headers: 8 headers of at most 4,224 bytes). A file name is only ever sent upstream (quoted): the
spooled files are named ``part-N`` whatever the client says.

A spool directory is named ``truckllm-upload-<host>-<pid>-<random>`` (``host``: a hash of the
machine's name). A process that crashed leaves its directories behind: :func:`sweep_stale`, run
at the gateway's start, removes those of this user whose process is gone (same host) or that are
older than any request may last (the gateway says: twice ``server.request_timeout``, a day at
least, since another gateway sharing the directory may allow longer requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from truckllm._internal.asgi_util import ClientGone, Receive, Scope, header
from truckllm.errors import GatewayError
from truckllm.types import Upload, UploadedFile

__all__ = [
    "MAX_FIELDS",
    "MAX_FIELD_BYTES",
    "MAX_FILES",
    "WRITE_BUFFER",
    "Spool",
    "host_tag",
    "read_upload",
    "sweep_stale",
]

MAX_FIELDS = 256
"""Non-file fields a form may have."""
MAX_FIELD_BYTES = 1024 * 1024
"""Bytes one non-file field may have (all of them together: at most ``server.max_body_bytes``)."""
MAX_FILES = 32
"""File parts a form may have."""
WRITE_BUFFER = 1024 * 1024
"""File bytes gathered before one write to disk."""
_PREFIX = "truckllm-upload-"
_SPOOL_NAME = re.compile(r"truckllm-upload-([0-9a-f]{8})-([0-9]{1,10})-[A-Za-z0-9_]{1,64}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # C0 controls but HT, and DEL


def host_tag() -> str:
    """This machine's tag in spool directory names (8 hex digits of its host name's hash): a pid
    is only judged on the machine (or container) that wrote it."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(
    root: str | None,
    max_age: float,
    *,
    now: Callable[[], float] = time.time,
    alive: Callable[[int], bool] = _alive,
    host: str | None = None,
) -> list[str]:
    """Remove the spool directories under ``root`` (the system's temporary directory when
    ``None``) that a crashed process left; the names removed.

    Only entries named as :class:`Spool` names them, that are real directories (a symbolic link is
    never followed nor removed) and belong to this user are considered; one is stale when its
    process (same ``host``, another pid) is gone, or when it is older than ``max_age`` seconds
    (a reused pid, another host). Removal never follows links inside (:func:`shutil.rmtree`'s
    descriptor-based walk).
    """
    root = root if root is not None else tempfile.gettempdir()
    host = host if host is not None else host_tag()
    uid = os.getuid()
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _SPOOL_NAME.fullmatch(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if info.st_uid != uid:
            continue
        pid = int(match[2])
        gone = match[1] == host and 0 < pid != os.getpid() and not alive(pid)
        if not gone and now() - info.st_mtime <= max_age:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(entry.name)
    return removed


class Spool:
    """One request's private temporary directory; :meth:`close` removes it and all it holds.

    :param root: where to make it (``server.upload_dir``; the system's temporary directory when
        ``None``).
    """

    def __init__(self, root: str | None = None) -> None:
        self.root = root
        self.path: str | None = None
        self._count = 0

    def new_file(self) -> tuple[str, int]:
        """A new empty file of this spool (0600): ``(path, descriptor)``."""
        if self.path is None:
            prefix = f"{_PREFIX}{host_tag()}-{os.getpid()}-"
            self.path = tempfile.mkdtemp(prefix=prefix, dir=self.root)  # mode 0700
        self._count += 1
        path = os.path.join(self.path, f"part-{self._count}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        return path, fd

    def close(self) -> None:
        """Remove the directory and its files (idempotent)."""
        path, self.path = self.path, None
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def _boundary(scope: Scope) -> bytes:
    content_type = header(scope, b"content-type") or ""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise GatewayError(
            400,
            f"This endpoint takes a multipart/form-data body (the Content-Type was {content_type[:100]!r}).",
            code="invalid_content_type",
        )
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise GatewayError(
            400, "The multipart/form-data Content-Type has no valid boundary.", code="invalid_multipart"
        )
    return boundary


def _too_large(limit: int, declared: int | None = None) -> GatewayError:
    size = f"{declared} bytes" if declared is not None else f"over {limit} bytes"
    return GatewayError(
        413, f"Upload too large: {size}; the limit is {limit} bytes.", code="request_too_large"
    )


class _Form:
    """The parser's callbacks: the parts as they come, file bytes buffered for the next write."""

    def __init__(self, spool: Spool, max_fields_bytes: int) -> None:
        self.spool = spool
        self.max_fields_bytes = max_fields_bytes
        self.fields_bytes = 0
        self.multi: dict[str, list[str]] = {}
        self.files: list[UploadedFile] = []
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.filename: str | None = None
        self.content_type = ""
        self.value = bytearray()
        self.fd: int | None = None
        self.path = ""
        self.size = 0
        self.pending: list[tuple[int, bytes]] = []  # (descriptor, bytes) to write
        self.pending_bytes = 0
        self.to_close: list[int] = []
        self.ended = False
        self.count = 0

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field_data,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.headers = {}
        self.value = bytearray()
        self.count += 1

    def header_field_data(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field = b""
        self.header_value = b""

    def headers_finished(self) -> None:
        disposition, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            raise GatewayError(
                400,
                f"Part {self.count} of the multipart body has no Content-Disposition: form-data name.",
                code="invalid_multipart",
            )
        self.name = _checked(_text(name, "a field name"), "A field name", None)
        filename = options.get(b"filename")
        if filename is None:
            self.filename = None
            if sum(len(v) for v in self.multi.values()) >= MAX_FIELDS:
                raise GatewayError(
                    400, f"Too many form fields: the limit is {MAX_FIELDS}.", code="invalid_multipart"
                )
            return
        if len(self.files) >= MAX_FILES:
            raise GatewayError(
                400, f"Too many files in the form: the limit is {MAX_FILES}.", code="invalid_multipart"
            )
        param = self.name[:100]
        self.filename = _checked(_text(filename, "a file name"), "The file name", param)
        raw_type = self.headers.get(b"content-type", b"").strip()
        content_type = _checked(_text(raw_type, "a content type"), "The content type", param)
        self.content_type = content_type or "application/octet-stream"
        self.path, self.fd = self.spool.new_file()
        self.to_close.append(self.fd)
        self.size = 0

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.filename is None:
            self.fields_bytes += end - start
            if len(self.value) + end - start > MAX_FIELD_BYTES or self.fields_bytes > self.max_fields_bytes:
                raise GatewayError(
                    400,
                    f"The form field '{self.name[:100]}' is too large.",
                    param=self.name[:100],
                    code="invalid_multipart",
                )
            self.value += data[start:end]
            return
        assert self.fd is not None
        self.pending.append((self.fd, data[start:end]))
        self.pending_bytes += end - start
        self.size += end - start

    def part_end(self) -> None:
        if self.filename is None:
            value = _text(bytes(self.value), f"the field '{self.name[:100]}'")
            self.multi.setdefault(self.name, []).append(value)
            return
        self.files.append(
            UploadedFile(
                field=self.name,
                filename=self.filename,
                content_type=self.content_type,
                path=self.path,
                size=self.size,
            )
        )

    def end(self) -> None:
        self.ended = True

    def take_pending(self) -> list[tuple[int, bytes]]:
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        return pending

    def close_files(self) -> None:
        for fd in self.to_close:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.to_close = []

    def upload(self) -> Upload:
        multi = {name: tuple(values) for name, values in self.multi.items()}
        fields = {name: values[-1] for name, values in multi.items()}
        return Upload(fields=fields, multi=multi, files=tuple(self.files))


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GatewayError(
            400, f"The multipart body's {what} is not valid UTF-8.", code="invalid_multipart"
        ) from None


def _checked(value: str, what: str, param: str | None) -> str:
    """``value``, refused when it has a control character (it would end or corrupt a header of the
    form sent upstream)."""
    if _CONTROL.search(value):
        where = f" in the form field '{param}'" if param is not None else ""
        raise GatewayError(
            400,
            f"{what}{where} has a control character.",
            param=param,
            code="invalid_multipart",
        )
    return value


def _write(pending: list[tuple[int, bytes]]) -> None:
    for fd, data in pending:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]


async def read_upload(
    scope: Scope,
    receive: Receive,
    spool: Spool,
    *,
    limit: int,
    max_fields_bytes: int,
    idle_timeout: float,
    total_timeout: float,
) -> Upload:
    """Parse a ``multipart/form-data`` body as it arrives, files into ``spool``.

    :raises GatewayError: 400 (``invalid_content_type``, ``invalid_multipart``: the problem
        named), 413 ``request_too_large`` past ``limit``, 408 ``request_timeout``.
    :raises ClientGone: the client disconnected mid-upload.
    """
    boundary = _boundary(scope)
    length = header(scope, b"content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise GatewayError(400, "Invalid Content-Length header.") from None
        if declared > limit:
            raise _too_large(limit, declared)
    form = _Form(spool, max_fields_bytes)
    parser = MultipartParser(boundary, form.callbacks())
    size = 0
    try:
        async with asyncio.timeout(total_timeout or None):
            while True:
                try:
                    async with asyncio.timeout(idle_timeout or None):
                        message = await receive()
                except TimeoutError:
                    raise GatewayError(
                        408,
                        f"The upload stalled: nothing was received for {idle_timeout:g}s.",
                        code="request_timeout",
                    ) from None
                if message["type"] == "http.disconnect":
                    raise ClientGone()
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    try:
                        parser.write(chunk)
                    except MultipartParseError as exc:
                        raise GatewayError(
                            400, f"The multipart body is malformed: {exc}", code="invalid_multipart"
                        ) from None
                    if form.pending_bytes >= WRITE_BUFFER:
                        await asyncio.to_thread(_write, form.take_pending())
                if not message.get("more_body", False):
                    break
        if form.pending:
            await asyncio.to_thread(_write, form.take_pending())
    except TimeoutError:
        raise GatewayError(
            408, f"The upload was not sent within {total_timeout:g}s.", code="request_timeout"
        ) from None
    finally:
        form.close_files()
    if not form.ended:
        raise GatewayError(
            400,
            "The multipart body ended before its closing boundary (a truncated upload?).",
            code="invalid_multipart",
        )
    return form.upload()
