"""Azure's chat streams as OpenAI's: the chunks that carry only Azure's ``prompt_filter_results``
(no choices, no usage, an empty ``object``) are dropped; every other frame is the ``openai``
plugin's, unchanged (choices keep their ``content_filter_results``, which clients ignore)."""

from __future__ import annotations

from typing import Any

import msgspec
from truckllm_provider_openai import OpenAIStream

from truckllm.errors import UpstreamFailure
from truckllm.types import RateLimits, Usage

__all__ = ["AzureStream", "drop_filter_chunks"]

_MARK = b'"prompt_filter_results"'


class _Chunk(msgspec.Struct):
    choices: Any = None
    usage: Any = None
    prompt_filter_results: Any = None


_CHUNK = msgspec.json.Decoder(_Chunk)


def _filter_only(frame: bytes) -> bool:
    """Whether a ``data:`` frame is Azure's chunk of prompt filter results alone."""
    if _MARK not in frame or not frame.startswith(b"data: "):
        return False
    try:
        chunk = _CHUNK.decode(frame[len(b"data: ") :])
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return False
    return chunk.prompt_filter_results is not None and chunk.choices == [] and chunk.usage is None


def drop_filter_chunks(frames: bytes) -> bytes:
    """``frames`` (whole ``data:`` frames) without Azure's prompt-filter-only chunks."""
    if _MARK not in frames:
        return frames
    kept = [frame for frame in frames.split(b"\n\n") if frame and not _filter_only(frame)]
    return b"".join(frame + b"\n\n" for frame in kept)


class AzureStream:
    """The ``openai`` plugin's :class:`OpenAIStream`, Azure's filter-only chunks dropped."""

    dialect = "openai"

    def __init__(self, inner: OpenAIStream) -> None:
        self._inner = inner

    @property
    def usage(self) -> Usage | None:
        """The stream's usage, once read."""
        return self._inner.usage

    @property
    def limits(self) -> RateLimits | None:
        """The upstream's rate-limit headers."""
        return self._inner.limits

    def feed(self, chunk: bytes) -> bytes:
        """Frames to forward for this chunk of upstream bytes."""
        try:
            return drop_filter_chunks(self._inner.feed(chunk))
        except UpstreamFailure as failure:
            failure.pending = drop_filter_chunks(failure.pending)
            raise

    def close(self) -> bytes:
        """The final frames, or the failure of a stream cut short."""
        try:
            return drop_filter_chunks(self._inner.close())
        except UpstreamFailure as failure:
            failure.pending = drop_filter_chunks(failure.pending)
            raise
