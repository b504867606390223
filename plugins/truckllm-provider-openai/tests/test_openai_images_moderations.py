"""The openai plugin's image and moderation answers: what is a valid answer, its usage, and an
image stream's events (relayed as they come; an error event, garbage or a stream cut before
``image_generation.completed`` is a failure)."""

from __future__ import annotations

import json

import pytest
from truckllm_provider_openai.images import ImageStream, check_images, image_usage
from truckllm_provider_openai.moderations import check_moderation

from truckllm.errors import UpstreamFailure
from truckllm.types import Usage

USAGE = {
    "input_tokens": 7,
    "output_tokens": 272,
    "total_tokens": 279,
    "input_tokens_details": {"text_tokens": 7},
}


@pytest.mark.parametrize(
    ("answer", "usage"),
    [
        (
            {"created": 1, "data": [{"b64_json": "eA=="}], "usage": USAGE},
            Usage(prompt_tokens=7, completion_tokens=272, total_tokens=279, images=1, requests=1),
        ),
        (
            {"created": 1, "data": [{"url": "https://x/a.png"}, {"url": "https://x/b.png"}]},
            Usage(images=2, requests=1),
        ),
        (
            {"data": [{"b64_json": "eA=="}], "usage": {"input_tokens": -5, "output_tokens": "9"}},
            Usage(images=1, requests=1),
        ),
    ],
)
def test_a_valid_images_answer_and_its_usage(answer: object, usage: Usage) -> None:
    body = json.dumps(answer).encode()
    assert check_images(body) is None
    assert image_usage(body) == usage


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"data": {}}',
        b'{"data": [{}]}',
        b'{"data": [1]}',
        b'{"created": 1}',
        b"\xff\xfe",
        b"{" * 10000,
    ],
)
def test_an_images_answer_that_is_not_one_is_a_bad_response(body: bytes) -> None:
    error = check_images(body)
    assert error is not None and error.kind == "bad_response" and error.status == 502


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        (b'{"id": "m", "results": [{"flagged": false}]}', True),
        (b'{"results": []}', True),
        (b'{"results": [{"flagged": "no"}]}', False),
        (b'{"results": {}}', False),
        (b'{"id": "m"}', False),
        (b"not json", False),
    ],
)
def test_a_moderation_answer_is_checked(body: bytes, valid: bool) -> None:
    assert (check_moderation(body) is None) is valid


def _event(kind: str, **extra: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **extra})}\n\n".encode()


def test_an_image_stream_is_relayed_byte_for_byte_at_any_split_and_its_usage_read() -> None:
    stream = _event("image_generation.partial_image", b64_json="eA==") + _event(
        "image_generation.completed", b64_json="eQ==", usage=USAGE
    )
    for cut in range(1, len(stream)):
        translator = ImageStream(None)
        out = translator.feed(stream[:cut]) + translator.feed(stream[cut:]) + translator.close()
        assert out == stream
        assert translator.usage == Usage(
            prompt_tokens=7, completion_tokens=272, total_tokens=279, images=1, requests=1
        )


@pytest.mark.parametrize(
    "stream",
    [
        _event("image_generation.partial_image", b64_json="eA=="),  # cut before completed
        b"",  # nothing at all
        _event("error", error={"message": "boom", "type": "server_error"}),
        b"data: not json\n\n",
        b'{"error": {"message": "not SSE"}}\n',
    ],
)
def test_a_failed_or_cut_image_stream_is_a_failure(stream: bytes) -> None:
    translator = ImageStream(None)
    with pytest.raises(UpstreamFailure) as failed:
        translator.feed(stream)
        translator.close()
    assert failed.value.error.status == 502
