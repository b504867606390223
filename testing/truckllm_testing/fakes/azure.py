"""A fake Azure OpenAI resource: FakeOpenAI's endpoints at Azure's URLs, with Azure's auth,
``api-version``, errors and content-filter annotations.

Wire details reproduced:

- :attr:`base_url` is the resource endpoint (``https://{resource}.openai.azure.com``).
  Classic API: ``/openai/deployments/{deployment}/chat/completions`` (also ``/completions``,
  ``/embeddings``), the deployment naming the model (the body's ``model`` is optional and
  ignored); the Responses API at ``/openai/responses`` (``model`` in the body, the deployment);
  ``/openai/models``. Every classic URL needs a supported ``api-version`` query parameter.
  The v1 API: ``/openai/v1/...`` exactly as OpenAI's ``/v1/...``, ``api-version`` optional
  (``preview`` or ``latest`` when given).
- Credentials: ``api-key: <key>`` (one of ``keys``) or ``Authorization: Bearer <token>`` (one of
  ``tokens``, Entra ID access tokens; on the v1 API a key too, as OpenAI's own client sends
  it); a missing or wrong one is Azure's 401
  ``{"error": {"code": "401", "message": ...}}``.
- Answers carry Azure's ``prompt_filter_results`` and per-choice ``content_filter_results``;
  a chat stream opens with Azure's chunk of ``prompt_filter_results`` (empty ``id``, ``model``
  and ``object``, no choices).
- An App Service managed identity endpoint (``GET /msi/token``, azure-identity's
  ``ManagedIdentityCredential`` with ``IDENTITY_ENDPOINT`` = :attr:`FakeAzure.identity_endpoint`
  and ``IDENTITY_HEADER`` = :attr:`FakeAzure.identity_header`): it checks the header,
  ``api-version=2019-08-01`` and the Cognitive Services resource, and issues tokens that this
  resource accepts until they expire (:attr:`FakeAzure.token_lifetime` seconds on ``clock``).
- Faults: ``content_filter`` (400, ``code: content_filter`` with
  ``innererror.content_filter_result`` flagging :attr:`FakeAzure.filtered_category`);
  ``rate_limit`` is Azure's 429 ("Please retry after N seconds", ``retry-after`` and
  ``retry-after-ms`` when the fault gives ``retry_after``); an unknown deployment is 404
  ``DeploymentNotFound``. A :class:`Reply` with ``finish="content_filter"`` is a 200 whose
  choices end with ``finish_reason: content_filter``, the category flagged.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, ClassVar

from aiohttp import web

from .base import Ctx, Fault, Problem, Route
from .openai import FakeOpenAI
from .openai_responses_checks import error_code

__all__ = [
    "API_VERSIONS",
    "COGNITIVE_SERVICES",
    "IDENTITY_PATH",
    "V1_API_VERSIONS",
    "FakeAzure",
    "filter_results",
]

API_VERSIONS = frozenset(
    {
        "2024-02-01", "2024-06-01", "2024-10-21", "2024-08-01-preview", "2024-10-01-preview",
        "2024-12-01-preview", "2025-01-01-preview", "2025-03-01-preview", "2025-04-01-preview",
    }
)  # fmt: skip
"""The ``api-version`` values the classic API accepts (the Responses API: ``2025-03-01-preview``
and later previews)."""

V1_API_VERSIONS = frozenset({"preview", "latest"})
"""The ``api-version`` values the v1 API accepts (none given is fine)."""

IDENTITY_PATH = "/msi/token"
"""The path of the fake's managed identity endpoint."""
COGNITIVE_SERVICES = "https://cognitiveservices.azure.com"
"""The resource Azure OpenAI tokens are for."""

_RESPONSES_VERSIONS = frozenset({"2025-03-01-preview", "2025-04-01-preview"})
_DEPLOYMENT_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    *("/v1/audio/transcriptions", "/v1/audio/translations", "/v1/audio/speech", "/v1/images/edits"),
    "/v1/images/generations",
)
_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource."
)
_NO_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key when "
    "making requests to an API."
)
_BAD_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)

Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]
Validator = Callable[[Ctx], list[Problem]]


def filter_results(flagged: str | None) -> dict[str, Any]:
    """Azure's ``content_filter_results``: every category safe but ``flagged`` (severity high)."""
    results: dict[str, Any] = {
        name: {"filtered": name == flagged, "severity": "high" if name == flagged else "safe"}
        for name in _CATEGORIES
    }
    results["jailbreak"] = {"filtered": flagged == "jailbreak", "detected": flagged == "jailbreak"}
    return results


class FakeAzure(FakeOpenAI):
    """Fake Azure OpenAI resource (see the module docstring).

    :param keys: accepted ``api-key`` values (empty: any non-empty key).
    :param tokens: accepted Entra ID bearer tokens (empty: none).
    Other parameters: :class:`FakeOpenAI`'s (``models`` are the deployments).
    """

    provider: ClassVar[str] = "azure"
    base_path: ClassVar[str] = ""
    server_name: ClassVar[str] = "Microsoft-HTTPAPI/2.0"
    error_kinds: ClassVar[dict[str, int]] = {**FakeOpenAI.error_kinds, "content_filter": 400}
    filtered_category: ClassVar[str] = "hate"
    """The category a ``content_filter`` fault or reply flags."""

    def __init__(
        self,
        keys: Collection[str] = ("test-key",),
        *,
        tokens: Collection[str] = (),
        token_lifetime: float = 3600.0,
        clock: Callable[[], float] = time.time,
        **kw: Any,
    ) -> None:
        super().__init__(keys, **kw)
        self.tokens: frozenset[str] = frozenset(tokens)
        """Accepted Entra ID access tokens (besides those the identity endpoint issued)."""
        self.token_lifetime = token_lifetime
        """Seconds a token of the identity endpoint lives."""
        self.clock = clock
        """Unix time, for the expiry of issued tokens."""
        self.identity_header = "fake-identity-" + secrets.token_hex(8)
        """The ``X-IDENTITY-HEADER`` the identity endpoint wants."""
        self.issued: dict[str, float] = {}
        """Tokens the identity endpoint issued, with their expiry (unix time)."""
        self._issue_lock = threading.Lock()

    @property
    def identity_endpoint(self) -> str:
        """``IDENTITY_ENDPOINT`` for azure-identity's App Service managed identity."""
        return self.origin + IDENTITY_PATH

    def token_valid(self, token: str) -> bool:
        """Whether ``token`` is accepted now (configured, or issued and not expired)."""
        if token in self.tokens:
            return True
        with self._issue_lock:
            expiry = self.issued.get(token)
        return expiry is not None and expiry > self.clock()

    # ------------------------------------------------------------------ routing

    def routes(self) -> list[Route]:
        """FakeOpenAI's routes at Azure's classic paths and under ``/openai/v1``."""
        routes: list[Route] = [Route("GET", IDENTITY_PATH, self._identity_token, needs_json=False)]
        for route in super().routes():
            routes.append(self._azure(route, "/openai" + route.path, v1=True))
            if route.path in _DEPLOYMENT_PATHS:
                classic = "/openai/deployments/{deployment}" + route.path.removeprefix("/v1")
            else:
                classic = "/openai" + route.path.removeprefix("/v1")
            routes.append(self._azure(route, classic, v1=False))
        return routes

    def _azure(self, route: Route, path: str, *, v1: bool) -> Route:
        original = route.validate

        def validate(ctx: Ctx) -> list[Problem]:
            problems = self._check_version(ctx, v1)
            deployment = ctx.request.match_info.get("deployment")
            if deployment is not None and isinstance(ctx.body, dict) and "model" not in ctx.body:
                ctx.body = {**ctx.body, "model": deployment}  # the URL names the model
            if original is not None and not problems:
                problems.extend(original(ctx))
            return problems

        return Route(route.method, path, route.handler, validate, route.needs_json, route.reader)

    def _check_version(self, ctx: Ctx, v1: bool) -> list[Problem]:
        version = ctx.request.query.get("api-version")
        if v1:
            if version is not None and version not in V1_API_VERSIONS:
                return [Problem(f"API version not supported: {version} (the v1 API takes preview or latest)")]
            return []
        if version is None:
            return [Problem("Missing required query parameter: api-version", "api-version")]
        if version not in API_VERSIONS:
            return [Problem(f"API version not supported: {version}", "api-version")]
        if "/openai/responses" in ctx.rec.path and version not in _RESPONSES_VERSIONS:
            return [Problem(f"Responses API is not enabled for api-version {version}", "api-version")]
        return []

    def model_of(self, ctx: Ctx) -> str | None:
        """The deployment in the URL, else the body's ``model``."""
        deployment = ctx.request.match_info.get("deployment")
        return deployment if deployment is not None else super().model_of(ctx)

    # ------------------------------------------------------------------ auth

    def api_key(self, request: web.Request) -> str | None:
        """The ``api-key`` header, else the bearer token of ``Authorization``."""
        key = request.headers.get("api-key")
        if key is not None:
            return key.strip() or None
        return super().api_key(request)

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """Azure's 401 for a missing key, an unknown key or an unknown token."""
        if ctx.rec.path == IDENTITY_PATH:
            return self._identity_error(ctx)
        credential = ctx.rec.api_key
        if credential is None:
            return self.error(ctx, 401, "auth_missing", None)
        if "api-key" in ctx.rec.headers:
            if self.keys and credential not in self.keys:
                return self.error(ctx, 401, "auth", None)
        elif not self.token_valid(credential) and not (
            ctx.rec.path.startswith("/openai/v1/") and (not self.keys or credential in self.keys)
        ):  # the v1 API also takes the key as a bearer token (OpenAI's client as it is)
            return self.error(ctx, 401, "auth_token", None)
        return None

    # ------------------------------------------------------------------ the managed identity endpoint

    def _identity_error(self, ctx: Ctx) -> web.Response | None:
        """App Service's answers to a request without the identity header, or not for Azure OpenAI."""
        query = ctx.request.query
        problem = None
        if ctx.request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return web.json_response({"statusCode": 401, "message": "Unauthorized"}, status=401)
        if query.get("api-version") != "2019-08-01":
            problem = "api-version must be 2019-08-01"
        elif query.get("resource", "").rstrip("/") != COGNITIVE_SERVICES:
            problem = f"the resource is not {COGNITIVE_SERVICES}: {query.get('resource')!r}"
        if problem is not None:
            ctx.rec.violations.append(problem)
            self.violations.append(problem)
            return web.json_response({"statusCode": 400, "message": problem}, status=400)
        return None

    async def _identity_token(self, ctx: Ctx) -> web.StreamResponse:
        now = self.clock()
        token = "eyJ0eXAiOiJKV1QifQ.fake-entra." + secrets.token_urlsafe(16)
        expires = now + self.token_lifetime
        with self._issue_lock:
            self.issued[token] = expires
        body = {
            "access_token": token,
            "expires_on": str(int(expires)),
            "resource": ctx.request.query["resource"],
            "token_type": "Bearer",
            "client_id": "00000000-0000-0000-0000-00000000fake",
        }
        return web.json_response(body)

    def unknown_model(self, ctx: Ctx, model: str) -> web.Response:
        """404 ``DeploymentNotFound``."""
        return self.error(ctx, 404, "not_found", None)

    # ------------------------------------------------------------------ errors

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """Azure's own bodies (auth, 429, deployment not found, content filter), else OpenAI's."""
        if kind in ("auth", "auth_missing", "auth_token"):
            text = {"auth": _BAD_KEY, "auth_missing": _NO_KEY, "auth_token": _BAD_TOKEN}[kind]
            return {"error": {"code": "401", "message": message or text}}
        if kind in ("rate_limit", "rate_limit_requests"):
            wait = ctx.fault.retry_after if ctx.fault and ctx.fault.retry_after is not None else 1
            version = ctx.request.query.get("api-version", "v1")
            limit = "request" if kind == "rate_limit_requests" else "token"
            text = (
                f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {version} "
                f"have exceeded {limit} rate limit of your current OpenAI S0 pricing tier. Please retry "
                f"after {math.ceil(wait)} seconds. Please go here: https://aka.ms/oai/quotaincrease if "
                "you would like to further increase the default rate limit."
            )
            return {"error": {"code": "429", "message": message or text}}
        if kind == "not_found" and message is None:
            return {"error": {"code": "DeploymentNotFound", "message": _NO_DEPLOYMENT}}
        if kind == "content_filter":
            return {
                "error": {
                    "message": message or _FILTERED,
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": filter_results(self.filtered_category),
                    },
                }
            }
        return super().error_body(ctx, status, kind, message, param)

    def responses_error_code(self, ctx: Ctx, status: int, kind: str, message: str | None) -> str | None:
        """The code of a Responses 400, on Azure's Responses paths."""
        if status == 400 and kind == "bad_request" and message and "/responses" in ctx.rec.path:
            return error_code(message)
        return None

    def error_headers(self, ctx: Ctx, status: int, kind: str, fault: Fault | None) -> dict[str, str]:
        """OpenAI's, with ``apim-request-id``; ``retry-after`` in whole seconds as Azure sends it."""
        headers = super().error_headers(ctx, status, kind, fault)
        headers["apim-request-id"] = headers.get("x-request-id", "")
        return headers

    def stream_error(self, ctx: Ctx, kind: str | None, index: int) -> bytes:
        """The Responses API's failure events on its paths, else a chat stream's error."""
        if "/responses" in ctx.rec.path:
            return self.responses_stream_error(ctx, kind, index)
        return super().stream_error(ctx, kind, index)

    # ------------------------------------------------------------------ content-filter annotations

    def json_response(self, ctx: Ctx, obj: Any, status: int = 200) -> web.Response:
        """Completions carry ``prompt_filter_results`` and each choice ``content_filter_results``."""
        if isinstance(obj, dict) and obj.get("object") in ("chat.completion", "text_completion"):
            obj = {**obj, "prompt_filter_results": [self._prompt_filter()]}
            obj["choices"] = [
                {
                    **choice,
                    "content_filter_results": filter_results(
                        self.filtered_category if choice.get("finish_reason") == "content_filter" else None
                    ),
                }
                for choice in obj["choices"]
            ]
        return super().json_response(ctx, obj, status)

    @staticmethod
    def _prompt_filter() -> dict[str, Any]:
        return {"prompt_index": 0, "content_filter_results": filter_results(None)}

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
        """A chat stream opens with Azure's ``prompt_filter_results`` chunk."""
        if ctx.rec.path.endswith("/chat/completions"):
            opening = {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": [self._prompt_filter()],
            }
            events = [b"data: " + self.dumps(opening) + b"\n\n", *events]
        return await super().send_stream(
            ctx, events, content_type=content_type, terminator=terminator, prefix=prefix, headers=headers
        )
