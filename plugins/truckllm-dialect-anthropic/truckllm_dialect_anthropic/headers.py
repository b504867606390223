"""The Anthropic headers a client sends that may travel on: checked at the front door.

``anthropic-beta`` is forwarded to Anthropic deployments (merged with the provider's own
features), and ``anthropic-version`` is required. Both are client input that must never reach an
upstream header unchecked, so a value that is not what Anthropic defines is a 400 naming the
header, in Anthropic's shape, before any upstream is chosen:

- ``anthropic-version``: one token of :data:`VERSION` (``2023-06-01``);
- ``anthropic-beta``: at most :data:`MAX_FEATURES` comma-separated tokens of :data:`FEATURE`.

Control characters, spaces inside a token, quotes, semicolons and over-long values are refused,
never cleaned up silently. (The Anthropic provider checks ``anthropic-beta`` again, the same way,
when it builds the upstream request: it cannot know which front door a request came through.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import invalid

__all__ = ["FEATURE", "MAX_FEATURES", "VERSION", "check_headers"]

VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
"""An ``anthropic-version`` value: letters, digits, ``. _ -``, at most 32 characters."""

FEATURE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""One ``anthropic-beta`` feature: letters, digits, ``. _ -``, at most 64 characters."""

MAX_FEATURES = 32
"""The most ``anthropic-beta`` features one request may name."""


def _beta_problem(value: str) -> str | None:
    features = [feature.strip() for feature in value.split(",")]
    features = [feature for feature in features if feature]
    if len(features) > MAX_FEATURES:
        return f"names more than {MAX_FEATURES} features"
    if not all(FEATURE.fullmatch(feature) for feature in features):
        return "must be a comma-separated list of feature names (letters, digits, '.', '_', '-')"
    return None


def check_headers(headers: Mapping[str, str], require_version: bool) -> None:
    """Refuse a request whose Anthropic headers are missing or not what Anthropic defines.

    :param headers: the client's headers, lower-case names.
    :param require_version: ``anthropic-version`` must be present (Anthropic's own rule).
    :raises truckllm.errors.GatewayError: 400 ``invalid_request_error`` naming the header.
    """
    version = headers.get("anthropic-version")
    if version is None or not version.strip():
        if require_version:
            raise invalid("header is required", "anthropic-version")
    elif not VERSION.fullmatch(version.strip()):
        raise invalid("header is not a version (2023-06-01)", "anthropic-version")
    beta = headers.get("anthropic-beta")
    if beta is not None:
        problem = _beta_problem(beta)
        if problem is not None:
            raise invalid(f"header {problem}", "anthropic-beta")
