"""The trust boundary of the Anthropic front door (issue 13, finding 3): the client headers that
travel on (``anthropic-beta``, and the required ``anthropic-version``) are checked once, at the
door: a value that is not what Anthropic defines is a 400 naming the header, in Anthropic's shape,
and nothing reaches an upstream."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from truckllm_dialect_anthropic import AnthropicDialect
from truckllm_dialect_anthropic.headers import FEATURE, MAX_FEATURES, VERSION

from truckllm.errors import GatewayError
from truckllm_testing.fakes import FakeAnthropic
from truckllm_testing.server import GatewayServer

SETTINGS = settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
BODY = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
ATTACKS = [
    ("anthropic-beta", "a\r\nx-api-key: evil"),
    ("anthropic-beta", "a\nb"),
    ("anthropic-beta", "a\x00b"),
    ("anthropic-beta", "a b"),
    ("anthropic-beta", "a;b"),
    ("anthropic-beta", '"quoted"'),
    ("anthropic-beta", "é"),
    ("anthropic-beta", "x" * 65),
    ("anthropic-beta", ",".join(f"f{i}" for i in range(MAX_FEATURES + 1))),
    ("anthropic-version", "2023-06-01\r\nx-api-key: evil"),
    ("anthropic-version", "2023-06-01; x"),
    ("anthropic-version", "2023 06 01"),
    ("anthropic-version", "x" * 33),
    ("anthropic-version", ""),
]


def _oracle(name: str, value: str) -> bool:
    """Whether Anthropic's definition of the header admits ``value``."""
    if name == "anthropic-version":
        return bool(VERSION.fullmatch(value.strip()))
    features = [f.strip() for f in value.split(",") if f.strip()]
    return len(features) <= MAX_FEATURES and all(FEATURE.fullmatch(f) for f in features)


def _check(kit: Any, name: str, value: str) -> bool:
    headers = {"anthropic-version": "2023-06-01", name: value}
    try:
        request = AnthropicDialect().parse(kit.route(), json.dumps(BODY).encode(), {}, {}, headers)
    except GatewayError as exc:
        assert exc.status == 400 and exc.param == name and exc.message.startswith(name + ": ")
        assert not _oracle(name, value)
        return False
    assert _oracle(name, value)
    assert request.headers[name] == value
    return True


header_values = (
    st.text(max_size=40)
    | st.text(alphabet="abc-_.09 ,;=\r\n\x00\"'é", max_size=30)
    | st.lists(st.from_regex(FEATURE, fullmatch=True), max_size=40).map(",".join)
)


@SETTINGS
@given(name=st.sampled_from(["anthropic-beta", "anthropic-version"]), value=header_values)
@example(name="anthropic-beta", value="a\r\nx-api-key: evil")
def test_forwarded_headers_are_what_anthropic_defines_or_400(kit: Any, name: str, value: str) -> None:
    """Class: no client header value travels on unchecked."""
    _check(kit, name, value)


@pytest.mark.parametrize(("name", "value"), ATTACKS)
def test_named_header_attacks_are_400(kit: Any, name: str, value: str) -> None:
    assert _check(kit, name, value) is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
        ("anthropic-beta", "interleaved-thinking-2025-05-14, context-1m-2025-08-07"),
        ("anthropic-beta", ""),
    ],
)
def test_real_header_values_pass(kit: Any, name: str, value: str) -> None:
    assert _check(kit, name, value) is True


def test_a_missing_version_is_still_required(kit: Any) -> None:
    with pytest.raises(GatewayError) as info:
        AnthropicDialect().parse(kit.route(), json.dumps(BODY).encode(), {}, {}, {})
    assert info.value.param == "anthropic-version"
    AnthropicDialect(require_version=False).parse(kit.route(), json.dumps(BODY).encode(), {}, {}, {})


# --- end to end: an Anthropic client, the gateway, the fake Anthropic, on loopback ----------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeAnthropic]:
    pytest.importorskip("truckllm_provider_anthropic")
    with FakeAnthropic(keys=["anthropic-key"]).running() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeAnthropic) -> Iterator[GatewayServer]:
    config = f"""
providers:
  ant: {{type: anthropic, base_url: {upstream.base_url}, keys: [{{name: a, value: anthropic-key}}]}}
models:
  claude: {{strategy: first, deployments: [{{provider: ant, model: claude-sonnet-4-5}}]}}
routing: {{retries: 0}}
keys:
  - {{name: team, value: gw-key}}
"""
    with GatewayServer(config) as gw:
        yield gw


def _post(gw: GatewayServer, **headers: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/messages",
        json=BODY,
        headers={"x-api-key": "gw-key", "anthropic-version": "2023-06-01", **headers},
        timeout=10,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("anthropic-beta", "a;b"), ("anthropic-beta", "x" * 200), ("anthropic-version", "2023-06-01;x")],
)
def test_e2e_a_bad_header_is_400_and_nothing_goes_upstream(
    gateway: GatewayServer, upstream: FakeAnthropic, name: str, value: str
) -> None:
    upstream.reset()
    answer = _post(gateway, **{name: value})
    assert answer.status_code == 400
    assert answer.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": answer.json()["error"]["message"]},
    }
    assert answer.json()["error"]["message"].startswith(name + ": ")
    assert upstream.requests == []


def test_e2e_valid_beta_features_reach_the_upstream(gateway: GatewayServer, upstream: FakeAnthropic) -> None:
    upstream.reset()
    answer = _post(gateway, **{"anthropic-beta": "prompt-caching-2024-07-31 , context-1m-2025-08-07"})
    assert answer.status_code == 200, answer.text
    (seen,) = upstream.requests
    assert seen.headers["anthropic-beta"] == "prompt-caching-2024-07-31,context-1m-2025-08-07"
    assert upstream.violations == []
