"""The bytes of a file the gateway keeps itself (a batch input file for Anthropic, which keeps
none), in the dialect's stored state: parts of :data:`PART_BYTES` under ``blob:<id>:<n>``.

The state is the runtime store when it keeps state (Redis: every worker and replica reads the
same parts), else this process's memory (bounded by ``server.state.memory_bytes``). Parts are
written as they are read from the spooled upload and flushed every :data:`FLUSH_PARTS` parts,
and read back one at a time: a file is never whole in memory. At most :data:`MAX_HELD_BYTES`
bytes are kept per file.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator

from truckllm.errors import GatewayError
from truckllm.kit.dialect import DialectState

__all__ = ["FLUSH_PARTS", "MAX_HELD_BYTES", "PART_BYTES", "drop", "read", "spool", "write"]

PART_BYTES = 1024 * 1024
"""The size of one stored part."""
FLUSH_PARTS = 8
"""Parts queued before they are written (the most bytes held at once while storing)."""
MAX_HELD_BYTES = 256 * 1024 * 1024
"""The largest file the gateway keeps (Anthropic's largest Message Batch)."""


def _name(file_id: str, number: int) -> str:
    return f"blob:{file_id}:{number}"


async def write(state: DialectState, file_id: str, path: str) -> int:
    """Store the file at ``path`` as ``file_id``'s parts; returns how many."""
    handle = await asyncio.to_thread(open, path, "rb")
    parts = 0
    try:
        while part := await asyncio.to_thread(handle.read, PART_BYTES):
            if (parts + 1) * PART_BYTES > MAX_HELD_BYTES + PART_BYTES:
                raise GatewayError(413, f"The file is larger than {MAX_HELD_BYTES} bytes.", param="file")
            state.put(_name(file_id, parts), part)
            parts += 1
            if parts % FLUSH_PARTS == 0:
                await state.flush()
    finally:
        handle.close()
    await state.flush()
    return parts


async def read(state: DialectState, file_id: str, parts: int) -> AsyncIterator[bytes]:
    """The file's bytes, part by part.

    :raises GatewayError: 404 when a part is gone (expired).
    """
    for number in range(parts):
        part = await state.get(_name(file_id, number))
        if part is None:
            raise GatewayError(404, f"The content of file {file_id} is no longer stored.", param="id")
        yield part


async def spool(state: DialectState, file_id: str, parts: int) -> str:
    """The file written to a private temporary file (its path; the caller removes it)."""
    fd, path = tempfile.mkstemp(prefix="truckllm-batch-")
    try:
        with os.fdopen(fd, "wb") as out:
            async for part in read(state, file_id, parts):
                await asyncio.to_thread(out.write, part)
    except BaseException:
        os.unlink(path)
        raise
    return path


async def drop(state: DialectState, file_id: str, parts: int) -> None:
    """Remove the file's parts."""
    for number in range(parts):
        await state.delete(_name(file_id, number))
