"""The request log's query interface (``/admin/v1/requests``, consoles).

- :class:`RequestLog`: what a logger keeping searchable records implements (``search``, ``get``,
  ``series``); the kernel's admin API answers from the first running logger implementing it.
- :class:`LogQuery` / :class:`LogPage`: one keyset-paginated page, newest first.
- :class:`SeriesQuery` / :class:`Series` / :class:`SeriesPoint` / :class:`TopRow`: figures over
  time from pre-aggregated tables; :data:`Step`: a bucket width.
- :data:`MAX_PAGE`, :data:`STATUS_CLASSES`, :func:`status_filter`: the filters' bounds.
"""

from truckllm._internal.request_log import MAX_PAGE as MAX_PAGE
from truckllm._internal.request_log import STATUS_CLASSES as STATUS_CLASSES
from truckllm._internal.request_log import LogPage as LogPage
from truckllm._internal.request_log import LogQuery as LogQuery
from truckllm._internal.request_log import RequestLog as RequestLog
from truckllm._internal.request_log import Series as Series
from truckllm._internal.request_log import SeriesPoint as SeriesPoint
from truckllm._internal.request_log import SeriesQuery as SeriesQuery
from truckllm._internal.request_log import Step as Step
from truckllm._internal.request_log import TopRow as TopRow
from truckllm._internal.request_log import status_filter as status_filter

__all__ = [
    "MAX_PAGE",
    "STATUS_CLASSES",
    "LogPage",
    "LogQuery",
    "RequestLog",
    "Series",
    "SeriesPoint",
    "SeriesQuery",
    "Step",
    "TopRow",
    "status_filter",
]
