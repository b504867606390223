"""Background responses in the dialect (no gateway): refused where only a translation could serve
them, stored with a bill token, polled and cancelled at their account while they run, answered
here once finished, and billed by exactly one forwarded call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from truckllm_dialect_responses import ResponsesDialect
from truckllm_dialect_responses.background import REFUSAL, PollRequest, bill_name
from truckllm_dialect_responses.local import ROUTE_CANCEL, ROUTE_RESPONSE, serve_local
from truckllm_dialect_responses.state import load

from truckllm.errors import GatewayError
from truckllm.kit.dialect import LocalAnswer, LocalCall
from truckllm.types import ChatRequest

RID = "resp_bg1"
USAGE = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}


def upstream(status: str, **more: Any) -> bytes:
    """OpenAI's Response object of background response ``RID`` in ``status``."""
    done = status in ("completed", "incomplete")
    output = [{"id": "msg_o", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "later", "annotations": []}]}] if done else []  # fmt: skip
    body = {"id": RID, "object": "response", "status": status, "background": True, "output": output,
            "usage": USAGE if done else None, **more}  # fmt: skip
    return json.dumps(body).encode()


class Account:
    """The kernel's ``forward`` as far as the dialect sees it: the served request's state set,
    the provider's answer handed to ``dialect.response``; every forwarded request kept."""

    def __init__(self, kit: Any, state: Any, answers: list[bytes]) -> None:
        self.kit = kit
        self.state = state
        self.answers = answers
        self.sent: list[PollRequest] = []
        self.gate: asyncio.Event | None = None
        self.fail: GatewayError | None = None

    async def __call__(self, request: ChatRequest) -> LocalAnswer:
        assert isinstance(request, PollRequest)
        self.sent.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        request.state = self.state
        self.state.served_by = self.kit.served("oai", "openai", "o1")
        return LocalAnswer(body=ResponsesDialect().response(request, self.answers.pop(0), "responses"))


def local(state: Any, forward: Callable[[ChatRequest], Awaitable[LocalAnswer]], method: str = "GET",
          query: dict[str, str] | None = None) -> LocalCall:  # fmt: skip
    """A call of a local route on response ``RID``."""
    return LocalCall(method=method, path_params={"response_id": RID}, query=query or {}, headers={}, body=b"",
                     state=state, forward=forward)  # fmt: skip


def create(kit: Any, state: Any, answer: bytes | None = None, **body: Any) -> ChatRequest:
    """A background create served by OpenAI account ``oai``/``o1`` (its answer remembered)."""
    request: ChatRequest = kit.parse({"model": "gpt", "input": "later", "background": True, **body})
    request.state = state
    state.served_by = kit.served("oai", "openai", "o1")
    ResponsesDialect().response(request, answer or upstream("queued"), "responses")
    return request


def test_background_is_for_openai_responses_deployments_only(kit: Any) -> None:
    request = kit.parse({"model": "gpt", "input": "later", "background": True})
    # any other deployment refuses it; its chat form is what the kernel's limits measure only
    assert (request.refusal, request.refusal_param) == (REFUSAL, "background")
    assert request.typed is not None and request.typed.messages[0].content == "later"
    assert "OpenAI Responses API" in REFUSAL


def test_background_without_store_is_openais_400(kit: Any) -> None:
    with pytest.raises(GatewayError) as info:
        kit.parse({"model": "gpt", "input": "later", "background": True, "store": False})
    assert (info.value.status, info.value.param) == (400, "background")


async def test_a_background_create_is_stored_with_its_alias_account_and_bill_token(kit: Any) -> None:
    state = kit.FakeState({})
    create(kit, state)
    stored = await load(state, RID)
    assert stored is not None and stored.alias == "gpt"
    assert stored.origin is not None and (stored.origin.provider, stored.origin.key) == ("oai", "o1")
    assert await state.get(bill_name(RID)) is not None


async def test_a_background_answer_already_finished_has_no_bill_token(kit: Any) -> None:
    state = kit.FakeState({})
    create(kit, state, upstream("completed"))  # (its usage was counted with the create call)
    assert await state.get(bill_name(RID)) is None


async def test_polls_go_to_the_account_and_the_first_finished_answer_is_billed(kit: Any) -> None:
    state = kit.FakeState({})
    create(kit, state)
    account = Account(kit, state, [upstream("in_progress"), upstream("completed")])
    first = await serve_local(ROUTE_RESPONSE, local(state, account))
    assert json.loads(first.body)["status"] == "in_progress"
    assert await state.get(bill_name(RID)) is not None  # not finished: the token is back
    second = await serve_local(ROUTE_RESPONSE, local(state, account))
    assert json.loads(second.body)["status"] == "completed"
    for sent in account.sent:
        assert (sent.endpoint, sent.model, sent.stream) == ("responses.retrieve", "gpt", False)
        assert sent.affinity is not None and (sent.affinity.provider, sent.affinity.key) == ("oai", "o1")
        assert sent.affinity.elsewhere is None  # only the account that runs it
        assert json.loads(sent.body) == {"response_id": RID, "bill": True}
        assert sent.refusal_param == "background"
    third = await serve_local(ROUTE_RESPONSE, local(state, account))  # finished: answered here
    assert third.body == second.body and len(account.sent) == 2
    assert await state.get(bill_name(RID)) is None
    stored = await load(state, RID)
    assert stored is not None and stored.items[0]["content"][0]["text"] == "later"  # the turn's input kept


async def test_a_poll_that_finds_another_in_flight_neither_bills_nor_writes(kit: Any) -> None:
    state = kit.FakeState({})
    create(kit, state)
    holder = Account(kit, state, [upstream("completed")])
    holder.gate = asyncio.Event()
    other = Account(kit, state, [upstream("completed")])
    first = asyncio.ensure_future(serve_local(ROUTE_RESPONSE, local(state, holder)))
    await asyncio.sleep(0)  # the first poll took the token and waits for its account
    second = await serve_local(ROUTE_RESPONSE, local(state, other))
    assert json.loads(second.body)["status"] == "completed"  # the client sees what OpenAI said
    assert json.loads(other.sent[0].body)["bill"] is False
    stored = await load(state, RID)
    assert stored is not None and json.loads(bytes(stored.response))["status"] == "queued"  # nothing written
    holder.gate.set()
    await first
    assert json.loads(holder.sent[0].body)["bill"] is True
    stored = await load(state, RID)
    assert stored is not None and json.loads(bytes(stored.response))["status"] == "completed"
    assert sum(json.loads(r.body)["bill"] for r in (*holder.sent, *other.sent)) == 1


async def test_a_failed_poll_puts_the_bill_token_back(kit: Any) -> None:
    state = kit.FakeState({})
    create(kit, state)
    account = Account(kit, state, [])
    account.fail = GatewayError(429, "slow down", type="rate_limit_error")
    with pytest.raises(GatewayError):
        await serve_local(ROUTE_RESPONSE, local(state, account))
    assert await state.get(bill_name(RID)) is not None
    assert json.loads(account.sent[0].body)["bill"] is True


async def test_stream_true_is_400_naming_stream(kit: Any) -> None:
    state = kit.FakeState({})
    create(kit, state)
    account = Account(kit, state, [upstream("in_progress")])
    for value in ("true", "1", "True"):
        with pytest.raises(GatewayError) as info:
            await serve_local(ROUTE_RESPONSE, local(state, account, query={"stream": value}))
        assert (info.value.status, info.value.param) == (400, "stream")
    assert account.sent == []
    polled = await serve_local(ROUTE_RESPONSE, local(state, account, query={"stream": "false"}))
    assert json.loads(polled.body)["status"] == "in_progress" and len(account.sent) == 1


async def test_cancel_of_a_running_response_goes_to_its_account(kit: Any) -> None:
    state = kit.FakeState({})
    create(kit, state)
    account = Account(kit, state, [upstream("cancelled")])
    answer = await serve_local(ROUTE_CANCEL, local(state, account, "POST"))
    assert json.loads(answer.body)["status"] == "cancelled"
    assert [r.endpoint for r in account.sent] == ["responses.cancel"]
    again = await serve_local(ROUTE_CANCEL, local(state, account, "POST"))  # idempotent, answered here
    polled = await serve_local(ROUTE_RESPONSE, local(state, account))
    assert again.body == answer.body == polled.body and len(account.sent) == 1


async def test_cancel_of_a_finished_background_response_is_answered_unchanged(kit: Any) -> None:
    state = kit.FakeState({})
    create(kit, state, upstream("completed"))
    account = Account(kit, state, [])
    answer = await serve_local(ROUTE_CANCEL, local(state, account, "POST"))
    assert json.loads(answer.body)["status"] == "completed" and account.sent == []


async def test_cancel_of_a_synchronous_response_is_400(kit: Any) -> None:
    state = kit.FakeState({})
    request = kit.parse({"model": "gpt", "input": "now"})
    request.state = state
    state.served_by = kit.served("oai", "openai", "o1")
    ResponsesDialect().response(request, upstream("completed", background=False), "responses")
    with pytest.raises(GatewayError) as info:
        await serve_local(ROUTE_CANCEL, local(state, Account(kit, state, []), "POST"))
    assert info.value.status == 400 and "synchronous" in info.value.message


async def test_a_follow_up_of_a_running_response_goes_only_to_its_account(kit: Any) -> None:
    state = kit.FakeState({})
    create(kit, state)
    follow = kit.parse({"model": "gpt", "previous_response_id": RID, "input": "and?"})
    follow.state = state
    prepared = await ResponsesDialect().prepare(follow)
    assert prepared.affinity is not None and prepared.affinity.elsewhere is None
    # once finished, its output is stored: another account can be given the conversation
    await serve_local(ROUTE_RESPONSE, local(state, Account(kit, state, [upstream("completed")])))
    again = kit.parse({"model": "gpt", "previous_response_id": RID, "input": "and?"})
    again.state = state
    finished = await ResponsesDialect().prepare(again)
    assert finished.affinity is not None and finished.affinity.elsewhere is not None
    spelled = json.loads(finished.affinity.elsewhere.body)["input"]
    assert [i.get("id") for i in spelled][1] == "msg_o"  # the output it finished with
