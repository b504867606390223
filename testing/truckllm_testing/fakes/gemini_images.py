"""Image generation for the fake Gemini API and the fake Vertex AI (:class:`GeminiImagesAPI`, mixed
into ``FakeGemini``, whose subclass ``FakeVertex`` serves the same bodies under its paths).

- **Imagen** (a model named ``imagen-*``): ``POST models/{model}:predict`` with ``{"instances":
  [{"prompt"}], "parameters": {...}}``. Checked: only those two members; exactly one instance with
  only a non-empty ``prompt`` of at most :data:`IMAGEN_PROMPT_WORDS` words; ``parameters`` members
  among Imagen's (:data:`IMAGEN_PARAMETERS`; the Gemini Developer API refuses the Vertex-only ones
  of :data:`VERTEX_ONLY`), ``sampleCount`` 1 to 4, ``aspectRatio`` among :data:`IMAGEN_RATIOS`,
  ``outputOptions.mimeType`` PNG or JPEG, ``compressionQuality`` 0 to 100. ``:predict`` on a model
  that is not Imagen is a 400. Answered with ``sampleCount`` predictions ``{"mimeType",
  "bytesBase64Encoded"}`` (:func:`~truckllm_testing.fakes.openai_images.fake_image` of the prompt);
  a scripted ``Reply(blocked=True)`` filters every image: ``{"raiFilteredReason"}`` predictions
  with ``includeRaiReason``, else ``{}`` (as Imagen answers).
- **Gemini image models** (a model whose name contains ``-image``): ``generateContent`` must ask
  ``generationConfig.responseModalities`` with ``IMAGE`` (only ``TEXT`` and ``IMAGE``), take no
  ``candidateCount`` above 1, and ``imageConfig`` only ``aspectRatio`` (among
  :data:`GEMINI_RATIOS`) and ``imageSize``. Answered with one ``inlineData`` PNG part, ``STOP``
  and ``usageMetadata`` (:data:`IMAGE_TOKENS` output tokens, modality ``IMAGE``); a scripted
  ``Reply(blocked=True, finish=...)`` is a ``promptFeedback.blockReason``, a ``Reply(finish=
  "IMAGE_SAFETY")`` a candidate without content finished for that reason.

:meth:`GeminiImagesAPI.answer_images_raw` answers the next image request(s) with given bytes (a
hostile upstream).
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, ClassVar

from aiohttp import web

from .base import Ctx, FakeUpstream, Problem, count_words, is_int, rand_id
from .openai_images import fake_image
from .rerank import RawAnswer

__all__ = [
    "GEMINI_RATIOS",
    "IMAGEN_PARAMETERS",
    "IMAGEN_PROMPT_WORDS",
    "IMAGEN_RATIOS",
    "IMAGE_TOKENS",
    "VERTEX_ONLY",
    "GeminiImagesAPI",
    "RawAnswer",
    "is_image_model",
    "is_imagen",
]

IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
GEMINI_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_TOKENS = 1290
"""Output tokens of one Gemini image up to 1024x1024 (Google's pricing page)."""
IMAGEN_PROMPT_WORDS = 480
"""Imagen's prompt limit (480 tokens; words here)."""
IMAGEN_PARAMETERS = frozenset(
    {
        "sampleCount", "aspectRatio", "personGeneration", "includeRaiReason", "includeSafetyAttributes",
        "outputOptions", "guidanceScale", "safetySetting", "language", "sampleImageSize", "negativePrompt",
        "seed", "addWatermark", "enhancePrompt", "storageUri",
    }
)  # fmt: skip
"""``parameters`` members of an Imagen ``:predict``."""
VERTEX_ONLY = frozenset({"negativePrompt", "seed", "addWatermark", "enhancePrompt", "storageUri"})
"""Members only Vertex AI takes (the Gemini Developer API refuses them)."""
_RAI_REASON = (
    "Your current safety filter threshold filtered out {n} generated images. You will not be charged "
    "for blocked images. Try rephrasing the prompt. If you think this was an error, send feedback. "
    "Support codes: 56562880"
)


def is_imagen(model: str) -> bool:
    """An Imagen model (``:predict``)."""
    return model.startswith("imagen-")


def is_image_model(model: str) -> bool:
    """A Gemini model answering images from ``generateContent``."""
    return "-image" in model and not is_imagen(model)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class GeminiImagesAPI(FakeUpstream):
    """Imagen's ``:predict`` and Gemini image models' ``generateContent`` (the module docstring)."""

    provider: ClassVar[str] = "gemini"

    def answer_images_raw(self, raw: RawAnswer) -> None:
        """Answer the next valid image request(s) with ``raw`` (after validation and faults)."""
        with self._images_lock():
            self._image_raw().append(raw)

    def reset(self) -> None:
        """Forget queued raw answers too."""
        super().reset()
        with self._images_lock():
            self._image_raw().clear()

    def _images_lock(self) -> threading.Lock:
        lock: threading.Lock = self.__dict__.setdefault("_images_raw_lock", threading.Lock())
        return lock

    def _image_raw(self) -> list[RawAnswer]:
        queue: list[RawAnswer] = self.__dict__.setdefault("_images_raw", [])
        return queue

    def _take_image_raw(self) -> RawAnswer | None:
        with self._images_lock():
            queue = self._image_raw()
            if not queue:
                return None
            raw = queue[0]
            if raw.times > 0:
                raw.times -= 1
                if raw.times == 0:
                    queue.pop(0)
            return raw

    def _raw_response(self, ctx: Ctx, raw: RawAnswer) -> web.Response:
        self.count_request(ctx.rec.api_key, 0)
        headers = {"Content-Type": self.json_content_type, **raw.headers}
        return web.Response(status=raw.status, body=raw.body, headers=headers)

    # ------------------------------------------------------------------ validation

    def validate_predict(self, ctx: Ctx, model: str) -> list[Problem]:
        """The problems of an Imagen ``:predict`` body."""
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem("Invalid JSON payload received. Expected an object.")]
        problems = [
            Problem(f'Invalid JSON payload received. Unknown name "{k}": Cannot find field.')
            for k in body
            if k not in ("instances", "parameters")
        ]
        if not is_imagen(model):
            problems.append(Problem(f"models/{model} does not support predict; use generateContent."))
        instances = body.get("instances")
        if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
            problems.append(Problem("* instances: exactly one instance with a prompt is required."))
        else:
            instance = instances[0]
            problems += [
                Problem(f"Unknown field in instance: {k}. Only 'prompt' is supported for generation.")
                for k in instance
                if k != "prompt"
            ]
            prompt = instance.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                problems.append(Problem("* instances[0].prompt: prompt must be a non-empty string."))
            elif count_words(prompt) > IMAGEN_PROMPT_WORDS:
                problems.append(
                    Problem(f"The prompt is longer than the maximum of {IMAGEN_PROMPT_WORDS} tokens.")
                )
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict):
            return [*problems, Problem("* parameters: expected an object.")]
        for name in parameters:
            if name not in IMAGEN_PARAMETERS:
                problems.append(Problem(f"Unknown parameter: {name}."))
            elif name in VERTEX_ONLY and self.provider == "gemini":
                problems.append(Problem(f"{name} parameter is not supported in Gemini API."))
        count = parameters.get("sampleCount", 4)
        if not is_int(count) or not 1 <= count <= 4:
            problems.append(Problem("sampleCount must be an integer between 1 and 4."))
        ratio = parameters.get("aspectRatio")
        if ratio is not None and ratio not in IMAGEN_RATIOS:
            problems.append(Problem(f"Unsupported aspect ratio: {json.dumps(ratio)}."))
        for flag in ("includeRaiReason", "includeSafetyAttributes"):
            if flag in parameters and not isinstance(parameters[flag], bool):
                problems.append(Problem(f"{flag} must be a boolean."))
        output = parameters.get("outputOptions")
        if output is not None:
            if not isinstance(output, dict) or set(output) - {"mimeType", "compressionQuality"}:
                problems.append(Problem("outputOptions takes mimeType and compressionQuality only."))
            else:
                if output.get("mimeType", "image/png") not in ("image/png", "image/jpeg"):
                    problems.append(Problem(f"Unsupported mime type: {json.dumps(output.get('mimeType'))}."))
                quality = output.get("compressionQuality")
                if quality is not None and (not is_int(quality) or not 0 <= quality <= 100):
                    problems.append(Problem("compressionQuality must be an integer between 0 and 100."))
        return problems

    def validate_image_generation(self, model: str, body: dict[str, Any]) -> list[Problem]:
        """The problems of a ``generateContent`` body for a Gemini image model (none for other
        models)."""
        if not is_image_model(model):
            return []
        config = body.get("generationConfig")
        config = config if isinstance(config, dict) else {}
        problems: list[Problem] = []
        modalities = config.get("responseModalities")
        if not isinstance(modalities, list) or "IMAGE" not in modalities:
            problems.append(
                Problem(f"Model {model} requires generation_config.response_modalities to include IMAGE.")
            )
        elif any(m not in ("TEXT", "IMAGE") for m in modalities):
            problems.append(Problem(f"Model {model} only supports TEXT and IMAGE response modalities."))
        count = config.get("candidateCount")
        if count is not None and count != 1:
            problems.append(Problem("Multiple candidates is not enabled for this model."))
        image = config.get("imageConfig")
        if image is not None:
            if not isinstance(image, dict) or set(image) - {"aspectRatio", "imageSize"}:
                problems.append(Problem("* generation_config.image_config: unknown field."))
            elif image.get("aspectRatio") is not None and image["aspectRatio"] not in GEMINI_RATIOS:
                problems.append(Problem(f"Unsupported aspect ratio: {json.dumps(image['aspectRatio'])}."))
        return problems

    # ------------------------------------------------------------------ answers

    async def predict(self, ctx: Ctx) -> web.StreamResponse:
        """Imagen's answer: ``sampleCount`` images, or none when a scripted reply blocks them."""
        raw = self._take_image_raw()
        if raw is not None:
            return self._raw_response(ctx, raw)
        body: dict[str, Any] = ctx.body
        prompt: str = body["instances"][0]["prompt"]
        parameters: dict[str, Any] = body.get("parameters") or {}
        count = int(parameters.get("sampleCount", 4))
        mime = (parameters.get("outputOptions") or {}).get("mimeType", "image/png")
        reply = self.take_reply(ctx)
        if reply is not None and reply.blocked:
            if not parameters.get("includeRaiReason"):
                return self.json_response(ctx, {})
            reason = _RAI_REASON.format(n=count)
            return self.json_response(ctx, {"predictions": [{"raiFilteredReason": reason}]})
        predictions = [
            {"mimeType": mime, "bytesBase64Encoded": _b64(fake_image(prompt, i))} for i in range(count)
        ]
        return self.json_response(ctx, {"predictions": predictions})

    async def generate_images(self, ctx: Ctx) -> web.StreamResponse:
        """A Gemini image model's answer: one PNG part with token usage (or a block)."""
        raw = self._take_image_raw()
        if raw is not None:
            return self._raw_response(ctx, raw)
        body: dict[str, Any] = ctx.body
        prompt = " ".join(
            part["text"]
            for content in body["contents"]
            for part in content.get("parts") or []
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
        prompt_tokens = count_words(prompt) + 1
        reply = self.take_reply(ctx)
        head = {"modelVersion": ctx.rec.model, "responseId": rand_id("", 22)}
        prompt_usage = {
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        }
        if reply is not None and reply.blocked:
            answer: dict[str, Any] = {
                "promptFeedback": {"blockReason": reply.finish or "SAFETY"},
                "usageMetadata": prompt_usage,
                **head,
            }
        elif reply is not None and reply.finish:
            answer = {"candidates": [{"finishReason": reply.finish}], "usageMetadata": prompt_usage, **head}
        else:
            out = (
                IMAGE_TOKENS if reply is None or reply.completion_tokens is None else reply.completion_tokens
            )
            part = {"inlineData": {"mimeType": "image/png", "data": _b64(fake_image(prompt))}}
            answer = {
                "candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP"}],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": out,
                    "totalTokenCount": prompt_tokens + out,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
                    "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": out}],
                },
                **head,
            }
        if ctx.rec.stream:  # one event: the whole answer
            event = b"data: " + json.dumps(answer, separators=(",", ": ")).encode() + b"\r\n\r\n"
            return await self.send_stream(ctx, [event], content_type="text/event-stream")
        return self.json_response(ctx, answer)
