"""The trust boundary of the Gemini front door (issue 13, finding 3): the model a client names in
its URL path (``/v1beta/models/{model}:generateContent``) is taken as the server decoded it, once,
and checked once: a name that cannot be a model is a 400 naming ``model`` in Gemini's shape, and
nothing reaches an upstream."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from truckllm_dialect_gemini.names import MAX_MODEL, MODEL

from truckllm.errors import GatewayError
from truckllm_testing.fakes import FakeGemini
from truckllm_testing.server import GatewayServer

SETTINGS = settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
METHODS = ["generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"]
ATTACKS = [
    "x?key=evil&",
    "gem/../../zzz#",
    "x#frag",
    "..",
    ".",
    ".hidden",
    "x%2F..",
    "x%3Fkey%3Devil",
    "a b",
    "a\x00b",
    "a\r\nHost: evil",
    "a/b",
    "models/",
    "ｘ",
    "a" * (MAX_MODEL + 1),
]


def _body(method: str, model: str) -> dict[str, Any]:
    if method == "embedContent":
        return {"content": {"parts": [{"text": "x"}]}}
    if method == "batchEmbedContents":
        return {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": "x"}]}}]}
    return BODY


def _check(gk: Any, model: str, method: str) -> bool:
    try:
        request = gk.parse(_body(method, model.removeprefix("models/")), method, model=model)
    except GatewayError as exc:
        if exc.param != "model":  # the body was refused for its own reasons: the name passed
            assert MODEL.fullmatch(model.removeprefix("models/"))
            return True
        assert exc.status == 400 and exc.message.startswith("* model: ")
        name = model.removeprefix("models/")
        assert not name or len(name) > MAX_MODEL or not MODEL.fullmatch(name)
        return False
    name = request.model
    assert name == model.removeprefix("models/")
    assert 0 < len(name) <= MAX_MODEL and MODEL.fullmatch(name)
    assert not set(name) & set("/?#% \\") and not name.startswith(".")
    return True


@SETTINGS
@given(
    model=st.text(max_size=40) | st.text(alphabet="./?#%&=:@+~ \\\r\n\x00ab09-_", max_size=20),
    method=st.sampled_from(METHODS),
)
@example(model="x?key=evil&", method="generateContent")
@example(model="gem/../../zzz#", method="streamGenerateContent")
def test_the_url_model_is_a_model_name_or_400(gk: Any, model: str, method: str) -> None:
    """Class: the client's URL model is checked once before anything uses it."""
    _check(gk, model, method)


@pytest.mark.parametrize("model", ATTACKS)
@pytest.mark.parametrize("method", METHODS)
def test_named_url_models_are_400(gk: Any, model: str, method: str) -> None:
    assert _check(gk, model, method) is False


@SETTINGS
@given(model=st.text(max_size=30), method=st.text(max_size=30))
@example(model="x\r\nforged: line", method="predict")
def test_an_unknown_method_echoes_only_names(gk: Any, model: str, method: str) -> None:
    route = next(r for r in gk.dialect.routes if r.name == "unknown")
    with pytest.raises(GatewayError) as info:
        gk.dialect.parse(route, b"{}", {"model": model, "method": method}, {}, {})
    assert info.value.status == 404
    message = info.value.message
    assert message == "Method not found." or (
        MODEL.fullmatch(model.removeprefix("models/")) and message.isascii() and message.isprintable()
    )


@pytest.mark.parametrize(
    "model", ["gemini-2.5-flash", "models/gemini-2.5-flash", "llama3:8b", "a" * MAX_MODEL]
)
def test_real_aliases_pass(gk: Any, model: str) -> None:
    assert _check(gk, model, "generateContent") is True


# --- end to end: raw percent-encoded paths through a real gateway --------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeGemini]:
    pytest.importorskip("truckllm_provider_gemini")
    with FakeGemini(keys=["gemini-key"]).running() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeGemini) -> Iterator[GatewayServer]:
    config = f"""
providers:
  gem: {{type: gemini, base_url: {upstream.base_url}, keys: [{{name: g, value: gemini-key}}]}}
models:
  gemini-2.5-flash: {{strategy: first, deployments: [{{provider: gem, model: gemini-2.5-flash}}]}}
routing: {{retries: 0}}
keys:
  - {{name: team, value: gw-key}}
"""
    with GatewayServer(config) as gw:
        yield gw


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/models/x%3Fkey%3Devil%26:generateContent",  # ?key=evil& once decoded
        "/v1beta/models/gemini-2.5-flash%23:generateContent",  # a fragment
        "/v1beta/models/..%2F..%2Fzzz%23:generateContent",  # gem/../../zzz# style, slashes encoded
        "/v1beta/models/gemini-2.5-flash%252F..:generateContent",  # never decoded twice
        "/v1beta/models/%2E%2E:generateContent",
        "/v1beta/models/gemini-2.5-flash%0D%0AHost:%20evil:generateContent",
    ],
)
def test_e2e_a_hostile_url_model_never_reaches_the_upstream(
    gateway: GatewayServer, upstream: FakeGemini, path: str
) -> None:
    upstream.reset()
    answer = httpx.post(
        gateway.url + path, content=json.dumps(BODY), headers={"x-goog-api-key": "gw-key"}, timeout=10
    )
    assert answer.status_code in (400, 404), answer.text
    assert upstream.requests == []
    if answer.status_code == 400:
        error = answer.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith("* model: ")


def test_e2e_a_real_model_is_served(gateway: GatewayServer, upstream: FakeGemini) -> None:
    upstream.reset()
    answer = httpx.post(
        gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
        content=json.dumps(BODY),
        headers={"x-goog-api-key": "gw-key"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert [r.path for r in upstream.requests] == ["/v1beta/models/gemini-2.5-flash:generateContent"]
    assert upstream.violations == []
