"""The provider conformance suite (the hostile-upstream checks included), run against the
built-in ``bedrock`` provider plugin in front of the SigV4-checking fake Bedrock.

The hostile upstream knows a request's key only from a bearer header, so its checks run the
plugin with a Bedrock API key (``auth: api_key``); the suite's own checks sign with SigV4. A model
id is one path segment in which ``:`` stays as it is (``...-v1:0``: HTTP clients send it so, and
it is signed so). The hostile checks need a hostile upstream that speaks Bedrock
(``truckllm_testing.hostile.DIALECTS`` has ``bedrock``); with an older test kit they are skipped.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import unquote

import pytest

from truckllm_testing import hostile as hostile_kit
from truckllm_testing.conformance import ProviderConformance, UpstreamTarget
from truckllm_testing.fakes.bedrock import FakeBedrock
from truckllm_testing.hostile import HostileRequest, HostileUpstream

_SEGMENT = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=@:-]|%[0-9A-Fa-f]{2})+")
_SPEAKS_BEDROCK = "bedrock" in getattr(hostile_kit, "DIALECTS", ())


class _ModelSegment(UpstreamTarget):
    """``/model/<id>/<operation>`` with the id as one segment, ``:`` allowed (RFC 3986 ``pchar``)."""

    def check(self, seen: HostileRequest, model: str) -> None:
        """Fail unless ``seen`` went to this target for ``model``."""
        where = f"the plugin sent {seen.method} {seen.target!r} for the model {model!r}"
        assert seen.params == [], f"{where}: query parameters it did not mean to send"
        path = seen.path
        assert path.startswith(self.prefix) and path.endswith(self.suffix), where
        segment = path[len(self.prefix) : len(path) - len(self.suffix)]
        assert _SEGMENT.fullmatch(segment) and segment not in (".", ".."), f"{where}: not one segment"
        assert unquote(segment, errors="strict") == model, f"{where}: the segment decodes to another model"


class TestBedrockConformance(ProviderConformance):
    provider_type = "bedrock"
    fake_upstream = FakeBedrock
    upstream_dialect = "bedrock"
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    keys = ("AKIDCONFORMANCE1:conformance-secret-1", "AKIDCONFORMANCE2:conformance-secret-2")
    provider_options: ClassVar[dict[str, Any]] = {"region": "us-east-1"}

    def hostile_entry(self, hostile: HostileUpstream) -> dict[str, Any]:
        """The hostile server's entry, its key sent as a Bedrock API key."""
        if not _SPEAKS_BEDROCK:
            pytest.skip("this test kit's hostile upstream speaks no Bedrock")
        entry = super().hostile_entry(hostile)
        entry["options"] = {"region": "us-east-1", "auth": "api_key"}
        return entry

    def upstream_target(self, model: str, stream: bool) -> UpstreamTarget:
        """``/model/<id>/converse`` (``converse-stream`` for a stream)."""
        return _ModelSegment("/model/", "/converse-stream" if stream else "/converse", model_in_path=True)
