"""Image generations on Imagen and Gemini image models: the upstream bodies, what is refused, and
every answer (valid, blocked, hostile) read through the plugin's hooks as the kernel calls them."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import msgspec
import pytest
import truckllm_provider_gemini as gemini
from hypothesis import given
from hypothesis import strategies as st
from truckllm_provider_gemini.images import (
    GEMINI_RATIOS,
    IMAGEN_RATIOS,
    MAX_IMAGE_TOKENS,
    aspect_ratio,
)
from truckllm_provider_gemini.options import Options

from truckllm.errors import UnsupportedRequest
from truckllm.types import ChatRequest, Provider, ProviderResult, UpstreamResponse, Usage

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-image-").decode()
IMAGEN = "imagen-4.0-generate-001"
FLASH = "gemini-2.5-flash-image"


def provider(**options: Any) -> Provider:
    decoded = msgspec.convert(options, Options) if options else None
    return Provider(name="gem", type="gemini", base_url="https://g.test/v1beta", options=decoded)


def request(**body: Any) -> ChatRequest:
    body = {"model": "painter", "prompt": "a red truck", **body}
    return ChatRequest(
        endpoint="images.generations",
        dialect="openai",
        body=json.dumps(body).encode(),
        model="painter",
        stream=bool(body.get("stream")),
    )


def upstream(model: str, key: str = "k-1", **body: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    built = gemini.transform_request(provider=provider(), model=model, request=request(**body), api_key=key)
    assert built is not None and not built.stream
    return built.url, built.headers, json.loads(built.body)


def answer(body: Any, status: int = 200, **ask: Any) -> tuple[ProviderResult, Usage | None]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = request(**ask)
    result = gemini.transform_response(
        provider=provider(), request=req, response=UpstreamResponse(status=status, headers={}, body=raw)
    )
    assert result is not None
    usage = gemini.parse_usage(provider=provider(), request=req, body=raw) if result.error is None else None
    return result, usage


def imagen_answer(*predictions: dict[str, Any]) -> dict[str, Any]:
    return {"predictions": list(predictions)}


def flash_answer(parts: list[dict[str, Any]], usage: dict[str, Any] | None = None, **extra: Any) -> Any:
    meta = usage if usage is not None else {"promptTokenCount": 4, "candidatesTokenCount": 1290}
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        "usageMetadata": meta,
        **extra,
    }


IMAGE_PART = {"inlineData": {"mimeType": "image/png", "data": PNG}}


# --- sizes → aspect ratios ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "imagen", "flash"),
    [
        ("256x256", "1:1", "1:1"),
        ("1024x1024", "1:1", "1:1"),
        ("1024x1536", "3:4", "2:3"),
        ("1536x1024", "4:3", "3:2"),
        ("1024x1792", "9:16", "9:16"),
        ("1792x1024", "16:9", "16:9"),
        ("1080x1350", "3:4", "4:5"),
        ("2560x1080", "16:9", "21:9"),
        ("auto", None, None),
    ],
)
def test_a_size_is_sent_as_the_nearest_aspect_ratio_the_model_takes(
    size: str, imagen: str | None, flash: str | None
) -> None:
    assert aspect_ratio(size, IMAGEN_RATIOS) == imagen
    assert aspect_ratio(size, GEMINI_RATIOS) == flash
    _, _, body = upstream(IMAGEN, size=size)
    assert body["parameters"].get("aspectRatio") == imagen
    _, _, body = upstream(FLASH, size=size)
    assert body["generationConfig"].get("imageConfig", {}).get("aspectRatio") == flash


@given(st.integers(1, 99999), st.integers(1, 99999), st.sampled_from([IMAGEN_RATIOS, GEMINI_RATIOS]))
def test_no_supported_ratio_is_nearer_than_the_one_chosen(width: int, height: int, ratios: Any) -> None:
    chosen = aspect_ratio(f"{width}x{height}", ratios)
    assert chosen is not None and chosen in ratios

    def far(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(int(w) / int(h)) - math.log(width / height))

    assert all(far(chosen) <= far(other) for other in ratios)


def test_a_size_with_a_zero_side_is_refused_naming_size() -> None:
    with pytest.raises(UnsupportedRequest) as refused:
        upstream(IMAGEN, size="0000x1024")
    assert refused.value.param == "size"


# --- the upstream calls ---------------------------------------------------------------------------


def test_imagen_is_called_by_predict_with_one_instance_and_the_count() -> None:
    url, headers, body = upstream(IMAGEN, n=3, size="1792x1024", quality="hd", style="vivid", user="u-1")
    assert url == f"https://g.test/v1beta/models/{IMAGEN}:predict"
    assert headers["x-goog-api-key"] == "k-1" and headers["content-type"] == "application/json"
    assert body == {
        "instances": [{"prompt": "a red truck"}],
        "parameters": {"sampleCount": 3, "includeRaiReason": True, "aspectRatio": "16:9"},
    }


def test_imagen_jpeg_output_and_its_compression_are_output_options() -> None:
    _, _, body = upstream(IMAGEN, output_format="jpeg", output_compression=70)
    assert body["parameters"] == {
        "sampleCount": 1,
        "includeRaiReason": True,
        "outputOptions": {"mimeType": "image/jpeg", "compressionQuality": 70},
    }


def test_a_gemini_image_model_is_asked_for_images_alone_by_generate_content() -> None:
    url, _, body = upstream(FLASH, size="1024x1536", background="opaque", quality="high")
    assert url == f"https://g.test/v1beta/models/{FLASH}:generateContent"
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "a red truck"}]}],
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "2:3"}},
    }


def test_the_providers_safety_settings_go_with_a_gemini_image_request() -> None:
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    built = gemini.transform_request(
        provider=provider(safety_settings=settings), model=FLASH, request=request(), api_key="k"
    )
    assert built is not None and json.loads(built.body)["safetySettings"] == settings


def test_a_model_name_that_could_reshape_the_url_is_refused() -> None:
    with pytest.raises(UnsupportedRequest) as refused:
        upstream("imagen-4/../../x?key=evil")
    assert refused.value.param == "model"


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [
        (IMAGEN, {"stream": True}, "stream"),
        (FLASH, {"stream": True, "partial_images": 1}, "stream"),
        (IMAGEN, {"response_format": "url"}, "response_format"),
        (FLASH, {"response_format": "url"}, "response_format"),
        (IMAGEN, {"n": 5}, "n"),
        (FLASH, {"n": 2}, "n"),
        (IMAGEN, {"background": "transparent"}, "background"),
        (FLASH, {"background": "transparent"}, "background"),
        (IMAGEN, {"output_format": "webp"}, "output_format"),
        (FLASH, {"output_format": "jpeg"}, "output_format"),
        (IMAGEN, {"output_compression": 50}, "output_compression"),
        (IMAGEN, {"output_format": "png", "output_compression": 50}, "output_compression"),
        (FLASH, {"output_compression": 50}, "output_compression"),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_the_field(
    model: str, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(UnsupportedRequest) as refused:
        upstream(model, **extra)
    assert refused.value.param == param


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        (IMAGEN, {"n": 4, "response_format": "b64_json", "stream": False}),
        (FLASH, {"n": 1, "output_format": "png", "background": "auto", "moderation": "low"}),
    ],
)
def test_what_can_be_honoured_is_sent(model: str, extra: dict[str, Any]) -> None:
    upstream(model, **extra)


# --- answers --------------------------------------------------------------------------------------


def test_an_imagen_answer_is_openais_images_shape_charged_per_image() -> None:
    result, usage = answer(
        imagen_answer(
            {"mimeType": "image/png", "bytesBase64Encoded": PNG, "prompt": "a red truck, at dawn"},
            {"mimeType": "image/png", "bytesBase64Encoded": PNG},
        ),
        n=2,
    )
    assert result.error is None and result.dialect == "openai"
    body = json.loads(result.body)
    assert body["data"] == [{"b64_json": PNG, "revised_prompt": "a red truck, at dawn"}, {"b64_json": PNG}]
    assert isinstance(body["created"], int) and "usage" not in body
    assert usage == Usage(images=2, requests=1)


def test_imagen_images_partly_filtered_are_the_ones_delivered_and_charged() -> None:
    result, usage = answer(
        imagen_answer({"bytesBase64Encoded": PNG}, {"raiFilteredReason": "filtered 1 image"}), n=2
    )
    assert len(json.loads(result.body)["data"]) == 1
    assert usage is not None and usage.images == 1


def test_a_gemini_image_answer_is_charged_by_its_tokens_and_counts_its_image() -> None:
    meta = {"promptTokenCount": 4, "candidatesTokenCount": 1290, "totalTokenCount": 1294}
    result, usage = answer(flash_answer([{"text": "here"}, IMAGE_PART], meta))
    body = json.loads(result.body)
    assert body["data"] == [{"b64_json": PNG}]
    assert body["usage"] == {
        "input_tokens": 4,
        "input_tokens_details": {"text_tokens": 4, "image_tokens": 0},
        "output_tokens": 1290,
        "total_tokens": 1294,
    }
    assert usage == Usage(prompt_tokens=4, completion_tokens=1290, total_tokens=1294, images=1, requests=1)


def test_a_gemini_image_answer_without_usage_is_counted_by_its_images() -> None:
    body = flash_answer([IMAGE_PART])
    del body["usageMetadata"]
    result, usage = answer(body)
    assert "usage" not in json.loads(result.body)
    assert usage == Usage(images=1, requests=1)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            imagen_answer({"raiFilteredReason": "Your current safety filter threshold filtered out 2"}),
            "filtered",
        ),
        ({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, "PROHIBITED_CONTENT"),
        ({"candidates": [{"finishReason": "IMAGE_SAFETY"}]}, "IMAGE_SAFETY"),
        ({"candidates": [{"finishReason": "SAFETY", "content": {"parts": []}}]}, "SAFETY"),
        ({"promptFeedback": {"blockReason": "free text <script>"}}, "an unreadable reason"),
    ],
)
def test_a_safety_block_is_a_400_content_policy_violation_with_the_reason(body: Any, reason: str) -> None:
    result, _ = answer(body)
    error = result.error
    assert error is not None and error.status == 400 and error.kind == "bad_request"
    assert error.code == "content_policy_violation" and error.param == "prompt"
    assert reason in error.message and not error.retryable


HUGE = 10**40


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"[" * 100000, id="deep"),
        pytest.param(b'{"predictions": "x"}', id="predictions-not-list"),
        pytest.param(imagen_answer(), id="imagen-no-prediction"),
        pytest.param({}, id="empty-object"),
        pytest.param(imagen_answer({"mimeType": "image/png"}), id="imagen-prediction-without-bytes"),
        pytest.param(imagen_answer({"bytesBase64Encoded": "@@not base64@@"}), id="imagen-bad-base64"),
        pytest.param(imagen_answer({"bytesBase64Encoded": ""}), id="imagen-empty-image"),
        pytest.param(imagen_answer({"bytesBase64Encoded": 12}), id="imagen-image-a-number"),
        pytest.param(
            imagen_answer({"bytesBase64Encoded": PNG}, {"bytesBase64Encoded": PNG}), id="more-than-n"
        ),
        pytest.param({"candidates": [{"finishReason": "STOP"}]}, id="flash-no-content"),
        pytest.param({"candidates": [{"finishReason": "NO_IMAGE"}]}, id="flash-no-image"),
        pytest.param(flash_answer([{"text": "I cannot draw"}]), id="flash-text-only"),
        pytest.param(
            flash_answer([{"inlineData": {"mimeType": "text/html", "data": PNG}}]), id="flash-not-an-image"
        ),
        pytest.param(
            flash_answer([{"inlineData": {"mimeType": "image/png", "data": "!!"}}]), id="flash-bad-base64"
        ),
        pytest.param(flash_answer([IMAGE_PART] * 11), id="flash-too-many-images"),
        pytest.param(flash_answer([IMAGE_PART], {"candidatesTokenCount": HUGE}), id="tokens-huge"),
        pytest.param(
            flash_answer([IMAGE_PART], {"candidatesTokenCount": MAX_IMAGE_TOKENS + 1}), id="tokens-over-cap"
        ),
        pytest.param(flash_answer([IMAGE_PART], {"promptTokenCount": 1e30}), id="tokens-float"),
        pytest.param(flash_answer([IMAGE_PART], {"promptTokenCount": -5}), id="tokens-negative"),
        pytest.param(flash_answer([IMAGE_PART], {"totalTokenCount": "12"}), id="tokens-string"),
        pytest.param(flash_answer([IMAGE_PART], {"thoughtsTokenCount": True}), id="tokens-bool"),
        pytest.param(b'{"predictions": [{"bytesBase64Encoded": "\xff\xfe"}]}', id="not-utf8"),
    ],
)
def test_a_2xx_that_is_not_a_good_image_answer_is_a_502_bad_response(body: Any) -> None:
    result, _ = answer(body)
    assert result.error is not None, result.body[:200]
    assert result.error.status == 502 and result.error.kind == "bad_response" and result.error.retryable
    assert result.body == b""


def test_a_parse_of_a_hostile_answer_charges_nothing() -> None:
    raw = json.dumps(flash_answer([IMAGE_PART], {"candidatesTokenCount": HUGE})).encode()
    assert gemini.parse_usage(provider=provider(), request=request(), body=raw) is None


def test_an_error_inside_a_200_is_classified() -> None:
    result, _ = answer({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down"}})
    assert result.error is not None and result.error.kind == "rate_limit"


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (
            400,
            {"code": 400, "status": "INVALID_ARGUMENT", "message": "Unsupported aspect ratio"},
            "bad_request",
        ),
        (429, {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota"}, "rate_limit"),
        (503, {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}, "overloaded"),
        (404, {"code": 404, "status": "NOT_FOUND", "message": "no such model"}, "not_found"),
    ],
)
def test_an_upstream_error_is_classified_as_for_chat(status: int, error: dict[str, Any], kind: str) -> None:
    result, _ = answer({"error": error}, status=status)
    assert result.error is not None and result.error.kind == kind


def test_the_plugin_declares_the_endpoint() -> None:
    specs: list[Any] = []
    gemini.register_providers(register=specs.append)
    assert "images.generations" in specs[0].endpoints
