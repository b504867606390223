"""The provider conformance suite, run against the ``azure`` provider plugin in front of the fake
Azure OpenAI resource: the classic deployment URLs (``api-version`` required) and the v1 endpoint."""

from __future__ import annotations

from truckllm_provider_azure import DEFAULT_API_VERSION

from truckllm_testing.conformance import ProviderConformance, UpstreamTarget
from truckllm_testing.fakes.azure import FakeAzure


class TestAzureConformance(ProviderConformance):
    provider_type = "azure"
    fake_upstream = FakeAzure

    def upstream_target(self, model: str, stream: bool) -> UpstreamTarget:
        """The deployment (the model) is one encoded segment of the URL, ``api-version`` the query."""
        return UpstreamTarget(
            "/v1/openai/deployments/",
            "/chat/completions",
            params=(("api-version", DEFAULT_API_VERSION),),
            model_in_path=True,
        )


class TestAzureV1Conformance(ProviderConformance):
    provider_type = "azure"
    fake_upstream = FakeAzure
    provider_options = {"api": "v1"}

    def upstream_target(self, model: str, stream: bool) -> UpstreamTarget:
        """OpenAI's path under ``/openai/v1``, the model in the body, no query."""
        return UpstreamTarget("/v1/openai/v1/chat/completions")
