"""The multipart reader and encoder against hostile forms (``_internal/upload``,
``_internal/multipart_encode``).

Classes of bugs enumerated: text like the boundary inside a value, split at any chunk boundary,
must come back byte-exact (a partial delimiter match carried across chunks); every control
character in a field name, file name or content type is refused (it would end or corrupt a
header of the form sent upstream), tab alone allowed; whatever names ``encode`` is given, its
headers hold no control character and no bare quote.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm._internal.multipart_encode import quote
from truckllm._internal.upload import Spool, read_upload
from truckllm.errors import GatewayError
from truckllm.kit.multipart import encode
from truckllm.types import UploadedFile

BOUNDARY = "bnd"
CONTROLS = [chr(c) for c in (*range(0x09), *range(0x0A, 0x20), 0x7F)]


class Body:
    """An ASGI ``receive`` giving ``chunks``."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __call__(self) -> dict[str, Any]:
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}


def read(root: Path, body: bytes, size: int) -> Any:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    spool = Spool(str(root))
    scope = {"headers": [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]}
    try:
        upload = asyncio.run(
            read_upload(
                scope, Body(chunks), spool,
                limit=10**6, max_fields_bytes=10**6, idle_timeout=5, total_timeout=60,
            )
        )  # fmt: skip
        return upload, [Path(f.path).read_bytes() for f in upload.files]
    finally:
        spool.close()


def part(name: bytes, value: bytes, filename: bytes | None = None, content_type: bytes = b"audio/x") -> bytes:
    disposition = b'form-data; name="' + name + b'"'
    if filename is None:
        return (
            b"--"
            + BOUNDARY.encode()
            + b"\r\nContent-Disposition: "
            + disposition
            + b"\r\n\r\n"
            + value
            + b"\r\n"
        )
    return (
        b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: " + disposition + b'; filename="' + filename
        + b'"\r\nContent-Type: ' + content_type + b"\r\n\r\n" + value + b"\r\n"
    )  # fmt: skip


END = f"--{BOUNDARY}--\r\n".encode()
# pieces that look like the delimiter ("\r\n--bnd") without being it, and its own bytes
PIECES = st.sampled_from(
    [b"\r", b"\n", b"-", b"--", b"b", b"bn", b"bnd", b"\r\n-", b"\r\n--bn", b"--bnd", b"x"]
)


@settings(max_examples=200, deadline=None)
@given(value=st.lists(PIECES, max_size=40).map(b"".join), size=st.integers(1, 64))
def test_delimiter_like_bytes_in_values_come_back_exact(
    tmp_path_factory: pytest.TempPathFactory, value: bytes, size: int
) -> None:
    if b"\r\n--" + BOUNDARY.encode() in b"\r\n" + value + b"\r\n":
        return  # the real delimiter: a client's boundary must not occur in its values
    body = part(b"text", value) + part(b"file", value, b"a.bin") + END
    upload, contents = read(tmp_path_factory.mktemp("u"), body, size)
    assert upload.fields == {"text": value.decode()}
    assert contents == [value]


@pytest.mark.parametrize("control", CONTROLS, ids=[f"0x{ord(c):02x}" for c in CONTROLS])
@pytest.mark.parametrize("where", ["filename", "content_type", "name"])
def test_every_control_character_in_a_name_or_type_is_refused(
    tmp_path: Path, control: str, where: str
) -> None:
    if control in "\r\n" and where != "filename":
        pytest.skip("a CR or LF ends the header line itself: a malformed part")
    bad = f"a{control}b".encode()
    name = bad if where == "name" else b"file"
    filename = bad if where == "filename" else b"a.mp3"
    content_type = bad if where == "content_type" else b"audio/x"
    body = part(name, b"data", filename, content_type) + END
    with pytest.raises(GatewayError) as caught:
        read(tmp_path, body, 7)
    assert caught.value.status == 400 and caught.value.code == "invalid_multipart"
    assert list(tmp_path.iterdir()) == []  # the spool is gone


def test_a_tab_is_allowed(tmp_path: Path) -> None:
    upload, _ = read(tmp_path, part(b"file", b"d", b"a\tb.mp3", b"audio/x;\tq=1") + END, 5)
    (file,) = upload.files
    assert (file.filename, file.content_type) == ("a\tb.mp3", "audio/x;\tq=1")


_HEADER_BAD = re.compile(r'[\x00-\x08\x0a-\x1f\x7f"]')


@given(st.text(max_size=40))
def test_quote_leaves_no_control_character_nor_quote(value: str) -> None:
    assert not _HEADER_BAD.search(quote(value))


@settings(max_examples=50, deadline=None)
@given(name=st.text(max_size=20), filename=st.text(max_size=20), content_type=st.text(max_size=20))
def test_encoded_headers_hold_one_line_each(
    tmp_path_factory: pytest.TempPathFactory, name: str, filename: str, content_type: str
) -> None:
    path = tmp_path_factory.mktemp("e") / "f"
    path.write_bytes(b"xyz")
    file = UploadedFile(field=name, filename=filename, content_type=content_type, path=str(path), size=3)
    _, _, stream = encode([(name, "v")], [file], boundary="B")

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in stream()])

    body = asyncio.run(collect()).decode("utf-8", "surrogatepass")
    heads = [line for line in body.split("\r\n") if line.startswith("Content-")]
    assert len(heads) == 3  # the field's disposition, the file's disposition and type
    for line in heads:
        assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", line)
