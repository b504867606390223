"""The AWS credential chain's temporary credentials, through botocore itself: the container
credentials endpoint (ECS, EKS Pod Identity) and web identity (IRSA: STS
``AssumeRoleWithWebIdentity``), each served on loopback. The source hands out what botocore got,
reports its expiry to the kernel, and the next refresh near that expiry gets botocore's new set.

And the issue's run: temporary credentials living a few seconds, 2,000 requests through the
gateway to the SigV4-checking fake (which refuses an expired one), zero failures."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import openai
import pytest
import truckllm_provider_bedrock as plugin
from truckllm_provider_bedrock.credentials import AwsCredential, decode_credential

from truckllm.types import Provider
from truckllm_testing.fakes.bedrock import FakeBedrock
from truckllm_testing.server import GatewayServer

_CLEARED = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


class Issuer:
    """Temporary credentials, one set per call, each living ``lifetime`` (inside botocore's
    mandatory refresh window of 10 minutes, so that each refresh fetches a new set)."""

    def __init__(
        self,
        lifetime: dt.timedelta = dt.timedelta(minutes=5),
        on_issue: Callable[[AwsCredential, dt.datetime], None] | None = None,
    ) -> None:
        self.lifetime = lifetime
        self.on_issue = on_issue
        self.issued: list[tuple[AwsCredential, dt.datetime]] = []
        self.seen: list[dict[str, str]] = []  # what each call carried (headers, form)
        self._lock = threading.Lock()

    def issue(self) -> tuple[AwsCredential, dt.datetime]:
        with self._lock:
            n = len(self.issued) + 1
            expiry = (dt.datetime.now(dt.UTC) + self.lifetime).replace(microsecond=0)
            credential = AwsCredential(f"ASIATEMP{n:04d}", f"temp-secret-{n}", f"temp-token-{n}")
            if self.on_issue is not None:  # the upstream learns it before anyone can use it
                self.on_issue(credential, expiry)
            self.issued.append((credential, expiry))
            return credential, expiry


def _serve(issuer: Issuer) -> Generator[str, None, None]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # the container credentials endpoint
            issuer.seen.append({"path": self.path, "authorization": self.headers.get("authorization", "")})
            credential, expiry = issuer.issue()
            body = {
                "AccessKeyId": credential.access_key,
                "SecretAccessKey": credential.secret_key,
                "Token": credential.token,
                "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            self._answer(200, "application/json", json.dumps(body).encode())

        def do_POST(self) -> None:  # STS (query protocol)
            length = int(self.headers.get("content-length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            issuer.seen.append(form)
            if form.get("Action") != "AssumeRoleWithWebIdentity":
                self._answer(400, "text/xml", b"<ErrorResponse/>")
                return
            credential, expiry = issuer.issue()
            xml = (
                '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                "<AssumeRoleWithWebIdentityResult><Credentials>"
                f"<AccessKeyId>{credential.access_key}</AccessKeyId>"
                f"<SecretAccessKey>{credential.secret_key}</SecretAccessKey>"
                f"<SessionToken>{credential.token}</SessionToken>"
                f"<Expiration>{expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
                "</Credentials></AssumeRoleWithWebIdentityResult>"
                "<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>"
                "</AssumeRoleWithWebIdentityResponse>"
            )
            self._answer(200, "text/xml", xml.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def endpoint(issuer: Issuer) -> Iterator[str]:
    yield from _serve(issuer)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credentials in the environment or files, no instance metadata."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return tmp_path


def _provider() -> Provider:
    options = plugin.Options(region="us-east-1")
    return Provider(
        name="b", type="bedrock", base_url="https://bedrock-runtime.us-east-1.amazonaws.com", options=options
    )


async def _refreshes_twice(issuer: Issuer) -> None:
    """Two refreshes of a keyless provider's source: each hands out botocore's latest set and its
    expiry."""
    source = plugin.credentials.make_source(_provider(), "")
    for _ in range(2):
        expiry = await source.refresh()
        credential, expected = issuer.issued[-1]
        assert decode_credential(source.current()) == credential
        assert expiry == expected.timestamp()
    assert issuer.issued[-1][0] != issuer.issued[0][0]  # the second refresh got a new set
    await source.close()


async def test_container_credentials(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path, issuer: Issuer, endpoint: str
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint + "/v2/credentials/abc")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-token")
    await _refreshes_twice(issuer)
    assert {seen["path"] for seen in issuer.seen} == {"/v2/credentials/abc"}
    assert {seen["authorization"] for seen in issuer.seen} == {"pod-identity-token"}


async def test_web_identity(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path, issuer: Issuer, endpoint: str
) -> None:
    token_file = clean_env / "token"
    token_file.write_text("the-pods-oidc-token")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gateway")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", endpoint)
    await _refreshes_twice(issuer)
    assert all(seen["Action"] == "AssumeRoleWithWebIdentity" for seen in issuer.seen)
    assert {seen["WebIdentityToken"] for seen in issuer.seen} == {"the-pods-oidc-token"}
    assert {seen["RoleArn"] for seen in issuer.seen} == {"arn:aws:iam::123456789012:role/gateway"}


LIFETIME = 6.0  # seconds a set lives: the kernel refreshes it within about a second (its floor)
REQUESTS = 2000


@pytest.mark.slow
def test_credentials_expire_during_2000_requests_and_none_fails(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    fake = FakeBedrock(keys=["AKIDNEVERUSED:unused-secret"])
    issuer = Issuer(
        dt.timedelta(seconds=LIFETIME),
        lambda c, expiry: fake.add_key(f"{c.access_key}:{c.secret_key}:{c.token}", expires=expiry),
    )
    config = json.dumps(
        {
            "routing": {"retries": 0, "cooldown": {"failures": 1000}},
            "providers": {"aws": {"type": "bedrock", "base_url": "BASE", "options": {"region": "us-east-1"}}},
            "models": {
                "claude": {
                    "deployments": [
                        {"provider": "aws", "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"}
                    ]
                }
            },
        }
    )
    with fake.running():
        endpoint = _serve(issuer)
        url = next(endpoint)
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url + "/creds")
        try:
            with (
                GatewayServer(
                    config.replace("BASE", fake.origin), autoload=False, extra_plugins=(plugin,)
                ) as gw,
                openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0, timeout=30) as sdk,
            ):

                def one(n: int) -> str:
                    messages: Any = [{"role": "user", "content": f"request {n}"}]
                    if n % 3 == 0:
                        text = ""
                        for chunk in sdk.chat.completions.create(
                            model="claude", messages=messages, stream=True
                        ):
                            text += "".join(c.delta.content or "" for c in chunk.choices)
                        return text
                    answer = sdk.chat.completions.create(model="claude", messages=messages)
                    return answer.choices[0].message.content or ""

                started = time.monotonic()
                with ThreadPoolExecutor(max_workers=8) as pool:
                    answers = list(pool.map(one, range(REQUESTS)))
                while time.monotonic() - started < 3 * LIFETIME:  # a fast machine: outlive some sets
                    answers.append(one(len(answers)))
        finally:
            endpoint.close()

    assert answers == [f"echo: request {n}" for n in range(len(answers))]  # no request failed
    assert fake.violations == []  # none signed with an expired, unknown or wrong credential
    calls = [r for r in fake.requests if "/model/" in r.path]
    assert len(calls) == len(answers) and {r.status for r in calls} == {200}
    used = {r.headers["authorization"].split("Credential=", 1)[1].split("/", 1)[0] for r in calls}
    assert len(used) >= 3, f"the run outlived several sets but signed with {sorted(used)}"
    assert used <= {c.access_key for c, _ in issuer.issued}
