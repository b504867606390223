"""OpenAI's image generations and moderations for the fake OpenAI server (:class:`ImagesAPI`,
mixed into ``FakeOpenAI``; Azure's fake serves the same bodies under its deployment paths).

Endpoints: ``POST /v1/images/generations`` and ``POST /v1/moderations``.

Wire details reproduced and checked (each problem a violation, answered with OpenAI's 400):

- images: only the API's members (``Unknown parameter``); ``prompt`` a non-empty string within
  the model's limit (1,000 characters for ``dall-e-2``, 4,000 for ``dall-e-3``, 32,000 for GPT
  image models); ``model`` (default ``dall-e-2``); ``n`` an integer 1 to 10 (``dall-e-3``: 1);
  ``size`` and ``quality`` among the model's values; ``response_format`` (``url`` /
  ``b64_json``) and ``style`` only for DALL-E (``style``: ``dall-e-3``); ``background``,
  ``moderation``, ``output_format``, ``output_compression``, ``stream``, ``partial_images`` only
  for GPT image models;
- moderations: only ``input`` and ``model``; ``input`` a non-empty string, a non-empty list of
  strings, or a list of ``text`` / ``image_url`` parts (images only for ``omni-moderation-*``).

Answers are deterministic: GPT image models answer ``b64_json`` with token usage (OpenAI's output
tokens per size and quality, :data:`OUTPUT_TOKENS`), DALL-E answers ``url`` (or ``b64_json``) and
no usage; a stream sends ``partial_images`` ``image_generation.partial_image`` events then
``image_generation.completed`` with the usage. A moderation flags an input containing
:data:`FLAG_WORD`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from aiohttp import web

from .base import Ctx, FakeUpstream, Problem, Route, count_words, is_int, rand_id

__all__ = ["FLAG_WORD", "GPT_IMAGE_MODELS", "OUTPUT_TOKENS", "ImagesAPI", "fake_image"]

GPT_IMAGE_MODELS = ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5")
IMAGE_FIELDS = frozenset(
    {
        "prompt", "model", "n", "quality", "response_format", "size", "style", "user", "background",
        "moderation", "output_compression", "output_format", "partial_images", "stream",
    }
)  # fmt: skip
"""Top-level members of ``CreateImageRequest``."""
_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt": ("auto", "1024x1024", "1536x1024", "1024x1536"),
}
_QUALITIES = {
    "dall-e-2": ("standard",),
    "dall-e-3": ("standard", "hd"),
    "gpt": ("auto", "low", "medium", "high"),
}
_PROMPT_LIMITS = {"dall-e-2": 1000, "dall-e-3": 4000, "gpt": 32000}
_GPT_ONLY = ("background", "moderation", "output_format", "output_compression", "stream", "partial_images")
OUTPUT_TOKENS = {
    ("1024x1024", "low"): 272,
    ("1024x1024", "medium"): 1056,
    ("1024x1024", "high"): 4160,
    ("1024x1536", "low"): 408,
    ("1024x1536", "medium"): 1584,
    ("1024x1536", "high"): 6240,
    ("1536x1024", "low"): 400,
    ("1536x1024", "medium"): 1568,
    ("1536x1024", "high"): 6208,
}
"""Output tokens of one GPT image per (size, quality) (OpenAI's image generation guide)."""
MODERATION_MODELS = (
    "omni-moderation-latest",
    "omni-moderation-2024-09-26",
    "text-moderation-latest",
    "text-moderation-stable",
)
FLAG_WORD = "kill"
"""A moderation input containing this word is flagged (``violence``)."""
_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)  # fmt: skip


def fake_image(prompt: str, index: int = 0) -> bytes:
    """The fake's image for ``prompt``: deterministic bytes with a PNG signature."""
    return b"\x89PNG\r\n\x1a\n" + hashlib.sha256(f"{index}:{prompt}".encode()).digest()


def _family(model: str) -> str:
    if model.startswith("gpt-image") or model.startswith("chatgpt-image"):
        return "gpt"
    return "dall-e-3" if model.startswith("dall-e-3") else "dall-e-2"


def _choice(problems: list[Problem], body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    value = body.get(name)
    if value is not None and value not in allowed:
        listed = ", ".join(f"'{v}'" for v in allowed)
        problems.append(Problem(f"Invalid value: '{value}'. Supported values are: {listed}.", name))


class ImagesAPI(FakeUpstream):
    """Image generations and moderations (see the module docstring); a mixin of ``FakeOpenAI``."""

    def images_routes(self, prefix: str = "/v1") -> list[Route]:
        """The two routes under ``prefix``."""
        return [
            Route("POST", f"{prefix}/images/generations", self._images, self._validate_images),
            Route("POST", f"{prefix}/moderations", self._moderations, self._validate_moderations),
        ]

    def image_model(self, ctx: Ctx) -> str:
        """The model an images request names (``dall-e-2`` when it names none)."""
        body = ctx.body if isinstance(ctx.body, dict) else {}
        model = body.get("model")
        return model if isinstance(model, str) and model else "dall-e-2"

    # ------------------------------------------------------------------ validation

    def _validate_images(self, ctx: Ctx) -> list[Problem]:
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem("We could not parse the JSON body of your request.")]
        problems: list[Problem] = []
        problems += [Problem(f"Unknown parameter: '{k}'.", k) for k in body if k not in IMAGE_FIELDS]
        family = _family(self.image_model(ctx))
        prompt = body.get("prompt")
        if "prompt" not in body:
            problems.append(Problem("Missing required parameter: 'prompt'.", "prompt"))
        elif not isinstance(prompt, str):
            problems.append(
                Problem(
                    f"Invalid type for 'prompt': expected a string, but got {type(prompt).__name__}.",
                    "prompt",
                )
            )
        elif not prompt:
            problems.append(Problem("Invalid 'prompt': empty string.", "prompt"))
        elif len(prompt) > _PROMPT_LIMITS[family]:
            problems.append(
                Problem(
                    "Invalid 'prompt': string too long. Expected a string with maximum length "
                    f"{_PROMPT_LIMITS[family]}.",
                    "prompt",
                )
            )
        if "model" in body and not isinstance(body["model"], str):
            problems.append(Problem("Invalid type for 'model': expected a string.", "model"))
        n = body.get("n")
        if n is not None:
            if not is_int(n) or not 1 <= n <= 10:
                problems.append(Problem("Invalid 'n': expected an integer between 1 and 10.", "n"))
            elif family == "dall-e-3" and n != 1:
                problems.append(Problem("Invalid 'n': dall-e-3 only supports n=1.", "n"))
        _choice(problems, body, "size", _SIZES[family])
        _choice(problems, body, "quality", _QUALITIES[family])
        if family == "gpt":
            for name in ("response_format", "style"):
                if name in body:
                    problems.append(Problem(f"Unknown parameter: '{name}'.", name))
            _choice(problems, body, "background", ("transparent", "opaque", "auto"))
            _choice(problems, body, "moderation", ("low", "auto"))
            _choice(problems, body, "output_format", ("png", "jpeg", "webp"))
            compression = body.get("output_compression")
            if compression is not None and (not is_int(compression) or not 0 <= compression <= 100):
                problems.append(
                    Problem(
                        "Invalid 'output_compression': expected an integer between 0 and 100.",
                        "output_compression",
                    )
                )
            if "stream" in body and not isinstance(body["stream"], bool):
                problems.append(Problem("Invalid type for 'stream': expected a boolean.", "stream"))
            partial = body.get("partial_images")
            if partial is not None and (not is_int(partial) or not 0 <= partial <= 3):
                problems.append(
                    Problem(
                        "Invalid 'partial_images': expected an integer between 0 and 3.", "partial_images"
                    )
                )
        else:
            problems += [Problem(f"Unknown parameter: '{k}'.", k) for k in _GPT_ONLY if k in body]
            _choice(problems, body, "response_format", ("url", "b64_json"))
            if "style" in body:
                if family != "dall-e-3":
                    problems.append(Problem("Unknown parameter: 'style'.", "style"))
                else:
                    _choice(problems, body, "style", ("vivid", "natural"))
        return problems

    def _validate_moderations(self, ctx: Ctx) -> list[Problem]:
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem("We could not parse the JSON body of your request.")]
        problems = [Problem(f"Unknown parameter: '{k}'.", k) for k in body if k not in ("input", "model")]
        model = body.get("model", "omni-moderation-latest")
        if not isinstance(model, str) or not model:
            problems.append(Problem("Invalid type for 'model': expected a string.", "model"))
            model = ""
        if "input" not in body:
            problems.append(Problem("Missing required parameter: 'input'.", "input"))
            return problems
        value = body["input"]
        invalid = Problem(
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            "input",
        )
        if isinstance(value, str):
            return problems
        if not isinstance(value, list) or not value:
            return [*problems, invalid]
        if all(isinstance(item, str) for item in value):
            return problems
        for item in value:
            if not isinstance(item, dict):
                return [*problems, invalid]
            kind = item.get("type")
            if kind == "text" and isinstance(item.get("text"), str) and set(item) == {"type", "text"}:
                continue
            image = item.get("image_url")
            if kind == "image_url" and isinstance(image, dict) and isinstance(image.get("url"), str):
                if not model.startswith("omni-moderation"):
                    problems.append(Problem(f"Model '{model}' does not support image inputs.", "input"))
                continue
            return [*problems, invalid]
        return problems

    # ------------------------------------------------------------------ answers

    @staticmethod
    def _image_usage(prompt: str, size: str, quality: str, n: int) -> dict[str, Any]:
        text = count_words(prompt)
        out = OUTPUT_TOKENS.get((size, quality), OUTPUT_TOKENS[("1024x1024", "medium")]) * n
        return {
            "input_tokens": text,
            "input_tokens_details": {"text_tokens": text, "image_tokens": 0},
            "output_tokens": out,
            "total_tokens": text + out,
        }

    async def _images(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        model = self.image_model(ctx)
        ctx.rec.model = model
        prompt: str = body["prompt"]
        n = int(body.get("n") or 1)
        family = _family(model)
        created = int(time.time())
        if family != "gpt":
            b64 = body.get("response_format") == "b64_json"
            data = []
            for i in range(n):
                image = fake_image(prompt, i)
                item: dict[str, Any] = (
                    {"b64_json": base64.b64encode(image).decode()}
                    if b64
                    else {"url": f"{self.base_url}/files/img-{hashlib.sha256(image).hexdigest()[:16]}.png"}
                )
                if family == "dall-e-3":
                    item["revised_prompt"] = prompt
                data.append(item)
            return self.json_response(ctx, {"created": created, "data": data})
        size = body.get("size") or "auto"
        quality = body.get("quality") or "auto"
        real_size = "1024x1024" if size == "auto" else size
        real_quality = "medium" if quality == "auto" else quality
        usage = self._image_usage(prompt, real_size, real_quality, n)
        ctx.tokens = usage["total_tokens"]
        fmt = body.get("output_format") or "png"
        common = {
            "background": body.get("background") or "opaque",
            "output_format": fmt,
            "quality": real_quality,
            "size": real_size,
        }
        if body.get("stream") is True:
            events: list[bytes] = []
            for index in range(int(body.get("partial_images") or 0)):
                partial = {
                    "type": "image_generation.partial_image",
                    "b64_json": base64.b64encode(fake_image(prompt, 100 + index)).decode(),
                    "created_at": created,
                    "partial_image_index": index,
                    **common,
                }
                events.append(self._event("image_generation.partial_image", partial))
            done = {
                "type": "image_generation.completed",
                "b64_json": base64.b64encode(fake_image(prompt)).decode(),
                "created_at": created,
                "usage": usage,
                **common,
            }
            events.append(self._event("image_generation.completed", done))
            return await self.send_stream(ctx, events, content_type="text/event-stream; charset=utf-8")
        data = [{"b64_json": base64.b64encode(fake_image(prompt, i)).decode()} for i in range(n)]
        return self.json_response(ctx, {"created": created, "data": data, "usage": usage, **common})

    def _event(self, name: str, payload: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: ".encode() + self.dumps(payload, None) + b"\n\n"

    async def _moderations(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        model = body.get("model") or "omni-moderation-latest"
        ctx.rec.model = model
        value = body["input"]
        items = [value] if isinstance(value, str) else value
        results = []
        for item in items:
            text = (
                item if isinstance(item, str) else item.get("text", "") if item.get("type") == "text" else ""
            )
            image = isinstance(item, dict) and item.get("type") == "image_url"
            flagged = FLAG_WORD in text.lower()
            categories = {c: flagged and c == "violence" for c in _CATEGORIES}
            scores = {c: (0.91 if flagged and c == "violence" else 0.0001) for c in _CATEGORIES}
            applied = {c: (["image"] if image else ["text"]) for c in _CATEGORIES}
            results.append(
                {
                    "flagged": flagged,
                    "categories": categories,
                    "category_scores": scores,
                    "category_applied_input_types": applied,
                }
            )
        resolved = "omni-moderation-2024-09-26" if model == "omni-moderation-latest" else model
        return self.json_response(ctx, {"id": rand_id("modr-", 24), "model": resolved, "results": results})
