"""Anthropic Message Batches behind /v1/files and /v1/batches, with the official ``openai`` SDK
through a real gateway against a fake Anthropic that validates every batch request as the real
API would: upload (kept by the gateway), create, retrieve, cancel, list, content (translated,
streamed), usage charged once at the batch price (by a client's retrieve or by the poller
alone), another key's 404, hostile results."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest
import truckllm_batches
import truckllm_provider_anthropic

from truckllm_testing.conformance import wait_for
from truckllm_testing.fakes import FakeAnthropic
from truckllm_testing.server import GatewayServer

TEAM = "team-secret"
OTHER = "other-secret"
PRICE = {"input": 3.0, "output": 15.0, "batch": 0.5}


def _config(fake: FakeAnthropic) -> str:
    return f"""
keys:
  - {{name: team, value: {TEAM}}}
  - {{name: other, value: {OTHER}}}
routing: {{retries: 0, cooldown: {{failures: 1000}}}}
providers:
  ant: {{type: anthropic, base_url: {fake.base_url}, keys: [{{name: a1, value: test-key}}]}}
models:
  claude:
    deployments: [{{provider: ant, model: claude-sonnet-4-5, price: {json.dumps(PRICE)}}}]
loggers: [{{batches: {{poll_interval: 0}}}}]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    """The fake Anthropic."""
    with FakeAnthropic(keys=["test-key"]).running() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(fake: FakeAnthropic, records: Any) -> Iterator[GatewayServer]:
    """The gateway; its poller is driven by the tests (interval 0: no task)."""
    plugins = (truckllm_batches, truckllm_provider_anthropic, records)
    with GatewayServer(_config(fake), autoload=False, extra_plugins=plugins) as gw:
        yield gw


@pytest.fixture
def clean(fake: FakeAnthropic, records: Any) -> Iterator[FakeAnthropic]:
    """The fake reset before a test, and checked after it: every upstream request was valid."""
    fake.reset()
    records.records.clear()
    yield fake
    assert fake.violations == []


def _client(gateway: GatewayServer, key: str = TEAM) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0)


def _file(n: int = 3, overrides: dict[int, Any] | None = None) -> bytes:
    lines = []
    for i in range(n):
        body = {"model": "claude", "messages": [{"role": "user", "content": f"say hello {i} please"}]}
        line: dict[str, Any] = {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions"}
        line["body"] = body
        line.update((overrides or {}).get(i, {}))
        lines.append(json.dumps(line))
    return ("\n".join(lines) + "\n").encode()


def _poller(gateway: GatewayServer) -> Any:
    assert gateway.gateway is not None
    component = gateway.gateway.view.component(truckllm_batches.BatchPoller)
    assert component is not None and component.poller is not None
    return component.poller


def _asked(fake: FakeAnthropic, batch_id: str) -> int:
    """How many times the fake was asked about ``batch_id``."""
    return sum(1 for r in fake.requests if r.method == "GET" and r.path.endswith("/" + batch_id))


def _billed(records: Any) -> list[Any]:
    return [r for r in records.records if r.endpoint == "batches.usage" and r.usage is not None]


def _create(client: openai.OpenAI, n: int = 3) -> tuple[Any, Any]:
    file = client.files.create(file=("in.jsonl", _file(n)), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return file, batch


def test_upload_is_kept_by_the_gateway_and_the_batch_is_translated(
    gateway: GatewayServer, clean: FakeAnthropic
) -> None:
    team = _client(gateway)
    file = team.files.create(file=("in.jsonl", _file(3)), purpose="batch")
    assert file.purpose == "batch" and file.bytes == len(_file(3))
    assert "x_truckllm_held" not in (file.model_extra or {})
    assert clean.requests == []  # Anthropic has no files: nothing went upstream
    assert team.files.retrieve(file.id).id == file.id
    assert team.files.content(file.id).content == _file(3)  # the bytes as uploaded
    batch = team.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "7"}
    )
    assert batch.status == "in_progress" and batch.input_file_id == file.id
    assert batch.metadata == {"run": "7"} and batch.request_counts is not None
    assert batch.request_counts.total == 3
    (stored,) = clean.message_batches.values()
    assert [r["custom_id"] for r in stored.requests] == ["req-0", "req-1", "req-2"]
    assert {r["params"]["model"] for r in stored.requests} == {"claude-sonnet-4-5"}
    assert all(r["params"]["max_tokens"] > 0 for r in stored.requests)
    again = team.batches.retrieve(batch.id)
    assert again.input_file_id == file.id and again.metadata == {"run": "7"}  # kept by the gateway
    assert batch.id in [b.id for b in team.batches.list().data]


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"custom_id": "has space"}, "custom_id"),
        ({"custom_id": "x" * 65}, "custom_id"),
        ({"url": "/v1/embeddings"}, "url"),
        ({"body": {"model": "claude", "messages": "hello"}}, "chat completions"),
        ({"body": {"model": "claude", "messages": [{"role": "user", "content": "x"}], "n": 2}}, "n > 1"),
        (
            {"body": {"model": "claude", "messages": [{"role": "user", "content": "x"}], "stream": True}},
            "stream",
        ),
    ],
)
def test_a_line_anthropic_cannot_take_is_refused_at_upload_naming_it(
    gateway: GatewayServer, clean: FakeAnthropic, override: dict[str, Any], why: str
) -> None:
    team = _client(gateway)
    with pytest.raises(openai.BadRequestError) as caught:
        team.files.create(file=("in.jsonl", _file(3, {1: override})), purpose="batch")
    assert "Line 2" in caught.value.message and why in caught.value.message
    assert caught.value.body["param"] == "file"  # type: ignore[index]
    assert team.files.list().data == [] or all(f.id for f in team.files.list().data)


def test_duplicate_custom_ids_are_refused(gateway: GatewayServer, clean: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _client(gateway).files.create(
            file=("in.jsonl", _file(2, {1: {"custom_id": "req-0"}})), purpose="batch"
        )
    assert "Line 2" in caught.value.message and "twice" in caught.value.message


def test_results_are_openai_output_lines_and_usage_is_charged_once(
    gateway: GatewayServer, clean: FakeAnthropic, records: Any
) -> None:
    team = _client(gateway)
    _, batch = _create(team, 4)
    clean.end_batch(batch.id, errored=frozenset({"req-2"}))
    done = team.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id == "file-results-" + batch.id
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (4, 3, 1)
    for _ in range(2):
        team.batches.retrieve(batch.id)
    asked = _asked(clean, batch.id)
    gateway.call(_poller(gateway).poll_once())
    assert _asked(clean, batch.id) == asked  # billed: the poller does not ask again
    lines = [json.loads(line) for line in team.files.content(done.output_file_id).text.splitlines()]
    assert [line["custom_id"] for line in lines] == ["req-0", "req-1", "req-2", "req-3"]
    ok = lines[0]
    assert ok["error"] is None and ok["response"]["status_code"] == 200
    assert ok["response"]["body"]["object"] == "chat.completion"
    assert ok["response"]["body"]["choices"][0]["message"]["content"] == "echo: say hello 0 please"
    assert lines[2]["response"] is None and lines[2]["error"]["code"] == "invalid_request_error"
    assert team.files.retrieve(done.output_file_id).purpose == "batch_output"
    wait_for(lambda: len(_billed(records)) >= 1, what="the usage record")
    (billed,) = _billed(records)
    prompt, completion = clean.message_usage_of(batch.id)
    errored = clean._message(clean.message_batches[batch.id].requests[2])["usage"]
    prompt, completion = prompt - errored["input_tokens"], completion - errored["output_tokens"]
    assert (billed.usage.prompt_tokens, billed.usage.completion_tokens) == (prompt, completion)
    full = (prompt * PRICE["input"] + completion * PRICE["output"]) / 1_000_000
    assert billed.cost_usd == pytest.approx(full * 0.5)
    assert billed.gateway_key == "team" and billed.alias == "claude"


def test_the_poller_alone_charges_a_batch_no_client_retrieves(
    gateway: GatewayServer, clean: FakeAnthropic, records: Any
) -> None:
    team = _client(gateway)
    _, batch = _create(team, 2)
    poller = _poller(gateway)
    clean.end_batch(batch.id)
    gateway.call(poller.poll_once())
    assert _asked(clean, batch.id) == 1
    wait_for(lambda: len(_billed(records)) == 1, what="the poller's usage record")
    gateway.call(poller.poll_once())
    assert _asked(clean, batch.id) == 1
    team.batches.retrieve(batch.id)  # a client seeing it later: never charged again
    assert len(_billed(records)) == 1
    assert _billed(records)[0].usage.prompt_tokens == clean.message_usage_of(batch.id)[0]


def test_the_poller_backs_off_on_an_open_batch(gateway: GatewayServer, clean: FakeAnthropic) -> None:
    team = _client(gateway)
    _, batch = _create(team, 1)
    poller = _poller(gateway)
    now = [poller.clock()]
    poller.clock = lambda: now[0]
    settings = poller.settings
    poller.settings = truckllm_batches.poller.PollSettings(interval=60.0, most=900.0)
    try:
        asked = []
        for step in (0, 0, 2, 2, 2):  # waits: 2 intervals after the first ask, 4 after the second
            now[0] += poller.settings.interval * step + (1 if step else 0)
            gateway.call(poller.poll_once())
            asked.append(_asked(clean, batch.id))
        assert asked == [1, 1, 2, 2, 3]
    finally:
        del poller.clock
        poller.settings = settings


def test_cancel_maps_to_cancelling_then_cancelled(gateway: GatewayServer, clean: FakeAnthropic) -> None:
    team = _client(gateway)
    _, batch = _create(team, 2)
    cancelled = team.batches.cancel(batch.id)
    assert cancelled.status == "cancelling" and cancelled.cancelling_at is not None
    clean.end_batch(batch.id)
    done = team.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.request_counts is not None and done.request_counts.failed == 2
    lines = [json.loads(line) for line in team.files.content(done.output_file_id or "").text.splitlines()]
    assert {line["error"]["code"] for line in lines} == {"batch_cancelled"}


def test_another_key_gets_404_and_nothing_goes_upstream(gateway: GatewayServer, clean: FakeAnthropic) -> None:
    team, other = _client(gateway), _client(gateway, OTHER)
    file, batch = _create(team, 1)
    clean.end_batch(batch.id)
    output = team.batches.retrieve(batch.id).output_file_id or ""
    clean.requests.clear()
    for call in (
        lambda: other.files.retrieve(file.id),
        lambda: other.files.content(file.id),
        lambda: other.files.content(output),
        lambda: other.files.delete(file.id),
        lambda: other.batches.retrieve(batch.id),
        lambda: other.batches.cancel(batch.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert clean.requests == []
    assert team.files.delete(file.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        team.files.content(file.id)


HOSTILE = [
    b"not json\n",
    b'{"custom_id": "req-0", "result": {"type": "succeeded", "message": {"type": "message", "content": [],'
    b' "usage": {"input_tokens": 1e30, "output_tokens": -5}}}}\n',
    b'{"custom_id": "req-1", "result": {"type": "succeeded", "message": {"type": "message", "content": [],'
    b' "usage": {"input_tokens": 999999999999, "output_tokens": 3}}}}\n',
    b'{"custom_id": "req-2", "result": {"type": "mystery"}}\n',
    b'{"custom_id": {"a": 1}, "result": {"type": "errored", "error": 7}}\n',
    b"[" * 100000 + b"\n",
    b'{"custom_id": "req-3", "result": {"type": "succeeded", "message": {"type": "message", "content": [],'
    b' "usage": {"input_tokens": 10, "output_tokens": 2}}}}',
]


def test_hostile_results_never_crash_nor_over_charge(
    gateway: GatewayServer, clean: FakeAnthropic, records: Any
) -> None:
    team = _client(gateway)
    _, batch = _create(team, 4)
    clean.end_batch(batch.id)
    clean.results_override = b"".join(HOSTILE)
    done = team.batches.retrieve(batch.id)
    lines = [json.loads(line) for line in team.files.content(done.output_file_id or "").text.splitlines()]
    assert len(lines) == len(HOSTILE)
    codes = [line["error"]["code"] if line["error"] else None for line in lines]
    # not JSON; two answers (counts made sane); an unknown type; an error that is not an error
    # object; JSON nested too deeply; a sane last line without its newline
    assert codes == ["bad_response", None, None, "bad_response", "bad_response", "bad_response", None]
    wait_for(lambda: len(_billed(records)) == 1, what="the usage record")
    usage = _billed(records)[0].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (10, 2)  # only the sane line counts


def test_content_is_relayed_before_the_upstream_ends(gateway: GatewayServer, clean: FakeAnthropic) -> None:
    """A 50 MB results file: the client reads its first lines while the fake still holds the
    rest behind a gate (so the gateway cannot have held it whole)."""
    team = _client(gateway)
    _, batch = _create(team, 1)
    clean.end_batch(batch.id)
    line = (
        b'{"custom_id":"req-0","result":{"type":"succeeded","message":{"type":"message","id":"msg_1",'
        b'"content":[{"type":"text","text":"'
        + b"x" * 1000
        + b'"}],"usage":{"input_tokens":1,"output_tokens":1}}}}\n'
    )
    output = team.batches.retrieve(batch.id).output_file_id or ""  # billed now: no usage read later
    clean.results_override = line * (50 * 1024 * 1024 // len(line))
    clean.results_gate = threading.Event()
    try:
        with team.files.with_streaming_response.content(output) as response:
            chunks = response.iter_bytes(1 << 16)
            first = next(chunks)
            assert clean.results_sent_first.wait(10) and not clean.results_gate.is_set()
            assert first.startswith(b'{"id":"batch_req_req-0"')
            clean.results_gate.set()
            total = len(first) + sum(len(chunk) for chunk in chunks)
    finally:
        clean.results_gate.set()
    assert total > 50 * 1024 * 1024


def test_a_client_gone_mid_content_ends_the_relay_and_its_upstream_read_at_once(
    gateway: GatewayServer, clean: FakeAnthropic, records: Any
) -> None:
    """The client leaves after its first bytes while the fake holds the rest behind a gate: the
    relay is cancelled then (its record made, the client gone), not at its next write, which
    could only come once the upstream sends again."""
    team = _client(gateway)
    _, batch = _create(team, 1)
    clean.end_batch(batch.id)
    output = team.batches.retrieve(batch.id).output_file_id or ""  # billed now: no usage read later
    line = b'{"custom_id":"req-0","result":{"type":"succeeded","message":{"type":"message","id":"m",'
    line += b'"content":[{"type":"text","text":"' + b"x" * 1000 + b'"}],"usage":{"input_tokens":1}}}}\n'
    clean.results_override = line * 4096
    clean.results_gate = threading.Event()
    assert gateway.gateway is not None
    try:
        url = f"{gateway.url}/v1/files/{output}/content"
        with httpx.stream("GET", url, headers={"authorization": f"Bearer {TEAM}"}) as response:
            assert response.status_code == 200
            assert next(response.iter_bytes()).startswith(b'{"id":"batch_req_req-0"')
        wait_for(
            lambda: (
                any(r.endpoint == "files.content" and r.client_disconnected for r in records.records)
                and gateway.gateway.in_flight == 0  # type: ignore[union-attr]
            ),
            what="the relay's end while the upstream still holds its bytes",
        )
        assert not clean.results_gate.is_set()
        # the retrieve's own read of the output (the bill) may be recorded too; the relay's is the client's
        gone = [r for r in records.records if r.endpoint == "files.content" and r.client_disconnected]
        assert len(gone) == 1 and gone[0].status == 499
    finally:
        clean.results_gate.set()
