"""Where the azure plugin sends each request, with which credential header and which body."""

from __future__ import annotations

import json
from typing import Any

import pytest
import truckllm_provider_azure as plugin

from truckllm.errors import UnsupportedRequest

from .conftest import Kit

MESSAGES = [{"role": "user", "content": "hi"}]
VERSION = plugin.DEFAULT_API_VERSION


def test_chat_goes_to_the_deployment_url_with_api_version_and_api_key(kit: type[Kit]) -> None:
    body = {"model": "alias", "messages": MESSAGES, "temperature": 0.25, "user": "u1"}
    request = kit.chat(body)
    sent = plugin.transform_request(kit.provider(), "my-gpt4o", request, "secret-key")
    assert sent is not None
    assert sent.url == f"{kit.endpoint}/openai/deployments/my-gpt4o/chat/completions?api-version={VERSION}"
    assert sent.headers["api-key"] == "secret-key" and "authorization" not in sent.headers
    # byte for byte but model, which names the deployment as Azure's own client sends it
    assert json.loads(sent.body) == {**body, "model": "my-gpt4o"}
    assert sent.body == request.encode(model="my-gpt4o")


@pytest.mark.parametrize(
    ("base_url", "api"),
    [
        ("https://contoso.openai.azure.com/", "deployments"),
        ("https://contoso.openai.azure.com/openai", "deployments"),
        ("https://contoso.openai.azure.com/openai/v1", "v1"),
        ("https://contoso.openai.azure.com", "v1"),
    ],
)
def test_the_endpoint_may_be_given_with_its_api_root(kit: type[Kit], base_url: str, api: str) -> None:
    sent = plugin.transform_request(
        kit.provider(base_url.rstrip("/"), api=api), "d", kit.chat({"model": "a", "messages": MESSAGES}), "k"
    )
    assert sent is not None
    if api == "v1":
        assert sent.url == f"{kit.endpoint}/openai/v1/chat/completions"
        assert json.loads(sent.body)["model"] == "d"
    else:
        assert sent.url.startswith(f"{kit.endpoint}/openai/deployments/d/chat/completions?")


def test_embeddings_and_api_version_option(kit: type[Kit]) -> None:
    request = kit.chat({"model": "emb", "input": "hello"}, endpoint="embeddings")
    sent = plugin.transform_request(kit.provider(api_version="2024-10-21"), "ada-2", request, "k")
    assert sent is not None
    assert sent.url == f"{kit.endpoint}/openai/deployments/ada-2/embeddings?api-version=2024-10-21"


def test_v1_takes_an_optional_api_version(kit: type[Kit]) -> None:
    request = kit.chat({"model": "a", "messages": MESSAGES})
    sent = plugin.transform_request(kit.provider(api="v1", api_version="preview"), "d", request, "k")
    assert sent is not None and sent.url == f"{kit.endpoint}/openai/v1/chat/completions?api-version=preview"


def test_entra_tokens_are_bearer(kit: type[Kit]) -> None:
    sent = plugin.transform_request(
        kit.provider(auth="entra"), "d", kit.chat({"model": "a", "messages": MESSAGES}), "eyJ0eXAi.token"
    )
    assert sent is not None
    assert sent.headers["authorization"] == "Bearer eyJ0eXAi.token" and "api-key" not in sent.headers


def test_responses_requests_pass_through_to_azures_responses_api(kit: type[Kit]) -> None:
    body: dict[str, Any] = {"model": "alias", "input": "hi", "reasoning": {"effort": "low"}, "stream": True}
    request = kit.responses(body)
    sent = plugin.transform_request(kit.provider(), "my-gpt5", request, "k")
    assert sent is not None and sent.stream
    assert sent.url == f"{kit.endpoint}/openai/responses?api-version={VERSION}"
    assert sent.body == request.with_model("my-gpt5")
    count = plugin.transform_request(
        kit.provider(), "my-gpt5", kit.responses(body, endpoint="count_tokens"), "k"
    )
    assert (
        count is not None
        and count.url == f"{kit.endpoint}/openai/responses/input_tokens?api-version={VERSION}"
    )
    v1 = plugin.transform_request(kit.provider(api="v1"), "my-gpt5", request, "k")
    assert v1 is not None and v1.url == f"{kit.endpoint}/openai/v1/responses"


def test_background_polls_and_cancels(kit: type[Kit]) -> None:
    poll = kit.responses({"response_id": "resp_abc", "bill": True}, endpoint="responses.retrieve")
    sent = plugin.transform_request(kit.provider(), "d", poll, "k")
    assert sent is not None and sent.method == "GET"
    assert sent.url == f"{kit.endpoint}/openai/responses/resp_abc?api-version={VERSION}"
    cancel = kit.responses({"response_id": "resp_abc", "bill": False}, endpoint="responses.cancel")
    sent = plugin.transform_request(kit.provider(), "d", cancel, "k")
    assert sent is not None and sent.method == "POST"
    assert sent.url == f"{kit.endpoint}/openai/responses/resp_abc/cancel?api-version={VERSION}"


def test_chat_through_the_responses_api(kit: type[Kit]) -> None:
    sent = plugin.transform_request(
        kit.provider(chat_api="responses"), "my-gpt5", kit.chat({"model": "a", "messages": MESSAGES}), "k"
    )
    assert sent is not None
    assert sent.url == f"{kit.endpoint}/openai/responses?api-version={VERSION}"
    assert json.loads(sent.body)["model"] == "my-gpt5" and "input" in json.loads(sent.body)


@pytest.mark.parametrize("deployment", ["", ".", "..", "a/b", "a?b", "m:latest", "x" * 300, "é"])
def test_a_deployment_that_cannot_be_one_url_segment_is_refused(kit: type[Kit], deployment: str) -> None:
    with pytest.raises(UnsupportedRequest) as refused:
        plugin.transform_request(
            kit.provider(), deployment, kit.chat({"model": "a", "messages": MESSAGES}), "k"
        )
    assert refused.value.param == "model"


def test_other_provider_types_are_not_ours(kit: type[Kit]) -> None:
    other = kit.provider().__class__(name="o", type="openai", base_url="https://x")
    assert plugin.transform_request(other, "m", kit.chat({"model": "a", "messages": MESSAGES}), "k") is None


def test_options_are_checked() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"api_version": "2024-10-21&x=1"}, plugin.Options)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"api": "v2"}, plugin.Options)
    with pytest.raises(msgspec.ValidationError, match="responses_models"):
        msgspec.convert({"responses_models": "("}, plugin.Options)
