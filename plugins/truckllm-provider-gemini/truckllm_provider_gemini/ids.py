"""The tool-call id scheme: Gemini's call ids and thought signatures, carried in OpenAI's ``id``.

Gemini's Developer API usually sends ``functionCall`` parts without an ``id`` and with a
``thoughtSignature`` that must come back, on the same part, in the next request (Gemini 3 rejects
a history without it). OpenAI clients only keep the tool call's ``id``, so both travel in it::

    <base>[__ts_<signature>]

- ``<base>`` is ``call_<24 letters and digits>`` when Gemini gave no id; ``gid_<id>`` when it gave
  an id made of ``[A-Za-z0-9-]``; ``gidx_<hex of the UTF-8 id>`` for any other id.
- ``<signature>`` is the signature's bytes in URL-safe base64 without padding.

Every character is in ``[A-Za-z0-9_-]`` (what Anthropic accepts in tool ids), and ``<base>`` never
contains ``__ts_``, so the first ``__ts_`` splits the two. Ids the gateway did not make (a history
started on another provider) decode to no Gemini id and no signature.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string

__all__ = ["SIGNATURE_MARK", "CallRef", "decode_call_id", "encode_call_id"]

SIGNATURE_MARK = "__ts_"
_ALPHABET = string.ascii_letters + string.digits
_SAFE_ID = re.compile(r"^[A-Za-z0-9-]{1,128}$")
_HEX = re.compile(r"^(?:[0-9a-f]{2})+$")


class CallRef:
    """What a client-visible tool-call id carries: Gemini's call id and thought signature."""

    __slots__ = ("gemini_id", "signature")

    def __init__(self, gemini_id: str | None, signature: str | None) -> None:
        self.gemini_id = gemini_id
        self.signature = signature  # standard base64, as Gemini sends it

    def __repr__(self) -> str:
        return f"CallRef(gemini_id={self.gemini_id!r}, signature={self.signature!r})"


def _random_base() -> str:
    return "call_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def encode_call_id(gemini_id: str | None, signature: str | None) -> str:
    """The id a client sees for one ``functionCall`` part.

    :param gemini_id: ``functionCall.id``, when Gemini sent one.
    :param signature: the part's ``thoughtSignature`` (standard base64), when it has one.
    """
    if not gemini_id:
        base = _random_base()
    elif _SAFE_ID.match(gemini_id):
        base = "gid_" + gemini_id
    else:
        base = "gidx_" + gemini_id.encode().hex()
    if not signature:
        return base
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return base  # not base64: Gemini would not take it back anyway
    if not raw:
        return base
    return base + SIGNATURE_MARK + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_call_id(call_id: str) -> CallRef:
    """Gemini's id and signature from a client-visible tool-call id (each ``None`` when absent)."""
    base, mark, encoded = call_id.partition(SIGNATURE_MARK)
    signature: str | None = None
    if mark and encoded and re.fullmatch(r"[A-Za-z0-9_-]+", encoded):
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if raw:
            signature = base64.b64encode(raw).decode()
    gemini_id: str | None = None
    if base.startswith("gid_") and _SAFE_ID.match(base[4:]):
        gemini_id = base[4:]
    elif base.startswith("gidx_") and _HEX.match(base[5:]):
        try:
            gemini_id = bytes.fromhex(base[5:]).decode()
        except UnicodeDecodeError:
            gemini_id = None
    return CallRef(gemini_id, signature)
