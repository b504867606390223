"""Work not counted in tokens: images, seconds of audio, characters, search units, calls.

A :class:`~truckllm.types.Price` may charge, besides tokens, per unit of work; a
:class:`~truckllm.types.Usage` counts those units. This module says, for one request:

- :func:`image_tier`: the size and quality its images were asked at (``"1024x1536/high"``), which
  picks the rate of ``Price.images``;
- :func:`unit_cost`: what its units cost at a price (added to its tokens' cost);
- :func:`request_units`: the most units it may use, known before it is sent (what a budget
  reserves): ``n`` images, the characters of a speech ``input``, the seconds of an upload at
  :data:`BYTES_PER_AUDIO_SECOND`, a rerank's search units, one call;
- :func:`covers`: whether a price charges something for the endpoint's work at all (a gateway key
  with a budget is not served by a deployment whose price does not).

Rules (the README's "Prices beyond tokens"):

- Token rates and unit rates add up, with one exception: per-image rates charge only the images
  of a call that reported no tokens (gpt-image-1 reports tokens and is charged by them, DALL-E
  and Imagen by the image).
- An image's rate: ``images["<size>/<quality>"]`` (or ``images["<size>"]``, ``images["*/<quality>"]``
  when the request named only one of them); else the dearer of ``images["<size>"]`` and
  ``images["*/<quality>"]``; else, for a request naming no size nor quality, ``image``; else the
  dearest of ``image`` and the table (a tier the table does not list is never charged less than
  what it could be).
- ``request`` charges every call (``Usage.requests``, at least 1 for a call that has a usage).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from truckllm.types import ChatRequest, Price, Usage

__all__ = [
    "AUDIO_ENDPOINTS",
    "BYTES_PER_AUDIO_SECOND",
    "IMAGE_ENDPOINTS",
    "RERANK_CHUNK_BYTES",
    "RERANK_DOCUMENTS_PER_UNIT",
    "covers",
    "dearest_image_rate",
    "image_rate",
    "image_tier",
    "request_units",
    "unit_cost",
    "worst_unit_cost",
]

IMAGE_ENDPOINTS = frozenset({"images.generations", "images.edits"})
AUDIO_ENDPOINTS = frozenset({"audio.transcriptions", "audio.translations"})
BYTES_PER_AUDIO_SECOND = 1000
"""The bytes of an upload counted as one second of audio when a budget reserves for a
transcription before its length is known: 8 kbit/s, below every common speech encoding (MP3 at
32 kbit/s and above, Opus voice at 12 to 24 kbit/s, WAV at 256 kbit/s), so that the reservation
covers the real length; it is settled to the real seconds afterwards."""
RERANK_DOCUMENTS_PER_UNIT = 100
"""Documents one rerank search unit covers (Cohere's definition)."""
RERANK_CHUNK_BYTES = 2000
"""A document longer than this (about 500 tokens) counts as one document per started chunk."""


def _text_field(fields: Mapping[str, msgspec.Raw], name: str) -> str:
    raw = fields.get(name)
    if raw is None:
        return ""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return ""
    return value if isinstance(value, str) else ""


def _form(request: ChatRequest) -> Mapping[str, str] | None:
    upload = getattr(request, "upload", None)
    fields = getattr(upload, "fields", None)
    return fields if isinstance(fields, Mapping) else None


def _json_fields(request: ChatRequest) -> Mapping[str, msgspec.Raw]:
    if not request.body:
        return {}
    try:
        return request.fields()
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}


def image_tier(request: ChatRequest | None) -> str:
    """``"<size>/<quality>"``, ``"<size>"``, ``"*/<quality>"`` or ``""`` for an images request's
    ``size`` and ``quality`` (``auto`` and absent ones left out); ``""`` for any other request."""
    if request is None or request.endpoint not in IMAGE_ENDPOINTS:
        return ""
    form = _form(request)
    if form is not None:
        size, quality = form.get("size", ""), form.get("quality", "")
    else:
        fields = _json_fields(request)
        size, quality = _text_field(fields, "size"), _text_field(fields, "quality")
    size = "" if size == "auto" else size
    quality = "" if quality == "auto" else quality
    if size and quality:
        return f"{size}/{quality}"
    if quality:
        return f"*/{quality}"
    return size


def dearest_image_rate(price: Price) -> float | None:
    """The highest per-image rate of ``price`` (``None``: it charges nothing per image)."""
    rates = [rate for rate in (price.images or {}).values()]
    if price.image is not None:
        rates.append(price.image)
    return max(rates) if rates else None


def image_rate(price: Price, tier: str) -> float | None:
    """USD per image at ``tier`` (see the module's rules); ``None``: nothing per image."""
    table = price.images or {}
    if tier in table:
        return table[tier]
    size, _, quality = tier.partition("/")
    near = [table[name] for name in (size, f"*/{quality}") if quality and name in table]
    if near:  # a size or a quality alone: the dearer of the two, never less than either
        return max(near)
    if price.image is not None and (not tier or not table):
        return price.image  # the default size and quality (or no table to look in)
    return dearest_image_rate(price)  # a tier the table does not list: never less than it may be


def _request_rate(price: Price) -> float:
    return price.request if price.request is not None else 0.0


def unit_cost(price: Price, usage: Usage, tier: str = "") -> float:
    """USD for the units of ``usage`` at ``price`` (its tokens are priced elsewhere)."""
    total = _request_rate(price) * max(usage.requests, 1) if price.request else 0.0
    if usage.images and not (usage.prompt_tokens or usage.completion_tokens):
        total += usage.images * (image_rate(price, tier) or 0.0)
    if usage.audio_seconds and price.audio_second is not None:
        total += usage.audio_seconds * price.audio_second
    if usage.characters and price.character is not None:
        total += usage.characters * price.character
    if usage.search_units and price.search_unit is not None:
        total += usage.search_units * price.search_unit
    return total


def worst_unit_cost(price: Price, units: Usage | None, tier: str = "") -> float:
    """The most ``units`` (from :func:`request_units`) may cost at ``price``: every image at its
    tier's rate when the tier is named in ``images`` exactly, else at the dearest image rate."""
    if units is None:
        return 0.0
    total = _request_rate(price) * max(units.requests, 1)
    if units.images:
        exact = (price.images or {}).get(tier) if tier else None
        rate = exact if exact is not None else dearest_image_rate(price)
        total += units.images * (rate or 0.0)
    if units.audio_seconds and price.audio_second is not None:
        total += units.audio_seconds * price.audio_second
    if units.characters and price.character is not None:
        total += units.characters * price.character
    if units.search_units and price.search_unit is not None:
        total += units.search_units * price.search_unit
    return total


def _int_field(fields: Mapping[str, msgspec.Raw], name: str, default: int) -> int:
    raw = fields.get(name)
    if raw is None:
        return default
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return default
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def _rerank_units(fields: Mapping[str, msgspec.Raw]) -> int:
    raw = fields.get("documents")
    if raw is None:
        return 1
    try:
        documents = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return 1
    if not isinstance(documents, list):
        return 1
    counted = 0
    for document in documents:
        text = document.get("text", "") if isinstance(document, dict) else document
        size = len(text.encode()) if isinstance(text, str) else len(msgspec.json.encode(document))
        counted += max(1, math.ceil(size / RERANK_CHUNK_BYTES))
    return max(1, math.ceil(counted / RERANK_DOCUMENTS_PER_UNIT))


def request_units(request: ChatRequest) -> Usage | None:
    """The most units ``request`` may use, known before it is sent (``None``: it is charged by
    tokens alone): ``n`` images (default 1), the characters of a speech ``input``, its uploaded
    files' bytes / :data:`BYTES_PER_AUDIO_SECOND` seconds of audio, a rerank's search units
    (documents per started :data:`RERANK_CHUNK_BYTES`, per :data:`RERANK_DOCUMENTS_PER_UNIT`),
    and one call."""
    endpoint = request.endpoint
    if endpoint in IMAGE_ENDPOINTS:
        form = _form(request)
        if form is not None:
            text = form.get("n", "1")
            n = int(text) if text.isdigit() and int(text) > 0 else 1
        else:
            n = _int_field(_json_fields(request), "n", 1)
        return Usage(images=n, requests=1)
    if endpoint == "audio.speech":
        return Usage(characters=len(_text_field(_json_fields(request), "input")), requests=1)
    if endpoint in AUDIO_ENDPOINTS:
        files = getattr(getattr(request, "upload", None), "files", ())
        size = sum(getattr(f, "size", 0) for f in files)
        return Usage(audio_seconds=math.ceil(size / BYTES_PER_AUDIO_SECOND), requests=1)
    if endpoint == "rerank":
        return Usage(search_units=_rerank_units(_json_fields(request)), requests=1)
    if endpoint == "moderations":
        return Usage(requests=1)
    return None


def _tokens(price: Price) -> bool:
    return price.input > 0 or price.output > 0


def covers(price: Price | None, endpoint: str) -> bool:
    """Whether ``price`` charges anything for ``endpoint``'s work (a gateway key with a budget
    is served only by deployments whose price does): for images a per-image rate or token rates
    (gpt-image-1 reports tokens); for transcriptions per second or tokens; for speech per
    character (its answer reports no usage); for rerank per search unit or tokens; for moderations
    per call. Any price covers the token endpoints, and ``request`` (even 0: free) covers them all."""
    if price is None:
        return False
    if price.request is not None:
        return True
    if endpoint in IMAGE_ENDPOINTS:
        return dearest_image_rate(price) is not None or _tokens(price)
    if endpoint in AUDIO_ENDPOINTS:
        return price.audio_second is not None or _tokens(price)
    if endpoint == "audio.speech":
        return price.character is not None
    if endpoint == "rerank":
        return price.search_unit is not None or _tokens(price)
    return endpoint != "moderations"
