"""Where the text is in the bodies of the endpoints that are not a chat: per kernel endpoint.

The chat-like endpoints (``chat``, ``completions``, ``embeddings``, ``count_tokens``) are read by
their dialect's tables (:mod:`truckllm._internal.guard_text`). Every other endpoint's texts are
named here, whatever dialect carries them, so that an endpoint's text is never left to a
dialect's guess:

- :data:`REQUEST`: the texts of a JSON request body (rerank's ``query`` and documents, an image
  prompt, speech's ``input`` and ``instructions``, a moderation's ``input``);
- :data:`UPLOAD_FIELDS`: the form fields of a multipart request that are texts (an image edit's
  and a transcription's ``prompt``; never the files);
- :data:`ANSWER` and :data:`EVENT`: the texts of a whole answer and of a stream event (an
  image's ``revised_prompt``, a transcription's text, segments and words);
- :data:`NO_TEXT`: the endpoints whose bodies carry no text for a model (file and batch
  bookkeeping; an upload of a batch file is read line by line instead: :mod:`.guard_batch`).

A transcription's ``text``, ``srt`` and ``vtt`` answers are plain text: :func:`plain_lines`
finds their text lines (not a cue number, a timing or the ``WEBVTT`` header).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from truckllm._internal.guard_text import GENERIC_KEYS, Found, answer_texts, event_texts, request_texts

__all__ = [
    "ANSWER",
    "EVENT",
    "NO_TEXT",
    "REQUEST",
    "TRANSCRIPTIONS",
    "UPLOAD_FIELDS",
    "answer_of",
    "event_of",
    "plain_lines",
    "request_of",
    "upload_fields",
]

Walker = Callable[[Any], Iterator[Found]]


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else None


def _items(node: Any) -> Iterator[tuple[int, Any]]:
    return enumerate(node) if isinstance(node, list) else iter(())


def _string(body: Any, key: str, role: str) -> Iterator[Found]:
    value = _get(body, key)
    if isinstance(value, str):
        yield Found(role, (key,), value)


def _nothing(body: Any) -> Iterator[Found]:
    return iter(())


def _rerank_request(body: Any) -> Iterator[Found]:
    """``query``, then each document (a string or ``{"text"}``)."""
    yield from _string(body, "query", "user")
    for i, document in _items(_get(body, "documents")):
        if isinstance(document, str):
            yield Found("user", ("documents", i), document)
        elif isinstance(_get(document, "text"), str):
            yield Found("user", ("documents", i, "text"), document["text"])


def _image_request(body: Any) -> Iterator[Found]:
    yield from _string(body, "prompt", "user")


def _speech_request(body: Any) -> Iterator[Found]:
    """``input`` (the text spoken) and ``instructions`` (how to speak it)."""
    yield from _string(body, "input", "user")
    yield from _string(body, "instructions", "system")


def _moderation_request(body: Any) -> Iterator[Found]:
    """``input``: a string, a list of strings, or a list of ``{"type": "text", "text"}`` parts."""
    yield from _string(body, "input", "user")
    for i, item in _items(_get(body, "input")):
        if isinstance(item, str):
            yield Found("user", ("input", i), item)
        elif isinstance(_get(item, "text"), str):
            yield Found("user", ("input", i, "text"), item["text"])


def _image_answer(body: Any) -> Iterator[Found]:
    """Each image's ``revised_prompt`` (the prompt the model rewrote and used)."""
    for i, image in _items(_get(body, "data")):
        if isinstance(_get(image, "revised_prompt"), str):
            yield Found("assistant", ("data", i, "revised_prompt"), image["revised_prompt"])


def _transcription_answer(body: Any) -> Iterator[Found]:
    """``text``; ``segments[].text`` (verbose and diarized); ``words[].word``."""
    yield from _string(body, "text", "assistant")
    for i, segment in _items(_get(body, "segments")):
        if isinstance(_get(segment, "text"), str):
            yield Found("assistant", ("segments", i, "text"), segment["text"])
    for i, word in _items(_get(body, "words")):
        if isinstance(_get(word, "word"), str):
            yield Found("assistant", ("words", i, "word"), word["word"])


def _transcription_event(event: Any) -> Iterator[Found]:
    """``transcript.text.delta`` pieces; ``transcript.text.done`` repeats the whole text."""
    kind = _get(event, "type")
    if kind == "transcript.text.delta" and isinstance(_get(event, "delta"), str):
        yield Found("assistant", ("delta",), event["delta"], ("transcript",))
    elif kind == "transcript.text.done" and isinstance(_get(event, "text"), str):
        yield Found("assistant", ("text",), event["text"], ("transcript",), True)
    elif kind == "transcript.text.segment" and isinstance(_get(event, "text"), str):
        yield Found("assistant", ("text",), event["text"], ("segment", _get(event, "id")), True)


TRANSCRIPTIONS = frozenset({"audio.transcriptions", "audio.translations"})
"""The endpoints whose answer is a transcript."""

NO_TEXT = frozenset(
    {
        "files.create",  # a batch file: read line by line (guard_batch); other purposes: no model reads them
        "files.retrieve",
        "files.delete",
        "files.content",
        "batches.create",
        "batches.retrieve",
        "batches.cancel",
        "batches.usage",
        "responses.cancel",
    }
)
"""Endpoints whose request bodies carry no text for a model (ids, names, metadata)."""

REQUEST: dict[str, Walker] = {
    "rerank": _rerank_request,
    "images.generations": _image_request,
    "audio.speech": _speech_request,
    "moderations": _moderation_request,
    "responses.retrieve": _nothing,
    **dict.fromkeys(NO_TEXT, _nothing),
}
"""Per endpoint: the texts of a JSON request body (before the dialect's table)."""

UPLOAD_FIELDS: dict[str, tuple[str, ...]] = {
    "images.edits": ("prompt",),
    "audio.transcriptions": ("prompt",),
    "audio.translations": ("prompt",),
    "files.create": (),
}
"""Per upload endpoint: the form fields that are texts a model reads (an upload endpoint not
listed: every field named as :data:`~truckllm._internal.guard_text.GENERIC_KEYS` names)."""

ANSWER: dict[str, Walker] = {
    "images.generations": _image_answer,
    "images.edits": _image_answer,
    "audio.transcriptions": _transcription_answer,
    "audio.translations": _transcription_answer,
    "audio.speech": _nothing,  # audio
    "moderations": _nothing,  # categories and scores
    "rerank": _nothing,  # indexes, scores, and the client's own documents echoed
    **dict.fromkeys(NO_TEXT, _nothing),
}
"""Per endpoint: the texts of a whole answer body (before the dialect's table)."""

EVENT: dict[str, Walker] = {
    "images.generations": _nothing,  # partial and final images (no revised prompt in a stream)
    "images.edits": _nothing,
    "audio.transcriptions": _transcription_event,
    "audio.speech": _nothing,  # speech.audio.delta: audio
}
"""Per endpoint: the texts of one stream event (before the dialect's table)."""


def request_of(endpoint: str, dialect: str, body: Any) -> list[Found]:
    """The texts of a JSON request body to ``endpoint`` in ``dialect``, in order."""
    walker = REQUEST.get(endpoint)
    return list(walker(body)) if walker is not None else request_texts(dialect, body)


def answer_of(endpoint: str, dialect: str, body: Any) -> list[Found]:
    """The texts of a whole answer body of ``endpoint`` in ``dialect``, in order."""
    walker = ANSWER.get(endpoint)
    return list(walker(body)) if walker is not None else answer_texts(dialect, body)


def event_of(endpoint: str, dialect: str, event: Any) -> list[Found]:
    """The texts of one stream event of ``endpoint`` in ``dialect``, each with its channel."""
    walker = EVENT.get(endpoint)
    return list(walker(event)) if walker is not None else event_texts(dialect, event)


def upload_fields(endpoint: str, names: Any) -> tuple[str, ...]:
    """The form fields of an upload to ``endpoint`` that are texts, among ``names``."""
    listed = UPLOAD_FIELDS.get(endpoint)
    if listed is not None:
        return tuple(name for name in listed if name in names)
    return tuple(name for name in names if name in GENERIC_KEYS)


def plain_lines(text: str) -> list[tuple[int, str]]:
    """The text lines of a plain-text transcript (``text``, ``srt``, ``vtt``), as ``(line index,
    line)``: every line but blank ones, cue numbers, timings (``-->``) and the ``WEBVTT`` header."""
    found = []
    for i, line in enumerate(text.split("\n")):
        bare = line.strip()
        if not bare or bare.isdigit() or "-->" in bare or bare.startswith("WEBVTT"):
            continue
        found.append((i, line))
    return found
