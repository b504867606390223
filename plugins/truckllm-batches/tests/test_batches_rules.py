"""The rules around files and batches: bad batch files named by line, the key's allow-list,
hostile output files never crash nor over-charge, concurrent retrieves charge once."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer


async def _idle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("overrides", "line", "words"),
    [
        ({1: {"body": {"model": "mini", "messages": []}}}, 2, "names the model 'mini'"),
        ({2: {"body": {"messages": []}}}, 3, "has no 'body.model'"),
        ({0: {"body": "not an object"}}, 1, "not a JSON object with a 'body' object"),
    ],
)
def test_a_batch_file_at_fault_is_refused_naming_the_line(
    gateway: GatewayServer, clean: FakeOpenAI, kit: Any, overrides: dict[int, Any], line: int, words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        kit.client(gateway).files.create(
            file=("in.jsonl", kit.batch_file("gpt", overrides=overrides)), purpose="batch"
        )
    assert f"Line {line} " in caught.value.message and words in caught.value.message
    assert caught.value.body["param"] == "file"  # type: ignore[index]
    assert clean.requests == []


def test_a_line_that_is_not_json_is_named(gateway: GatewayServer, clean: FakeOpenAI, kit: Any) -> None:
    content = kit.batch_file("gpt") + b"{oops\n"
    with pytest.raises(openai.BadRequestError) as caught:
        kit.client(gateway).files.create(file=("in.jsonl", content), purpose="batch")
    assert "Line 4 " in caught.value.message
    assert clean.requests == []


def test_an_alias_the_key_may_not_use_is_refused(gateway: GatewayServer, clean: FakeOpenAI, kit: Any) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        kit.client(gateway).files.create(file=("in.jsonl", kit.batch_file("mini")), purpose="batch")
    assert caught.value.body["param"] == "model"  # type: ignore[index]
    assert clean.requests == []


def test_other_purposes_name_the_alias_in_a_field_or_header(
    gateway: GatewayServer, clean: FakeOpenAI, kit: Any
) -> None:
    team = kit.client(gateway)
    with pytest.raises(openai.BadRequestError) as caught:
        team.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    assert caught.value.body["param"] == "model"  # type: ignore[index]
    by_header = team.files.create(
        file=("notes.txt", b"hello"), purpose="user_data", extra_headers={"x-truckllm-model": "gpt"}
    )
    by_field = team.files.create(
        file=("notes.txt", b"hello"), purpose="user_data", extra_body={"model": "gpt"}
    )
    assert team.files.content(by_header.id).content == b"hello"
    assert team.files.content(by_field.id).content == b"hello"
    assert team.files.delete(by_field.id).deleted
    with pytest.raises(openai.NotFoundError):
        team.files.retrieve(by_field.id)


HOSTILE = [
    b"not json at all\n",
    b'{"custom_id": "x", "response": {"status_code": 200, "body": {"usage": {"prompt_tokens": 1e308}}}}\n',
    b'{"custom_id": "x", "response": {"status_code": 200, "body": {"usage": {"prompt_tokens": 99999999999999999999999}}}}\n',
    b'{"custom_id": "x", "response": {"status_code": 200, "body": {"usage": {"prompt_tokens": -5, "completion_tokens": true}}}}\n',
    b'{"custom_id": "x", "response": {"status_code": 500, "body": {"usage": {"prompt_tokens": 1000}}}}\n',
    b"[" * 100_000 + b"\n",
    b'{"custom_id": "y", "response": {"status_code": 200, "body": {"usage": {"prompt_tokens": 7, "completion_tokens": 3}}}}\n',
]


def test_a_hostile_output_file_never_crashes_nor_over_charges(
    gateway: GatewayServer, clean: FakeOpenAI, records: Any, kit: Any
) -> None:
    team = kit.client(gateway)
    file = team.files.create(file=("in.jsonl", kit.batch_file("gpt")), purpose="batch")
    batch = team.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clean.output_override = b"".join(HOSTILE)
    clean.complete_batch(batch.id)
    assert team.batches.retrieve(batch.id).status == "completed"
    gateway.call(_idle())
    (billed,) = records.of("batches.usage")
    assert billed.usage is not None
    assert (billed.usage.prompt_tokens, billed.usage.completion_tokens) == (7, 3)  # the one sane line


def test_price_batch_sets_the_fraction(
    gateway: GatewayServer, clean: FakeOpenAI, records: Any, kit: Any
) -> None:
    team = kit.client(gateway)
    file = team.files.create(file=("in.jsonl", kit.batch_file("gpt-batch")), purpose="batch")
    batch = team.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clean.complete_batch(batch.id)
    team.batches.retrieve(batch.id)
    gateway.call(_idle())
    (billed,) = records.of("batches.usage")
    prompt, completion = clean.batch_usage_of(batch.id)
    assert billed.cost_usd == pytest.approx((prompt * 2.0 + completion * 8.0) / 1_000_000 * 0.25)


def test_many_retrieves_at_once_charge_once(
    gateway: GatewayServer, clean: FakeOpenAI, records: Any, kit: Any
) -> None:
    team = kit.client(gateway)
    file = team.files.create(file=("in.jsonl", kit.batch_file("gpt")), purpose="batch")
    batch = team.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clean.complete_batch(batch.id)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: kit.client(gateway).batches.retrieve(batch.id).status, range(16)))
    assert statuses == ["completed"] * 16
    gateway.call(_idle())
    assert len(records.of("batches.usage")) == 1


def test_cancel_and_list(gateway: GatewayServer, clean: FakeOpenAI, kit: Any) -> None:
    team = kit.client(gateway)
    file = team.files.create(file=("in.jsonl", kit.batch_file("gpt")), purpose="batch")
    batch = team.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert team.batches.cancel(batch.id).status == "cancelling"
    assert team.batches.retrieve(batch.id).status == "cancelled"
    listed = team.batches.list(limit=100).data
    assert listed[0].id == batch.id and listed[0].status == "cancelled"  # newest first, as last seen
    assert listed[0].metadata == {"job": "nightly"}
    with pytest.raises(openai.BadRequestError) as caught:
        team.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="48h")
    assert caught.value.body["param"] == "completion_window"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        team.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert missing.value.body["param"] == "input_file_id"  # type: ignore[index]
    assert json.loads(json.dumps([f.id for f in team.files.list(purpose="batch").data]))
