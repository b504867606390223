"""AWS wire pieces the Bedrock fake speaks: the binary event-stream encoding and SigV4 checking.

- :func:`event_frame` / :func:`exception_frame`: one ``application/vnd.amazon.eventstream``
  message (prelude, prelude CRC32, headers, payload, message CRC32) as Bedrock sends it.
- :func:`decode_frames`: the messages of a whole event-stream body (for tests).
- :func:`check_sigv4`: recompute a request's Signature Version 4 with botocore's signer and say
  what AWS would answer when it does not match (``None`` when it does).
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

__all__ = [
    "AwsDenial",
    "EventMessage",
    "check_sigv4",
    "decode_frames",
    "event_frame",
    "exception_frame",
    "frame",
]

_STRING = 7
MAX_SKEW = dt.timedelta(minutes=5)
"""How far ``X-Amz-Date`` may be from the fake's clock (AWS allows 5 minutes, then 403)."""
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;.-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string-valued ``headers``."""
    head = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        head += struct.pack("!B", len(raw_name)) + raw_name
        head += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event_frame(event_type: str, payload: Any) -> bytes:
    """An ``:message-type event`` message whose payload is ``payload`` as JSON."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return frame(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, body
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    """An ``:message-type exception`` message (``throttlingException``...) with ``{"message"}``."""
    body = json.dumps({"message": message}).encode()
    return frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        body,
    )


@dataclass
class EventMessage:
    """One decoded event-stream message."""

    headers: dict[str, str]
    payload: bytes

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return json.loads(self.payload)


def decode_frames(data: bytes) -> list[EventMessage]:
    """Every message of a whole event-stream body (string headers only); raises ``ValueError``
    on a bad length or CRC."""
    out: list[EventMessage] = []
    pos = 0
    while pos < len(data):
        total, head_len, crc = struct.unpack_from("!III", data, pos)
        if binascii.crc32(data[pos : pos + 8]) != crc:
            raise ValueError("prelude CRC mismatch")
        message = data[pos : pos + total]
        if len(message) != total or binascii.crc32(message[:-4]) != struct.unpack("!I", message[-4:])[0]:
            raise ValueError("message CRC mismatch")
        headers: dict[str, str] = {}
        i = 12
        while i < 12 + head_len:
            n = message[i]
            name = message[i + 1 : i + 1 + n].decode()
            i += 1 + n
            kind, length = struct.unpack_from("!BH", message, i)
            if kind != _STRING:
                raise ValueError(f"header type {kind}")
            headers[name] = message[i + 3 : i + 3 + length].decode()
            i += 3 + length
        out.append(EventMessage(headers, message[12 + head_len : -4]))
        pos += total
    return out


@dataclass
class AwsDenial:
    """Why a signed request is refused: the exception name and AWS's message (HTTP 403)."""

    error: str
    message: str


class _Verifier(SigV4Auth):
    """botocore's signer, signing exactly the headers the client said it signed."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> Any:
        """The client's ``SignedHeaders``, as received."""
        headers = super().headers_to_sign(request)
        for name in list(headers.keys()):
            if name not in self._signed:
                del headers[name]
        return headers


def check_sigv4(
    *,
    method: str,
    origin: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, tuple[str, str | None]],
    region: str,
    service: str,
    now: dt.datetime,
) -> tuple[str | None, AwsDenial | None]:
    """Check one request's SigV4 ``Authorization`` as AWS does.

    :param headers: the request headers, lower-case names.
    :param secrets: access key id → (secret key, session token or ``None``).
    :returns: the access key id the request was signed with (when known) and ``None`` when the
        signature is good, else the denial AWS would answer.
    """
    auth = headers.get("authorization", "")
    match = _AUTH.match(auth)
    if match is None:
        return None, AwsDenial(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
        )
    akid = match["akid"]
    if akid not in secrets:
        return None, AwsDenial(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    secret, token = secrets[akid]
    if token is not None and headers.get("x-amz-security-token") != token:
        return akid, AwsDenial(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    amz_date = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return akid, AwsDenial(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    if abs(now - when) > MAX_SKEW:
        return akid, AwsDenial(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - MAX_SKEW).strftime('%Y%m%dT%H%M%SZ')} ({now.strftime('%Y%m%dT%H%M%SZ')} - 5 min.)",
        )
    if match["date"] != amz_date[:8]:
        return akid, AwsDenial(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
        )
    if match["region"] != region:
        return akid, AwsDenial(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region. (got {match['region']!r}, expected {region!r})",
        )
    if match["service"] != service:
        return akid, AwsDenial(
            "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'."
        )
    signed = match["signed"].split(";")
    if "host" not in signed:
        return akid, AwsDenial(
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    content_sha = headers.get("x-amz-content-sha256")
    if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
        return akid, AwsDenial(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    path, _, query = raw_path.partition("?")
    request = AWSRequest(
        method=method,
        url=origin + path + (f"?{query}" if query else ""),
        headers={name: headers[name] for name in signed if name in headers},
        data=body,
    )
    request.context["timestamp"] = amz_date
    verifier = _Verifier(Credentials(akid, secret, token), service, region, signed)
    canonical = verifier.canonical_request(request)
    expected = verifier.signature(verifier.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        return akid, AwsDenial(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your "
            "AWS Secret Access Key and signing method. Consult the service documentation for details.",
        )
    return akid, None
