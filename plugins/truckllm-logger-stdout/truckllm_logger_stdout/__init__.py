"""TruckLLM logger plugin: one line per request on standard output (``loggers: [stdout]``).

Lines go through loguru, on a sink of this logger's own that accepts only its own records (a
unique ``extra`` key) and writes from loguru's queue thread (``enqueue=True``), so a slow reader
of stdout never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TextIO

import msgspec
from loguru import logger

from truckllm import hookimpl
from truckllm.records import json_line, level_for, text_line
from truckllm.types import RequestRecord

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["EXTRA_KEY", "LEVELS", "TRUCKLLM_API", "StdoutLogger", "register_loggers"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

EXTRA_KEY = "truckllm_logger"
"""The loguru ``extra`` key request records are bound with (the value names one logger instance).

Other sinks (the kernel's own) can leave these records out: ``filter=lambda r: EXTRA_KEY not in
r["extra"]``.
"""

LEVELS: dict[str, int] = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
"""The accepted ``level`` values and their loguru numbers."""


class StdoutLogger:
    """Writes one line per finished request to standard output.

    :param options: decoded from the ``loggers:`` entry.
    :param stream: where to write instead of ``sys.stdout`` (tests).
    """

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        """``loggers: [{stdout: {...}}]``.

        :ivar format: ``json`` (one JSON object per line) or ``text`` (a readable line).
        :ivar level: the lowest level written; records are ``INFO``, 4xx ``WARNING``, 5xx ``ERROR``.
        :ivar include_bodies: reserved; records do not carry request or response bodies yet.
        """

        format: Literal["json", "text"] = "json"
        level: str = "INFO"
        include_bodies: bool = False

        def __post_init__(self) -> None:
            if self.level.upper() not in LEVELS:
                raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")

    name: ClassVar[str] = "stdout"
    """The name in ``loggers:``."""

    def __init__(self, options: Options | None = None, *, stream: TextIO | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self._stream = stream
        self._tag = f"{self.name}-{uuid.uuid4().hex}"
        self._min_level = LEVELS[self.options.level.upper()]
        self._format: Callable[[RequestRecord], str] = (
            json_line if self.options.format == "json" else text_line
        )
        self._handler_id: int | None = None
        self._log = logger.bind(**{EXTRA_KEY: self._tag})

    def _accepts(self, record: Record) -> bool:
        return bool(record["extra"].get(EXTRA_KEY) == self._tag)

    @hookimpl
    def startup(self, app: Any) -> None:
        """Add this logger's loguru sink."""
        if self._handler_id is not None:
            return
        if self.options.include_bodies:
            logger.warning("logger {}: include_bodies is reserved; records carry no bodies yet", self.name)
        self._handler_id = logger.add(
            self._stream or sys.stdout,
            format="{message}",
            level=self._min_level,
            filter=self._accepts,
            enqueue=True,
            colorize=False,
            backtrace=False,
            diagnose=False,
        )

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Queue the record's line for the sink (never blocks on the stream)."""
        if self._handler_id is None:
            return
        level = level_for(record)
        if LEVELS[level] < self._min_level:
            return
        self._log.log(level, self._format(record))

    @hookimpl
    async def shutdown(self, app: Any) -> None:
        """Write what is queued and remove this logger's sink (only this one)."""
        handler_id, self._handler_id = self._handler_id, None
        if handler_id is not None:
            await asyncio.to_thread(logger.remove, handler_id)


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer ``stdout``."""
    register("stdout", StdoutLogger)
