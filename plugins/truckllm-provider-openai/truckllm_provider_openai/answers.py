"""Is a 2xx body a valid OpenAI answer of the endpoint's shape? (one typed decode, no copies)

Checked: the body is UTF-8 JSON (nested to any depth without crashing the decoder), an object,
with the endpoint's list (``choices`` of objects with a ``message`` object, ``choices`` with a
``text`` string, or embeddings' ``data`` of objects with an ``embedding``), and ``object``, when
given, is the endpoint's. Everything else about the body is left to the client, as OpenAI-compatible
servers differ in what else they send.
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm.types import UpstreamError

from .errors import bad_response, read_error

__all__ = ["check_answer"]


class _Object(msgspec.Struct):
    """Any JSON object (its members are skipped)."""


class _ChatChoice(msgspec.Struct):
    message: _Object


class _TextChoice(msgspec.Struct):
    text: str


class _Embedding(msgspec.Struct):
    embedding: msgspec.Raw


class _Chat(msgspec.Struct):
    choices: list[_ChatChoice]
    object: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_TextChoice]
    object: str | None = None


class _Embeddings(msgspec.Struct):
    data: list[_Embedding]
    object: str | None = None


_SHAPES: dict[str, tuple[msgspec.json.Decoder[Any], str]] = {
    "chat": (msgspec.json.Decoder(_Chat), "chat.completion"),
    "completions": (msgspec.json.Decoder(_Completion), "text_completion"),
    "embeddings": (msgspec.json.Decoder(_Embeddings), "list"),
}


class _MaybeError(msgspec.Struct):
    error: Any = None


_MAYBE_ERROR = msgspec.json.Decoder(_MaybeError)


def check_answer(endpoint: str, body: bytes) -> UpstreamError | None:
    """``None`` when ``body`` is a valid answer for ``endpoint``, else the ``bad_response`` failure."""
    shape = _SHAPES.get(endpoint)
    if shape is None:
        return None  # an endpoint this check does not know: the client reads it
    decoder, expected = shape
    try:
        answer = decoder.decode(body)
        if not body.isascii():
            body.decode()  # the members skipped above were not checked to be UTF-8
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
        return _why(endpoint, body, exc)
    if answer.object is not None and answer.object != expected:
        return bad_response(f"upstream answered 2xx with an object of another kind, not {expected}")
    return None


def _why(endpoint: str, body: bytes, exc: Exception) -> UpstreamError:
    if not body.strip():
        return bad_response("upstream answered 2xx with an empty body")
    if isinstance(exc, RecursionError):
        return bad_response("upstream answered 2xx with JSON nested too deeply")
    if isinstance(exc, msgspec.ValidationError):
        try:
            has_error = _MAYBE_ERROR.decode(body).error is not None
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            has_error = False
        if has_error:
            message = read_error(502, {}, body).message
            return bad_response(f"upstream answered 2xx with an error: {message}")
        return bad_response(
            f"upstream answered 2xx with JSON that is not an OpenAI {endpoint} answer ({exc})"
        )
    if isinstance(exc, UnicodeDecodeError):
        return bad_response("upstream answered 2xx with a body that is not UTF-8")
    return bad_response(f"upstream answered 2xx with a body that is not JSON ({type(exc).__name__})")
