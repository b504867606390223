"""The shared body of loggers that write one line per request through a loguru sink.

``truckllm-logger-stdout`` and ``truckllm-logger-file`` (and any third-party logger of the same
kind) subclass :class:`LineLogger` and say only where lines go (:meth:`LineLogger.sink`). Each
instance adds its own loguru sink that accepts only its own records (a unique ``extra`` key) and
writes from loguru's queue thread (``enqueue=True``), so a slow disk or reader never blocks the
event loop, and removes only that sink at shutdown.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from loguru import logger

from truckllm._internal.records import alert_line, json_line, level_for, text_line
from truckllm.hookspecs import hookimpl
from truckllm.types import Alert, RequestRecord

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["EXTRA_KEY", "LEVELS", "LineLogger", "check_level"]

EXTRA_KEY = "truckllm_logger"
"""The loguru ``extra`` key request records are bound with (the value names one logger instance).

Other sinks (the kernel's own) leave these records out: ``filter=lambda r: EXTRA_KEY not in
r["extra"]``.
"""

LEVELS: dict[str, int] = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
"""The accepted ``level`` values and their loguru numbers."""


def check_level(level: str) -> None:
    """Raise ``ValueError`` for a ``level`` option that is not one of :data:`LEVELS`."""
    if level.upper() not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")


class LineLogger:
    """One line per finished request (JSON or text) on a loguru sink of the subclass's choosing.

    The subclass's ``Options`` has ``format`` (``json`` / ``text``), ``level`` and
    ``include_bodies``; it implements :meth:`sink`.
    """

    name: ClassVar[str] = "line"
    """The name in ``loggers:``."""

    def __init__(self, options: Any) -> None:
        self.options = options
        self._tag = f"{self.name}-{uuid.uuid4().hex}"
        self._min_level = LEVELS[options.level.upper()]
        self._format: Callable[[RequestRecord], str] = json_line if options.format == "json" else text_line
        self._bodies = bool(options.include_bodies) and options.format == "json"
        self._handler_id: int | None = None
        self._log = logger.bind(**{EXTRA_KEY: self._tag})

    def sink(self) -> tuple[Any, dict[str, Any]]:
        """Where lines go: ``(sink, extra logger.add() arguments)``."""
        raise NotImplementedError

    def _accepts(self, record: Record) -> bool:
        return bool(record["extra"].get(EXTRA_KEY) == self._tag)

    @hookimpl
    def startup(self, app: Any) -> None:
        """Add this logger's loguru sink."""
        if self._handler_id is not None:
            return
        target, extra = self.sink()
        self._handler_id = logger.add(
            target,
            format="{message}",
            level=self._min_level,
            filter=self._accepts,
            enqueue=True,
            colorize=False,
            backtrace=False,
            diagnose=False,
            **extra,
        )

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Queue the record's line for the sink (never blocks on the stream or the disk)."""
        if self._handler_id is None:
            return
        level = level_for(record)
        if LEVELS[level] < self._min_level:
            return
        if self._bodies and record.bodies is not None:
            self._log.log(level, json_line(record, bodies=True))
            return
        self._log.log(level, self._format(record))

    @hookimpl
    def emit_alert(self, alert: Alert) -> None:
        """One ``WARNING`` line per alert (:func:`~truckllm._internal.records.alert_line`, in the
        logger's format)."""
        if self._handler_id is None or LEVELS["WARNING"] < self._min_level:
            return
        self._log.warning(alert_line(alert, self.options.format))

    @hookimpl
    async def shutdown(self, app: Any) -> None:
        """Write what is queued and remove this logger's sink (only this one)."""
        handler_id, self._handler_id = self._handler_id, None
        if handler_id is not None:
            await asyncio.to_thread(logger.remove, handler_id)
