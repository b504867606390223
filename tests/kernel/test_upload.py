"""The kernel's streamed multipart reader (``_internal/upload``) and ``truckllm.kit.multipart``.

A body is read chunk by chunk from an ASGI ``receive`` made here: the 413 comes at the chunk that
passes the cap (the rest is never asked for), files land in a private directory that
``Spool.close`` removes, malformed bodies get a 400 naming the problem.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm._internal.asgi_util import ClientGone
from truckllm._internal.upload import MAX_FILES, Spool, read_upload
from truckllm.errors import GatewayError
from truckllm.kit.multipart import encode
from truckllm.types import UploadedFile

BOUNDARY = "b0undary"


class Body:
    """An ASGI ``receive`` giving ``chunks`` (then a disconnect when ``gone``), counting calls."""

    def __init__(self, chunks: Sequence[bytes], gone: bool = False, stall: bool = False) -> None:
        self.chunks = list(chunks)
        self.gone = gone
        self.stall = stall
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.chunks:
            chunk = self.chunks.pop(0)
            return {
                "type": "http.request",
                "body": chunk,
                "more_body": bool(self.chunks) or self.gone or self.stall,
            }
        if self.stall:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}


def scope(
    content_type: str = f"multipart/form-data; boundary={BOUNDARY}", length: int | None = None
) -> dict[str, Any]:
    headers = [(b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "headers": headers}


def form(*parts: tuple[str, bytes, str | None], boundary: str = BOUNDARY, close: bool = True) -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: audio/mpeg\r\n"
        out += b"\r\n" + value + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


async def read(spool: Spool, body: Body, limit: int = 10**9, **kw: Any) -> Any:
    return await read_upload(
        scope(**kw), body, spool, limit=limit, max_fields_bytes=10**6, idle_timeout=5, total_timeout=60
    )


@pytest.mark.parametrize("size", [1, 7, 64, 65536])
def test_fields_and_files_whatever_the_chunking(tmp_path: Path, size: int) -> None:
    audio = os.urandom(200_000)
    data = form(
        ("model", b"whisper", None),
        ("timestamp_granularities[]", b"word", None),
        ("file", audio, "a.mp3"),
        ("timestamp_granularities[]", b"segment", None),
        ("language", "fran\u00e7ais".encode(), None),
    )
    spool = Spool(str(tmp_path))
    upload = asyncio.run(read(spool, Body(chunked(data, size))))
    assert upload.fields == {
        "model": "whisper",
        "timestamp_granularities[]": "segment",
        "language": "fran\u00e7ais",
    }
    assert upload.multi["timestamp_granularities[]"] == ("word", "segment")
    assert upload.items()[:3] == [
        ("model", "whisper"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
    ]
    (file,) = upload.files
    assert (file.field, file.filename, file.content_type, file.size) == (
        "file",
        "a.mp3",
        "audio/mpeg",
        len(audio),
    )
    assert Path(file.path).read_bytes() == audio
    assert stat.S_IMODE(os.stat(file.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(file.path)).st_mode) == 0o700
    spool.close()
    assert list(tmp_path.iterdir()) == []
    spool.close()  # idempotent


def test_a_declared_length_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    body = Body([b"x" * 10])
    with pytest.raises(GatewayError) as caught:
        asyncio.run(read(Spool(str(tmp_path)), body, limit=1000, length=1001))
    assert caught.value.status == 413 and caught.value.code == "request_too_large"
    assert body.calls == 0


def test_a_body_passing_the_cap_is_refused_at_that_chunk(tmp_path: Path) -> None:
    data = form(("model", b"m", None), ("file", b"a" * 100_000, "a.mp3"))
    chunks = chunked(data, 1000)
    body = Body(chunks)
    spool = Spool(str(tmp_path))
    with pytest.raises(GatewayError) as caught:
        asyncio.run(read(spool, body, limit=10_000))
    assert caught.value.status == 413
    assert body.calls == 11  # the eleventh chunk passed 10,000 bytes; the other 90 were never read
    spool.close()
    assert list(tmp_path.iterdir()) == []


MALFORMED = [
    (form(("model", b"m", None), close=False), "ended before its closing boundary"),
    (b"no boundary here at all", "malformed"),
    (
        b"--"
        + BOUNDARY.encode()
        + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--"
        + BOUNDARY.encode()
        + b"--\r\n",
        "no Content-Disposition",
    ),
    (form(("model", b"\xff\xfe", None)), "not valid UTF-8"),
    (form(*[("f", b"v", f"{i}.bin") for i in range(MAX_FILES + 1)]), "Too many files"),
    (form(*[("f", b"v", None) for i in range(300)]), "Too many form fields"),
    (form(("prompt", b"p" * (1024 * 1024 + 1), None)), "too large"),
]


@pytest.mark.parametrize(("data", "problem"), MALFORMED)
def test_malformed_bodies_get_a_400_naming_the_problem(tmp_path: Path, data: bytes, problem: str) -> None:
    spool = Spool(str(tmp_path))
    with pytest.raises(GatewayError) as caught:
        asyncio.run(read(spool, Body(chunked(data, 4096))))
    assert caught.value.status == 400 and problem in caught.value.message
    spool.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/form-data", "multipart/mixed; boundary=x", ""]
)
def test_not_a_form_with_a_boundary_is_a_400(tmp_path: Path, content_type: str) -> None:
    body = Body([form(("model", b"m", None))])
    with pytest.raises(GatewayError) as caught:
        asyncio.run(read(Spool(str(tmp_path)), body, content_type=content_type))
    assert caught.value.status == 400 and body.calls == 0


def test_a_client_gone_mid_upload(tmp_path: Path) -> None:
    data = form(("file", os.urandom(50_000), "a.mp3"))
    spool = Spool(str(tmp_path))
    with pytest.raises(ClientGone):
        asyncio.run(read(spool, Body(chunked(data, 1000)[:20], gone=True)))
    assert len(list(tmp_path.iterdir())) == 1  # the part written so far...
    spool.close()
    assert list(tmp_path.iterdir()) == []  # ...removed with the spool


def test_a_stalled_upload_is_a_408(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))

    async def run() -> None:
        await read_upload(
            scope(), Body([b"--" + BOUNDARY.encode()], stall=True), spool,
            limit=10**6, max_fields_bytes=10**6, idle_timeout=0.05, total_timeout=60,
        )  # fmt: skip

    with pytest.raises(GatewayError) as caught:
        asyncio.run(run())
    assert caught.value.status == 408


NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)


@settings(max_examples=25, deadline=None)
@given(
    fields=st.lists(st.tuples(NAMES, st.text(max_size=50)), max_size=5),
    files=st.lists(st.tuples(NAMES, NAMES, st.binary(max_size=3000)), max_size=3),
    size=st.integers(1, 5000),
)
def test_encode_round_trips_through_the_reader(
    tmp_path_factory: pytest.TempPathFactory,
    fields: list[tuple[str, str]],
    files: list[tuple[str, str, bytes]],
    size: int,
) -> None:
    """What ``kit.multipart.encode`` makes (any names: quotes and control characters are escaped) is the length
    it says, and reads back as the same fields and bytes."""
    root = tmp_path_factory.mktemp("enc")
    given_files = []
    for i, (field, filename, data) in enumerate(files):
        path = root / f"in-{i}"
        path.write_bytes(data)
        given_files.append(
            UploadedFile(
                field=field, filename=filename, content_type="image/png", path=str(path), size=len(data)
            )
        )
    content_type, length, stream = encode(fields, given_files)

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in stream()])

    body = asyncio.run(collect())
    assert len(body) == length
    assert asyncio.run(collect()) == body  # a fresh stream each call
    spool = Spool(str(root))
    upload = asyncio.run(
        read_upload(
            {"headers": [(b"content-type", content_type.encode())]}, Body(chunked(body, size)), spool,
            limit=10**6, max_fields_bytes=10**6, idle_timeout=5, total_timeout=60,
        )
    )  # fmt: skip
    controls = [*range(0x09), *range(0x0A, 0x20), 0x7F, ord('"')]  # HTML's form encoding, all controls
    escape = str.maketrans({chr(code): f"%{code:02X}" for code in controls})
    grouped: dict[str, list[str]] = {}  # items(): each name's values in order, names as first seen
    for name, value in fields:
        grouped.setdefault(name.translate(escape), []).append(value)
    assert upload.items() == [(name, value) for name, values in grouped.items() for value in values]
    assert [(f.field, f.filename, Path(f.path).read_bytes()) for f in upload.files] == [
        (f.translate(escape), n.translate(escape), d) for f, n, d in files
    ]
    spool.close()
