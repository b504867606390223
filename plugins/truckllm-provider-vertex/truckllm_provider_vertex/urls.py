"""Vertex AI URLs: the endpoint host of a location and the publisher model paths.

``project`` and ``location`` come from the config and are checked by the options' patterns; the
model may come from the client (``provider/model`` addressing), so it is checked to be one name
(letters, digits and ``. _ @ + ~ -``, as ``claude-sonnet-4@20250514``) and percent-encoded as one
path segment: it can never reach another path or add a query parameter.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from truckllm.errors import UnsupportedRequest

__all__ = [
    "MAX_NAME",
    "NAME_PATTERN",
    "check_model",
    "default_root",
    "model_url",
    "publisher_url",
    "root_of",
]

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+~-]*")
"""A publisher model name: letters, digits and ``. _ @ + ~ -``, not starting with a dot."""

MAX_NAME = 256
"""The longest model name accepted."""


def default_root(location: str) -> str:
    """``https://aiplatform.googleapis.com`` for ``global``, else ``https://{location}-aiplatform...``."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def root_of(base_url: str, location: str) -> str:
    """The configured ``base_url`` (a proxy, a private endpoint, a test fake), else the location's host."""
    return base_url or default_root(location)


def publisher_url(root: str, project: str, location: str, publisher: str) -> str:
    """``{root}/v1/projects/{project}/locations/{location}/publishers/{publisher}``."""
    return f"{root}/v1/projects/{project}/locations/{location}/publishers/{publisher}"


def check_model(model: str) -> str:
    """``model`` when it is one publisher model name.

    :raises UnsupportedRequest: naming ``model`` otherwise (the kernel answers 400).
    """
    if not model or len(model) > MAX_NAME or not NAME_PATTERN.fullmatch(model):
        shown = repr(model)
        if len(shown) > 80:
            shown = shown[:80] + "..."
        raise UnsupportedRequest(
            f"{shown} is not a Vertex AI publisher model name: use letters, digits and . _ @ + ~ - only, "
            f"at most {MAX_NAME} characters",
            param="model",
        )
    return model


def model_url(publisher_root: str, model: str, method: str) -> str:
    """``{publisher_root}/models/{model}:{method}``, the model checked and encoded as one segment
    (``@`` kept as is: ``claude-sonnet-4@20250514``)."""
    return f"{publisher_root}/models/{quote(check_model(model), safe='@')}:{method}"
