"""The OpenAI dialect's audio and image-edit requests: what the gateway checks before upstream.

``/v1/audio/transcriptions``, ``/v1/audio/translations`` and ``/v1/images/edits`` take a
``multipart/form-data`` body that the kernel spools as it arrives (:mod:`.upload`); their request
is read from the form (:func:`parse_upload`). ``/v1/audio/speech`` takes JSON (:func:`parse_speech`).
Each gets a 400 in OpenAI's format naming the field at fault; the rest of the form is the
upstream's to judge. None has a typed form: only providers that list the endpoint serve them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from truckllm._internal.dialect import DialectRoute
from truckllm._internal.safejson import decode_json
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest, Upload

__all__ = [
    "AUDIO_FORMATS",
    "MEDIA_ROUTES",
    "SPEECH_FORMATS",
    "SpeechRequest",
    "parse_speech",
    "parse_upload",
    "transcription_format",
]

MEDIA_ROUTES = (
    DialectRoute(path="/v1/audio/transcriptions", endpoint="audio.transcriptions", upload=True),
    DialectRoute(path="/v1/audio/translations", endpoint="audio.translations", upload=True),
    DialectRoute(path="/v1/audio/speech", endpoint="audio.speech"),
    DialectRoute(path="/v1/images/edits", endpoint="images.edits", upload=True),
)
"""The routes this module reads, mounted by the OpenAI dialect."""

AUDIO_FORMATS = frozenset({"json", "text", "srt", "verbose_json", "vtt", "diarized_json"})
"""A transcription's ``response_format`` values."""
SPEECH_FORMATS = frozenset({"mp3", "opus", "aac", "flac", "wav", "pcm"})
"""Speech's ``response_format`` values."""
_TRUE = frozenset({"true", "True", "1"})
_FALSE = frozenset({"false", "False", "0", ""})
_MAX_SPEECH_INPUT = 4096


class SpeechRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/audio/speech`` (members the gateway checks; others go upstream as they came)."""

    model: str
    input: str
    voice: str | dict[str, Any]
    response_format: str | None = None
    speed: float | None = None
    instructions: str | None = None
    stream_format: str | None = None


_SPEECH = msgspec.json.Decoder(SpeechRequest)


def _missing(name: str) -> GatewayError:
    return GatewayError(400, f"Missing required parameter: '{name}'.", param=name)


def _invalid(name: str, message: str) -> GatewayError:
    return GatewayError(400, f"Invalid value for '{name}': {message}", param=name)


def _flag(upload: Upload, name: str) -> bool:
    value = upload.fields.get(name)
    if value is None or value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise _invalid(name, "expected a boolean ('true' or 'false').")


def transcription_format(upload: Upload | None) -> str:
    """The ``response_format`` a transcription or translation asked for (``json`` by default)."""
    return (upload.fields.get("response_format") if upload is not None else None) or "json"


def _check_audio(route: DialectRoute, upload: Upload) -> bool:
    files = upload.named("file")
    if not files:
        raise _missing("file")
    if len(files) > 1 or len(upload.files) > 1:
        raise _invalid("file", "send exactly one file.")
    if files[0].size == 0:
        raise _invalid("file", "the audio file is empty.")
    if transcription_format(upload) not in AUDIO_FORMATS:
        raise _invalid("response_format", f"expected one of {', '.join(sorted(AUDIO_FORMATS))}.")
    for value in upload.multi.get("timestamp_granularities[]", ()):
        if value not in ("word", "segment"):
            raise _invalid("timestamp_granularities[]", "expected 'word' or 'segment'.")
    stream = _flag(upload, "stream")
    if stream and route.endpoint == "audio.translations":
        raise GatewayError(400, "Translations cannot stream.", param="stream")
    return stream


def _check_edit(upload: Upload) -> bool:
    images = upload.named("image", "image[]")
    if not images:
        raise _missing("image")
    if any(file.size == 0 for file in images):
        raise _invalid("image", "an image file is empty.")
    if len(upload.named("mask")) > 1:
        raise _invalid("mask", "send at most one mask.")
    strays = [f.field for f in upload.files if f.field not in ("image", "image[]", "mask")]
    if strays:
        raise GatewayError(400, f"Unexpected file field '{strays[0][:100]}'.", param=strays[0][:100])
    if not upload.fields.get("prompt"):
        raise _missing("prompt")
    n = upload.fields.get("n")
    if n is not None and not (n.isdigit() and 1 <= int(n) <= 10):
        raise _invalid("n", "expected an integer from 1 to 10.")
    return _flag(upload, "stream")


def parse_upload(
    route: DialectRoute,
    upload: Upload,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    headers: Mapping[str, str],
    dialect: str = "openai",
) -> ChatRequest:
    """A transcription, translation or image edit read from its spooled form.

    :raises GatewayError: 400 naming the field at fault.
    """
    model = upload.fields.get("model")
    if not model:
        raise _missing("model")
    stream = _check_edit(upload) if route.endpoint == "images.edits" else _check_audio(route, upload)
    return ChatRequest(
        endpoint=route.endpoint,
        dialect=dialect,
        body=b"",
        model=model,
        stream=stream,
        headers=headers,
        upload=upload,
    )


def parse_speech(
    route: DialectRoute, body: bytes, headers: Mapping[str, str], dialect: str = "openai"
) -> ChatRequest:
    """A speech request (JSON): its audio is always streamed back as it comes (``stream`` is set).

    :raises GatewayError: 400 naming the field at fault.
    """
    from truckllm._internal.openai_api import validation_error  # a cycle at import time otherwise

    try:
        typed: SpeechRequest = decode_json(body, decoder=_SPEECH)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise validation_error(exc) from None
    except UnicodeDecodeError:
        raise GatewayError(400, "The request body is not valid UTF-8.") from None
    if not typed.input:
        raise _invalid("input", "the text is empty.")
    if len(typed.input) > _MAX_SPEECH_INPUT:
        raise _invalid("input", f"at most {_MAX_SPEECH_INPUT} characters.")
    if typed.response_format is not None and typed.response_format not in SPEECH_FORMATS:
        raise _invalid("response_format", f"expected one of {', '.join(sorted(SPEECH_FORMATS))}.")
    if typed.speed is not None and not 0.25 <= typed.speed <= 4.0:
        raise _invalid("speed", "expected a number from 0.25 to 4.0.")
    if typed.stream_format is not None and typed.stream_format not in ("sse", "audio"):
        raise _invalid("stream_format", "expected 'sse' or 'audio'.")
    return ChatRequest(
        endpoint=route.endpoint,
        dialect=dialect,
        body=body,
        model=typed.model,
        stream=True,
        headers=headers,
    )
