"""The kernel's provider conformance suite, run against this plugin.

Every check starts a real gateway in front of a fake OpenAI-compatible server and talks to it
over HTTP: chat, streams, tool calls, usage, error mapping, cancellation, mid-stream failures.
"""

from __future__ import annotations

from truckllm_testing.conformance import ProviderConformance
from truckllm_testing.fakes import FakeOpenAI


class TestExampleConformance(ProviderConformance):
    provider_type = "example"
    fake_upstream = FakeOpenAI  # vLLM, Ollama and LM Studio speak OpenAI's wire format
