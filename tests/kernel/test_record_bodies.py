"""A record's body is text the scrubber read, or absent (``_internal/bodies``).

The class of bugs: bytes that are not text (speech audio, images, octet streams, invalid UTF-8,
NUL bytes) captured as a record's ``response`` (decoded with replacement characters: garbage the
scrubber cannot judge, that a SQL text column refuses). Each content type and each byte string
is either kept as scrubbed text, or absent with its type and size said.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from truckllm._internal.bodies import BodyCapture, form_summary, is_text, textual_type
from truckllm._internal.scrub import Scrubber
from truckllm.types import Upload, UploadedFile

SECRET = "sk-live-0123456789abcdefghijklmnop"
SCRUBBER = Scrubber([SECRET])


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("", True),
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/problem+json", True),
        ("application/x-ndjson", True),
        ("application/xml", True),
        ("application/atom+xml", True),
        ("text/plain; charset=utf-8", True),
        ("text/vtt", True),
        ("text/event-stream", True),
        ("audio/wav", False),
        ("audio/mpeg", False),
        ("audio/pcm", False),
        ("image/png", False),
        ("application/octet-stream", False),
        ("application/pdf", False),
        ("application/zip", False),
        ("video/mp4", False),
        ("multipart/form-data; boundary=x", False),
        ("application/jsonx", False),
    ],
)
def test_which_content_types_are_text(content_type: str, text: bool) -> None:
    assert textual_type(content_type) is text


@pytest.mark.parametrize(
    ("raw", "complete", "text"),
    [
        (b"", True, True),
        (b'{"a": "h\xc3\xa9"}', True, True),
        (b"caf\xc3", True, False),  # a cut character at the end of a whole answer
        (b"caf\xc3", False, True),  # ... of a captured prefix: the rest was not kept
        (b"a\x00b", True, False),
        (b"\xff\xfe", False, False),
        (b"RIFF\x24\x08\x00\x00WAVE", True, False),
        (b"\x89PNG\r\n\x1a\n", True, False),
    ],
)
def test_which_bytes_are_text(raw: bytes, complete: bool, text: bool) -> None:
    assert is_text(raw, complete) is text


def capture(content_type: str, *chunks: bytes, limit: int = 64) -> BodyCapture:
    kept = BodyCapture(limit, request=b'{"model": "tts"}')
    kept.response_type = content_type
    for chunk in chunks:
        kept.add(chunk)
    return kept


@pytest.mark.parametrize("content_type", ["audio/wav", "audio/mpeg", "image/png", "application/octet-stream"])
def test_binary_answers_are_absent_with_their_type_and_size(content_type: str) -> None:
    audio = bytes(range(256)) * 10
    bodies = capture(content_type, audio[:1000], audio[1000:]).bodies(SCRUBBER)
    assert bodies.response == "" and not bodies.response_truncated
    assert (bodies.response_type, bodies.response_bytes) == (content_type, len(audio))
    assert bodies.request == '{"model": "tts"}'


def test_text_types_with_bytes_that_are_not_text_are_absent() -> None:
    for raw in (b"ok \x00 then", b"\xff\xd8\xff\xe0 jpeg", b"x" * 10 + b"\xc3"):
        bodies = capture("text/plain", raw).bodies(SCRUBBER)
        assert bodies.response == "" and bodies.response_bytes == len(raw)
        assert bodies.response_type == "text/plain"


def test_a_hostile_content_type_is_scrubbed_and_cut() -> None:
    bodies = capture(f"audio/x-{SECRET}; {'p' * 500}", b"\x00\x01").bodies(SCRUBBER)
    assert SECRET not in bodies.response_type and bodies.response_type.startswith("audio/x-")
    assert len(bodies.response_type) <= 200


def test_text_answers_are_kept_scrubbed_and_cut() -> None:
    answer = f'{{"text": "key {SECRET} said", "pad": "{"y" * 200}"}}'.encode()
    bodies = capture("application/json", answer[:30], answer[30:]).bodies(SCRUBBER)
    assert bodies.response.startswith('{"text": "key ') and SECRET[:12] not in bodies.response
    assert bodies.response_truncated and len(bodies.response.encode()) <= 64
    assert bodies.response_type == "" and bodies.response_bytes == 0


@given(st.binary(max_size=300), st.sampled_from(["text/plain", "application/json", "audio/wav", ""]))
def test_a_body_is_text_the_scrubber_read_or_absent(raw: bytes, content_type: str) -> None:
    bodies = capture(content_type, raw[:100], raw[100:], limit=128).bodies(SCRUBBER)
    if bodies.response:
        assert textual_type(content_type) and "\x00" not in bodies.response
        assert "\ufffd" not in bodies.response or "\ufffd".encode() in raw  # nothing replaced
        assert bodies.response_bytes == 0
        assert bodies.response.encode() == raw[: len(bodies.response.encode())]  # as received
    elif raw:
        kept_as_text = textual_type(content_type) and is_text(raw)
        assert kept_as_text or bodies.response_bytes == len(raw)


def test_an_upload_request_is_its_form_summary() -> None:
    upload = Upload(
        fields={"model": "whisper"},
        multi={"model": ("whisper",), "timestamp_granularities[]": ("word", "segment")},
        files=(
            UploadedFile(
                field="file", filename="a.mp3", content_type="audio/mpeg", path="/nonexistent", size=9
            ),
        ),
    )
    assert form_summary(upload) == (
        b'{"fields":{"model":["whisper"],"timestamp_granularities[]":["word","segment"]},'
        b'"files":[{"field":"file","filename":"a.mp3","content_type":"audio/mpeg","size":9}]}'
    )
