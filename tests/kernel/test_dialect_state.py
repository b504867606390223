"""Stateful dialects: ``ChatRequest.state``, ``prepare``, ``local`` routes, affinity, refusal.

A throwaway dialect ("memo") remembers each answer under an id it returns, continues from an id
(``prev``), and serves ``GET``/``DELETE /memo/turns/{id}`` from its state. Against real gateways
on loopback with the mock provider: state is scoped to the gateway key, written before the
answer's last bytes (whole and streamed), pinned to an account by an affinity with a fallback
request elsewhere, and a request without a typed form is refused by providers of other dialects.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import msgspec
import pytest

from truckllm import hookimpl
from truckllm._internal.dialect_state import MemoryState, RequestState
from truckllm.errors import GatewayError
from truckllm.kit.dialect import Affinity, DialectRoute, LocalAnswer, LocalCall
from truckllm.kit.openai_schemas import ChatCompletionRequest, UserMessage
from truckllm.types import ChatRequest
from truckllm_testing.server import GatewayServer

KEYS = "keys: [{name: alice, value: key-alice}, {name: bob, value: key-bob}]\n"


def _typed(model: str, text: str, stream: bool) -> ChatCompletionRequest:
    return ChatCompletionRequest(model=model, messages=[UserMessage(content=text)], stream=stream)


class MemoDialect:
    """POST /memo/{model} {"q", "prev"?, "pin"?, "refuse"?} -> {"id", "a", "served_by"}."""

    name = "memo"
    reframes_own = True
    routes = (
        DialectRoute(path="/memo/{model}", endpoint="chat"),
        DialectRoute(path="/memo/turns/{turn}", endpoint="local", methods=("GET", "DELETE", "PUT")),
        DialectRoute(path="/memo/ask/{model}/{q}", endpoint="local", methods=("GET",)),
    )

    def credentials(self, headers: Any, query: Any) -> str | None:
        value = headers.get("authorization", "")
        return value.removeprefix("Bearer ") or None

    def parse(self, route: DialectRoute, body: bytes, path_params: Any, query: Any, headers: Any) -> ChatRequest:
        fields = msgspec.json.decode(body)
        model, stream = path_params["model"], bool(fields.get("stream"))
        if fields.get("refuse"):
            return ChatRequest(
                endpoint="chat", dialect="memo", body=body, model=model, stream=stream,
                refusal="memo cannot translate this", refusal_param="refuse",
            )
        return ChatRequest(
            endpoint="chat", dialect="memo", body=body, model=model, stream=stream,
            typed=_typed(model, fields["q"], stream),
        )

    async def prepare(self, request: ChatRequest) -> ChatRequest:
        assert request.state is not None
        fields = msgspec.json.decode(request.body)
        question = fields.get("q", "")
        prev = fields.get("prev")
        if prev is not None:
            before = await request.state.get(f"turn:{prev}")
            if before is None:
                raise GatewayError(404, f"no turn {prev}", param="prev")
            question = f"{before.decode()} + {question}"
        if request.typed is not None:
            request.typed = _typed(request.model, question, request.stream)
        pin = fields.get("pin")
        if pin is not None:
            elsewhere = ChatRequest(
                endpoint="chat", dialect="memo", body=request.body, model=request.model,
                stream=request.stream, typed=_typed(request.model, "elsewhere", request.stream),
            )
            request.affinity = Affinity(provider=pin, key="-", elsewhere=elsewhere)
        return request

    def _remember(self, request: ChatRequest, answer: str) -> bytes:
        assert request.state is not None and request.state.served_by is not None
        turn = secrets.token_hex(4)
        request.state.put(f"turn:{turn}", answer.encode())
        return msgspec.json.encode({"id": turn, "a": answer, "served_by": request.state.served_by.provider})

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        return self._remember(request, msgspec.json.decode(body)["choices"][0]["message"]["content"])

    def stream(self, request: ChatRequest, source: str) -> Any:
        return _MemoFrames(self, request)

    async def serve_local(self, route: DialectRoute, call: LocalCall) -> LocalAnswer:
        if "q" in call.path_params:  # a request of the dialect's own making, through the request path
            model, question = call.path_params["model"], call.path_params["q"]
            body = msgspec.json.encode({"q": question})
            return await call.forward(
                ChatRequest(
                    endpoint="chat", dialect="memo", body=body, model=model,
                    typed=_typed(model, question, False),
                )
            )
        name = f"turn:{call.path_params['turn']}"
        if call.method == "PUT":  # queued by a local route: written before its answer is sent
            call.state.put(name, call.body)
            return LocalAnswer(status=204)
        if call.method == "DELETE":
            return LocalAnswer(body=msgspec.json.encode({"deleted": await call.state.delete(name)}))
        value = await call.state.get(name)
        if value is None:
            raise GatewayError(404, "no such turn")
        return LocalAnswer(body=msgspec.json.encode({"a": value.decode(), "key": call.state.key}))

    def error_body(self, error: GatewayError) -> bytes:
        return msgspec.json.encode({"memo_error": error.message, "param": error.param})

    def stream_error(self, error: GatewayError) -> bytes:
        return b"!" + self.error_body(error) + b"\n"

    def stream_content_type(self, request: ChatRequest) -> str:
        return "text/plain"


class _MemoFrames:
    def __init__(self, dialect: MemoDialect, request: ChatRequest) -> None:
        self.dialect, self.request, self.text = dialect, request, []

    def feed(self, frames: bytes) -> bytes:
        for frame in frames.split(b"\n\n"):
            if frame.startswith(b"data: {"):
                for choice in msgspec.json.decode(frame[6:])["choices"]:
                    self.text.append(choice["delta"].get("content") or "")
        return b"."

    def close(self) -> bytes:
        return b"\n" + self.dialect._remember(self.request, "".join(self.text))


class MemoPlugin:
    __name__ = "memo-dialect"

    @hookimpl
    def register_dialects(self, register: Callable[[Any], None]) -> None:
        register(MemoDialect())


def _config(extra: str = "") -> str:
    return f"""
providers:
  p1: {{type: mock}}
  p2: {{type: mock}}
models:
  m:
    strategy: priority
    deployments: [{{provider: p1, model: echo, priority: 1}}, {{provider: p2, model: echo, priority: 2}}]
{KEYS}{extra}"""


def _post(url: str, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/memo/m", json=body, headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_state_continues_a_conversation_and_is_scoped_to_the_key() -> None:
    with GatewayServer(_config(), extra_plugins=(MemoPlugin(),)) as gw:
        first = _post(gw.url, "key-alice", {"q": "one"})
        assert first.status_code == 200, first.text
        turn = first.json()["id"]
        second = _post(gw.url, "key-alice", {"q": "two", "prev": turn})
        other_key = _post(gw.url, "key-bob", {"q": "two", "prev": turn})
        unknown = _post(gw.url, "key-alice", {"q": "two", "prev": "nope"})
    assert first.json()["a"] == "mock: one"
    assert second.status_code == 200 and second.json()["a"] == "mock: mock: one + two"
    assert other_key.status_code == 404 and other_key.json() == {"memo_error": f"no turn {turn}", "param": "prev"}
    assert unknown.status_code == 404


def test_local_routes_check_the_key_and_read_its_own_scope() -> None:
    with GatewayServer(_config(), extra_plugins=(MemoPlugin(),)) as gw:
        turn = _post(gw.url, "key-alice", {"q": "hi"}).json()["id"]
        path = f"{gw.url}/memo/turns/{turn}"
        anonymous = httpx.get(path)
        wrong = httpx.get(path, headers={"authorization": "Bearer not-a-key"})
        mine = httpx.get(path, headers={"authorization": "Bearer key-alice"})
        theirs = httpx.get(path, headers={"authorization": "Bearer key-bob"})
        bob_delete = httpx.delete(path, headers={"authorization": "Bearer key-bob"})
        delete = httpx.delete(path, headers={"authorization": "Bearer key-alice"})
        again = httpx.delete(path, headers={"authorization": "Bearer key-alice"})
        gone = httpx.get(path, headers={"authorization": "Bearer key-alice"})
    assert anonymous.status_code == 401 and "memo_error" in anonymous.json()
    assert wrong.status_code == 401
    assert mine.status_code == 200 and mine.json() == {"a": "mock: hi", "key": "alice"}
    assert theirs.status_code == 404 and theirs.json()["memo_error"] == "no such turn"
    assert bob_delete.json() == {"deleted": False}
    assert delete.json() == {"deleted": True} and again.json() == {"deleted": False}
    assert gone.status_code == 404


def test_what_a_local_route_queues_is_written_before_it_answers() -> None:
    with GatewayServer(_config(), extra_plugins=(MemoPlugin(),)) as gw:
        alice = {"authorization": "Bearer key-alice"}
        for n in range(10):
            put = httpx.put(f"{gw.url}/memo/turns/t{n}", content=f"note {n}".encode(), headers=alice)
            got = httpx.get(f"{gw.url}/memo/turns/t{n}", headers=alice)
            assert put.status_code == 204 and got.json()["a"] == f"note {n}"


def test_a_streamed_answer_is_stored_before_its_last_bytes() -> None:
    """Every follow-up asked the moment a stream ends finds what the stream stored."""
    with GatewayServer(_config(), extra_plugins=(MemoPlugin(),)) as gw:
        for _ in range(20):
            streamed = _post(gw.url, "key-alice", {"q": "a b c", "stream": True})
            assert streamed.status_code == 200, streamed.text
            tail = streamed.text.rsplit("\n", 1)[1]
            turn = msgspec.json.decode(tail)["id"]
            found = httpx.get(f"{gw.url}/memo/turns/{turn}", headers={"authorization": "Bearer key-alice"})
            assert found.status_code == 200 and found.json()["a"] == "mock: a b c"


def test_affinity_pins_the_account_and_sends_the_fallback_elsewhere() -> None:
    with GatewayServer(_config(), extra_plugins=(MemoPlugin(),)) as gw:
        unpinned = _post(gw.url, "key-alice", {"q": "x"}).json()
        pinned = _post(gw.url, "key-alice", {"q": "x", "pin": "p2"}).json()
        gone = _post(gw.url, "key-alice", {"q": "x", "pin": "p9"}).json()
    assert unpinned["served_by"] == "p1"  # priority order without affinity
    assert pinned == {"id": pinned["id"], "a": "mock: x", "served_by": "p2"}
    # the pinned account is not in the alias: another candidate serves the explicit request
    assert gone["served_by"] == "p1" and gone["a"] == "mock: elsewhere"


def test_a_request_without_a_typed_form_is_refused_by_other_dialects() -> None:
    with GatewayServer(_config(), extra_plugins=(MemoPlugin(),)) as gw:
        refused = _post(gw.url, "key-alice", {"q": "x", "refuse": True})
    assert refused.status_code == 400
    assert refused.json() == {"memo_error": "memo cannot translate this", "param": "refuse"}


class _Broken:
    async def get_state(self, name: str) -> bytes | None:
        raise ConnectionError("down")

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        raise ConnectionError("down")

    async def delete_state(self, name: str) -> bool:
        raise ConnectionError("down")


def test_request_state_scopes_caps_and_survives_a_broken_store() -> None:
    async def run() -> None:
        now = [100.0]
        memory = MemoryState(lambda: now[0], max_items=2)
        alice = RequestState(memory, "memo", "alice", ttl=10, max_bytes=8)
        bob = RequestState(memory, "memo", "bob", ttl=10, max_bytes=8)
        alice.put("a", b"12345678")
        alice.put("big", b"123456789")  # over max_bytes: dropped
        assert await alice.get("a") == b"12345678"  # its own queued write
        assert await bob.get("a") is None
        await alice.flush()
        assert await alice.get("a") == b"12345678" and await alice.get("big") is None
        assert await bob.get("a") is None
        now[0] += 10.5
        assert await alice.get("a") is None  # expired on the injected clock
        for name in ("x", "y", "z"):
            alice.put(name, b"v")
        await alice.flush()
        assert [await alice.get(n) for n in ("x", "y", "z")] == [None, b"v", b"v"]  # LRU bound
        broken = RequestState(_Broken(), "memo", None, ttl=10, max_bytes=8)
        with pytest.raises(GatewayError) as caught:
            await broken.get("a")
        assert caught.value.status == 503 and "down" not in caught.value.message
        broken.put("a", b"1")
        await broken.flush()  # logged, not raised: the answer still goes out

    asyncio.run(run())


def test_a_local_route_forwards_through_the_request_path_as_the_callers_key() -> None:
    """``LocalCall.forward``: the caller's key, its allow-list and limits, failover, one record."""
    extra = "keys: [{name: alice, value: key-alice, rpm: 1}, {name: bob, value: key-bob, models: [other]}]\n"
    config = _config().replace(KEYS, extra).replace("models:\n", "models:\n  other: {deployments: [{provider: p1, model: echo}]}\n")
    with GatewayServer(config, extra_plugins=(MemoPlugin(),)) as gw:
        alice = {"authorization": "Bearer key-alice"}
        first = httpx.get(f"{gw.url}/memo/ask/m/hello", headers=alice)
        unknown = httpx.get(f"{gw.url}/memo/ask/nope/hello", headers=alice)
        limited = httpx.get(f"{gw.url}/memo/ask/m/again", headers=alice)
        not_allowed = httpx.get(f"{gw.url}/memo/ask/m/hello", headers={"authorization": "Bearer key-bob"})
        stored = httpx.get(f"{gw.url}/memo/turns/{first.json()['id']}", headers=alice)
        assert gw.gateway is not None
        in_flight = gw.gateway.in_flight
    assert first.status_code == 200 and first.json()["a"] == "mock: hello", first.text
    assert first.json()["served_by"] == "p1"
    assert stored.status_code == 200 and stored.json()["a"] == "mock: hello"  # the forward's state was flushed
    assert unknown.status_code == 404 and unknown.json()["param"] == "model"
    assert limited.status_code == 429 and "memo_error" in limited.json()  # a 1 rpm key, asked twice
    assert not_allowed.status_code == 403  # the key's allow-list holds for what a dialect forwards
    assert in_flight == 0


def test_state_scopes_cannot_spell_each_other() -> None:
    """(dialect, key, name) -> stored name is one to one, whatever the key names hold."""

    async def run() -> None:
        memory = MemoryState(lambda: 0.0, max_items=100)
        keys = [None, "", "-", "team", "team:resp:alice", "alice", "a:b", "a%3Ab", "%", "é"]
        names = ["resp:x", "alice:resp:x", "x", "", ":", "%3A"]
        written = {}
        for key in keys:
            for name in names:
                state = RequestState(memory, "memo", key, ttl=10, max_bytes=100)
                value = f"{key!r}/{name!r}".encode()
                state.put(name, value)
                await state.flush()
                written[(key, name)] = value
        for (key, name), value in written.items():
            assert await RequestState(memory, "memo", key, ttl=10, max_bytes=100).get(name) == value
        assert len(memory._items) == len(written)

    asyncio.run(run())


def test_the_in_process_fallback_is_bounded_in_bytes_too() -> None:
    async def run() -> None:
        memory = MemoryState(lambda: 0.0, max_items=1000, max_bytes=100)
        for n in range(10):
            await memory.put_state(f"v{n}", b"x" * 30, ttl=10)
            assert memory.size <= 100
        assert [await memory.get_state(f"v{n}") is not None for n in range(10)] == [False] * 7 + [True] * 3
        await memory.put_state("v9", b"y" * 10, ttl=10)  # replacing a value counts its new size only
        assert memory.size == 70
        await memory.put_state("huge", b"z" * 101, ttl=10)  # larger than the whole bound: not kept
        assert await memory.get_state("huge") is None and memory.size == 70
        assert await memory.delete_state("v9") and memory.size == 60

    asyncio.run(run())
