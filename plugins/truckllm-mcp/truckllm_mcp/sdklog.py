"""The MCP SDK's own log lines (stdlib ``logging``), kept from saying what an upstream sent.

The SDK and its HTTP client log through stdlib loggers, some lines with a snippet of what an
upstream answered ("Error parsing JSON response" with the parser's error quoting the input, an
unknown event's name, a status line), and by default those reach stderr unscrubbed through
Python's last-resort handler or whatever the host configured on the root logger. While an MCP
gateway runs, the loggers of :data:`SDK_LOGGERS` stop propagating and hand each record to
:class:`SdkLogRoute` instead, which writes one line to the gateway's log (loguru, at ``DEBUG``,
``plugin=mcp``): the SDK's level and logger name, the message and the exception's type and first
line (never a traceback), scrubbed of every credential the gateway holds for an upstream server
and of the config's secrets, and cut to :data:`MAX_LINE` characters.

The loggers keep not propagating once the gateway stops (they are silent then). With two
gateways at once (a reload builds the new one before the old one stops), the first route on the
loggers writes the line, scrubbed by every installed route's scrubber.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from loguru import logger

__all__ = ["MAX_LINE", "SDK_LOGGERS", "SdkLogRoute"]

SDK_LOGGERS = ("mcp", "client", "httpx2", "httpcore2")
"""The MCP SDK's loggers (its client session logs as ``client``) and its HTTP client's."""

MAX_LINE = 1000
"""An SDK log line is cut to this many characters (after scrubbing)."""


def _first_line(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class SdkLogRoute(logging.Handler):
    """Hands the SDK's log records, scrubbed, to the gateway's log (see the module docstring).

    :param scrub: removes what must not be logged (the held credentials, the config's secrets).
    """

    def __init__(self, scrub: Callable[[str], str]) -> None:
        super().__init__(logging.NOTSET)
        self.scrub = scrub

    def install(self) -> None:
        """Route the SDK's loggers here (and stop them propagating to the root logger)."""
        for name in SDK_LOGGERS:
            sdk = logging.getLogger(name)
            sdk.propagate = False
            if self not in sdk.handlers:
                sdk.addHandler(self)

    def uninstall(self) -> None:
        """Stop routing here (the loggers stay silent until another route is installed)."""
        for name in SDK_LOGGERS:
            logging.getLogger(name).removeHandler(self)

    def _routes(self, record: logging.LogRecord) -> list[SdkLogRoute]:
        top = logging.getLogger(record.name.split(".", 1)[0])
        return [h for h in top.handlers if isinstance(h, SdkLogRoute)]

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` as one scrubbed line (only the first installed route writes)."""
        try:
            routes = self._routes(record)
            if routes and routes[0] is not self:
                return
            try:
                text = record.getMessage()
            except Exception:  # a bad format string in the SDK: its template, not its arguments
                text = str(record.msg)
            if record.exc_info and record.exc_info[1] is not None:
                text = f"{text} ({_first_line(record.exc_info[1])})"
            for route in routes or [self]:
                text = route.scrub(text)
            text = " ".join(text.split())[:MAX_LINE]
            logger.bind(plugin="mcp").debug("mcp sdk {} {}: {}", record.levelname, record.name, text)
        except Exception:  # logging must never fail the SDK
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Say nothing of the record (the default prints it, unscrubbed, to stderr)."""
        return None
