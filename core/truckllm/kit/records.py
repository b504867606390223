"""One request record as log fields, and its JSON and text lines: what every logger writes.

- :data:`FIELDS`: the log field names, in order; :func:`record_fields`: a
  :class:`~truckllm.types.RequestRecord` as a flat mapping with those keys;
  :func:`attempt_fields`: one attempt as a mapping (the key's name, never its value).
- :func:`json_line`: the record as one JSON line (its bodies too when asked and present);
  :func:`text_line`: a readable one-line summary; :func:`alert_line`: an alert as one line;
  :func:`level_for`: ``ERROR`` for a 5xx answer, ``WARNING`` for a 4xx, else ``INFO``;
  :func:`iso_time`: ISO 8601 UTC with milliseconds.
"""

from truckllm._internal.records import FIELDS as FIELDS
from truckllm._internal.records import alert_line as alert_line
from truckllm._internal.records import attempt_fields as attempt_fields
from truckllm._internal.records import iso_time as iso_time
from truckllm._internal.records import json_line as json_line
from truckllm._internal.records import level_for as level_for
from truckllm._internal.records import record_fields as record_fields
from truckllm._internal.records import text_line as text_line

__all__ = [
    "FIELDS",
    "alert_line",
    "attempt_fields",
    "iso_time",
    "json_line",
    "level_for",
    "record_fields",
    "text_line",
]
