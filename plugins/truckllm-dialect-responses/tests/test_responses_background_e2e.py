"""Background responses end to end: the ``openai`` SDK through a real gateway to FakeOpenAI.

``create(background=True)`` answers ``queued``; ``retrieve()`` polls the account that runs it
until it finishes, then is answered by the gateway; the whole response is counted once; a
running one is cancelled at its account; another gateway key gets 404; a translated (Anthropic)
deployment refuses it naming ``background``; with two OpenAI accounts the polls go to the one
that created it, whatever the alias's strategy prefers.

FakeOpenAI completes a background response at once (its ``GET`` answers it completed and its
cancel answers it unchanged); :class:`SlowOpenAI` keeps each one ``queued`` then
``in_progress`` for its first polls, and cancels one that is still running, as OpenAI does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import truckllm_dialect_responses as dialect_plugin
from aiohttp import web

from truckllm import hookimpl
from truckllm.types import RequestRecord
from truckllm_testing.fakes import FakeAnthropic, FakeOpenAI, Fault
from truckllm_testing.server import GatewayServer

provider_openai = pytest.importorskip(
    "truckllm_provider_openai", reason="truckllm-provider-openai is not installed"
)
provider_anthropic = pytest.importorskip(
    "truckllm_provider_anthropic", reason="truckllm-provider-anthropic is not installed"
)
strategy_priority = pytest.importorskip(
    "truckllm_strategy_priority", reason="truckllm-strategy-priority is not installed"
)

TEAM = "team-secret"
OTHER = "other-secret"
RUNNING = 2
"""Polls a :class:`SlowOpenAI` background response stays unfinished for: queued, in_progress."""


class SlowOpenAI(FakeOpenAI):
    """FakeOpenAI whose background responses run for :data:`RUNNING` polls before they finish."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.polls: dict[str, int] = {}
        self.cancelled: set[str] = set()

    def _running(self, ctx: Any) -> tuple[str, Any] | None:
        response_id = ctx.request.match_info["response_id"]
        stored = self.stored(ctx.rec.api_key, response_id)
        if stored is None or not stored.background or response_id in self.cancelled:
            return None
        if self.polls.get(response_id, 0) >= RUNNING:
            return None
        return response_id, stored

    def _unfinished(self, stored: Any, status: str) -> dict[str, Any]:
        return {**stored.response, "status": status, "output": [], "usage": None, "completed_at": None}

    async def _retrieve(self, ctx: Any) -> web.StreamResponse:
        running = self._running(ctx)
        if running is None:
            return await super()._retrieve(ctx)
        response_id, stored = running
        seen = self.polls[response_id] = self.polls.get(response_id, 0) + 1
        return self.json_response(ctx, self._unfinished(stored, "queued" if seen == 1 else "in_progress"))

    async def _cancel(self, ctx: Any) -> web.StreamResponse:
        running = self._running(ctx)
        if running is None:
            return await super()._cancel(ctx)
        response_id, stored = running
        self.cancelled.add(response_id)
        stored.response = self._unfinished(stored, "cancelled")
        return self.json_response(ctx, stored.response)


class Records:
    """Every usage record the gateway made."""

    __name__ = "throwaway-background-records"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Keep the record."""
        self.records.append(record)


def _config(oai: FakeOpenAI, anth: FakeAnthropic) -> str:
    return f"""
keys: [{{name: team, value: {TEAM}}}, {{name: other, value: {OTHER}}}]
routing: {{retries: 2, cooldown: {{failures: 1000}}}}
providers:
  oai: {{type: openai, base_url: {oai.base_url}, keys: [{{name: o1, value: ok}}, {{name: o2, value: ok2}}]}}
  ant: {{type: anthropic, base_url: {anth.base_url}, keys: [{{name: a, value: ak}}]}}
models:
  gpt: {{strategy: priority, deployments: [{{provider: oai, model: gpt-4o}}]}}
  claude: {{deployments: [{{provider: ant, model: claude-sonnet-4-5-20250929}}]}}
"""


class World:
    """The fakes, the gateway and its records."""

    def __init__(
        self, oai: SlowOpenAI, anth: FakeAnthropic, gateway: GatewayServer, records: Records
    ) -> None:
        self.oai = oai
        self.anth = anth
        self.gateway = gateway
        self.records = records
        self.since = 0.0


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One gateway (keys ``o1``/``ok`` and ``o2``/``ok2`` of one OpenAI provider) for the module."""
    oai, anth, records = SlowOpenAI(keys=["ok", "ok2"]), FakeAnthropic(keys=["ak"]), Records()
    plugins = (dialect_plugin, provider_openai, provider_anthropic, strategy_priority, records)
    with (
        oai.running(),
        anth.running(),  # (entered in order: the fakes have their ports before the config is made)
        GatewayServer(_config(oai, anth), autoload=False, extra_plugins=plugins) as gateway,
    ):
        yield World(oai, anth, gateway, records)


@pytest.fixture
def fresh(world: World) -> Iterator[World]:
    """The world with its fakes and records reset, checked afterwards (what the gateway sent was valid)."""
    world.oai.reset()
    world.anth.reset()
    world.since = time.time()
    yield world
    assert world.oai.violations == [] and world.anth.violations == []


def _client(world: World, key: str = TEAM) -> openai.OpenAI:
    return openai.OpenAI(base_url=world.gateway.url + "/v1", api_key=key, max_retries=0, timeout=20)


def _calls(world: World, response_id: str) -> list[tuple[str, str, str | None]]:
    """(method, path, api key) of every call the fake got about ``response_id``."""
    return [(r.method, r.path, r.api_key) for r in world.oai.requests if response_id in r.path]


def _finish(client: openai.OpenAI, response_id: str) -> None:
    """Poll until the response has finished (a few polls: :data:`RUNNING` + 1)."""
    for _ in range(RUNNING + 3):
        if client.responses.retrieve(response_id).status == "completed":
            return
    raise AssertionError(f"{response_id} never finished")


def _records(world: World, count: int) -> list[RequestRecord]:
    """This test's records once ``count`` of them are in (they are written off the response path)."""
    deadline = time.monotonic() + 10
    while True:
        mine = [r for r in world.records.records if r.started_at >= world.since]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        time.sleep(0.01)


def _billed(records: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if r.usage is not None and r.usage.total_tokens > 0]


def test_create_is_queued_and_polls_until_completed_counting_usage_once(fresh: World) -> None:
    with _client(fresh) as client:
        queued = client.responses.create(model="gpt", input="think about it later", background=True)
        assert (queued.status, queued.background, queued.output) == ("queued", True, [])
        seen = [client.responses.retrieve(queued.id).status for _ in range(RUNNING + 1)]
        done = client.responses.retrieve(queued.id)
        again = client.responses.retrieve(queued.id)
        items = client.responses.input_items.list(queued.id)
    assert seen == ["queued", "in_progress", "completed"]
    assert done.status == "completed" and done.output_text and again == done
    assert done.id == queued.id == fresh.oai.response_turns[-1].response_id  # OpenAI's own id
    assert [i.type for i in items.data] == ["message"]
    # three polls reached the account; the later GETs were answered by the gateway
    assert _calls(fresh, queued.id) == [("GET", f"/v1/responses/{queued.id}", "ok")] * (RUNNING + 1)
    records = _records(fresh, 1 + RUNNING + 1)
    assert len(records) == 1 + RUNNING + 1  # one record per call that reached OpenAI
    (billed,) = _billed(records)
    assert billed.endpoint == "responses.retrieve" and billed.dialect == "responses"
    assert done.usage is not None and billed.usage is not None
    assert billed.usage.total_tokens == done.usage.total_tokens > 0
    (create,) = [r for r in records if r.endpoint == "chat"]
    assert create.usage is None or create.usage.total_tokens == 0


def test_a_follow_up_of_a_finished_background_response_continues_at_its_account(fresh: World) -> None:
    with _client(fresh) as client:
        first = client.responses.create(model="gpt", input="remember 42", background=True)
        _finish(client, first.id)
        second = client.responses.create(model="gpt", previous_response_id=first.id, input="and?")
    assert second.status == "completed"
    assert fresh.oai.requests[-1].json["previous_response_id"] == first.id  # its account continues it


def test_cancel_of_a_running_response_reaches_its_account(fresh: World) -> None:
    with _client(fresh) as client:
        queued = client.responses.create(model="gpt", input="never mind", background=True)
        cancelled = client.responses.cancel(queued.id)
        twice = client.responses.cancel(queued.id)
        polled = client.responses.retrieve(queued.id)
    assert cancelled.status == "cancelled" and twice == cancelled and polled == cancelled
    assert _calls(fresh, queued.id) == [("POST", f"/v1/responses/{queued.id}/cancel", "ok")]
    records = _records(fresh, 2)
    assert [r.endpoint for r in records] == ["chat", "responses.cancel"]
    assert _billed(records) == []  # cancelled before it ran: nothing to count


def test_cancel_of_a_finished_one_is_answered_unchanged_and_of_a_synchronous_one_is_400(fresh: World) -> None:
    with _client(fresh) as client:
        queued = client.responses.create(model="gpt", input="quick", background=True)
        _finish(client, queued.id)
        calls = len(fresh.oai.requests)
        finished = client.responses.cancel(queued.id)
        now = client.responses.create(model="gpt", input="now")
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.cancel(now.id)
    assert finished.status == "completed" and len(fresh.oai.requests) == calls + 1  # (the create)
    assert "synchronous" in info.value.message


def test_another_key_gets_404_and_reaches_no_account(fresh: World) -> None:
    with _client(fresh) as client:
        queued = client.responses.create(model="gpt", input="mine", background=True)
    with _client(fresh, OTHER) as other:
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(queued.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.cancel(queued.id)
    assert _calls(fresh, queued.id) == []


def test_a_translated_deployment_refuses_background_naming_it(fresh: World) -> None:
    with _client(fresh) as client, pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="claude", input="later", background=True)
    assert info.value.body["param"] == "background"  # type: ignore[index]
    assert "OpenAI Responses API" in info.value.message
    assert fresh.anth.requests == []


def test_background_without_store_is_400_before_any_upstream(fresh: World) -> None:
    with _client(fresh) as client, pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt", input="later", background=True, store=False)
    assert info.value.body["param"] == "background" and fresh.oai.requests == []  # type: ignore[index]


def test_resuming_a_stream_is_400_naming_stream(fresh: World) -> None:
    with _client(fresh) as client:
        queued = client.responses.create(model="gpt", input="later", background=True)
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.retrieve(queued.id, stream=True)
    assert info.value.body["param"] == "stream"  # type: ignore[index]


def test_a_streamed_background_response_passes_through_and_is_stored_finished(fresh: World) -> None:
    with _client(fresh) as client:
        with client.responses.stream(model="gpt", input="stream it", background=True) as stream:
            final = stream.get_final_response()
        polled = client.responses.retrieve(final.id)
    assert final.status == "completed" and final.background is True
    assert (polled.id, polled.status, polled.output_text) == (final.id, final.status, final.output_text)
    assert _calls(fresh, final.id) == []  # finished when stored: answered by the gateway
    (billed,) = _billed(_records(fresh, 1))
    assert billed.endpoint == "chat" and billed.stream


def test_polls_go_to_the_account_that_created_it(fresh: World) -> None:
    """The alias prefers key o1 (priority order); a response created on o2 (o1 failed) is polled on o2."""
    fresh.oai.inject(Fault(status=500, kind="server", key="ok", path="/v1/responses"))
    with _client(fresh) as client:
        queued = client.responses.create(model="gpt", input="on the second account", background=True)
        statuses = [client.responses.retrieve(queued.id).status for _ in range(RUNNING + 1)]
        other = client.responses.create(model="gpt", input="on the first account")
    assert statuses == ["queued", "in_progress", "completed"]
    assert fresh.oai.response_turns[0].api_key == "ok2"  # created on o2
    assert fresh.oai.requests[-1].api_key == "ok" and other.status == "completed"  # o1 is preferred
    assert {key for _, _, key in _calls(fresh, queued.id)} == {"ok2"}


def test_a_failed_poll_is_the_accounts_error_and_the_next_one_still_counts(fresh: World) -> None:
    with _client(fresh) as client:
        queued = client.responses.create(model="gpt", input="flaky", background=True)
        # the attempt and both retries of one poll fail
        fresh.oai.inject(Fault(status=500, kind="server", path=f"/v1/responses/{queued.id}", times=3))
        with pytest.raises(openai.APIStatusError):
            client.responses.retrieve(queued.id)
        _finish(client, queued.id)
        calls = len(fresh.oai.requests)
        client.responses.retrieve(queued.id)
    assert len(fresh.oai.requests) == calls  # finished and stored: answered by the gateway
    (billed,) = _billed(_records(fresh, 1 + 1 + RUNNING + 1))
    assert billed.endpoint == "responses.retrieve"
