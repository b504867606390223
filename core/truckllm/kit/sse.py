"""An incremental Server-Sent Events parser and frame builders, for provider and dialect plugins.

- :class:`SSEParser`: feed bytes as they arrive (split anywhere; LF, CRLF or CR line ends), get
  complete :class:`SSEEvent` back (``event`` name, ``data`` bytes, the exact bytes it came in;
  ``raw`` for text that was not SSE-framed).
- :func:`data_frame`: ``data: <payload>\\n\\n``; :func:`event_frame`:
  ``event: <name>\\ndata: <payload>\\n\\n``.
"""

from truckllm._internal.sse import SSEEvent as SSEEvent
from truckllm._internal.sse import SSEParser as SSEParser
from truckllm._internal.sse import data_frame as data_frame
from truckllm._internal.sse import event_frame as event_frame

__all__ = ["SSEEvent", "SSEParser", "data_frame", "event_frame"]
