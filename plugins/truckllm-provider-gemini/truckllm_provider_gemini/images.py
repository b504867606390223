"""OpenAI image generations (``POST /v1/images/generations``) on Gemini image models and Imagen.

Two upstream APIs, picked by the deployment's model:

- **Imagen** (``imagen-3.0-*``, ``imagen-4.0-*``): ``models/{model}:predict`` with
  ``{"instances": [{"prompt"}], "parameters": {"sampleCount": n, "aspectRatio", "includeRaiReason":
  true, "outputOptions"?}}``, answered with ``predictions[]`` of ``bytesBase64Encoded`` (and
  ``raiFilteredReason`` for an image the safety filter removed). Usage: the images delivered.
- **Gemini image models** (any other name, ``gemini-2.5-flash-image``...): ``generateContent`` with
  the prompt as one user text part and ``generationConfig: {"responseModalities": ["IMAGE"],
  "imageConfig": {"aspectRatio"}}``, answered with ``inlineData`` parts. Usage: the answer's
  ``usageMetadata`` tokens (an image is about 1,290 output tokens), and the images.

The answer is OpenAI's images shape: ``created``, ``data: [{"b64_json", "revised_prompt"?}]``
(Imagen's enhanced prompt), ``usage`` when tokens were reported. What cannot be honoured is a
400 naming the field (:class:`~truckllm.errors.UnsupportedRequest`: another provider of the alias
may still serve it): ``stream``, ``response_format: url`` (neither API returns URLs), ``n`` over
the model's maximum (:data:`MAX_IMAGEN_IMAGES`, :data:`MAX_GEMINI_IMAGES`), ``background:
transparent``, an ``output_format`` the API cannot produce, ``output_compression`` without
``output_format: jpeg`` on Imagen. ``size`` picks the nearest supported aspect ratio
(:func:`aspect_ratio`); ``quality``, ``style``, ``moderation`` and ``user`` are not sent.

A 2xx answer is trusted for nothing: no image, an image that is not valid base64, more images
than asked for, a token count that is not an integer in ``[0, MAX_IMAGE_TOKENS]`` are a 502
``bad_response``; a prompt or images blocked by the safety filters are a 400
``content_policy_violation`` naming the reason.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from typing import Any

import msgspec
from msgspec import Struct

from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_wire import upstream_error
from truckllm.types import ChatRequest, Provider, ProviderResult, UpstreamError, UpstreamRequest, Usage

from .errors import bad_response, status_error
from .options import options_of
from .urls import method_url, split_model

__all__ = [
    "ENDPOINT",
    "GEMINI_RATIOS",
    "IMAGEN_RATIOS",
    "MAX_GEMINI_IMAGES",
    "MAX_IMAGEN_IMAGES",
    "MAX_IMAGE_TOKENS",
    "aspect_ratio",
    "build_image_request",
    "image_usage",
    "is_imagen",
    "read_images",
]

ENDPOINT = "images.generations"
"""The kernel's endpoint this module serves."""
IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
"""The aspect ratios Imagen takes (``parameters.aspectRatio``)."""
GEMINI_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
"""The aspect ratios Gemini image models take (``generationConfig.imageConfig.aspectRatio``)."""
MAX_IMAGEN_IMAGES = 4
"""Imagen's most images per call (``sampleCount``)."""
MAX_GEMINI_IMAGES = 1
"""Images per call of a Gemini image model (one answer; ``candidateCount`` is not served)."""
MAX_IMAGE_TOKENS = 1_000_000
"""The largest token count believed of one image answer (a prompt of 32,000 characters and a few
images are far below it): a count above it is a broken or hostile answer, not a charge."""
MAX_ANSWERED_IMAGES = 10
"""The most images a Gemini image answer may carry (it may interleave several)."""

_BLOCKING = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "JAILBREAK",
        "MODEL_ARMOR",
    }
)
"""Finish and block reasons that mean the safety filters refused (the client's 400)."""
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


# --- the client's request (validated by the kernel already; only what is read here) --------------


class _Ask(Struct, kw_only=True):
    prompt: str
    n: int | None = None
    size: str | None = None
    response_format: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    stream: bool | None = None


_ASK = msgspec.json.Decoder(_Ask)


def is_imagen(model: str) -> bool:
    """Whether ``model`` is an Imagen model (served by ``:predict``), not a Gemini image model."""
    return split_model(model)[1].startswith("imagen-")


def aspect_ratio(size: str | None, ratios: tuple[str, ...]) -> str | None:
    """The ratio of ``ratios`` nearest to ``size`` (``<width>x<height>``), measured on a log scale
    (``1024x1536`` is as far from ``3:4`` as ``1536x1024`` from ``4:3``); the first listed on a tie;
    ``None`` for ``auto`` or no size (the model's default, ``1:1``).

    :raises UnsupportedRequest: a size with a zero side.
    """
    if size is None or size == "auto":
        return None
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) == 0 or int(height) == 0:
        raise UnsupportedRequest(f"Invalid size {size!r}: expected <width>x<height>", param="size")
    wanted = math.log(int(width) / int(height))

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(ratios, key=distance)


def _ask(request: ChatRequest) -> _Ask:
    try:
        return _ASK.decode(request.body)
    except _UNREADABLE:
        raise UnsupportedRequest("the image request cannot be read", param="prompt") from None


def _refusals(ask: _Ask, imagen: bool) -> None:
    """Refuse what neither API can honour (see the module docstring)."""
    name = "Imagen" if imagen else "Gemini image models"
    if ask.stream:
        raise UnsupportedRequest(f"{name} do not stream images; send 'stream': false", param="stream")
    if ask.response_format == "url":
        raise UnsupportedRequest(
            f"{name} return images as data, not URLs; use 'response_format': 'b64_json'",
            param="response_format",
        )
    most = MAX_IMAGEN_IMAGES if imagen else MAX_GEMINI_IMAGES
    if ask.n is not None and ask.n > most:
        raise UnsupportedRequest(f"{name} make at most {most} image(s) per request; got n={ask.n}", param="n")
    if ask.background == "transparent":
        raise UnsupportedRequest(f"{name} cannot make transparent backgrounds", param="background")
    formats = ("png", "jpeg") if imagen else ("png",)
    if ask.output_format is not None and ask.output_format not in formats:
        raise UnsupportedRequest(
            f"{name} answer {' or '.join(formats)}, not {ask.output_format!r}", param="output_format"
        )
    if ask.output_compression is not None and not (imagen and ask.output_format == "jpeg"):
        raise UnsupportedRequest(
            "output_compression applies to 'output_format': 'jpeg' on Imagen only", param="output_compression"
        )


def _imagen_body(ask: _Ask) -> dict[str, Any]:
    parameters: dict[str, Any] = {"sampleCount": ask.n or 1, "includeRaiReason": True}
    ratio = aspect_ratio(ask.size, IMAGEN_RATIOS)
    if ratio is not None:
        parameters["aspectRatio"] = ratio
    if ask.output_format is not None:
        output: dict[str, Any] = {"mimeType": f"image/{ask.output_format}"}
        if ask.output_compression is not None:
            output["compressionQuality"] = ask.output_compression
        parameters["outputOptions"] = output
    return {"instances": [{"prompt": ask.prompt}], "parameters": parameters}


def _gemini_body(ask: _Ask, provider: Provider) -> dict[str, Any]:
    config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
    ratio = aspect_ratio(ask.size, GEMINI_RATIOS)
    if ratio is not None:
        config["imageConfig"] = {"aspectRatio": ratio}
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": ask.prompt}]}],
        "generationConfig": config,
    }
    options = options_of(provider.options)
    if options.safety_settings:
        body["safetySettings"] = list(options.safety_settings)
    return body


def build_image_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest:
    """The upstream call of an image generation: ``:predict`` for Imagen, ``:generateContent``
    for a Gemini image model.

    :raises UnsupportedRequest: what cannot be honoured, naming the field; a model that cannot be
        a Gemini model name.
    """
    imagen = is_imagen(model)
    ask = _ask(request)
    _refusals(ask, imagen)
    body = _imagen_body(ask) if imagen else _gemini_body(ask, provider)
    headers = {"content-type": "application/json", "accept": "application/json"}
    if api_key:
        headers["x-goog-api-key"] = api_key
    headers.update(provider.headers)
    url = method_url(provider.base_url, model, "predict" if imagen else "generateContent")
    return UpstreamRequest(url=url, headers=headers, body=msgspec.json.encode(body))


# --- the answers ---------------------------------------------------------------------------------


class _Prediction(Struct, rename="camel"):
    bytes_base64_encoded: Any = None
    mime_type: Any = None
    rai_filtered_reason: Any = None
    prompt: Any = None


class _Blob(Struct, rename="camel"):
    mime_type: Any = None
    data: Any = None


class _Part(Struct, rename="camel"):
    inline_data: _Blob | None = None


class _Content(Struct):
    parts: list[_Part] | None = None


class _Candidate(Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: Any = None


class _Feedback(Struct, rename="camel"):
    block_reason: Any = None


class _Counts(Struct, rename="camel"):
    prompt_token_count: Any = None
    candidates_token_count: Any = None
    thoughts_token_count: Any = None
    cached_content_token_count: Any = None
    tool_use_prompt_token_count: Any = None
    total_token_count: Any = None


class _Answer(Struct, rename="camel"):
    """Either API's answer: ``predictions`` (Imagen) or ``candidates`` (Gemini)."""

    predictions: list[_Prediction] | None = None
    candidates: list[_Candidate] | None = None
    prompt_feedback: _Feedback | None = None
    usage_metadata: _Counts | None = None
    error: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)


class _Image(Struct):
    b64: str
    revised_prompt: str | None = None


class _Read(Struct):
    """A checked answer: its images, and the usage they are charged by."""

    images: list[_Image]
    usage: Usage
    tokens: bool


def _refused(reason: str) -> UpstreamError:
    return upstream_error(
        400,
        f"The image request was refused by the provider's safety filters: {reason}",
        kind="bad_request",
        code="content_policy_violation",
        param="prompt",
    )


def _reason(value: Any) -> str:
    """An enum reason as sent, or a placeholder (free text never passes for one)."""
    return value if isinstance(value, str) and _REASON.fullmatch(value) else "an unreadable reason"


def _b64(value: Any) -> str | None:
    """``value`` when it is non-empty standard base64, else ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return value


def _count(value: Any, name: str) -> int | UpstreamError:
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= MAX_IMAGE_TOKENS:
        return bad_response(f"an image answer whose {name} is not a token count: {str(value)[:40]}")
    return value


def _tokens(meta: _Counts) -> Usage | UpstreamError:
    counts: dict[str, int] = {}
    for name in (
        "prompt_token_count",
        "candidates_token_count",
        "thoughts_token_count",
        "cached_content_token_count",
        "tool_use_prompt_token_count",
        "total_token_count",
    ):
        value = _count(getattr(meta, name), name)
        if isinstance(value, UpstreamError):
            return value
        counts[name] = value
    prompt = counts["prompt_token_count"] + counts["tool_use_prompt_token_count"]
    completion = counts["candidates_token_count"] + counts["thoughts_token_count"]
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=max(counts["total_token_count"], prompt + completion),
        cached_tokens=counts["cached_content_token_count"],
        reasoning_tokens=counts["thoughts_token_count"],
    )


def _imagen(predictions: list[_Prediction], asked: int) -> _Read | UpstreamError:
    images: list[_Image] = []
    reasons: list[str] = []
    for prediction in predictions:
        if prediction.bytes_base64_encoded is not None:
            data = _b64(prediction.bytes_base64_encoded)
            if data is None:
                return bad_response("an Imagen image that is not base64")
            prompt = prediction.prompt if isinstance(prediction.prompt, str) and prediction.prompt else None
            images.append(_Image(data, prompt))
        elif isinstance(prediction.rai_filtered_reason, str) and prediction.rai_filtered_reason:
            reasons.append(prediction.rai_filtered_reason)
    if not images:
        return _refused(reasons[0]) if reasons else bad_response("no image")
    if len(images) > asked:
        return bad_response(f"{len(images)} images for {asked} asked")
    return _Read(images=images, usage=Usage(images=len(images), requests=1), tokens=False)


def _gemini(answer: _Answer) -> _Read | UpstreamError:
    feedback = answer.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return _refused(_reason(feedback.block_reason))
    images: list[_Image] = []
    finishes: list[str] = []
    for candidate in answer.candidates or []:
        finishes.append(_reason(candidate.finish_reason) if candidate.finish_reason is not None else "")
        parts = candidate.content.parts if candidate.content is not None else None
        for part in parts or []:
            blob = part.inline_data
            if blob is None or not isinstance(blob.mime_type, str) or not blob.mime_type.startswith("image/"):
                continue
            data = _b64(blob.data)
            if data is None:
                return bad_response("an image that is not base64")
            images.append(_Image(data))
    if not images:
        blocked = [reason for reason in finishes if reason in _BLOCKING]
        if blocked:
            return _refused(blocked[0])
        shown = next((reason for reason in finishes if reason), "")
        return bad_response("no image" + (f" (finishReason {shown})" if shown else ""))
    if len(images) > MAX_ANSWERED_IMAGES:
        return bad_response(f"{len(images)} images in one answer")
    if answer.usage_metadata is None:
        return _Read(images=images, usage=Usage(images=len(images), requests=1), tokens=False)
    usage = _tokens(answer.usage_metadata)
    if isinstance(usage, UpstreamError):
        return usage
    usage = msgspec.structs.replace(usage, images=len(images), requests=1)
    return _Read(images=images, usage=usage, tokens=True)


def _asked(request: ChatRequest) -> int:
    try:
        return _ASK.decode(request.body).n or 1
    except _UNREADABLE:
        return 1


def _read(request: ChatRequest, body: bytes) -> _Read | UpstreamError:
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return bad_response("a body that is not an image answer")
    if answer.error is not None:
        error = answer.error if isinstance(answer.error, dict) else {"message": str(answer.error)}
        return status_error(200, error, "Gemini reported an error")
    if answer.predictions is not None:
        return _imagen(answer.predictions, _asked(request))
    return _gemini(answer)


def _openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"text_tokens": usage.prompt_tokens, "image_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def read_images(request: ChatRequest, body: bytes) -> ProviderResult:
    """A 2xx image answer of either API as OpenAI's images answer, or the failure it is."""
    read = _read(request, body)
    if isinstance(read, UpstreamError):
        return ProviderResult(error=read)
    data: list[dict[str, Any]] = []
    for image in read.images:
        item: dict[str, Any] = {"b64_json": image.b64}
        if image.revised_prompt is not None:
            item["revised_prompt"] = image.revised_prompt
        data.append(item)
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if read.tokens:
        answer["usage"] = _openai_usage(read.usage)
    return ProviderResult(body=msgspec.json.encode(answer))


def image_usage(request: ChatRequest, body: bytes) -> Usage | None:
    """The usage of a 2xx image answer (checked by :func:`read_images` first): Imagen's images;
    a Gemini image model's tokens and images."""
    read = _read(request, body)
    return None if isinstance(read, UpstreamError) else read.usage
