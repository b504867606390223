"""Faithful fake upstream servers (OpenAI, Anthropic, Gemini, Azure OpenAI, Vertex AI, Bedrock) for tests.

Each fake is a real aiohttp server on ``127.0.0.1`` (a random free port) that speaks
the provider's exact wire format, validates requests against the provider's contract
and can be scripted (:class:`Reply`) or made to fail (:class:`Fault`)::

    async with FakeOpenAI(keys=["k1", "k2"]) as fake:
        fake.inject(Fault(status=429, key="k1"))            # next request on k1 is rate limited
        fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
        ...  # point the gateway at fake.base_url
        assert fake.violations == []

For synchronous clients: ``with FakeAnthropic().running() as fake: ...``.

FakeOpenAI also serves the Responses API (see ``fakes/openai_responses.py``).

Things a gateway test author should know:

- Pipeline order: authenticate, validate (violations are recorded in
  ``fake.violations`` and, when ``strict``, answered with the provider's 400), then the
  first matching fault, then the first matching reply.  An invalid request never uses
  up a fault or a reply.
- ``Fault`` and ``Reply`` apply to ``times`` matching requests (``-1``: forever) and can
  be narrowed by ``key``, ``model`` and (faults only) ``path``.  To fail exactly once on
  one key: ``fake.inject(Fault(status=429, key="k1"))``.
- ``retry_after`` is sent as given: whole seconds as an integer (``"2"``), fractions as
  a decimal (``"0.05"``, a deviation from the real APIs so tests stay fast; OpenAI also
  gets ``retry-after-ms``).  Anthropic rate limits always carry ``retry-after`` (default
  1 s), its spend limit never does; Gemini puts the delay only in ``RetryInfo``.
- Default answer: ``"echo: " + last user text[:200]``; prompt tokens are the words of
  every text in the request + 1, completion tokens the words of the answer.  Output is
  cut at the request's stop sequences and at ``max_tokens`` words (finish reason
  ``length``/``max_tokens``/``MAX_TOKENS``).
- Anthropic thinking blocks are signed (:func:`thinking_signature`) and a modified block
  is rejected, like the real API.
- ``close()`` then ``start()`` serves again on the same port (an upstream outage).
"""

from .agent import AgentResponder
from .anthropic import FakeAnthropic, thinking_signature
from .azure import FakeAzure
from .base import FakeUpstream, Fault, Received, Reply, ToolCall
from .bedrock import FakeBedrock
from .gemini import FakeGemini
from .openai import FakeOpenAI
from .openai_responses import ResponseTurn, StoredResponse
from .vertex import FakeVertex
from .wire import SSEEvent, parse_sse, sse_frames

__all__ = [
    "AgentResponder",
    "FakeAnthropic",
    "FakeAzure",
    "FakeBedrock",
    "FakeGemini",
    "FakeOpenAI",
    "FakeUpstream",
    "FakeVertex",
    "Fault",
    "Received",
    "Reply",
    "ResponseTurn",
    "SSEEvent",
    "StoredResponse",
    "ToolCall",
    "parse_sse",
    "sse_frames",
    "thinking_signature",
]
