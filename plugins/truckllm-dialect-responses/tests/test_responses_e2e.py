"""End to end over plain HTTP: routes, errors in OpenAI's shape, usage records, token counts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest

from truckllm_testing.fakes import Reply
from truckllm_testing.server import GatewayServer


def _post(gateway: GatewayServer, path: str, body: Any, key: str, stream: bool = False) -> httpx.Response:
    return httpx.post(gateway.url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=20)


def _streamed(client: openai.OpenAI) -> Any:
    with client.responses.stream(model="claude", input="count me too") as stream:
        return stream.get_final_response()


def _records_for(records: Any, count: int) -> list[Any]:
    """The last ``count`` records of the module's gateway (written off the response path)."""
    deadline = time.monotonic() + 10
    while len(records.records) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return list(records.records[-count:])


def test_usage_records_count_a_translated_request_like_chat(
    gateway: GatewayServer, fresh: Any, records: Any, kit: Any
) -> None:
    """Peer bug: streamed Responses were not counted. Whole and streamed both make a record with
    the provider's tokens, as a chat request does."""
    kit.need("anthropic")
    fresh.anthropic.script(
        Reply(text="counted", prompt_tokens=120, completion_tokens=9, cached_tokens=20, times=2)
    )
    before = len(records.records)
    whole = _post(gateway, "/v1/responses", {"model": "claude", "input": "count me"}, kit.key)
    assert whole.status_code == 200, whole.text
    usage = whole.json()["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (120, 9, 129)
    assert usage["input_tokens_details"]["cached_tokens"] == 20
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=kit.key, max_retries=0) as client:
        final = _streamed(client)
    assert final.usage is not None and final.usage.input_tokens == 120
    whole_record, stream_record = _records_for(records, before + 2)[-2:]
    for record, streamed in ((whole_record, False), (stream_record, True)):
        assert record.dialect == "responses" and record.endpoint == "chat" and record.status == 200
        assert record.alias == "claude" and record.gateway_key == "team" and record.stream is streamed
        assert record.provider == "ant" and record.usage is not None
        assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (120, 9)
        assert record.usage.cached_tokens == 20


def test_input_tokens_route_is_count_tokens_and_get_of_it_is_an_id(
    gateway: GatewayServer, fresh: Any, kit: Any
) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=kit.key, max_retries=0) as client:
        counted = client.responses.input_tokens.count(
            model="counted", instructions="Be terse.", input="how many tokens is this?"
        )
        assert counted.object == "response.input_tokens" and counted.input_tokens == 102  # system + user
        first = client.responses.create(model="claude", input="one") if kit.has("anthropic") else None
        if first is not None:  # a count continues a stored conversation too
            again = client.responses.input_tokens.count(
                model="counted", previous_response_id=first.id, input="two"
            )
            assert again.input_tokens == 103
    got = httpx.get(
        gateway.url + "/v1/responses/input_tokens", headers={"authorization": f"Bearer {kit.key}"}
    )
    assert (
        got.status_code == 404
        and got.json()["error"]["message"] == "Response with id 'input_tokens' not found."
    )


def test_local_routes_check_the_gateway_key(gateway: GatewayServer, kit: Any) -> None:
    for method, path in (
        ("GET", "/v1/responses/resp_1"),
        ("DELETE", "/v1/responses/resp_1"),
        ("POST", "/v1/responses/resp_1/cancel"),
        ("GET", "/v1/responses/resp_1/input_items"),
    ):
        answer = httpx.request(method, gateway.url + path, headers={"authorization": "Bearer wrong"})
        assert answer.status_code == 401, (method, path)
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_cancel_and_bad_input_items_queries_over_http(gateway: GatewayServer, fresh: Any, kit: Any) -> None:
    kit.need("anthropic")
    auth = {"authorization": f"Bearer {kit.key}"}
    created = _post(gateway, "/v1/responses", {"model": "claude", "input": "hi"}, kit.key).json()
    cancel = httpx.post(gateway.url + f"/v1/responses/{created['id']}/cancel", headers=auth)
    assert cancel.status_code == 400 and cancel.json()["error"]["type"] == "invalid_request_error"
    for query, param in (("limit=0", "limit"), ("order=up", "order"), ("after=msg_nope", "after")):
        bad = httpx.get(gateway.url + f"/v1/responses/{created['id']}/input_items?{query}", headers=auth)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param
    page = httpx.get(
        gateway.url + f"/v1/responses/{created['id']}/input_items?include=x", headers=auth
    ).json()
    assert page["object"] == "list" and [i["role"] for i in page["data"]] == ["user"]
    assert page["data"][0]["content"] == [{"type": "input_text", "text": "hi"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "no model"}, "model"),
        ({"model": "claude", "input": [{"type": "item_reference", "id": "msg_1"}]}, None),
        ({"model": "claude", "input": "x", "previous_response_id": "resp_unknown"}, "previous_response_id"),
    ],
)
def test_bad_requests_are_openai_shaped(
    gateway: GatewayServer, fresh: Any, kit: Any, body: Any, param: str | None
) -> None:
    kit.need("anthropic")
    answer = _post(gateway, "/v1/responses", body, kit.key)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if param is not None:
        assert error["param"] == param
    assert fresh.anthropic.requests == []  # refused before any upstream call


def test_a_stream_is_stored_before_its_last_bytes(gateway: GatewayServer, fresh: Any, kit: Any) -> None:
    """Peer bug: streamed Responses were not stored. The completed response is there as soon as the
    stream has been read."""
    kit.need("gemini")
    auth = {"authorization": f"Bearer {kit.key}"}
    with httpx.stream(
        "POST", gateway.url + "/v1/responses", json={"model": "gem", "input": "hi", "stream": True},
        headers=auth, timeout=20,
    ) as answer:  # fmt: skip
        frames = b"".join(answer.iter_bytes())
    events = [json.loads(line[6:]) for line in frames.split(b"\n") if line.startswith(b"data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed["type"] == "response.completed"
    got = httpx.get(gateway.url + f"/v1/responses/{completed['response']['id']}", headers=auth)
    assert got.status_code == 200 and got.json() == completed["response"]


def test_conversations_live_in_the_runtime_store_across_restarts(
    upstreams: Any, fresh: Any, kit: Any, tmp_path: Path
) -> None:
    kit.need("anthropic")
    store_plugin = pytest.importorskip("truckllm_store_file")
    import truckllm_dialect_responses as dialect_plugin
    import truckllm_provider_anthropic as provider_plugin

    config = f"""
keys: [{{name: team, value: {kit.key}}}]
store: {{type: file, path: {tmp_path / "state.db"}}}
providers:
  ant: {{type: anthropic, base_url: {upstreams.anthropic.base_url}, keys: [{{name: a, value: ak}}]}}
models:
  claude: {{deployments: [{{provider: ant, model: claude-sonnet-4-5-20250929}}]}}
"""
    plugins = (dialect_plugin, provider_plugin, store_plugin)
    with GatewayServer(config, autoload=False, extra_plugins=plugins) as gw:
        first = _post(gw, "/v1/responses", {"model": "claude", "input": "remember me"}, kit.key).json()
    with GatewayServer(config, autoload=False, extra_plugins=plugins) as gw:
        auth = {"authorization": f"Bearer {kit.key}"}
        assert httpx.get(gw.url + f"/v1/responses/{first['id']}", headers=auth).json() == first
        body = {"model": "claude", "previous_response_id": first["id"], "input": "who?"}
        assert _post(gw, "/v1/responses", body, kit.key).status_code == 200
    sent = json.dumps(fresh.anthropic.requests[-1].json)
    assert "remember me" in sent and "echo: remember me" in sent
