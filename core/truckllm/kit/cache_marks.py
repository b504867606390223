"""Prompt-cache marks (``cache_control``) of a chat request, for provider plugins that place
cache breakpoints (Anthropic, Bedrock...).

- :func:`cache_marks`: the marks of a request by position (``messages[i].content[j]``,
  ``messages[i]``, ``tools[k]``): from the body as received for an OpenAI-dialect client, from the
  typed form for another dialect; :func:`typed_marks`: those of a typed request.
- :class:`CacheMarks` (``part``, ``message``, ``any_in``, ``tool``); :data:`NO_MARKS`: none.
"""

from truckllm._internal.cache_marks import NO_MARKS as NO_MARKS
from truckllm._internal.cache_marks import CacheMarks as CacheMarks
from truckllm._internal.cache_marks import cache_marks as cache_marks
from truckllm._internal.cache_marks import typed_marks as typed_marks

__all__ = ["NO_MARKS", "CacheMarks", "cache_marks", "typed_marks"]
