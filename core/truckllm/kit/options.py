"""Field types for a plugin's ``Options`` struct, decoded by the kernel from the YAML entry.

- :class:`Duration`: seconds as a float, written ``100ms``, ``5s``, ``1m30s``, ``2h`` or as a
  bare number; :func:`parse_duration` parses one the same way.
- :class:`Secret`: a string whose every rendering (``str``, ``repr``, JSON, logs, the admin API's
  config view) is :data:`REDACTED` (``<secret>``); only :meth:`Secret.reveal` returns the value.
  Type every credential option with it.
"""

from truckllm._internal.config.durations import Duration as Duration
from truckllm._internal.config.durations import parse_duration as parse_duration
from truckllm._internal.secrets import REDACTED as REDACTED
from truckllm._internal.secrets import Secret as Secret

__all__ = ["REDACTED", "Duration", "Secret", "parse_duration"]
