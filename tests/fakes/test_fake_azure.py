"""The fake Azure OpenAI resource speaks Azure's wire format, as the official ``AzureOpenAI``
client reads it: deployment URLs, ``api-version``, ``api-key`` or Entra ID bearer tokens,
content-filter annotations and refusals, the Responses API and the v1 endpoint."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from truckllm_testing.fakes import Fault, Reply, ToolCall
from truckllm_testing.fakes.azure import FakeAzure

USER = [{"role": "user", "content": "what is the weather in Paris today"}]
VERSION = "2025-04-01-preview"


Clients = Callable[..., openai.AzureOpenAI]


@pytest.fixture
def azure() -> Iterator[Clients]:
    """Makes ``AzureOpenAI`` clients of a fake (``azure(fake, api_key=...)`` or
    ``azure_ad_token=``), closed at the end of the test."""
    made: list[openai.AzureOpenAI] = []

    def make(fake: FakeAzure, **auth: Any) -> openai.AzureOpenAI:
        client = openai.AzureOpenAI(azure_endpoint=fake.base_url, api_version=VERSION, max_retries=0, **auth)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A plain POST; ``(status, JSON answer)``."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as failure:
        return failure.code, json.loads(failure.read())


def test_chat_stream_and_embeddings_through_deployment_urls(azure: Clients) -> None:
    with FakeAzure(keys=["k1"]).running() as fake:
        client = azure(fake, api_key="k1")
        reply = client.chat.completions.create(model="my-gpt4o", messages=USER)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "echo: what is the weather in Paris today"
        received = fake.requests[-1]
        assert received.path == "/openai/deployments/my-gpt4o/chat/completions"
        assert received.query == {"api-version": VERSION}
        assert received.headers["api-key"] == "k1" and "authorization" not in received.headers
        assert received.model == "my-gpt4o"
        raw = json.loads(client.chat.completions.with_raw_response.create(model="d", messages=USER).text)  # type: ignore[arg-type]
        assert raw["prompt_filter_results"][0]["content_filter_results"]["hate"] == {
            "filtered": False,
            "severity": "safe",
        }
        assert raw["choices"][0]["content_filter_results"]["violence"]["filtered"] is False

        fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
        arguments, usage, chunks = "", None, []
        for chunk in client.chat.completions.create(
            model="my-gpt4o",
            messages=USER,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        ):
            chunks.append(chunk)
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    arguments += call.function.arguments or "" if call.function else ""
            usage = chunk.usage or usage
        assert arguments == '{"city":"Paris"}'
        assert usage is not None and usage.total_tokens > 0
        assert chunks[0].choices == [] and chunks[0].id == ""  # Azure's prompt_filter_results chunk

        vectors = client.embeddings.create(model="my-embedder", input="hi")
        assert len(vectors.data[0].embedding) == 8
        assert fake.requests[-1].path == "/openai/deployments/my-embedder/embeddings"
        assert fake.violations == []


def test_entra_bearer_tokens_and_azure_401s(azure: Clients) -> None:
    with FakeAzure(keys=["k1"], tokens=["entra-token-1"]).running() as fake:
        reply = azure(fake, azure_ad_token="entra-token-1").chat.completions.create(
            model="d",
            messages=USER,  # type: ignore[arg-type]
        )
        assert reply.choices[0].message.content
        assert fake.requests[-1].headers["authorization"] == "Bearer entra-token-1"
        with pytest.raises(openai.AuthenticationError) as bad_token:
            azure(fake, azure_ad_token="stale").chat.completions.create(model="d", messages=USER)  # type: ignore[arg-type]
        assert "Access token is missing, invalid" in str(bad_token.value)
        with pytest.raises(openai.AuthenticationError) as bad_key:
            azure(fake, api_key="k2").chat.completions.create(model="d", messages=USER)  # type: ignore[arg-type]
        assert "invalid subscription key" in str(bad_key.value)
        assert bad_key.value.code == "401"
        # the bearer token is no api-key, and an api-key is no bearer token
        status, _ = post(
            f"{fake.base_url}/openai/deployments/d/chat/completions?api-version={VERSION}",
            {"messages": USER},
            {"api-key": "entra-token-1"},
        )
        assert status == 401


def test_api_version_is_required_and_checked(azure: Clients) -> None:
    with FakeAzure(keys=["k1"]).running() as fake:
        url = f"{fake.base_url}/openai/deployments/d/chat/completions"
        status, answer = post(url, {"messages": USER}, {"api-key": "k1"})
        assert status == 400 and "api-version" in answer["error"]["message"]
        status, answer = post(url + "?api-version=1999-01-01", {"messages": USER}, {"api-key": "k1"})
        assert status == 400 and "API version not supported" in answer["error"]["message"]
        # the classic Responses API needs a preview version that has it
        status, answer = post(
            f"{fake.base_url}/openai/responses?api-version=2024-10-21",
            {"model": "d", "input": "hi"},
            {"api-key": "k1"},
        )
        assert status == 400 and "Responses API" in answer["error"]["message"]
        # no model in the body: the deployment names it
        status, answer = post(url + f"?api-version={VERSION}", {"messages": USER}, {"api-key": "k1"})
        assert status == 200 and answer["model"] == "d"
        assert len(fake.violations) == 3


def test_content_filter_refusal_and_filtered_answer(azure: Clients) -> None:
    with FakeAzure(keys=["k1"]).running() as fake:
        client = azure(fake, api_key="k1")
        fake.inject(Fault(kind="content_filter"))
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="d", messages=USER)  # type: ignore[arg-type]
        error = refused.value.body
        assert isinstance(error, dict) and error["code"] == "content_filter"
        assert error["innererror"]["content_filter_result"]["hate"] == {"filtered": True, "severity": "high"}
        fake.script(Reply(text="partial", finish="content_filter"))
        reply = client.chat.completions.with_raw_response.create(model="d", messages=USER)  # type: ignore[arg-type]
        choice = json.loads(reply.text)["choices"][0]
        assert choice["finish_reason"] == "content_filter"
        assert choice["content_filter_results"]["hate"]["filtered"] is True


def test_rate_limit_says_when_to_retry(azure: Clients) -> None:
    with FakeAzure(keys=["k1"]).running() as fake:
        fake.inject(Fault(kind="rate_limit", retry_after=3))
        with pytest.raises(openai.RateLimitError) as limited:
            azure(fake, api_key="k1").chat.completions.create(model="d", messages=USER)  # type: ignore[arg-type]
        assert limited.value.response.headers["retry-after"] == "3"
        assert limited.value.response.headers["retry-after-ms"] == "3000"
        assert "Please retry after 3 seconds" in str(limited.value)


def test_unknown_deployment_is_404(azure: Clients) -> None:
    with FakeAzure(keys=["k1"], models=["known"]).running() as fake:
        with pytest.raises(openai.NotFoundError) as missing:
            azure(fake, api_key="k1").chat.completions.create(model="other", messages=USER)  # type: ignore[arg-type]
        assert missing.value.code == "DeploymentNotFound"


def test_responses_api_classic_and_v1(azure: Clients) -> None:
    with FakeAzure(keys=["k1"]).running() as fake:
        client = azure(fake, api_key="k1")
        response = client.responses.create(model="my-gpt4o", input="say hi")
        assert response.output_text.startswith("echo: say hi")
        assert fake.requests[-1].path == "/openai/responses"
        assert fake.requests[-1].query == {"api-version": VERSION}
        assert client.responses.retrieve(response.id).id == response.id
        assert fake.requests[-1].path == f"/openai/responses/{response.id}"
        events = [event.type for event in client.responses.create(model="my-gpt4o", input="hi", stream=True)]
        assert events[0] == "response.created" and events[-1] == "response.completed"

        v1 = openai.OpenAI(api_key="k1", base_url=f"{fake.base_url}/openai/v1", max_retries=0)
        v1.chat.completions.create(model="my-gpt4o", messages=USER)  # type: ignore[arg-type]
        assert fake.requests[-1].path == "/openai/v1/chat/completions" and fake.requests[-1].query == {}
        assert v1.responses.create(model="my-gpt4o", input="hi").status == "completed"
        assert fake.requests[-1].path == "/openai/v1/responses"
        v1.close()
        assert fake.violations == []


def test_managed_identity_tokens_from_azure_identity(azure: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import ManagedIdentityCredential

    now = [1_900_000_000.0]
    with FakeAzure(keys=["k1"], token_lifetime=600, clock=lambda: now[0]).running() as fake:
        monkeypatch.setenv("IDENTITY_ENDPOINT", fake.identity_endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", fake.identity_header)
        with ManagedIdentityCredential() as credential:
            token = credential.get_token("https://cognitiveservices.azure.com/.default")
        assert token.expires_on == 1_900_000_600 and fake.issued == {token.token: 1_900_000_600.0}
        reply = azure(fake, azure_ad_token=token.token).chat.completions.create(model="d", messages=USER)  # type: ignore[arg-type]
        assert reply.choices[0].message.content
        now[0] += 601  # the token expired
        with pytest.raises(openai.AuthenticationError):
            azure(fake, azure_ad_token=token.token).chat.completions.create(model="d", messages=USER)  # type: ignore[arg-type]
        monkeypatch.setenv("IDENTITY_HEADER", "wrong")
        with ManagedIdentityCredential() as credential, pytest.raises(Exception, match=r"401|Unauthorized"):
            credential.get_token("https://cognitiveservices.azure.com/.default")
        assert fake.violations == []
