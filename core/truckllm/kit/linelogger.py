"""The shared body of loggers that write one line per request through a loguru sink.

- :class:`LineLogger`: subclass it, give it an ``Options`` struct (``format``, ``level``,
  ``include_bodies``) and say where lines go (:meth:`LineLogger.sink`).
- :data:`EXTRA_KEY` (``"truckllm_logger"``): the loguru ``extra`` key request records are bound
  with; other sinks leave such records out.
- :data:`LEVELS`: the accepted ``level`` values and their loguru numbers.
- :func:`check_level`: ``ValueError`` for a ``level`` option not in :data:`LEVELS`.
"""

from truckllm._internal.linelogger import EXTRA_KEY as EXTRA_KEY
from truckllm._internal.linelogger import LEVELS as LEVELS
from truckllm._internal.linelogger import LineLogger as LineLogger
from truckllm._internal.linelogger import check_level as check_level

__all__ = ["EXTRA_KEY", "LEVELS", "LineLogger", "check_level"]
