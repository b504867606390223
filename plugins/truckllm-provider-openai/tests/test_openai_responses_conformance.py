"""The provider conformance suite with ``api: responses``: every chat check (answers, streams
event by event, tools, usage, errors and failover, disconnects, mid-stream failures) passes with
the chat requests served through FakeOpenAI's ``/v1/responses`` and translated back.

The hostile-upstream checks are left out: the hostile server answers chat completions,
Anthropic and Gemini, not the Responses API (this plugin's hostile answers of the Responses API
are in ``test_openai_responses_passthrough.py``; its chat ones in ``test_openai_hostile.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from truckllm_testing.conformance import HostileUpstreamChecks, ProviderConformance
from truckllm_testing.fakes import FakeOpenAI

_NO_HOSTILE = "the hostile upstream does not speak the Responses API"


def _skipped(check: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of an inherited check, marked skipped (the inherited one keeps running elsewhere)."""

    @functools.wraps(check)
    def skipped(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)  # pragma: no cover - skipped

    return pytest.mark.skip(reason=_NO_HOSTILE)(skipped)


class TestOpenAIResponsesConformance(ProviderConformance):
    provider_type = "openai"
    fake_upstream = FakeOpenAI
    provider_options = {"api": "responses"}


for _name in vars(HostileUpstreamChecks):
    if _name.startswith("test_"):
        setattr(TestOpenAIResponsesConformance, _name, _skipped(getattr(HostileUpstreamChecks, _name)))
