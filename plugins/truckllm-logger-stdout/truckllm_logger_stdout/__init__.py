"""TruckLLM logger plugin: one line per request (and per alert) on standard output
(``loggers: [stdout]``).

Lines go through loguru, on a sink of this logger's own that accepts only its own records (a
unique ``extra`` key) and writes from loguru's queue thread (``enqueue=True``), so a slow reader
of stdout never blocks the event loop.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TextIO

import msgspec

from truckllm import hookimpl
from truckllm.kit.linelogger import EXTRA_KEY, LEVELS, LineLogger, check_level
from truckllm.kit.records import iso_time
from truckllm.types import Alert

__all__ = ["EXTRA_KEY", "LEVELS", "TRUCKLLM_API", "StdoutLogger", "register_loggers"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


class StdoutLogger(LineLogger):
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
            check_level(self.level)

    name: ClassVar[str] = "stdout"
    """The name in ``loggers:``."""

    def __init__(self, options: Options | None = None, *, stream: TextIO | None = None) -> None:
        super().__init__(options if options is not None else self.Options())
        self._stream = stream

    def sink(self) -> tuple[Any, dict[str, Any]]:
        """Standard output (or the test's stream)."""
        return self._stream or sys.stdout, {}

    @hookimpl
    def emit_alert(self, alert: Alert) -> None:
        """One ``WARNING`` line per alert: JSON ``{"time", "level", "type": "alert", "alert"}``
        or text ``<time> WARNING ALERT <kind> <subject> "<message>" id=<id>``."""
        if self._handler_id is None or LEVELS["WARNING"] < self._min_level:
            return
        time = iso_time(alert.at)
        if self.options.format == "json":
            fields = {"time": time, "level": "WARNING", "type": "alert", "alert": msgspec.to_builtins(alert)}
            line = msgspec.json.encode(fields).decode()
        else:
            quoted = msgspec.json.encode  # keeps the line one line, whatever the text holds
            line = (
                f"{time} WARNING ALERT {alert.kind} {quoted(alert.subject).decode()} "
                f"{quoted(alert.message).decode()} id={quoted(alert.id).decode()}"
            )
        self._log.warning(line)


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer ``stdout``."""
    register("stdout", StdoutLogger)
