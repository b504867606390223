"""The request headers built from client input, checked before they go upstream.

One client string reaches Anthropic as a header: an Anthropic client's own ``anthropic-beta``
features, merged with the provider's ``beta`` option. Each feature must be a token of
:data:`FEATURE` (``prompt-caching-2024-07-31``), at most :data:`MAX_FEATURES` of them; anything
else (CR, LF or other control characters, spaces, quotes, a 10 kB value) is refused with
:class:`~truckllm.errors.UnsupportedRequest` naming the header, never sent and never cleaned up
silently. The URL is ``{base_url}/v1/messages`` (or ``.../count_tokens``): no client input is
part of it, and the model only travels in the JSON body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from truckllm.errors import UnsupportedRequest

__all__ = ["FEATURE", "MAX_FEATURES", "beta_header"]

FEATURE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""One ``anthropic-beta`` feature name: letters, digits, ``. _ -``, at most 64 characters."""

MAX_FEATURES = 32
"""The most ``anthropic-beta`` features a client may ask for in one request."""


def beta_header(configured: Iterable[str], client: str | None) -> str:
    """The ``anthropic-beta`` value: the provider's features, then the client's new ones.

    :param configured: the provider's ``beta`` option (from the config, trusted).
    :param client: the client's ``anthropic-beta`` header, comma-separated, or ``None``.
    :raises UnsupportedRequest: when the client's value holds anything but feature names.
    """
    features = list(configured)
    if not client:
        return ",".join(features)
    asked = [feature.strip() for feature in client.split(",")]
    asked = [feature for feature in asked if feature]
    if len(asked) > MAX_FEATURES:
        raise UnsupportedRequest(
            f"the anthropic-beta header names more than {MAX_FEATURES} features", param="anthropic-beta"
        )
    for feature in asked:
        if not FEATURE.fullmatch(feature):
            raise UnsupportedRequest(
                "the anthropic-beta header must be a comma-separated list of feature names "
                "(letters, digits, '.', '_', '-'; at most 64 characters each)",
                param="anthropic-beta",
            )
        if feature not in features:
            features.append(feature)
    return ",".join(features)
