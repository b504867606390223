"""The fake Gemini API's (and Vertex's) image generation: Imagen's ``:predict`` and Gemini image
models' ``generateContent`` are answered in the real shapes, and every request that the real API
refuses is refused (recorded as a violation): a gateway test passing against the fake means the
call was right."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from truckllm_testing.fakes import FakeGemini, Reply
from truckllm_testing.fakes.gemini_images import IMAGE_TOKENS, RawAnswer
from truckllm_testing.fakes.openai_images import fake_image

HEADERS = {"x-goog-api-key": "k1"}
IMAGEN = "imagen-4.0-generate-001"
FLASH = "gemini-2.5-flash-image"
GOOD_PREDICT: dict[str, Any] = {"instances": [{"prompt": "a cat"}], "parameters": {"sampleCount": 2}}
GOOD_FLASH: dict[str, Any] = {
    "contents": [{"role": "user", "parts": [{"text": "a cat"}]}],
    "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "21:9"}},
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(keys=["k1"]) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, fake: FakeGemini, model: str, method: str, body: Any
) -> tuple[int, Any]:
    url = f"{fake.base_url}/models/{model}:{method}"
    async with http.post(url, json=body, headers=HEADERS) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_predict_answers_sample_count_images(http: aiohttp.ClientSession, fake: FakeGemini) -> None:
    status, body = await post(http, fake, IMAGEN, "predict", GOOD_PREDICT)
    assert status == 200 and fake.violations == []
    assert [base64.b64decode(p["bytesBase64Encoded"]) for p in body["predictions"]] == [
        fake_image("a cat", 0),
        fake_image("a cat", 1),
    ]
    assert {p["mimeType"] for p in body["predictions"]} == {"image/png"}


async def test_a_gemini_image_model_answers_one_inline_image_with_image_tokens(
    http: aiohttp.ClientSession, fake: FakeGemini
) -> None:
    status, body = await post(http, fake, FLASH, "generateContent", GOOD_FLASH)
    assert status == 200 and fake.violations == []
    (part,) = body["candidates"][0]["content"]["parts"]
    assert base64.b64decode(part["inlineData"]["data"]) == fake_image("a cat")
    assert body["usageMetadata"]["candidatesTokenCount"] == IMAGE_TOKENS
    assert body["usageMetadata"]["candidatesTokensDetails"] == [
        {"modality": "IMAGE", "tokenCount": IMAGE_TOKENS}
    ]


@pytest.mark.parametrize(
    ("model", "method", "body"),
    [
        (IMAGEN, "predict", {**GOOD_PREDICT, "extra": 1}),
        (IMAGEN, "predict", {"instances": [], "parameters": {}}),
        (IMAGEN, "predict", {"instances": [{"prompt": "a"}, {"prompt": "b"}]}),
        (IMAGEN, "predict", {"instances": [{"prompt": ""}]}),
        (IMAGEN, "predict", {"instances": [{"prompt": "a", "image": {}}]}),
        (IMAGEN, "predict", {"instances": [{"prompt": "word " * 481}]}),
        (IMAGEN, "predict", {"instances": [{"prompt": "a"}], "parameters": {"sampleCount": 5}}),
        (IMAGEN, "predict", {"instances": [{"prompt": "a"}], "parameters": {"sampleCount": "2"}}),
        (IMAGEN, "predict", {"instances": [{"prompt": "a"}], "parameters": {"aspectRatio": "2:3"}}),
        (IMAGEN, "predict", {"instances": [{"prompt": "a"}], "parameters": {"seed": 3}}),  # Vertex only
        (IMAGEN, "predict", {"instances": [{"prompt": "a"}], "parameters": {"number_of_images": 2}}),
        (IMAGEN, "predict", {"instances": [{"prompt": "a"}], "parameters": {"includeRaiReason": "yes"}}),
        (
            IMAGEN,
            "predict",
            {"instances": [{"prompt": "a"}], "parameters": {"outputOptions": {"mimeType": "image/webp"}}},
        ),
        (
            IMAGEN,
            "predict",
            {"instances": [{"prompt": "a"}], "parameters": {"outputOptions": {"compressionQuality": 101}}},
        ),
        (FLASH, "predict", GOOD_PREDICT),  # predict is Imagen's
        (FLASH, "generateContent", {"contents": GOOD_FLASH["contents"]}),  # no IMAGE modality
        (
            FLASH,
            "generateContent",
            {**GOOD_FLASH, "generationConfig": {"responseModalities": ["IMAGE", "AUDIO"]}},
        ),
        (
            FLASH,
            "generateContent",
            {**GOOD_FLASH, "generationConfig": {"responseModalities": ["IMAGE"], "candidateCount": 2}},
        ),
        (
            FLASH,
            "generateContent",
            {
                **GOOD_FLASH,
                "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "7:1"}},
            },
        ),
        (
            FLASH,
            "generateContent",
            {
                **GOOD_FLASH,
                "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"size": "1K"}},
            },
        ),
        (FLASH, "generateContent", {**GOOD_FLASH, "generation_config": {}}),  # snake case
    ],
)
async def test_what_the_real_api_refuses_is_refused(
    http: aiohttp.ClientSession, fake: FakeGemini, model: str, method: str, body: Any
) -> None:
    status, answer = await post(http, fake, model, method, body)
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert fake.violations


async def test_a_blocked_imagen_request_gives_the_reason_only_when_asked(
    http: aiohttp.ClientSession, fake: FakeGemini
) -> None:
    fake.script(Reply(blocked=True, times=2))
    _, silent = await post(http, fake, IMAGEN, "predict", GOOD_PREDICT)
    assert silent == {}
    asked = {**GOOD_PREDICT, "parameters": {"sampleCount": 2, "includeRaiReason": True}}
    _, told = await post(http, fake, IMAGEN, "predict", asked)
    assert "filtered out 2" in told["predictions"][0]["raiFilteredReason"]


async def test_a_raw_answer_replaces_the_next_ones_and_reset_forgets_it(
    http: aiohttp.ClientSession, fake: FakeGemini
) -> None:
    fake.answer_images_raw(RawAnswer(b'{"predictions": "nope"}', times=-1))
    assert (await post(http, fake, IMAGEN, "predict", GOOD_PREDICT))[1] == {"predictions": "nope"}
    assert (await post(http, fake, FLASH, "generateContent", GOOD_FLASH))[1] == {"predictions": "nope"}
    fake.reset()
    assert "predictions" in (await post(http, fake, IMAGEN, "predict", GOOD_PREDICT))[1]
