"""Image generations on Azure OpenAI end to end (openai SDK -> gateway -> fake Azure): the
deployment URL with its api-version (or the v1 endpoint), the body passed through, the image
count charged; an image stream and a moderation (which Azure OpenAI does not offer) are 400s."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from truckllm_testing.fakes.azure import FakeAzure
from truckllm_testing.server import GatewayServer

CONFIG = """
providers:
  az: {{type: azure, base_url: {base_url}, options: {options}, keys: [{{name: main, value: key-main}}]}}
models:
  dalle:
    deployments: [{{provider: az, model: dall-e-3, price: {{image: 0.04, images: {{"1024x1792/hd": 0.12}}}}}}]
"""


@pytest.fixture(scope="module", params=["deployments", "v1"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAzure]:
    upstream = FakeAzure(keys=("key-main",))
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def client(fake: FakeAzure, api: str) -> Iterator[openai.OpenAI]:
    text = CONFIG.format(base_url=fake.base_url, options=json.dumps({"api": api}))
    with (
        GatewayServer(text) as gw,
        openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as made,
    ):
        yield made


@pytest.fixture(autouse=True)
def clean(fake: FakeAzure) -> Iterator[None]:
    fake.reset()
    yield
    assert fake.violations == []


def test_an_image_goes_to_the_deployment(client: openai.OpenAI, fake: FakeAzure, api: str) -> None:
    answer = client.images.generate(model="dalle", prompt="a harbour", size="1024x1792", quality="hd")
    assert answer.data and answer.data[0].url and answer.data[0].revised_prompt == "a harbour"
    (received,) = fake.requests
    if api == "deployments":
        assert received.path == "/openai/deployments/dall-e-3/images/generations"
        assert "api-version" in received.query
    else:
        assert received.path == "/openai/v1/images/generations"
    assert received.headers["api-key"] == "key-main"
    assert received.json == {"model": "dall-e-3", "prompt": "a harbour", "size": "1024x1792", "quality": "hd"}


def test_an_image_stream_is_refused_naming_stream(client: openai.OpenAI, fake: FakeAzure) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="dalle", prompt="x", stream=True)
    assert refused.value.param == "stream"
    assert fake.requests == []


def test_moderations_are_not_served_by_azure(client: openai.OpenAI, fake: FakeAzure) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.moderations.create(model="dalle", input="x")
    assert refused.value.param == "model" and "moderations" in refused.value.message
