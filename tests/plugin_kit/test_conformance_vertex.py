"""The provider conformance suite, run against the ``vertex`` (Gemini) and ``vertex-anthropic``
(Claude) provider types of ``truckllm-provider-vertex``, in front of the fake Vertex AI.

The suite's two keys are the fake's two test service accounts: each key's value is the account's
key file, the kernel's credential source gets its tokens from the fake's token endpoint, and the
fake reports the account a request's token belongs to as its key, so failover between keys is
observed as the suite expects. For the hostile-upstream checks, the key is a service account of a
side token endpoint whose token *is* the hostile key, so "the key never leaks" is checked on the
token, the secret that reaches the upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from truckllm_testing.conformance import (
    ProviderConformance,
    RecordingPlugin,
    UpstreamTarget,
)
from truckllm_testing.fakes import FakeUpstream
from truckllm_testing.fakes.vertex import FakeVertex
from truckllm_testing.hostile import HostileUpstream
from truckllm_testing.server import GatewayServer

PROJECT = "test-project"
LOCATION = "us-central1"


@pytest.fixture(scope="module")
def hostile_tokens() -> Iterator[FakeVertex]:
    """A token endpoint whose every token is the hostile key (its model routes go unused)."""
    issuer = FakeVertex(keys=["hostile"], project=PROJECT)
    issuer.mint = lambda: ProviderConformance.hostile_key
    with issuer.running():
        yield issuer


class _VertexConformance(ProviderConformance):
    publisher: ClassVar[str] = ""
    fake_upstream = FakeVertex
    provider_options = {"project": PROJECT, "location": LOCATION}
    credentials_expire = True

    def provider_entry(self, fake: FakeUpstream) -> dict[str, Any]:
        """The keys' values are the fake's service-account key files."""
        assert isinstance(fake, FakeVertex)
        entry = super().provider_entry(fake)
        entry["keys"] = [
            {"name": f"key{i}", "value": fake.service_account_json(name)}
            for i, name in enumerate(self.keys, start=1)
        ]
        return entry

    issuer: FakeVertex | None = None
    """The side token endpoint of the hostile checks."""

    @pytest.fixture(autouse=True)
    def _issuer(self, hostile_tokens: FakeVertex) -> None:
        self.issuer = hostile_tokens

    @pytest.fixture(scope="class")
    @classmethod
    def hostile_gateway(
        cls, hostile_server: HostileUpstream, hostile_recorder: RecordingPlugin, hostile_tokens: FakeVertex
    ) -> Iterator[GatewayServer]:
        """The suite's shared hostile gateway, its key a service account of ``hostile_tokens``."""
        suite = cls()
        suite.issuer = hostile_tokens
        with suite.hostile_gateway_for(hostile_server, hostile_recorder) as gw:
            yield gw

    def hostile_entry(self, hostile: HostileUpstream) -> dict[str, Any]:
        """The hostile server's origin as the API host; the key a service account of the side
        token endpoint (its tokens are the hostile key)."""
        issuer = self.issuer
        assert issuer is not None
        entry = super().hostile_entry(hostile)
        entry["base_url"] = hostile.origin
        entry["keys"] = [{"name": "key1", "value": issuer.service_account_json("hostile")}]
        return entry

    def upstream_target(self, model: str, stream: bool) -> UpstreamTarget:
        """``/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/<model>:<method>``."""
        prefix = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/{self.publisher}/models/"
        if self.publisher == "google":
            method = ":streamGenerateContent" if stream else ":generateContent"
            return UpstreamTarget(prefix, method, (("alt", "sse"),) if stream else (), model_in_path=True)
        return UpstreamTarget(prefix, ":streamRawPredict" if stream else ":rawPredict", model_in_path=True)


def _case_id(act: str, status: int, stream: bool) -> str:
    return f"{act}-{status}{'-stream' if stream else ''}"


class TestVertexGeminiConformance(_VertexConformance):
    provider_type = "vertex"
    publisher = "google"
    model = "gemini-2.5-flash"



class TestVertexAnthropicConformance(_VertexConformance):
    provider_type = "vertex-anthropic"
    publisher = "anthropic"
    model = "claude-sonnet-4-5@20250929"


