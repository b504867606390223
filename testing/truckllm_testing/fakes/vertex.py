"""A fake Vertex AI: Gemini and Claude publisher models, and Google's OAuth token endpoint.

One server on 127.0.0.1 answers, as ``{location}-aiplatform.googleapis.com`` and
``oauth2.googleapis.com`` do:

- ``POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent``
  (``/v1beta1/...`` too, google-genai's default) and ``:streamGenerateContent?alt=sse``: the
  Gemini API's JSON, checked and answered as :class:`~truckllm_testing.fakes.gemini.FakeGemini`
  does (this class is one);
- ``POST .../publishers/anthropic/models/{model}:rawPredict`` and ``:streamRawPredict``: the
  Messages API's JSON, checked and answered as :class:`~truckllm_testing.fakes.anthropic.FakeAnthropic`
  does (:attr:`FakeVertex.anthropic`), except that the body must carry
  ``anthropic_version: vertex-2023-10-16`` (or a dated version, as anthropic's SDK sends since
  2.x) and no ``model`` (the URL names it), with the
  stream flag matching the method; ``models/count-tokens:rawPredict`` counts tokens (the model
  in the body there);
- ``POST /token``: the OAuth 2.0 JWT-bearer grant of service accounts. The assertion's RS256
  signature is verified with the service account's public key, and its claims checked
  (``iss`` a known account, ``aud`` Google's token URI or this one, the ``cloud-platform``
  scope, ``iat``/``exp`` a short-lived window); it answers a fresh access token living
  :attr:`FakeVertex.token_lifetime` seconds (by :attr:`FakeVertex.clock`).

Every model call needs ``Authorization: Bearer <token>`` with a live token from this endpoint;
a missing, unknown or expired token is Vertex's **401** ``UNAUTHENTICATED`` (Google's error
shape, for both publishers). ``keys`` names the test service accounts: one RSA key pair each,
made at start; :meth:`FakeVertex.service_account` is an account's key file (its ``token_uri``
points here), as ``google.oauth2.service_account.Credentials`` and the gateway's key values
take it. :attr:`Received.api_key` is the *account name* whose token a request carried, so
faults and replies are narrowed by account (``Fault(status=429, key="sa-1")``).

Both publishers share one queue of faults and replies and one request log (the attributes of
this object)::

    async with FakeVertex(keys=["sa-1"]) as fake:
        info = fake.service_account("sa-1")     # the key file, token_uri → fake.token_uri
        fake.token_lifetime = 2                 # tokens live 2 s
        ...  # base_url: fake.base_url (the API host root)
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .anthropic import VERSION, FakeAnthropic
from .base import Ctx, FakeUpstream, Problem, Responder, Route
from .gemini import FakeGemini

__all__ = [
    "ANTHROPIC_VERSION",
    "CLOUD_PLATFORM",
    "FakeVertex",
    "IssuedToken",
    "TestServiceAccount",
]

ANTHROPIC_VERSION = "vertex-2023-10-16"
"""The ``anthropic_version`` Claude on Vertex requires in the request body."""

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
"""The scope a Vertex AI token needs."""

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
"""The audience google-auth writes in every service-account assertion, whatever the key file's
``token_uri`` (accepted, as is :attr:`FakeVertex.token_uri` itself)."""

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
"""The OAuth grant type of a service-account assertion."""

MAX_ASSERTION_LIFETIME = 3600
"""Google refuses assertions valid for more than an hour."""

CLOCK_SKEW = 300
"""Seconds of clock difference tolerated on ``iat``/``exp``."""

_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_MISSING = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
COUNT_TOKENS = "count-tokens"
"""The Anthropic publisher's pseudo-model of token counts (``models/count-tokens:rawPredict``)."""

_PUBLISHER = (
    "/{{version:v1|v1beta1}}/projects/{{project}}/locations/{{location}}"
    "/publishers/{publisher}/models/{{target}}"
)
EXPIRED = "<expired token>"
""":attr:`Received.api_key` of a request whose token had expired."""
UNKNOWN = "<unknown token>"
""":attr:`Received.api_key` of a request whose token this fake never issued."""


@dataclass
class TestServiceAccount:
    """One test service account: its name (the fake's "key"), e-mail and RSA key pair."""

    __test__ = False  # not a pytest test class

    name: str
    email: str
    key_id: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def make(cls, name: str, project: str) -> TestServiceAccount:
        """A fresh account with a new 2048-bit key pair."""
        slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:20] or "sa"
        return cls(
            name=name,
            email=f"{slug}@{project}.iam.gserviceaccount.com",
            key_id=secrets.token_hex(20),
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )

    def info(self, token_uri: str, project: str) -> dict[str, str]:
        """The service-account key file (what ``gcloud iam service-accounts keys create`` writes)."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.email,
            "client_id": str(int.from_bytes(self.key_id[:8].encode(), "big")),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }


@dataclass
class IssuedToken:
    """An access token the fake's token endpoint gave out."""

    account: str
    """The service account's name (the fake's key)."""
    token: str
    issued_at: float
    """By :attr:`FakeVertex.clock`."""
    expires_at: float
    """By :attr:`FakeVertex.clock`."""


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _google_error(status: int, state: str, message: str) -> web.Response:
    body = {"error": {"code": status, "message": message, "status": state}}
    return web.Response(
        status=status,
        body=json.dumps(body, indent=2).encode(),
        headers={"Content-Type": "application/json; charset=UTF-8", "Server": "scaffolding on HTTPServer2"},
    )


class _Tokens:
    """The token endpoint and the tokens it issued (shared by both publishers)."""

    def __init__(self, clock: Callable[[], float], lifetime: float) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.mint: Callable[[], str] = lambda: "ya29.fake-" + secrets.token_urlsafe(24)
        self.accounts: dict[str, TestServiceAccount] = {}
        self.issued: list[IssuedToken] = []
        self.by_token: dict[str, IssuedToken] = {}
        self.refused: list[str] = []

    def who(self, token: str) -> str:
        """The account of a live token, else :data:`EXPIRED` or :data:`UNKNOWN`."""
        issued = self.by_token.get(token)
        if issued is None:
            return UNKNOWN
        if self.clock() >= issued.expires_at:
            return EXPIRED
        return issued.account

    def check(self, assertion: str, token_uri: str) -> tuple[TestServiceAccount | None, str]:
        """The account an assertion proves, or ``None`` and Google's ``error_description``."""
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url(header_b64))
            claims = json.loads(_b64url(claims_b64))
            signature = _b64url(signature_b64)
        except (ValueError, binascii.Error):
            return None, "Invalid JWT: the assertion is not a JWS compact serialization."
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None, "Invalid JWT: the header and claims must be JSON objects."
        if header.get("alg") != "RS256":
            return None, "Invalid JWT: the signing algorithm must be RS256."
        account = next((a for a in self.accounts.values() if a.email == claims.get("iss")), None)
        if account is None:
            return None, "Invalid grant: account not found"
        if header.get("kid") not in (None, account.key_id):
            return None, "Invalid JWT Signature."
        try:
            account.private_key.public_key().verify(
                signature, f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return None, "Invalid JWT Signature."
        if claims.get("aud") not in (GOOGLE_TOKEN_URI, token_uri):
            return None, "Invalid JWT: Failed audience check."
        scopes = str(claims.get("scope") or "").split()
        if CLOUD_PLATFORM not in scopes:
            return None, "Invalid OAuth scope or ID token audience provided."
        iat, exp, now = claims.get("iat"), claims.get("exp"), self.clock()
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            return None, "Invalid JWT: iat and exp are required."
        if (
            exp - iat > MAX_ASSERTION_LIFETIME
            or iat > now + CLOCK_SKEW
            or exp < now - CLOCK_SKEW
            or exp <= iat
        ):
            return None, (
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim."
            )
        return account, ""

    def issue(self, account: TestServiceAccount) -> IssuedToken:
        """A new access token for ``account``."""
        now = self.clock()
        issued = IssuedToken(
            account=account.name,
            token=self.mint(),
            issued_at=now,
            expires_at=now + self.lifetime,
        )
        self.issued.append(issued)
        self.by_token[issued.token] = issued
        return issued


class _VertexAnthropic(FakeAnthropic):
    """The Anthropic publisher of :class:`FakeVertex` (it serves no port of its own)."""

    def __init__(self, owner: FakeVertex, **kwargs: Any) -> None:
        self._owner = owner
        super().__init__(owner.keys, **kwargs)

    @property
    def responder(self) -> Responder | None:
        """The owner's responder."""
        return self._owner.responder

    @responder.setter
    def responder(self, value: Responder | None) -> None:
        pass  # set on the owner

    def routes(self) -> list[Route]:
        """``:rawPredict`` and ``:streamRawPredict`` of a publisher model."""
        path = _PUBLISHER.format(publisher="anthropic")
        return [Route("POST", path, self._raw_predict, self._validate_vertex)]

    def api_key(self, request: web.Request) -> str | None:
        """The account of the bearer token (see :meth:`FakeVertex.api_key`)."""
        return self._owner.api_key(request)

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """Vertex's 401, in Google's error shape."""
        return self._owner.vertex_auth_error(ctx)

    def model_of(self, ctx: Ctx) -> str | None:
        """The model named in the URL (in the body for ``count-tokens:rawPredict``)."""
        model = ctx.request.match_info.get("target", "").partition(":")[0]
        if model == COUNT_TOKENS:
            return super().model_of(ctx)
        return model or None

    def is_stream(self, ctx: Ctx) -> bool:
        """``:streamRawPredict``."""
        return ctx.request.match_info.get("target", "").partition(":")[2] == "streamRawPredict"

    async def send_stream(
        self,
        ctx: Ctx,
        events: Sequence[bytes],
        *,
        content_type: str,
        terminator: bytes | None = None,
        prefix: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Through the owner's ``send_stream``: one method for a test to wrap, for both publishers."""
        return await self._owner.send_stream(
            ctx, events, content_type=content_type, terminator=terminator, prefix=prefix, headers=headers
        )

    def _validate_version(self, ctx: Ctx) -> list[Problem]:
        return []  # on Vertex the version is the body's anthropic_version (checked below)

    def _validate_vertex(self, ctx: Ctx) -> list[Problem]:
        model, _, method = ctx.request.match_info.get("target", "").partition(":")
        if method not in ("rawPredict", "streamRawPredict"):
            return []  # answered 404 by the handler
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem("Input should be a valid dictionary")]
        problems: list[Problem] = []
        if model == COUNT_TOKENS:  # the model is in the body here
            if method != "rawPredict":
                problems.append(Problem(f"count-tokens is served by :rawPredict only (got {method})"))
            problems.extend(self._check_version(body))
            ctx.body = {k: v for k, v in body.items() if k != "anthropic_version"}
            return problems + self._validate_count(ctx)
        problems.extend(self._check_version(body))
        if "model" in body:
            problems.append(Problem("model: Extra inputs are not permitted (the URL names the model)"))
        if (body.get("stream") is True) != (method == "streamRawPredict"):
            problems.append(Problem(f"stream: must be true with :streamRawPredict only (got {method})"))
        ctx.body = {
            **{k: v for k, v in body.items() if k not in ("anthropic_version", "model")},
            "model": model,
        }
        return problems + self._validate_messages(ctx)

    @staticmethod
    def _check_version(body: dict[str, Any]) -> list[Problem]:
        version = body.get("anthropic_version")
        if version is None:
            return [Problem("anthropic_version: Field required")]
        if version != ANTHROPIC_VERSION and not (isinstance(version, str) and VERSION.match(version)):
            return [Problem(f"anthropic_version: Input should be '{ANTHROPIC_VERSION}'")]
        return []

    async def _raw_predict(self, ctx: Ctx) -> web.StreamResponse:
        method = ctx.request.match_info.get("target", "").partition(":")[2]
        if method not in ("rawPredict", "streamRawPredict"):
            message = f"unknown method {ctx.request.method} {ctx.request.path}"
            ctx.rec.violations.append(message)
            self.violations.append(message)
            return _google_error(404, "NOT_FOUND", f"Method not found: {method or '(none)'}.")
        if ctx.request.match_info.get("target", "").partition(":")[0] == COUNT_TOKENS:
            return await self._count_tokens(ctx)
        return await self._messages(ctx)


class FakeVertex(FakeGemini):
    """Fake Vertex AI (both publishers) and its token endpoint; :attr:`base_url` is the host root.

    :param keys: the test service accounts' names (one RSA key pair each).
    :param project: the project id written in the key files; requests for another project are
        403 ``PERMISSION_DENIED``.
    :param token_lifetime: seconds an access token lives (``expires_in``).
    :param clock: the time the tokens live by (``time.time``; inject one to expire them).

    The Gemini publisher's faults and behaviour are :class:`FakeGemini`'s, the Anthropic
    publisher's :class:`FakeAnthropic`'s (:attr:`anthropic`; ``reject_temperature_with_top_p``
    and ``verify_signatures`` are set there).
    """

    provider: ClassVar[str] = "vertex"
    base_path: ClassVar[str] = ""

    def __init__(
        self,
        keys: Collection[str] = ("test-sa",),
        *,
        chunks: int = 3,
        chunk_delay: float = 0.0,
        strict: bool = True,
        models: Collection[str] | None = None,
        project: str = "test-project",
        token_lifetime: float = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._responder: Responder | None = None
        super().__init__(keys, chunks=chunks, chunk_delay=chunk_delay, strict=strict, models=models)
        self.project = project
        """The project of the test service accounts."""
        self._tokens = _Tokens(clock, token_lifetime)
        for name in self.keys:
            self._tokens.accounts[name] = TestServiceAccount.make(name, project)
        self.anthropic = _VertexAnthropic(self, chunks=chunks, chunk_delay=chunk_delay, strict=strict)
        """The Anthropic publisher (its settings; its requests and queues are this object's)."""
        # one request log, one queue of faults and replies, one set of counters
        self.anthropic.requests = self.requests
        self.anthropic.violations = self.violations
        self.anthropic._faults = self._faults
        self.anthropic._replies = self._replies
        self.anthropic._lock = self._lock
        self.anthropic._counters = self._counters

    # ------------------------------------------------------------------ public API

    @property
    def responder(self) -> Responder | None:
        """Answers generation requests of both publishers that no scripted reply matched."""
        return self._responder

    @responder.setter
    def responder(self, value: Responder | None) -> None:
        self._responder = value

    @property
    def token_uri(self) -> str:
        """The token endpoint's URL (``token_uri`` of the key files)."""
        return self.origin + "/token"

    @property
    def token_lifetime(self) -> float:
        """Seconds a newly issued token lives."""
        return self._tokens.lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: float) -> None:
        self._tokens.lifetime = seconds

    @property
    def clock(self) -> Callable[[], float]:
        """The time tokens live by."""
        return self._tokens.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._tokens.clock = clock

    @property
    def mint(self) -> Callable[[], str]:
        """Makes each new access token (random ``ya29.fake-...`` ones by default; a test may need
        a known one, e.g. to look for it where it must never appear)."""
        return self._tokens.mint

    @mint.setter
    def mint(self, mint: Callable[[], str]) -> None:
        self._tokens.mint = mint

    @property
    def issued(self) -> list[IssuedToken]:
        """Every access token issued, in order."""
        return self._tokens.issued

    def revoke(self, token: str) -> None:
        """Stop taking ``token`` before its expiry (a revoked or rotated credential): it is
        refused from now on with Vertex's 401, like one this server never issued."""
        self._tokens.by_token.pop(token, None)

    @property
    def refused_grants(self) -> list[str]:
        """The ``error_description`` of every refused token request, in order."""
        return self._tokens.refused

    def service_account(self, key: str) -> dict[str, str]:
        """The key file of the test service account ``key`` (started fakes only: it names
        :attr:`token_uri`)."""
        return self._tokens.accounts[key].info(self.token_uri, self.project)

    def service_account_json(self, key: str) -> str:
        """:meth:`service_account` as JSON text (a gateway key ``value``)."""
        return json.dumps(self.service_account(key))

    async def send_stream(
        self,
        ctx: Ctx,
        events: Sequence[bytes],
        *,
        content_type: str,
        terminator: bytes | None = None,
        prefix: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Send a stream of either publisher (with that publisher's headers)."""
        publisher: FakeUpstream = self.anthropic if "/publishers/anthropic/" in ctx.request.path else self
        return await FakeUpstream.send_stream(
            publisher,
            ctx,
            events,
            content_type=content_type,
            terminator=terminator,
            prefix=prefix,
            headers=headers,
        )

    # ------------------------------------------------------------------ routing and auth

    def app(self) -> web.Application:
        """Both publishers' routes, the token endpoint, then a catch-all for unknown paths."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for route in self.routes():
            app.router.add_route(route.method, route.path, self._endpoint(route))
        for route in self.anthropic.routes():
            app.router.add_route(route.method, route.path, self.anthropic._endpoint(route))
        app.router.add_route("POST", "/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    def routes(self) -> list[Route]:
        """``generateContent`` and ``streamGenerateContent`` of a Google publisher model."""
        path = (
            "/{version:v1|v1beta1}/projects/{project}/locations/{location}/publishers/google/models/{target}"
        )
        return [Route("POST", path, self._post, self._validate)]

    def api_key(self, request: web.Request) -> str | None:
        """The name of the account whose live bearer token the request carries; :data:`EXPIRED`
        or :data:`UNKNOWN` for a token that is not live; ``None`` without one."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._tokens.who(token.strip())

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """Vertex's 401 ``UNAUTHENTICATED``; 403 for another project."""
        return self.vertex_auth_error(ctx)

    def vertex_auth_error(self, ctx: Ctx) -> web.Response | None:
        """The 401 of a missing, unknown or expired token, the 403 of a foreign project."""
        key = ctx.rec.api_key
        if key is None:
            return _google_error(401, "UNAUTHENTICATED", _MISSING)
        if key not in self.keys:
            return _google_error(401, "UNAUTHENTICATED", _UNAUTHENTICATED)
        project = ctx.request.match_info.get("project")
        if project is not None and project != self.project:
            return _google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/projects/{project}/locations/"
                f"{ctx.request.match_info.get('location')}' (or it may not exist).",
            )
        return None

    # ------------------------------------------------------------------ the token endpoint

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant, assertion = form.get("grant_type"), form.get("assertion")

        def refuse(error: str, description: str) -> web.Response:
            self._tokens.refused.append(description)
            return web.json_response({"error": error, "error_description": description}, status=400)

        if grant != JWT_BEARER:
            return refuse("unsupported_grant_type", f"Invalid grant_type: {grant!r}")
        if not isinstance(assertion, str) or not assertion:
            return refuse("invalid_request", "Missing required parameter: assertion")
        account, why = self._tokens.check(assertion, self.token_uri)
        if account is None:
            return refuse("invalid_scope" if "scope" in why else "invalid_grant", why)
        issued = self._tokens.issue(account)
        lifetime = self._tokens.lifetime
        expires_in: float = int(lifetime) if float(lifetime).is_integer() else lifetime
        return web.json_response(
            {
                "access_token": issued.token,
                "expires_in": expires_in if math.isfinite(expires_in) else 3599,
                "token_type": "Bearer",
            }
        )
