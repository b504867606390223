"""OpenAI's audio and image-edit endpoints for the fake OpenAI server (:class:`MediaAPI`, mixed
into ``FakeOpenAI``).

Endpoints: ``POST /v1/audio/transcriptions``, ``POST /v1/audio/translations``,
``POST /v1/images/edits`` (``multipart/form-data``, read as it arrives: each file part is hashed,
never held, so that uploads of hundreds of megabytes pass) and ``POST /v1/audio/speech`` (JSON).

Wire details reproduced and checked (each problem a violation, answered with OpenAI's 400):

- a ``multipart/form-data`` body with a boundary; every part a ``form-data`` with a name;
- transcriptions and translations: ``model`` and exactly one ``file`` part (with a file name);
  ``response_format`` one of ``json``, ``text``, ``srt``, ``verbose_json``, ``vtt``;
  ``timestamp_granularities[]`` only ``word`` / ``segment`` (and only with ``verbose_json``);
  ``stream`` only for transcriptions (``gpt-4o-*`` models);
- image edits: ``prompt``, one or more ``image`` / ``image[]`` parts (PNG, JPEG or WEBP content
  types), at most one ``mask``;
- speech: ``model``, ``input`` (1 to 4096 characters), ``voice``; ``response_format`` one of
  ``mp3``, ``opus``, ``aac``, ``flac``, ``wav``, ``pcm``.

Each request's record (``Received.json``) holds ``fields`` (name → values), ``files`` (each
``{field, filename, content_type, size, sha256}``) and ``model``. Answers are deterministic: a
transcription's text names the file's size and hash; its duration is the size at
:data:`BYTES_PER_SECOND`. Speech answers :attr:`MediaAPI.speech_bytes` bytes of
:func:`speech_audio` in :attr:`MediaAPI.speech_chunk` pieces; when :attr:`MediaAPI.speech_gate` is
set (a ``threading.Event``), the first piece is sent and the rest waits for the gate, so a test can
see the first bytes reach its client before the upstream finished. Speech answers are streams
(``Received.stream``): a ``Fault(drop_after=n)`` sends ``n`` pieces of the audio, then closes the
connection without the chunked body's end (a cut the client can see).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
from typing import Any

from aiohttp import BodyPartReader, web

from .base import Ctx, FakeUpstream, Problem, Route

__all__ = ["BYTES_PER_SECOND", "MediaAPI", "speech_audio"]

BYTES_PER_SECOND = 32_000
"""The fake's audio: 16-bit 16 kHz mono, 32,000 bytes a second."""
_TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_SPEECH_FORMATS = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
_FILE_FIELDS = {"transcriptions": ("file",), "translations": ("file",), "edits": ("image", "image[]", "mask")}


def speech_audio(size: int) -> bytes:
    """The fake's speech: ``size`` deterministic bytes."""
    block = hashlib.sha256(b"speech").digest() * 64
    return (block * (size // len(block) + 1))[:size]


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


class MediaAPI(FakeUpstream):
    """Audio and image edits (see the module docstring); a mixin of ``FakeOpenAI``."""

    speech_bytes: int = 256 * 1024
    """Bytes of audio a speech answer has."""
    speech_chunk: int = 16 * 1024
    """Bytes per piece of a speech answer."""
    speech_gate: threading.Event | None = None
    """When set: the first piece goes at once, the rest once the event is set."""

    def is_stream(self, ctx: Ctx) -> bool:
        """Speech is always answered as a stream; the rest as the base fake says."""
        return ctx.request.path.endswith("/audio/speech") or super().is_stream(ctx)

    def media_routes(self) -> list[Route]:
        """The audio and image-edit endpoints."""
        return [
            Route(
                "POST", "/v1/audio/transcriptions", self._transcribe, needs_json=False, reader=self._read_form
            ),
            Route(
                "POST", "/v1/audio/translations", self._transcribe, needs_json=False, reader=self._read_form
            ),
            Route("POST", "/v1/images/edits", self._edit, needs_json=False, reader=self._read_form),
            Route("POST", "/v1/audio/speech", self._speech, self._validate_speech),
        ]

    # ------------------------------------------------------------------ reading a form

    async def _read_form(self, request: web.Request) -> dict[str, Any]:
        """The form as it arrives: fields kept, files hashed; problems listed in ``problems``."""
        summary: dict[str, Any] = {"fields": {}, "files": [], "problems": []}
        problems: list[str] = summary["problems"]
        if not request.content_type.startswith("multipart/form-data"):
            problems.append(f"the body is not multipart/form-data ({request.content_type})")
            await request.read()
            return summary
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or not part.name:
                    problems.append("a part without a form-data name")
                    continue
                if part.filename is None:
                    summary["fields"].setdefault(part.name, []).append(await part.text())
                    continue
                digest, size = hashlib.sha256(), 0
                while chunk := await part.read_chunk(256 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
                summary["files"].append(
                    {
                        "field": part.name,
                        "filename": part.filename,
                        "content_type": part.headers.get("Content-Type", ""),
                        "size": size,
                        "sha256": digest.hexdigest(),
                    }
                )
        except (ValueError, AssertionError) as exc:
            problems.append(f"malformed multipart body: {exc}")
        models = summary["fields"].get("model") or [None]
        summary["model"] = models[-1]
        summary["stream"] = (summary["fields"].get("stream") or [""])[-1] == "true"
        return summary

    def _form_problems(self, ctx: Ctx, kind: str) -> list[Problem]:
        form: dict[str, Any] = ctx.body or {}
        problems = [Problem(p) for p in form.get("problems", ())]
        fields: dict[str, list[str]] = form.get("fields", {})
        files: list[dict[str, Any]] = form.get("files", [])
        if not fields.get("model"):
            problems.append(Problem("you must provide a model parameter", "model"))
        for name, values in fields.items():
            if len(values) > 1 and not name.endswith("[]"):
                problems.append(Problem(f"the field '{name}' was sent {len(values)} times", name))
        for file in files:
            if file["field"] not in _FILE_FIELDS[kind]:
                problems.append(Problem(f"unexpected file field '{file['field']}'", file["field"]))
        if kind == "edits":
            images = [f for f in files if f["field"] in ("image", "image[]")]
            if not images:
                problems.append(Problem("'image' is a required property", "image"))
            for image in images:
                if image["content_type"] not in _IMAGE_TYPES:
                    problems.append(
                        Problem(
                            f"Invalid file 'image': unsupported mimetype ('{image['content_type']}')", "image"
                        )
                    )
            if len([f for f in files if f["field"] == "mask"]) > 1:
                problems.append(Problem("only one mask", "mask"))
            if not fields.get("prompt"):
                problems.append(Problem("'prompt' is a required property", "prompt"))
            return problems
        if len([f for f in files if f["field"] == "file"]) != 1:
            problems.append(Problem("exactly one 'file' is required", "file"))
        formats = fields.get("response_format", ["json"])
        if formats[-1] not in _TRANSCRIPTION_FORMATS:
            problems.append(
                Problem(f"'{formats[-1]}' is not one of {list(_TRANSCRIPTION_FORMATS)}", "response_format")
            )
        for value in fields.get("timestamp_granularities[]", []):
            if value not in ("word", "segment"):
                problems.append(
                    Problem(f"'{value}' is not a timestamp granularity", "timestamp_granularities[]")
                )
        if fields.get("timestamp_granularities[]") and formats[-1] != "verbose_json":
            problems.append(
                Problem(
                    "timestamp_granularities needs response_format verbose_json", "timestamp_granularities[]"
                )
            )
        if form.get("stream"):
            model = (fields.get("model") or [""])[-1]
            if kind == "translations" or not model.startswith("gpt-4o"):
                problems.append(Problem(f"streaming is not supported for {model or kind}", "stream"))
        return problems

    def _checked(self, ctx: Ctx, kind: str) -> web.Response | None:
        problems = self._form_problems(ctx, kind)
        if not problems:
            return None
        ctx.rec.violations.extend(p.message for p in problems)
        self.violations.extend(p.message for p in problems)
        return self.error(ctx, 400, "bad_request", problems[0].message, problems[0].param)

    # ------------------------------------------------------------------ transcriptions

    async def _transcribe(self, ctx: Ctx) -> web.StreamResponse:
        kind = "translations" if ctx.rec.path.endswith("translations") else "transcriptions"
        refused = self._checked(ctx, kind)
        if refused is not None:
            return refused
        form = ctx.body
        fields: dict[str, list[str]] = form["fields"]
        (file,) = [f for f in form["files"] if f["field"] == "file"]
        text = f"{kind[:-1]} of {file['size']} bytes {file['sha256'][:12]}"
        duration = round(file["size"] / BYTES_PER_SECOND, 2)
        fmt = fields.get("response_format", ["json"])[-1]
        model = fields["model"][-1]
        tokens = model.startswith("gpt-4o")
        usage: dict[str, Any] = (
            {
                "type": "tokens",
                "input_tokens": max(1, file["size"] // 1000),
                "input_token_details": {"text_tokens": 0, "audio_tokens": max(1, file["size"] // 1000)},
                "output_tokens": len(text.split()),
                "total_tokens": max(1, file["size"] // 1000) + len(text.split()),
            }
            if tokens
            else {"type": "duration", "seconds": max(1, round(duration))}
        )
        if form.get("stream"):
            words = text.split(" ")
            events = [
                b"data: "
                + self.dumps({"type": "transcript.text.delta", "delta": w + " ", "logprobs": None})
                + b"\n\n"
                for w in words
            ]
            done = {"type": "transcript.text.done", "text": text, "usage": usage}
            events.append(b"data: " + self.dumps(done) + b"\n\n")
            return await self.send_stream(ctx, events, content_type="text/event-stream; charset=utf-8")
        if fmt in ("text", "srt", "vtt"):
            if fmt == "text":
                body = text + "\n"
            elif fmt == "srt":
                body = f"1\n00:00:00,000 --> {_srt_time(duration)}\n{text}\n\n"
            else:
                body = f"WEBVTT\n\n00:00:00.000 --> {_srt_time(duration).replace(',', '.')}\n{text}\n\n"
            ctx.rec.status = 200
            return web.Response(
                body=body.encode(),
                headers={"Content-Type": "text/plain; charset=utf-8", **self.success_headers(ctx)},
            )
        answer: dict[str, Any] = {"text": text, "usage": usage}
        if fmt == "verbose_json":
            answer = {
                "task": kind[:-1].replace("transcription", "transcribe").replace("translation", "translate"),
                "language": "english",
                "duration": duration,
                "text": text,
                "segments": [{"id": 0, "start": 0.0, "end": duration, "text": text}],
                "usage": {"type": "duration", "seconds": max(1, round(duration))},
            }
            if "word" in fields.get("timestamp_granularities[]", []):
                answer["words"] = [{"word": w, "start": 0.0, "end": duration} for w in text.split()]
        return self.json_response(ctx, answer)

    # ------------------------------------------------------------------ image edits

    async def _edit(self, ctx: Ctx) -> web.StreamResponse:
        refused = self._checked(ctx, "edits")
        if refused is not None:
            return refused
        form = ctx.body
        fields: dict[str, list[str]] = form["fields"]
        n = int(fields.get("n", ["1"])[-1])
        seed = "".join(f["sha256"] for f in form["files"]) + fields["prompt"][-1]
        images = [
            {"b64_json": base64.b64encode(hashlib.sha256(f"{seed}{i}".encode()).digest()).decode()}
            for i in range(n)
        ]
        usage = {
            "input_tokens": 100 * len(form["files"]),
            "input_tokens_details": {"text_tokens": len(fields["prompt"][-1].split()), "image_tokens": 100},
            "output_tokens": 1000 * n,
            "total_tokens": 100 * len(form["files"]) + 1000 * n,
        }
        if form.get("stream"):
            events = [
                b"event: image_edit.completed\ndata: "
                + self.dumps(
                    {"type": "image_edit.completed", "b64_json": images[0]["b64_json"], "usage": usage}
                )
                + b"\n\n"
            ]
            return await self.send_stream(ctx, events, content_type="text/event-stream; charset=utf-8")
        return self.json_response(ctx, {"created": 1_700_000_000, "data": images, "usage": usage})

    # ------------------------------------------------------------------ speech

    def _validate_speech(self, ctx: Ctx) -> list[Problem]:
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem("the body must be a JSON object")]
        problems = []
        for name in ("model", "input", "voice"):
            if name not in body:
                problems.append(Problem(f"'{name}' is a required property", name))
        text = body.get("input")
        if "input" in body and (not isinstance(text, str) or not 1 <= len(text) <= 4096):
            problems.append(Problem("'input' must be a string of 1 to 4096 characters", "input"))
        fmt = body.get("response_format", "mp3")
        if fmt not in _SPEECH_FORMATS:
            problems.append(Problem(f"'{fmt}' is not a speech format", "response_format"))
        if body.get("stream_format", "audio") not in ("audio", "sse"):
            problems.append(Problem("stream_format is 'audio' or 'sse'", "stream_format"))
        return problems

    async def _speech(self, ctx: Ctx) -> web.StreamResponse:
        body = ctx.body
        audio = speech_audio(self.speech_bytes)
        pieces = [audio[i : i + self.speech_chunk] for i in range(0, len(audio), self.speech_chunk)]
        if body.get("stream_format") == "sse":
            events = [
                b"data: "
                + self.dumps({"type": "speech.audio.delta", "audio": base64.b64encode(p).decode()})
                + b"\n\n"
                for p in pieces
            ]
            usage = {
                "input_tokens": len(body["input"].split()),
                "output_tokens": len(pieces),
                "total_tokens": 0,
            }
            usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
            events.append(b"data: " + self.dumps({"type": "speech.audio.done", "usage": usage}) + b"\n\n")
            return await self.send_stream(ctx, events, content_type="text/event-stream")
        content_type = _SPEECH_FORMATS[body.get("response_format", "mp3")]
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": content_type, "Server": self.server_name, **self.success_headers(ctx)},
        )
        await resp.prepare(ctx.request)
        ctx.rec.status = 200
        gate = self.speech_gate
        fault = ctx.fault
        for i, piece in enumerate(pieces):
            if fault is not None and fault.drop_after is not None and i >= fault.drop_after:
                return self._drop(ctx, resp)
            if i == 1 and gate is not None:
                await asyncio.to_thread(gate.wait, 60)  # a bound, should a test forget it
            elif i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            await resp.write(piece)
        await resp.write_eof()
        return resp
