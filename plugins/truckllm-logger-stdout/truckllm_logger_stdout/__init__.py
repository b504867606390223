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
        :ivar include_bodies: with ``format: json``, a record's request and answer bodies in its
            line (only where the gateway key or the alias keeps them: ``log_bodies``).
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
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer ``stdout``."""
    register("stdout", StdoutLogger)
