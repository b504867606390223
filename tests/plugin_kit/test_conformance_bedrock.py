"""The provider conformance suite run against the built-in ``bedrock`` provider plugin in front
of the SigV4-checking fake Bedrock.

The hostile-upstream checks are skipped: :class:`~truckllm_testing.hostile.HostileUpstream`
answers OpenAI, Anthropic and Gemini paths only (``/model/{id}/converse`` is its 404) and knows
no event stream. The plugin's own tests cover what they hold for Bedrock (garbage answers and
streams are a clean 502, any corruption of the event stream a clean error, the key never in an
answer, usage never negative): ``plugins/truckllm-provider-bedrock/tests/test_bedrock_trust.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from truckllm_testing.conformance import ProviderConformance
from truckllm_testing.fakes.bedrock import FakeBedrock

_NO_HOSTILE = "the hostile upstream speaks no Bedrock (Converse paths, AWS event stream)"


class TestBedrockConformance(ProviderConformance):
    provider_type = "bedrock"
    fake_upstream = FakeBedrock
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    keys = ("AKIDCONFORMANCE1:conformance-secret-1", "AKIDCONFORMANCE2:conformance-secret-2")
    provider_options: ClassVar[dict[str, Any]] = {"region": "us-east-1"}

    def test_hostile_answer_is_a_valid_answer_or_a_502(self) -> None:
        """Skipped (see the module docstring)."""
        pytest.skip(_NO_HOSTILE)

    def test_hostile_upstream_cannot_leak_the_key(self) -> None:
        """Skipped (see the module docstring)."""
        pytest.skip(_NO_HOSTILE)

    def test_hostile_retry_after_is_bounded(self) -> None:
        """Skipped (see the module docstring)."""
        pytest.skip(_NO_HOSTILE)

    def test_hostile_usage_is_never_negative(self) -> None:
        """Skipped (see the module docstring)."""
        pytest.skip(_NO_HOSTILE)

    def test_hostile_rate_limit_headers_are_read_as_unknown(self) -> None:
        """Skipped (see the module docstring)."""
        pytest.skip(_NO_HOSTILE)

    def test_model_names_are_one_url_segment_direct(self) -> None:
        """Skipped (see the module docstring); ``test_bedrock_units`` checks the model segment."""
        pytest.skip(_NO_HOSTILE)

    def test_arbitrary_model_names_are_one_url_segment_direct(self) -> None:
        """Skipped (see the module docstring)."""
        pytest.skip(_NO_HOSTILE)

    def test_model_names_are_one_url_segment_configured(self) -> None:
        """Skipped (see the module docstring)."""
        pytest.skip(_NO_HOSTILE)

    def test_arbitrary_model_names_are_one_url_segment_configured(self) -> None:
        """Skipped (see the module docstring)."""
        pytest.skip(_NO_HOSTILE)
