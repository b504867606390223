"""A stdio MCP server: the child process the gateway starts, and its messages, bounded.

The SDK's ``stdio_client`` reads the child's stdout into one growing string until a newline
comes, and logs a line it cannot parse with a snippet of it. This transport reads bytes, and a
line (a message) longer than ``max_bytes`` ends the connection before anything of it is parsed
(``on_broken`` is told why; the child is stopped), so a child writing gigabytes without a newline
costs at most ``max_bytes``. A line that is not a JSON-RPC message is reported to the session as
an error that quotes nothing of it. Otherwise it is the SDK's transport: the child starts in its
own session with the SDK's safe environment (``HOME``, ``PATH``, ...) plus ``env``, its stderr
goes to ``errlog``, and closing closes its stdin, waits two seconds, then stops its process group.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import IO, Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

from truckllm_mcp.net import TOO_LARGE

__all__ = ["READ_CHUNK", "LineTooLong", "NotJsonRpc", "split_lines", "stdio_transport"]

READ_CHUNK = 65536
"""Bytes read from the child's stdout at a time."""

_GRACE = 2.0
_KILL_AFTER = 2.0


class LineTooLong(Exception):
    """The child wrote a message (a line) longer than the bound."""


class NotJsonRpc(ValueError):
    """The child wrote a line that is not a JSON-RPC message (its text is not quoted)."""


def _too_long(max_bytes: int) -> str:
    return f"the MCP server's {TOO_LARGE} {max_bytes} bytes (max_answer_bytes) in one stdio message"


def split_lines(buffer: bytearray, chunk: bytes, max_bytes: int) -> list[bytes]:
    """Append ``chunk`` to ``buffer`` and take the complete lines out of it.

    :raises LineTooLong: a complete line, or the unfinished rest, is longer than ``max_bytes``.
    """
    buffer += chunk
    lines: list[bytes] = []
    start = 0
    while True:
        end = buffer.find(b"\n", start)
        if end < 0:
            break
        if end - start > max_bytes:
            raise LineTooLong(_too_long(max_bytes))
        lines.append(bytes(buffer[start:end]))
        start = end + 1
    del buffer[:start]
    if len(buffer) > max_bytes:
        raise LineTooLong(_too_long(max_bytes))
    return lines


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError:
        return NotJsonRpc(f"the MCP server wrote a line of {len(line)} bytes that is not a JSON-RPC message")


async def _exited(process: anyio.abc.Process, seconds: float) -> None:
    # returncode is polled: wait() also waits for the pipes' end, which a grandchild may hold
    with anyio.move_on_after(seconds):
        while process.returncode is None:  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def _stop(process: anyio.abc.Process) -> None:
    with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        if process.stdin is not None:
            await process.stdin.aclose()
    await _exited(process, _GRACE)
    for sig, wait in ((signal.SIGTERM, _KILL_AFTER), (signal.SIGKILL, _GRACE)):
        if process.returncode is not None:
            break
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)  # the child leads its own session (start_new_session)
        await _exited(process, wait)
    with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        if process.stdout is not None:
            await process.stdout.aclose()


@asynccontextmanager
async def stdio_transport(
    command: str,
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    errlog: IO[Any],
    max_bytes: int,
    on_broken: Callable[[str], None],
) -> AsyncIterator[tuple[Any, Any]]:
    """Start ``command`` and yield the SDK's ``(read_stream, write_stream)`` over its stdio.

    :param max_bytes: the longest message (line) read from the child.
    :param on_broken: told why the transport ended the connection itself (a line too long).
    :raises OSError: the command could not be started.
    """
    process = await anyio.open_process(
        [command, *args],
        env=get_default_environment() | dict(env),
        stderr=errlog,
        cwd=cwd,
        start_new_session=True,
    )
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def reader() -> None:
        assert process.stdout is not None
        buffer = bytearray()
        async with read_writer:
            try:
                while True:
                    chunk = await process.stdout.receive(READ_CHUNK)
                    for line in split_lines(buffer, chunk, max_bytes):
                        if line.strip():
                            await read_writer.send(_parse(line))
            except LineTooLong as exc:
                on_broken(str(exc))
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                pass  # the child closed its stdout or exited; the session sees the end

    async def writer() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await process.stdin.send(data.encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_writer.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                read_stream.close()
                write_stream.close()
                await _stop(process)
                await read_writer.aclose()
                await write_reader.aclose()
            tg.cancel_scope.cancel()
