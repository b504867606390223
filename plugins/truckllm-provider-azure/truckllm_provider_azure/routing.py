"""Where an Azure OpenAI request goes: the OpenAI form of an Azure provider, and its URLs.

The ``openai`` provider plugin builds every request (bodies, the Responses translation, token
counts, background calls) against an OpenAI provider whose ``base_url`` is the Azure API root:

- ``api: deployments``: ``{endpoint}/openai``; chat completions, completions and embeddings
  then move under ``/deployments/{model}`` (the deployment name, one percent-encoded path
  segment), the Responses API stays at ``{endpoint}/openai/responses``; every URL carries
  ``api-version``.
- ``api: v1``: ``{endpoint}/openai/v1``, exactly OpenAI's paths, ``model`` in the body.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from truckllm_provider_openai import Options as OpenAIOptions

from truckllm.errors import UnsupportedRequest
from truckllm.types import Provider

from .options import Options

__all__ = [
    "DEPLOYMENT_PATHS",
    "MAX_DEPLOYMENT",
    "check_deployment",
    "deployment_url",
    "endpoint_of",
    "openai_provider",
]

MAX_DEPLOYMENT = 256
"""The longest deployment name put in a URL (Azure's own limit is lower)."""

DEPLOYMENT_PATHS = frozenset(
    {"/chat/completions", "/completions", "/embeddings"}
    | {"/audio/transcriptions", "/audio/translations", "/audio/speech", "/images/edits"}
    | {"/images/generations"}
)
"""The paths Azure's classic API serves under ``/openai/deployments/{deployment}``."""

_SUFFIXES = ("/openai/v1", "/openai")
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def endpoint_of(base_url: str) -> str:
    """The resource endpoint (``https://{resource}.openai.azure.com``), also when the configured
    ``base_url`` ends in ``/openai`` or ``/openai/v1``."""
    url = base_url.rstrip("/")
    for suffix in _SUFFIXES:
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def openai_provider(provider: Provider, options: Options) -> Provider:
    """``provider`` as the ``openai`` plugin's provider at the Azure API root."""
    root = endpoint_of(provider.base_url) + ("/openai/v1" if options.api == "v1" else "/openai")
    return Provider(
        name=provider.name,
        type="openai",
        base_url=root,
        headers=provider.headers,
        options=OpenAIOptions(
            auth_header="authorization" if options.auth == "entra" else "api-key",
            query=options.query,
            reasoning_models=options.reasoning_models,
            api=options.chat_api,
            responses_models=options.responses_models,
        ),
    )


def check_deployment(deployment: str) -> str:
    """``deployment`` when it can be one URL path segment (percent-encoded).

    :raises UnsupportedRequest: empty, a dot segment (``.``, ``..``), longer than
        :data:`MAX_DEPLOYMENT`, or with a character Azure deployment names do not have (they are
        letters, digits, ``-``, ``_`` and ``.``; HTTP libraries may decode any other escape).
    """
    why = None
    if deployment in ("", ".", ".."):
        why = "empty or a dot segment"
    elif len(deployment) > MAX_DEPLOYMENT:
        why = f"longer than {MAX_DEPLOYMENT} characters"
    elif not _NAME.fullmatch(deployment):
        why = "use letters, digits, - _ and . only"
    if why is not None:
        shown = repr(deployment[:64]) + ("..." if len(deployment) > 64 else "")
        raise UnsupportedRequest(f"{shown} is not an Azure OpenAI deployment name: {why}", param="model")
    return deployment


def deployment_url(url: str, root: str, deployment: str) -> str:
    """``url`` (built under ``root``) moved under ``/deployments/{deployment}`` when its path is a
    deployment path; other URLs (the Responses API) are returned unchanged.

    :raises UnsupportedRequest: see :func:`check_deployment`.
    """
    if not url.startswith(root):
        return url
    path, sep, query = url[len(root) :].partition("?")
    if path not in DEPLOYMENT_PATHS:
        return url
    return f"{root}/deployments/{quote(check_deployment(deployment), safe='')}{path}{sep}{query}"
