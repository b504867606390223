"""Image generations and moderations end to end: the official openai SDK -> gateway -> fake OpenAI.

What matters: the body reaches the upstream with only ``model`` rewritten; the answer comes back
as OpenAI's; each request's record counts its images (and tokens) or its call and is charged at the
deployment's unit rates; a failed key fails over; a budget reserves images x their rate before
the call; a bad request is a 400 naming the field before any upstream call; an alias whose
provider does not serve the endpoint is a 400 naming ``model``.
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
from truckllm_testing.fakes import FakeOpenAI, Fault
from truckllm_testing.fakes.openai_images import fake_image
from truckllm_testing.server import GatewayServer

KEYS = ("sk-img-aaaaaaaaaaaaaaaaaaaa", "sk-img-bbbbbbbbbbbbbbbbbbbb")
BUDGETED = "gw-images-budget-1234567890"
FREE = "gw-images-free-1234567890"
DALLE_RATES = {
    "1024x1024": 0.04,
    "1024x1024/standard": 0.04,
    "1024x1792/hd": 0.12,
    "1792x1024/hd": 0.12,
    "1024x1024/hd": 0.08,
}


class Records:
    """A throwaway plugin keeping every usage record."""

    __name__ = "throwaway-images-records"

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


def config(base_url: str) -> str:
    return f"""
routing: {{backoff: {{base: 1ms, max: 5ms}}}}
keys:
  - {{name: free, value: {FREE}}}
  - {{name: payer, value: {BUDGETED}, budget: {{usd: 0.1, period: month}}}}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys:
      - {{name: first, value: {KEYS[0]}}}
      - {{name: second, value: {KEYS[1]}}}
  ant: {{type: anthropic, base_url: http://127.0.0.1:9, keys: [{{name: a, value: sk-ant-unused}}]}}
models:
  painter:
    strategy: first
    deployments:
      - {{provider: oa, model: gpt-image-1, price: {{input: 5, output: 40, image: 0.5}}}}
  dalle:
    strategy: first
    deployments:
      - provider: oa
        model: dall-e-3
        price: {{image: 0.04, images: {json.dumps(DALLE_RATES)}}}
  tokens-only:
    deployments: [{{provider: oa, model: dall-e-2, price: {{input: 0, output: 0}}}}]
  moderator:
    strategy: first
    deployments: [{{provider: oa, model: omni-moderation-2024-09-26, price: {{request: 0.001}}}}]
  claude:
    deployments: [{{provider: ant, model: claude-sonnet-4-5, price: {{input: 3, output: 15}}}}]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=KEYS)
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def records() -> Records:
    return Records()


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI, records: Records) -> Iterator[GatewayServer]:
    with GatewayServer(config(fake.base_url), extra_plugins=(records,)) as server:
        yield server


_CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def clean(fake: FakeOpenAI) -> Iterator[None]:
    fake.reset()
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()
    assert fake.violations == []


def client(gw: GatewayServer, key: str = FREE) -> openai.OpenAI:
    made = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    _CLIENTS.append(made)  # closed after the test
    return made


def test_an_image_passes_through_with_only_model_rewritten_and_its_tokens_are_charged(
    gw: GatewayServer, fake: FakeOpenAI, records: Records
) -> None:
    raw = client(gw).images.with_raw_response.generate(
        model="painter",
        prompt="a red truck at dawn",
        size="1024x1536",
        quality="high",
        n=2,
        background="opaque",
    )
    answer = raw.parse()
    assert answer.data is not None and len(answer.data) == 2
    assert base64.b64decode(answer.data[0].b64_json or "") == fake_image("a red truck at dawn", 0)
    (received,) = fake.requests
    assert received.path == "/v1/images/generations"
    assert received.json == {
        "model": "gpt-image-1",
        "prompt": "a red truck at dawn",
        "size": "1024x1536",
        "quality": "high",
        "n": 2,
        "background": "opaque",
    }
    record = records.of(raw.headers["x-request-id"])
    assert record.endpoint == "images.generations" and record.status == 200
    assert record.usage is not None
    assert (record.usage.images, record.usage.prompt_tokens, record.usage.completion_tokens) == (2, 5, 12480)
    # tokens reported: charged by them (5 x $5 + 12,480 x $40 per million), not also per image
    assert record.cost_usd == pytest.approx((5 * 5 + 12480 * 40) / 1e6)


@pytest.mark.parametrize(
    ("size", "quality", "rate"),
    [
        ("1024x1792", "hd", 0.12),  # the table's exact tier
        ("1024x1024", None, 0.04),  # no quality asked: the size's rate
        ("1792x1024", "standard", 0.12),  # a tier the table lacks: never less than what it may be
    ],
)
def test_an_image_without_tokens_is_charged_at_its_size_and_quality(
    gw: GatewayServer, fake: FakeOpenAI, records: Records, size: str, quality: str | None, rate: float
) -> None:
    extra: dict[str, Any] = {"quality": quality} if quality else {}
    raw = client(gw).images.with_raw_response.generate(
        model="dalle",
        prompt="a lighthouse",
        size=size,
        response_format="b64_json",
        **extra,
    )
    assert raw.parse().data is not None
    assert fake.requests[0].json["model"] == "dall-e-3"
    record = records.of(raw.headers["x-request-id"])
    assert record.usage is not None and record.usage.images == 1 and record.usage.total_tokens == 0
    assert record.cost_usd == pytest.approx(rate)


def test_a_moderation_passes_through_and_is_charged_per_call(
    gw: GatewayServer, fake: FakeOpenAI, records: Records
) -> None:
    raw = client(gw).moderations.with_raw_response.create(
        model="moderator", input=["I will kill the process", "hello"]
    )
    answer = raw.parse()
    assert [r.flagged for r in answer.results] == [True, False]
    assert answer.results[0].categories.violence is True
    (received,) = fake.requests
    assert received.path == "/v1/moderations"
    assert received.json == {
        "model": "omni-moderation-2024-09-26",
        "input": ["I will kill the process", "hello"],
    }
    record = records.of(raw.headers["x-request-id"])
    assert record.endpoint == "moderations" and record.usage is not None and record.usage.requests == 1
    assert record.cost_usd == pytest.approx(0.001)


def test_a_multimodal_moderation_passes_through(gw: GatewayServer, fake: FakeOpenAI) -> None:
    parts = [
        {"type": "text", "text": "fine"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
    ]
    answer = client(gw).moderations.create(model="moderator", input=parts)  # type: ignore[arg-type]
    assert len(answer.results) == 2
    assert fake.requests[0].json["input"] == parts


@pytest.mark.parametrize("endpoint", ["images", "moderations"])
def test_a_rate_limited_key_fails_over_to_the_next(fake: FakeOpenAI, endpoint: str) -> None:
    fake.inject(Fault(kind="rate_limit", times=1))
    raw: Any
    with GatewayServer(config(fake.base_url)) as own, client(own) as c:  # its cooldown stays its own
        if endpoint == "images":
            raw = c.images.with_raw_response.generate(model="painter", prompt="a boat")
        else:
            raw = c.moderations.with_raw_response.create(model="moderator", input="a boat")
    assert raw.http_response.status_code == 200 and raw.headers["x-truckllm-attempts"] == "2"
    first, second = fake.requests
    assert first.status == 429 and second.status == 200
    assert first.api_key != second.api_key and first.body == second.body  # the same body, another key


def test_an_image_stream_passes_through_and_its_usage_is_recorded(
    gw: GatewayServer, fake: FakeOpenAI, records: Records
) -> None:
    with client(gw).images.with_streaming_response.generate(
        model="painter", prompt="a kite", stream=True, partial_images=2, quality="low", size="1024x1024"
    ) as raw:
        events = [json.loads(line[6:]) for line in raw.iter_lines() if line.startswith("data: ")]
        rid = raw.headers["x-request-id"]
    assert [e["type"] for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert fake.requests[0].json["stream"] is True and fake.requests[0].json["model"] == "gpt-image-1"
    record = records.of(rid)
    assert record.stream and record.usage is not None and record.usage.completion_tokens == 272
    assert record.usage.prompt_tokens == 2  # "a kite"
    assert record.cost_usd == pytest.approx((2 * 5 + 272 * 40) / 1e6)


def test_the_sdk_reads_an_image_stream(gw: GatewayServer) -> None:
    stream = client(gw).images.generate(model="painter", prompt="a kite", stream=True, partial_images=1)
    kinds = [event.type for event in stream]
    assert kinds == ["image_generation.partial_image", "image_generation.completed"]


def test_a_budget_reserves_every_image_at_its_rate_before_the_call(
    gw: GatewayServer, fake: FakeOpenAI
) -> None:
    """$0.10 a month: one DALL-E 3 image at $0.04 is admitted; a request whose worst case is
    over what is left never reaches the upstream."""
    payer = client(gw, BUDGETED)
    payer.images.generate(model="dalle", prompt="one", size="1024x1024", quality="standard")
    assert len(fake.requests) == 1
    with pytest.raises(openai.RateLimitError) as refused:
        payer.images.generate(model="dalle", prompt="two", size="1024x1792", quality="hd")  # $0.12
    assert refused.value.code == "budget_exceeded"
    # gpt-image-1: two images at the dearest image rate ($0.50 each) are reserved, over budget
    with pytest.raises(openai.RateLimitError):
        payer.images.generate(model="painter", prompt="many", n=2)
    assert len(fake.requests) == 1


def test_a_budgeted_key_is_refused_a_deployment_that_does_not_price_the_endpoint(
    gw: GatewayServer, fake: FakeOpenAI
) -> None:
    """dall-e-2 priced only at $0 tokens: its images could not be counted; a key without a budget
    is served."""
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(gw, BUDGETED).images.generate(model="tokens-only", prompt="x")
    assert refused.value.code == "cost_unknown" and "images.generations" in refused.value.message
    assert fake.requests == []
    assert client(gw).images.generate(model="tokens-only", prompt="x").data


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/images/generations", {"model": "painter"}, "prompt"),
        ("/v1/images/generations", {"prompt": "x"}, "model"),
        ("/v1/images/generations", {"model": "painter", "prompt": ""}, "prompt"),
        ("/v1/images/generations", {"model": "painter", "prompt": "  "}, "prompt"),
        ("/v1/images/generations", {"model": "painter", "prompt": 7}, "prompt"),
        ("/v1/images/generations", {"model": "painter", "prompt": "x" * 32001}, "prompt"),
        ("/v1/images/generations", {"model": "painter", "prompt": "x", "n": 0}, "n"),
        ("/v1/images/generations", {"model": "painter", "prompt": "x", "n": 11}, "n"),
        ("/v1/images/generations", {"model": "painter", "prompt": "x", "n": "2"}, "n"),
        ("/v1/images/generations", {"model": "painter", "prompt": "x", "size": "big"}, "size"),
        ("/v1/images/generations", {"model": "painter", "prompt": "x", "quality": 5}, "quality"),
        ("/v1/images/generations", {"model": "painter", "prompt": "x", "quality": ""}, "quality"),
        (
            "/v1/images/generations",
            {"model": "painter", "prompt": "x", "response_format": "gif"},
            "response_format",
        ),
        ("/v1/images/generations", {"model": "painter", "prompt": "x", "stream": "yes"}, "stream"),
        (
            "/v1/images/generations",
            {"model": "painter", "prompt": "x", "partial_images": 2},
            "partial_images",
        ),
        (
            "/v1/images/generations",
            {"model": "painter", "prompt": "x", "partial_images": 4, "stream": True},
            "partial_images",
        ),
        (
            "/v1/images/generations",
            {"model": "painter", "prompt": "x", "output_compression": 101},
            "output_compression",
        ),
        ("/v1/moderations", {"model": "moderator"}, "input"),
        ("/v1/moderations", {"input": "x"}, "model"),
        ("/v1/moderations", {"model": "moderator", "input": []}, "input"),
        ("/v1/moderations", {"model": "moderator", "input": 5}, "input"),
        ("/v1/moderations", {"model": "moderator", "input": [{"type": "audio", "audio": "x"}]}, "input"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field_before_any_upstream_call(
    gw: GatewayServer, fake: FakeOpenAI, path: str, body: dict[str, object], param: str
) -> None:
    answer = httpx.post(gw.url + path, json=body, headers={"authorization": f"Bearer {FREE}"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"].split("[")[0].split(".")[0] == param, error  # input[0].type names input
    assert error["type"] == "invalid_request_error", error
    assert fake.requests == []


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/moderations"])
def test_a_body_that_is_not_json_is_a_400(gw: GatewayServer, path: str) -> None:
    answer = httpx.post(gw.url + path, content=b"{nope", headers={"authorization": f"Bearer {FREE}"})
    assert answer.status_code == 400 and "parse the JSON body" in answer.json()["error"]["message"]


def test_an_alias_whose_provider_does_not_serve_the_endpoint_is_a_400_naming_model(gw: GatewayServer) -> None:
    with pytest.raises(openai.BadRequestError) as moderation:
        client(gw).moderations.create(model="claude", input="hello")
    assert moderation.value.param == "model" and "moderations" in moderation.value.message
    with pytest.raises(openai.BadRequestError) as image:
        client(gw).images.generate(model="claude", prompt="hello")
    assert image.value.param == "model" and "images.generations" in image.value.message


def test_an_unknown_alias_is_a_404(gw: GatewayServer) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client(gw).images.generate(model="nope", prompt="hello")
    assert missing.value.code == "model_not_found"
