"""Files and batches through the gateway with the official ``openai`` SDK, against a fake OpenAI
with two accounts: ownership, routing back to the account that holds an id, usage once."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer


def _keys(fake: FakeOpenAI, path_part: str) -> list[str | None]:
    return [r.api_key for r in fake.requests if path_part in r.path]


def test_upload_create_and_every_later_call_on_the_same_account(
    gateway: GatewayServer, clean: FakeOpenAI, records: Any, kit: Any
) -> None:
    team = kit.client(gateway)
    uploaded = [
        team.files.create(file=("in.jsonl", kit.batch_file("gpt")), purpose="batch") for _ in range(2)
    ]
    upload_keys = [r.api_key for r in clean.requests if r.path == "/v1/files" and r.method == "POST"]
    assert sorted(upload_keys) == ["ok1", "ok2"]  # round-robin: each account holds one file
    # the upstream got the deployment's model, never the alias
    for stored in clean.files.values():
        models = {json.loads(line)["body"]["model"] for line in stored.content.splitlines() if line.strip()}
        assert models == {"gpt-4o"}

    for index, file in enumerate(uploaded):
        holder = upload_keys[index]
        clean.requests.clear()
        assert team.files.retrieve(file.id).id == file.id
        batch = team.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert batch.status == "validating"
        assert team.batches.retrieve(batch.id).id == batch.id
        clean.complete_batch(batch.id)
        done = team.batches.retrieve(batch.id)
        assert done.status == "completed" and done.output_file_id
        content = team.files.content(done.output_file_id).text
        assert [json.loads(line)["custom_id"] for line in content.splitlines()] == ["req-0", "req-1", "req-2"]
        assert {r.api_key for r in clean.requests} == {holder}, [(r.path, r.api_key) for r in clean.requests]


def test_another_gateway_key_gets_404_for_every_id(
    gateway: GatewayServer, clean: FakeOpenAI, kit: Any
) -> None:
    team = kit.client(gateway)
    other = kit.client(gateway, kit.other)
    file = team.files.create(file=("in.jsonl", kit.batch_file("gpt")), purpose="batch")
    batch = team.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clean.requests.clear()
    calls = [
        lambda: other.files.retrieve(file.id),
        lambda: other.files.content(file.id),
        lambda: other.files.delete(file.id),
        lambda: other.batches.retrieve(batch.id),
        lambda: other.batches.cancel(batch.id),
        lambda: other.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    # the same answer as an id that never existed
    with pytest.raises(openai.NotFoundError) as unknown:
        other.files.retrieve("file-doesnotexist")
    assert unknown.value.message.replace("file-doesnotexist", "ID") == caught_message(other, file.id)
    assert clean.requests == []  # nothing reached any account
    assert other.files.list().data == [] and other.batches.list().data == []
    assert file.id in [f.id for f in team.files.list().data]
    assert batch.id in [b.id for b in team.batches.list().data]


def caught_message(client: openai.OpenAI, file_id: str) -> str:
    """The 404 message ``client`` gets for ``file_id``, with the id replaced by ``ID``."""
    try:
        client.files.retrieve(file_id)
    except openai.NotFoundError as exc:
        return exc.message.replace(file_id, "ID")
    raise AssertionError("no 404")


def test_usage_is_charged_once_at_the_batch_price(
    gateway: GatewayServer, clean: FakeOpenAI, records: Any, kit: Any
) -> None:
    team = kit.client(gateway)
    file = team.files.create(file=("in.jsonl", kit.batch_file("gpt", n=4)), purpose="batch")
    batch = team.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    team.batches.retrieve(batch.id)
    gateway.call(_idle())
    assert sum((r.usage.prompt_tokens if r.usage else 0) for r in records.records) == 0  # nothing before
    clean.complete_batch(batch.id)
    for _ in range(3):
        assert team.batches.retrieve(batch.id).status == "completed"
    team.batches.cancel(batch.id)  # a finished batch: answered, never charged again
    gateway.call(_idle())
    billed = records.of("batches.usage")
    assert len(billed) == 1
    prompt, completion = clean.batch_usage_of(batch.id)
    usage = billed[0].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (prompt, completion)
    full = (prompt * kit.price["input"] + completion * kit.price["output"]) / 1_000_000
    assert billed[0].cost_usd == pytest.approx(full * 0.5)
    assert billed[0].gateway_key == "team" and billed[0].alias == "gpt"


async def _idle() -> None:
    """Let the gateway's background queue hand its records to ``store_usage``."""
    import asyncio

    for _ in range(20):
        await asyncio.sleep(0.01)
