"""TruckLLM logger plugin: one line per request in a rotated file (``loggers: [{file: {path: ...}}]``).

Lines go through loguru, on a file sink of this logger's own that accepts only its own records (a
unique ``extra`` key). loguru writes, rotates, compresses and prunes from its queue thread
(``enqueue=True``), so disk I/O never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import msgspec
from loguru import logger

from truckllm import hookimpl
from truckllm.records import json_line, level_for, text_line
from truckllm.types import RequestRecord

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["EXTRA_KEY", "LEVELS", "TRUCKLLM_API", "FileLogger", "register_loggers"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

EXTRA_KEY = "truckllm_logger"
"""The loguru ``extra`` key request records are bound with (the value names one logger instance).

Other sinks (the kernel's own) can leave these records out: ``filter=lambda r: EXTRA_KEY not in
r["extra"]``.
"""

LEVELS: dict[str, int] = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
"""The accepted ``level`` values and their loguru numbers."""


def _check_file_options(
    path: str, rotation: str | None, retention: str | int | None, compression: str | None
) -> None:
    """Raise ``ValueError`` now, at config time, for what loguru would refuse at start-up."""
    try:
        from loguru._file_sink import FileSink  # private; only used to validate, never to write
    except ImportError:  # pragma: no cover - a loguru without it: loguru checks at start-up instead
        return
    make_sink: Callable[..., object] = FileSink
    try:
        make_sink(path, rotation=rotation, retention=retention, compression=compression, delay=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


class FileLogger:
    """Writes one line per finished request to a file, rotated and pruned by loguru.

    :param options: decoded from the ``loggers:`` entry.
    """

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        """``loggers: [{file: {...}}]``.

        :ivar path: the file; ``{pid}`` becomes the process id and loguru's ``{time}`` the
            file's creation time (``{time:YYYY-MM-DD}``); directories are made as needed.
        :ivar format: ``json`` (one JSON object per line) or ``text`` (a readable line).
        :ivar level: the lowest level written; records are ``INFO``, 4xx ``WARNING``, 5xx ``ERROR``.
        :ivar rotation: start a new file past a size (``100 MB``), an age (``1 day``) or at a
            time (``00:00``); ``null``: never.
        :ivar retention: delete rotated files older than this (``14 days``), or keep this many
            (an integer); ``null``: keep all.
        :ivar compression: compress rotated files: ``gz``, ``bz2``, ``xz``, ``zip``...; ``null``: no.
        :ivar include_bodies: reserved; records do not carry request or response bodies yet.
        """

        path: str = "truckllm-requests.log"
        format: Literal["json", "text"] = "json"
        level: str = "INFO"
        rotation: str | None = "100 MB"
        retention: str | int | None = "14 days"
        compression: str | None = None
        include_bodies: bool = False

        def __post_init__(self) -> None:
            if self.level.upper() not in LEVELS:
                raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
            if not self.path.strip():
                raise ValueError("path must not be empty")
            if isinstance(self.retention, int) and self.retention < 1:
                raise ValueError("retention must keep at least 1 file")
            path = self.path.replace("{pid}", "0")
            _check_file_options(path, self.rotation, self.retention, self.compression)

    name: ClassVar[str] = "file"
    """The name in ``loggers:``."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self._tag = f"{self.name}-{uuid.uuid4().hex}"
        self._min_level = LEVELS[self.options.level.upper()]
        self._format: Callable[[RequestRecord], str] = (
            json_line if self.options.format == "json" else text_line
        )
        self._handler_id: int | None = None
        self._log = logger.bind(**{EXTRA_KEY: self._tag})

    @property
    def path(self) -> str:
        """The path given to loguru (``{pid}`` replaced)."""
        return self.options.path.replace("{pid}", str(os.getpid()))

    def _accepts(self, record: Record) -> bool:
        return bool(record["extra"].get(EXTRA_KEY) == self._tag)

    @hookimpl
    def startup(self, app: Any) -> None:
        """Add this logger's loguru file sink, opening the file (so a bad path fails start-up)."""
        if self._handler_id is not None:
            return
        if self.options.include_bodies:
            logger.warning("logger {}: include_bodies is reserved; records carry no bodies yet", self.name)
        self._handler_id = logger.add(
            self.path,
            format="{message}",
            level=self._min_level,
            filter=self._accepts,
            enqueue=True,
            colorize=False,
            backtrace=False,
            diagnose=False,
            rotation=self.options.rotation,
            retention=self.options.retention,
            compression=self.options.compression,
            encoding="utf-8",
        )

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Queue the record's line for the sink (never waits for the disk)."""
        if self._handler_id is None:
            return
        level = level_for(record)
        if LEVELS[level] < self._min_level:
            return
        self._log.log(level, self._format(record))

    @hookimpl
    async def shutdown(self, app: Any) -> None:
        """Write what is queued, close the file and remove this logger's sink (only this one)."""
        handler_id, self._handler_id = self._handler_id, None
        if handler_id is not None:
            await asyncio.to_thread(logger.remove, handler_id)


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer ``file``."""
    register("file", FileLogger)
