"""The fake Vertex AI speaks Vertex's URLs for Gemini and Claude models and runs a token endpoint
that checks service-account assertions; the official SDKs (google-genai in Vertex mode,
anthropic's AnthropicVertex) are its judges."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.genai import Client, types
from google.oauth2 import service_account

from truckllm_testing.fakes import Fault, Reply, ToolCall
from truckllm_testing.fakes.vertex import EXPIRED, FakeVertex

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
PROJECT = "test-project"


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeVertex]:
    server = FakeVertex(keys=["sa-1", "sa-2"], project=PROJECT)
    with server.running():
        yield server


@pytest.fixture
def vertex(fake: FakeVertex) -> FakeVertex:
    fake.reset()
    fake.token_lifetime = 3600
    fake.clock = time.time
    return fake


def credentials(fake: FakeVertex, key: str = "sa-1") -> service_account.Credentials:
    creds: service_account.Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        fake.service_account(key), scopes=SCOPES
    )
    return creds


def token_for(fake: FakeVertex, key: str = "sa-1") -> str:
    creds = credentials(fake, key)
    creds.refresh(Request())  # type: ignore[no-untyped-call]
    assert isinstance(creds.token, str)
    return creds.token


def genai(fake: FakeVertex, key: str = "sa-1") -> Client:
    return Client(
        vertexai=True,
        project=PROJECT,
        location="us-central1",
        credentials=credentials(fake, key),
        http_options=types.HttpOptions(base_url=fake.base_url),
    )


def claude(fake: FakeVertex, key: str = "sa-1") -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        region="us-east5",
        project_id=PROJECT,
        credentials=credentials(fake, key),
        base_url=fake.base_url + "/v1",
        max_retries=0,
    )


# --- the token endpoint -------------------------------------------------------------------------


def test_google_auth_gets_a_token_for_a_signed_assertion(vertex: FakeVertex) -> None:
    vertex.token_lifetime = 120
    creds = credentials(vertex)
    creds.refresh(Request())  # type: ignore[no-untyped-call]
    assert creds.token and creds.token.startswith("ya29.")
    assert creds.expiry is not None
    lifetime = (
        creds.expiry.timestamp() - time.time()
        if creds.expiry.tzinfo
        else (creds.expiry.replace(tzinfo=__import__("datetime").UTC).timestamp() - time.time())
    )
    assert 100 < lifetime <= 120
    (issued,) = vertex.issued[-1:]
    assert issued.account == "sa-1" and issued.token == creds.token


def test_an_assertion_signed_with_another_key_is_refused(vertex: FakeVertex) -> None:
    forged = vertex.service_account("sa-1")
    forged["private_key"] = vertex.service_account("sa-2")["private_key"]  # sa-1's name, sa-2's key
    creds = service_account.Credentials.from_service_account_info(forged, scopes=SCOPES)  # type: ignore[no-untyped-call]
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        creds.refresh(Request())
    assert vertex.refused_grants == ["Invalid JWT Signature."]


def _assertion(fake: FakeVertex, **claims: Any) -> str:
    """An assertion signed by sa-1's key with these claims over the defaults."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    info = fake.service_account("sa-1")
    now = int(time.time())
    body = {
        "iss": info["client_email"],
        "aud": fake.token_uri,
        "scope": SCOPES[0],
        "iat": now,
        "exp": now + 3600,
    }
    body.update(claims)

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing = f"{b64({'alg': 'RS256', 'typ': 'JWT', 'kid': info['private_key_id']})}.{b64(body)}"
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"aud": "https://example.com/token"}, "Failed audience check"),
        ({"scope": "https://www.googleapis.com/auth/devstorage.read_only"}, "Invalid OAuth scope"),
        ({"exp": int(time.time()) + 7200}, "short-lived"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "short-lived"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "account not found"),
    ],
)
def test_the_assertion_claims_are_checked(vertex: FakeVertex, claims: dict[str, Any], error: str) -> None:
    grant = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": _assertion(vertex, **claims),
    }
    answer = requests.post(vertex.token_uri, data=grant, timeout=10)
    assert answer.status_code == 400
    assert error in answer.json()["error_description"]
    assert vertex.issued == [] or all(t.account == "sa-1" for t in vertex.issued)


def test_a_tampered_assertion_is_refused(vertex: FakeVertex) -> None:
    header, claims, signature = _assertion(vertex).split(".")
    bigger = json.loads(base64.urlsafe_b64decode(claims + "=="))
    bigger["scope"] += " https://www.googleapis.com/auth/admin"
    claims = base64.urlsafe_b64encode(json.dumps(bigger).encode()).rstrip(b"=").decode()
    grant = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": f"{header}.{claims}.{signature}",
    }
    answer = requests.post(vertex.token_uri, data=grant, timeout=10)
    assert answer.status_code == 400 and answer.json()["error_description"] == "Invalid JWT Signature."


# --- the model endpoints ------------------------------------------------------------------------


def _gemini_url(fake: FakeVertex, method: str, project: str = PROJECT) -> str:
    return f"{fake.base_url}/v1/projects/{project}/locations/us-central1/publishers/google/models/gemini-2.5-flash:{method}"


def test_a_token_is_required_and_must_be_live(vertex: FakeVertex) -> None:
    clock = Clock()
    vertex.clock = clock
    vertex.token_lifetime = 60
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    missing = requests.post(_gemini_url(vertex, "generateContent"), json=body, timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"
    forged = requests.post(
        _gemini_url(vertex, "generateContent"),
        json=body,
        headers={"Authorization": "Bearer ya29.nope"},
        timeout=10,
    )
    assert forged.status_code == 401
    token = token_for(vertex)
    live = requests.post(
        _gemini_url(vertex, "generateContent"),
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert live.status_code == 200, live.text
    assert vertex.requests[-1].api_key == "sa-1"
    clock.now += 61
    late = requests.post(
        _gemini_url(vertex, "generateContent"),
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert late.status_code == 401 and late.json()["error"]["status"] == "UNAUTHENTICATED"
    assert vertex.requests[-1].api_key == EXPIRED


def test_another_project_is_forbidden(vertex: FakeVertex) -> None:
    token = token_for(vertex)
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    answer = requests.post(
        _gemini_url(vertex, "generateContent", project="other-project"),
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 403 and answer.json()["error"]["status"] == "PERMISSION_DENIED"


def test_google_genai_in_vertex_mode(vertex: FakeVertex) -> None:
    client = genai(vertex)
    vertex.script(Reply(text="Bonjour from Vertex"))
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello in French")
    assert answer.text == "Bonjour from Vertex"
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="one two three"))
    assert "".join(c.text or "" for c in chunks) == "echo: one two three"
    vertex.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    called = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="weather in Paris?",
        config=types.GenerateContentConfig(
            tools=[
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name="get_weather",
                            parameters=types.Schema(
                                type=types.Type.OBJECT,
                                properties={"city": types.Schema(type=types.Type.STRING)},
                            ),
                        )
                    ]
                )
            ]
        ),
    )
    assert called.function_calls and called.function_calls[0].args == {"city": "Paris"}
    paths = [r.path for r in vertex.requests]
    assert paths == [  # google-genai's default API version on Vertex is v1beta1
        f"/v1beta1/projects/{PROJECT}/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
        f"/v1beta1/projects/{PROJECT}/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent",
        f"/v1beta1/projects/{PROJECT}/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
    ]
    assert {r.api_key for r in vertex.requests} == {"sa-1"}
    assert vertex.violations == []


def test_anthropic_vertex_client(vertex: FakeVertex) -> None:
    client = claude(vertex, "sa-2")
    vertex.script(Reply(text="Hello from Claude on Vertex"))
    message = client.messages.create(
        model="claude-sonnet-4-5@20250929", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == "Hello from Claude on Vertex"
    with client.messages.stream(
        model="claude-sonnet-4-5@20250929", max_tokens=64, messages=[{"role": "user", "content": "one two"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "echo: one two"
    vertex.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    called = client.messages.create(
        model="claude-sonnet-4-5@20250929",
        max_tokens=64,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[
            {
                "name": "get_weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
    )
    assert called.stop_reason == "tool_use"
    base = f"/v1/projects/{PROJECT}/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929"
    assert [r.path for r in vertex.requests] == [
        f"{base}:rawPredict",
        f"{base}:streamRawPredict",
        f"{base}:rawPredict",
    ]
    assert {r.api_key for r in vertex.requests} == {"sa-2"}
    assert all(r.json["anthropic_version"] and "model" not in r.json for r in vertex.requests[:3])
    assert vertex.violations == []


def test_claude_bodies_must_be_vertex_shaped(vertex: FakeVertex) -> None:
    token = token_for(vertex)
    url = (
        f"{vertex.base_url}/v1/projects/{PROJECT}/locations/us-east5/publishers/anthropic/models/"
        "claude-sonnet-4-5@20250929:rawPredict"
    )
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    answer = requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 400
    assert "anthropic_version: Field required" in vertex.violations
    assert any(v.startswith("model: Extra inputs") for v in vertex.violations)
    vertex.reset()
    streamed: dict[str, Any] = {"anthropic_version": "vertex-2023-10-16", **body, "stream": True}
    del streamed["model"]
    answer = requests.post(url, json=streamed, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 400
    assert any(v.startswith("stream:") for v in vertex.violations)


def test_faults_reach_both_publishers_by_account(vertex: FakeVertex) -> None:
    vertex.inject(Fault(status=429, key="sa-2", retry_after=3))
    with pytest.raises(anthropic.RateLimitError):
        claude(vertex, "sa-2").messages.create(
            model="claude-haiku-4-5@20251001", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert vertex.requests[-1].headers.get("authorization", "").startswith("Bearer ya29.")
    answer = claude(vertex, "sa-2").messages.create(
        model="claude-haiku-4-5@20251001", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.content
    assert vertex.pending == 0
