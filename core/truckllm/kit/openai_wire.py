"""Building and reading OpenAI wire objects: what every provider plugin translates to and from.

- :func:`chat_completion`: a whole ``chat.completion`` body; :class:`ChunkBuilder`: one
  response's ``chat.completion.chunk`` frames with a shared id, created and model;
  :func:`completion_id`: a fresh response id; :func:`usage_object`: OpenAI's ``usage`` object;
  :data:`DONE_FRAME`: ``data: [DONE]`` as a frame.
- :func:`upstream_error`: a classified :class:`~truckllm.types.UpstreamError` for an upstream
  HTTP status; :func:`classify_status`: the ``(kind, openai_type, client_status)`` behind it.
- :func:`parse_openai_usage`: the ``usage`` of an OpenAI body; :func:`parse_ratelimit_headers`:
  OpenAI's ``x-ratelimit-*`` headers; :func:`parse_retry_after`: seconds from ``retry-after-ms``
  or ``retry-after`` (``None`` for anything that is not a non-negative finite number);
  :func:`parse_go_duration`: seconds from OpenAI's reset durations (``6m0s``).
"""

from truckllm._internal.openai_wire import DONE_FRAME as DONE_FRAME
from truckllm._internal.openai_wire import ChunkBuilder as ChunkBuilder
from truckllm._internal.openai_wire import chat_completion as chat_completion
from truckllm._internal.openai_wire import classify_status as classify_status
from truckllm._internal.openai_wire import completion_id as completion_id
from truckllm._internal.openai_wire import parse_go_duration as parse_go_duration
from truckllm._internal.openai_wire import parse_openai_usage as parse_openai_usage
from truckllm._internal.openai_wire import parse_ratelimit_headers as parse_ratelimit_headers
from truckllm._internal.openai_wire import parse_retry_after as parse_retry_after
from truckllm._internal.openai_wire import upstream_error as upstream_error
from truckllm._internal.openai_wire import usage_object as usage_object

__all__ = [
    "DONE_FRAME",
    "ChunkBuilder",
    "chat_completion",
    "classify_status",
    "completion_id",
    "parse_go_duration",
    "parse_openai_usage",
    "parse_ratelimit_headers",
    "parse_retry_after",
    "upstream_error",
    "usage_object",
]
