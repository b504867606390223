"""Image generations on Google: the official openai SDK -> gateway -> fake Gemini API and fake
Vertex AI, Imagen (``:predict``) and a Gemini image model (``generateContent``).

What matters: the upstream gets exactly the call its API takes (the fakes validate it: any
violation fails the test); the client gets OpenAI's images answer; each record counts the images
delivered and is charged per image (Imagen) or by the reported tokens (Gemini); a failed key or
provider fails over; what cannot be honoured is a 400 naming the field before any upstream call
(or is served by another provider of the alias that can); a safety block is a 400 with the
reason; a 2xx that is not a good image answer is a 502 ``bad_response`` and charges nothing.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest

from truckllm import hookimpl
from truckllm.types import RequestRecord
from truckllm_testing.fakes import FakeGemini, FakeOpenAI, Fault, Reply
from truckllm_testing.fakes.gemini_images import IMAGE_TOKENS, RawAnswer
from truckllm_testing.fakes.openai_images import fake_image
from truckllm_testing.fakes.vertex import FakeVertex
from truckllm_testing.server import GatewayServer

GEM_KEYS = ("gem-key-aaaaaaaaaaaaaaaaaaaa", "gem-key-bbbbbbbbbbbbbbbbbbbb")
PROJECT = "test-project"
VERTEX_ROOT = f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models"
GATEWAY_KEY = "gw-google-images-1234567890"
IMAGEN_RATE = 0.04
VERTEX_IMAGEN_RATE = 0.03
FLASH_PRICE = {"input": 0.3, "output": 30.0, "image": 0.039}


class Records:
    """A throwaway plugin keeping every usage record."""

    __name__ = "throwaway-google-images-records"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.lock = threading.Lock()

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Keep the record."""
        with self.lock:
            self.records.append(record)

    def of(self, request_id: str) -> RequestRecord:
        """The one record of ``request_id`` (written off the response path: waited for)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.lock:
                found = [r for r in self.records if r.request_id == request_id]
            if found:
                assert len(found) == 1, found
                return found[0]
            time.sleep(0.01)
        raise AssertionError(f"no record of request {request_id}")


def config(gem: FakeGemini, vertex: FakeVertex, openai_fake: FakeOpenAI) -> str:
    sa = [{"name": "sa1", "value": vertex.service_account_json("sa-1")}]
    return json.dumps(
        {
            "routing": {
                "retries": 0,
                "cooldown": {"failures": 1000},
                "backoff": {"base": "1ms", "max": "5ms"},
            },
            "keys": [{"name": "gw", "value": GATEWAY_KEY}],
            "providers": {
                "gem": {
                    "type": "gemini",
                    "base_url": gem.base_url,
                    "keys": [{"name": "k1", "value": GEM_KEYS[0]}, {"name": "k2", "value": GEM_KEYS[1]}],
                },
                "vx": {
                    "type": "vertex",
                    "base_url": vertex.base_url,
                    "options": {"project": PROJECT, "location": "us-central1"},
                    "keys": sa,
                },
                "oa": {
                    "type": "openai",
                    "base_url": openai_fake.base_url,
                    "keys": [{"name": "o", "value": "test-key"}],
                },
            },
            "models": {
                "imagen": {
                    "strategy": "first",
                    "deployments": [
                        {
                            "provider": "gem",
                            "model": "imagen-4.0-generate-001",
                            "price": {"image": IMAGEN_RATE},
                        }
                    ],
                },
                "flash-image": {
                    "strategy": "first",
                    "deployments": [
                        {"provider": "gem", "model": "gemini-2.5-flash-image", "price": FLASH_PRICE}
                    ],
                },
                "vx-imagen": {
                    "strategy": "first",
                    "deployments": [
                        {
                            "provider": "vx",
                            "model": "imagen-3.0-generate-002",
                            "price": {"image": VERTEX_IMAGEN_RATE},
                        }
                    ],
                },
                "vx-flash": {
                    "strategy": "first",
                    "deployments": [
                        {"provider": "vx", "model": "gemini-2.5-flash-image", "price": FLASH_PRICE}
                    ],
                },
                "any-imagen": {
                    "strategy": "first",
                    "deployments": [
                        {
                            "provider": "gem",
                            "model": "imagen-4.0-generate-001",
                            "price": {"image": IMAGEN_RATE},
                        },
                        {
                            "provider": "vx",
                            "model": "imagen-3.0-generate-002",
                            "price": {"image": VERTEX_IMAGEN_RATE},
                        },
                    ],
                },
                "imagen-or-dalle": {
                    "strategy": "first",
                    "deployments": [
                        {
                            "provider": "gem",
                            "model": "imagen-4.0-generate-001",
                            "price": {"image": IMAGEN_RATE},
                        },
                        {"provider": "oa", "model": "dall-e-3", "price": {"image": 0.08}},
                    ],
                },
            },
        }
    )


@pytest.fixture(scope="module")
def gem() -> Iterator[FakeGemini]:
    server = FakeGemini(keys=GEM_KEYS)
    with server.running():
        yield server


@pytest.fixture(scope="module")
def vertex() -> Iterator[FakeVertex]:
    server = FakeVertex(keys=["sa-1"], project=PROJECT)
    with server.running():
        yield server


@pytest.fixture(scope="module")
def dalle() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(keys=["test-key"])
    with server.running():
        yield server


@pytest.fixture(scope="module")
def records() -> Records:
    return Records()


@pytest.fixture(scope="module")
def gw(gem: FakeGemini, vertex: FakeVertex, dalle: FakeOpenAI, records: Records) -> Iterator[GatewayServer]:
    with GatewayServer(config(gem, vertex, dalle), extra_plugins=(records,)) as server:
        yield server


_CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def clean(gem: FakeGemini, vertex: FakeVertex, dalle: FakeOpenAI) -> Iterator[None]:
    for fake in (gem, vertex, dalle):
        fake.reset()
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()
    for fake in (gem, vertex, dalle):
        assert fake.violations == []


def client(gw: GatewayServer) -> openai.OpenAI:
    made = openai.OpenAI(base_url=gw.url + "/v1", api_key=GATEWAY_KEY, max_retries=0)
    _CLIENTS.append(made)
    return made


def images(answer: Any) -> list[bytes]:
    return [base64.b64decode(item.b64_json) for item in answer.data]


# --- served ---------------------------------------------------------------------------------------


def test_imagen_on_gemini_makes_n_images_charged_per_image(
    gw: GatewayServer, gem: FakeGemini, records: Records
) -> None:
    raw = client(gw).images.with_raw_response.generate(
        model="imagen", prompt="a red truck at dawn", n=3, size="1792x1024", quality="hd"
    )
    answer = raw.parse()
    assert images(answer) == [fake_image("a red truck at dawn", i) for i in range(3)]
    assert answer.usage is None
    (received,) = gem.requests
    assert received.path == "/v1beta/models/imagen-4.0-generate-001:predict"
    assert received.api_key in GEM_KEYS
    assert received.json == {
        "instances": [{"prompt": "a red truck at dawn"}],
        "parameters": {"sampleCount": 3, "includeRaiReason": True, "aspectRatio": "16:9"},
    }
    record = records.of(raw.headers["x-request-id"])
    assert record.endpoint == "images.generations" and record.status == 200
    assert record.usage is not None and (record.usage.images, record.usage.total_tokens) == (3, 0)
    assert record.cost_usd == pytest.approx(3 * IMAGEN_RATE)


def test_a_gemini_image_model_is_charged_by_its_tokens(
    gw: GatewayServer, gem: FakeGemini, records: Records
) -> None:
    raw = client(gw).images.with_raw_response.generate(
        model="flash-image", prompt="a blue kite", size="1024x1536"
    )
    answer = raw.parse()
    assert images(answer) == [fake_image("a blue kite")]
    assert answer.usage is not None and answer.usage.output_tokens == IMAGE_TOKENS
    (received,) = gem.requests
    assert received.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert received.json == {
        "contents": [{"role": "user", "parts": [{"text": "a blue kite"}]}],
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "2:3"}},
    }
    record = records.of(raw.headers["x-request-id"])
    assert record.usage is not None
    prompt = 4  # three words and one, as the fake counts
    assert (record.usage.prompt_tokens, record.usage.completion_tokens, record.usage.images) == (
        prompt,
        IMAGE_TOKENS,
        1,
    )
    # tokens reported: charged by them, not also per image
    assert record.cost_usd == pytest.approx((prompt * 0.3 + IMAGE_TOKENS * 30.0) / 1e6)


@pytest.mark.parametrize(
    ("alias", "model", "method", "cost"),
    [
        ("vx-imagen", "imagen-3.0-generate-002", "predict", 2 * VERTEX_IMAGEN_RATE),
        ("vx-flash", "gemini-2.5-flash-image", "generateContent", None),
    ],
)
def test_vertex_serves_both_with_a_bearer_token(
    gw: GatewayServer,
    vertex: FakeVertex,
    records: Records,
    alias: str,
    model: str,
    method: str,
    cost: float | None,
) -> None:
    n = 2 if method == "predict" else 1
    raw = client(gw).images.with_raw_response.generate(model=alias, prompt="a lighthouse", n=n)
    assert images(raw.parse()) == [fake_image("a lighthouse", i) for i in range(n)]
    (received,) = vertex.requests
    assert received.path == f"{VERTEX_ROOT}/{model}:{method}"
    assert received.api_key == "sa-1" and received.headers["authorization"].startswith("Bearer ")
    record = records.of(raw.headers["x-request-id"])
    assert record.usage is not None and record.usage.images == n
    expected = cost if cost is not None else (3 * 0.3 + IMAGE_TOKENS * 30.0) / 1e6
    assert record.cost_usd == pytest.approx(expected)


def test_the_imagen_prompt_enhanced_by_the_upstream_is_the_revised_prompt(
    gw: GatewayServer, gem: FakeGemini
) -> None:
    enhanced = {"bytesBase64Encoded": base64.b64encode(b"img").decode(), "prompt": "a red truck, golden hour"}
    gem.answer_images_raw(RawAnswer(json.dumps({"predictions": [enhanced]}).encode()))
    answer = client(gw).images.generate(model="imagen", prompt="a red truck")
    assert answer.data is not None and answer.data[0].revised_prompt == "a red truck, golden hour"


# --- failover -------------------------------------------------------------------------------------


def test_a_rate_limited_key_fails_over_to_the_next(
    gem: FakeGemini, vertex: FakeVertex, dalle: FakeOpenAI
) -> None:
    gem.inject(Fault(kind="rate_limit", times=1))
    with (
        GatewayServer(config(gem, vertex, dalle)) as own,
        openai.OpenAI(base_url=own.url + "/v1", api_key=GATEWAY_KEY, max_retries=0) as c,
    ):
        raw = c.images.with_raw_response.generate(model="imagen", prompt="a boat")
    assert raw.http_response.status_code == 200 and raw.headers["x-truckllm-attempts"] == "2"
    first, second = gem.requests
    assert first.status == 429 and second.status == 200
    assert first.api_key != second.api_key and first.body == second.body


def test_an_overloaded_provider_fails_over_to_vertex(
    gem: FakeGemini, vertex: FakeVertex, dalle: FakeOpenAI
) -> None:
    gem.inject(Fault(kind="overloaded", times=-1))
    with (
        GatewayServer(config(gem, vertex, dalle)) as own,
        openai.OpenAI(base_url=own.url + "/v1", api_key=GATEWAY_KEY, max_retries=0) as c,
    ):
        raw = c.images.with_raw_response.generate(model="any-imagen", prompt="a boat", n=2)
    assert raw.headers["x-truckllm-provider"] == "vx"
    assert images(raw.parse()) == [fake_image("a boat", i) for i in range(2)]
    assert all(r.status == 503 for r in gem.requests) and gem.requests
    (served,) = vertex.requests
    assert served.json["parameters"]["sampleCount"] == 2


def test_a_url_answer_is_served_by_a_provider_that_can_give_one(
    gw: GatewayServer, gem: FakeGemini, dalle: FakeOpenAI
) -> None:
    answer = client(gw).images.generate(model="imagen-or-dalle", prompt="a fox", response_format="url")
    assert answer.data is not None and answer.data[0].url
    assert gem.requests == [] and dalle.requests[0].json["model"] == "dall-e-3"


# --- refused --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "extra", "param"),
    [
        ("imagen", {"response_format": "url"}, "response_format"),
        ("flash-image", {"response_format": "url"}, "response_format"),
        ("imagen", {"n": 5}, "n"),
        ("vx-imagen", {"n": 5}, "n"),
        ("flash-image", {"n": 2}, "n"),
        ("vx-flash", {"n": 2}, "n"),
        ("imagen", {"stream": True}, "stream"),
        ("flash-image", {"stream": True, "partial_images": 1}, "stream"),
        ("imagen", {"background": "transparent"}, "background"),
        ("imagen", {"output_format": "webp"}, "output_format"),
        ("flash-image", {"output_format": "jpeg"}, "output_format"),
        ("imagen", {"size": "00x512"}, "size"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_naming_the_field_before_any_call(
    gw: GatewayServer, gem: FakeGemini, vertex: FakeVertex, alias: str, extra: dict[str, Any], param: str
) -> None:
    body = {"model": alias, "prompt": "a cat", **extra}
    answer = httpx.post(
        gw.url + "/v1/images/generations", json=body, headers={"authorization": f"Bearer {GATEWAY_KEY}"}
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert gem.requests == [] and vertex.requests == []


@pytest.mark.parametrize(
    ("alias", "reply", "reason"),
    [
        ("imagen", Reply(blocked=True), "filtered out"),
        ("vx-imagen", Reply(blocked=True), "filtered out"),
        ("flash-image", Reply(blocked=True, finish="PROHIBITED_CONTENT"), "PROHIBITED_CONTENT"),
        ("flash-image", Reply(finish="IMAGE_SAFETY"), "IMAGE_SAFETY"),
    ],
)
def test_a_safety_block_is_a_400_with_the_reason(
    gw: GatewayServer,
    gem: FakeGemini,
    vertex: FakeVertex,
    records: Records,
    alias: str,
    reply: Reply,
    reason: str,
) -> None:
    (vertex if alias.startswith("vx") else gem).script(reply)
    with pytest.raises(openai.BadRequestError) as refused:
        client(gw).images.generate(model=alias, prompt="something forbidden")
    assert refused.value.code == "content_policy_violation" and reason in refused.value.message
    assert len((vertex if alias.startswith("vx") else gem).requests) == 1  # not tried elsewhere


# --- hostile answers ------------------------------------------------------------------------------

_PNG = base64.b64encode(b"\x89PNG-x").decode()


@pytest.mark.parametrize(
    ("alias", "body"),
    [
        pytest.param("imagen", b"{}", id="imagen-no-image"),
        pytest.param("imagen", b'{"predictions": []}', id="imagen-empty"),
        pytest.param("imagen", b'{"predictions": [{"bytesBase64Encoded": "%%%"}]}', id="imagen-bad-base64"),
        pytest.param(
            "imagen",
            json.dumps({"predictions": [{"bytesBase64Encoded": _PNG}] * 2}).encode(),
            id="imagen-more-than-asked",
        ),
        pytest.param("imagen", b"<html>gateway timeout</html>", id="not-json"),
        pytest.param("flash-image", b'{"candidates": [{"finishReason": "STOP"}]}', id="flash-no-image"),
        pytest.param(
            "flash-image",
            json.dumps(
                {
                    "candidates": [
                        {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "!"}}]}}
                    ]
                }
            ).encode(),
            id="flash-bad-base64",
        ),
        pytest.param(
            "flash-image",
            json.dumps(
                {
                    "candidates": [
                        {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": _PNG}}]}}
                    ],
                    "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 10**40},
                }
            ).encode(),
            id="flash-huge-tokens",
        ),
    ],
)
def test_a_hostile_answer_is_a_502_bad_response_and_charges_nothing(
    gw: GatewayServer, gem: FakeGemini, records: Records, alias: str, body: bytes
) -> None:
    gem.answer_images_raw(RawAnswer(body, times=-1))
    answer = httpx.post(
        gw.url + "/v1/images/generations",
        json={"model": alias, "prompt": "a cat"},
        headers={"authorization": f"Bearer {GATEWAY_KEY}"},
    )
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["code"] in (None, "bad_response"), answer.text
    record = records.of(answer.headers["x-request-id"])
    assert record.status == 502 and not record.cost_usd
