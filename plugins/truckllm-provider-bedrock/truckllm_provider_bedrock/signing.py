"""Signature Version 4 for one Bedrock call, with botocore's signer (CPU only, no I/O).

The path signed is the path sent: :func:`model_path` encodes a model id as one segment in the
form HTTP clients leave as it is (``:`` kept, ``/`` and everything else outside RFC 3986's
``pchar`` percent-encoded), so the canonical request AWS rebuilds from the bytes it receives is
the one signed here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from truckllm.errors import UnsupportedRequest

from .credentials import AwsCredential

__all__ = ["MODEL_ID", "SERVICE", "model_path", "sign"]

MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,2047}")
"""A Bedrock model id, inference profile id or ARN (letters, digits and ``. _ : / -``)."""

SERVICE = "bedrock"
"""The SigV4 signing name of Bedrock Runtime."""
_SEGMENT_SAFE = ":@!$&'()*+,;="
_TIMESTAMP = "%Y%m%dT%H%M%SZ"


def model_path(model: str, operation: str) -> str:
    """``/model/{modelId}/{operation}`` with the model id (an inference profile id or an ARN
    included) as one percent-encoded path segment.

    :raises UnsupportedRequest: when ``model`` cannot be a Bedrock model id (it never shapes the URL).
    """
    if not MODEL_ID.fullmatch(model):
        shown = repr(model)
        shown = shown if len(shown) <= 80 else shown[:80] + "..."
        raise UnsupportedRequest(
            f"{shown} is not a Bedrock model id (letters, digits and . _ : / - only)", param="model"
        )
    return f"/model/{quote(model, safe=_SEGMENT_SAFE)}/{operation}"


def sign(
    *,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credential: AwsCredential,
    region: str,
    now: Callable[[], dt.datetime] | None = None,
) -> dict[str, str]:
    """The headers to add to a ``POST`` of ``body`` to ``url`` carrying ``headers``:
    ``Authorization``, ``X-Amz-Date``, ``X-Amz-Content-SHA256`` (and ``X-Amz-Security-Token``).

    Every header in ``headers`` and ``host`` are signed; headers added later are not.
    """
    moment = (now or (lambda: dt.datetime.now(dt.UTC)))()
    timestamp = moment.strftime(_TIMESTAMP)
    signer = SigV4Auth(
        Credentials(credential.access_key, credential.secret_key, credential.token), SERVICE, region
    )
    request = AWSRequest(method="POST", url=url, headers=dict(headers), data=body)
    request.context["timestamp"] = timestamp
    added = {"X-Amz-Date": timestamp, "X-Amz-Content-SHA256": signer.payload(request)}
    if credential.token:
        added["X-Amz-Security-Token"] = credential.token
    for name, value in added.items():
        request.headers[name] = value
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signed = signer.signed_headers(signer.headers_to_sign(request))
    added["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credential.access_key}/{signer.credential_scope(request)}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return added
