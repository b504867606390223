"""TruckLLM logger plugin: one line per request (and per alert) in a rotated file
(``loggers: [{file: {path: ...}}]``).

Lines go through loguru, on a file sink of this logger's own that accepts only its own records (a
unique ``extra`` key). loguru writes, rotates, compresses and prunes from its queue thread
(``enqueue=True``), so disk I/O never blocks the event loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import msgspec

from truckllm import hookimpl
from truckllm.kit.linelogger import EXTRA_KEY, LEVELS, LineLogger, check_level

__all__ = ["EXTRA_KEY", "LEVELS", "TRUCKLLM_API", "FileLogger", "register_loggers"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


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


class FileLogger(LineLogger):
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
        :ivar include_bodies: with ``format: json``, a record's request and answer bodies in its
            line (only where the gateway key or the alias keeps them: ``log_bodies``).
        """

        path: str = "truckllm-requests.log"
        format: Literal["json", "text"] = "json"
        level: str = "INFO"
        rotation: str | None = "100 MB"
        retention: str | int | None = "14 days"
        compression: str | None = None
        include_bodies: bool = False

        def __post_init__(self) -> None:
            check_level(self.level)
            if not self.path.strip():
                raise ValueError("path must not be empty")
            if isinstance(self.retention, int) and self.retention < 1:
                raise ValueError("retention must keep at least 1 file")
            path = self.path.replace("{pid}", "0")
            _check_file_options(path, self.rotation, self.retention, self.compression)

    name: ClassVar[str] = "file"
    """The name in ``loggers:``."""

    options: Options
    """The decoded ``loggers:`` entry."""

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options if options is not None else self.Options())

    @property
    def path(self) -> str:
        """The path given to loguru (``{pid}`` replaced)."""
        return self.options.path.replace("{pid}", str(os.getpid()))

    def sink(self) -> tuple[Any, dict[str, Any]]:
        """The file, with rotation, retention and compression (opened at start-up, so a bad path
        fails there rather than at the first record)."""
        return self.path, {
            "rotation": self.options.rotation,
            "retention": self.options.retention,
            "compression": self.options.compression,
            "encoding": "utf-8",
        }


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer ``file``."""
    register("file", FileLogger)
