"""Every hook, called by the kernel as documented, with throwaway plugins on a real gateway."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx2 as httpx
import msgspec

from truckllm import hookimpl
from truckllm._internal.dialect import DialectRoute
from truckllm._internal.openai_wire import ChunkBuilder, chat_completion
from truckllm._internal.schemas.openai import ChatCompletionRequest, UserMessage
from truckllm._internal.store import (
    Admission,
    CooldownMark,
    Decision,
    Settlement,
    UsageQuery,
    UsageReport,
    UsageRow,
)
from truckllm.errors import GatewayError, UpstreamFailure
from truckllm.types import (
    Candidate,
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    RequestRecord,
    SelectionContext,
    StrategySpec,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)
from truckllm_testing.server import GatewayServer

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class Echo:
    """A throwaway provider type ``echo`` answering in-process; records every hook call."""

    __name__ = "throwaway-echo"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_keys: set[str] = set()

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        register(ProviderSpec(type="echo", default_base_url="echo://x", endpoints=frozenset({"chat"})))

    @hookimpl
    def transform_request(
        self, provider: Provider, model: str, request: ChatRequest, api_key: str
    ) -> UpstreamRequest | None:
        if provider.type != "echo":
            return None
        self.calls.append(
            ("transform_request", {"provider": provider.name, "model": model, "api_key": api_key})
        )
        fail = api_key in self.fail_keys

        async def local() -> UpstreamResponse:
            if fail:
                return UpstreamResponse(status=503, body=b"overloaded")
            if request.stream:
                return UpstreamResponse(status=200, chunks=_chunks(model, request.include_usage))
            body = chat_completion(
                model=model,
                choices=[
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": api_key},
                        "finish_reason": "stop",
                    }
                ],
                usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
            )
            return UpstreamResponse(status=200, body=body)

        return UpstreamRequest(url="echo://x", stream=request.stream, local=local)

    @hookimpl
    def transform_response(
        self, provider: Provider, request: ChatRequest, response: UpstreamResponse
    ) -> ProviderResult | None:
        if provider.type != "echo":
            return None
        self.calls.append(("transform_response", {"status": response.status}))
        if response.status >= 400:
            return ProviderResult(error=UpstreamError(status=503, kind="overloaded", message="busy"))
        return ProviderResult(body=response.body)

    @hookimpl
    def parse_usage(self, provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
        if provider.type != "echo":
            return None
        self.calls.append(("parse_usage", {}))
        return Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)

    @hookimpl
    def transform_stream(self, provider: Provider, request: ChatRequest, response: UpstreamResponse) -> Any:
        if provider.type != "echo":
            return None
        self.calls.append(("transform_stream", {}))
        return _Passthrough()


async def _chunks(model: str, include_usage: bool) -> Any:
    builder = ChunkBuilder(model, include_usage)
    yield builder.delta({"role": "assistant", "content": ""})
    yield builder.delta({"content": "a"})
    yield builder.delta({}, finish_reason="stop")
    yield builder.usage(Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))
    yield builder.done()


class _Passthrough:
    dialect = "openai"

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        self.done = self.done or chunk.endswith(b"[DONE]\n\n")
        self.usage = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)
        return chunk

    def close(self) -> bytes:
        if not self.done:
            raise UpstreamFailure(UpstreamError(status=502, kind="stream", message="cut"))
        return b""


def config(strategy: str = "first", extra: str = "") -> str:
    return f"""
providers:
  e:
    type: echo
    keys: [{{name: k1, value: secret-one}}, {{name: k2, value: secret-two}}]
models:
  m:
    strategy: {strategy}
    deployments: [{{provider: e, model: up-model}}]
{extra}"""


def post(gw: GatewayServer, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10, **kw)


def test_hook_register_providers() -> None:
    echo = Echo()
    with GatewayServer(config(), extra_plugins=(echo,)) as gw:
        assert gw.gateway is not None and "echo" in gw.gateway.runtime.host.providers


def test_hook_transform_request() -> None:
    echo = Echo()
    with GatewayServer(config(), extra_plugins=(echo,)) as gw:
        response = post(gw, CHAT)
    assert response.status_code == 200
    name, args = echo.calls[0]
    assert name == "transform_request"
    assert args == {"provider": "e", "model": "up-model", "api_key": "secret-one"}


def test_hook_transform_response() -> None:
    echo = Echo()
    echo.fail_keys.add("secret-one")
    with GatewayServer(config(), extra_plugins=(echo,)) as gw:
        response = post(gw, CHAT)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "secret-two"  # failed over to k2
    statuses = [a["status"] for n, a in echo.calls if n == "transform_response"]
    assert statuses == [503, 200]
    assert response.headers["x-truckllm-attempts"] == "2"


def test_hook_parse_usage() -> None:
    echo = Echo()
    with GatewayServer(config(), extra_plugins=(echo,)) as gw:
        post(gw, CHAT)
    assert ("parse_usage", {}) in echo.calls


def test_hook_transform_stream() -> None:
    echo = Echo()
    with GatewayServer(config(), extra_plugins=(echo,)) as gw:
        response = post(gw, {**CHAT, "stream": True})
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")
    assert ("transform_stream", {}) in echo.calls


class Reverse:
    __name__ = "throwaway-reverse"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    @hookimpl
    def register_strategies(self, register: Callable[[StrategySpec], None]) -> None:
        register(StrategySpec(name="reverse", description="last key first"))

    @hookimpl
    def select_provider(
        self, strategy: str, candidates: Sequence[Candidate], context: SelectionContext
    ) -> list[Candidate] | None:
        if strategy != "reverse":
            return None
        self.seen.append([c.key.name for c in candidates])
        context.state["calls"] = context.state.get("calls", 0) + 1
        return list(reversed(candidates))


def test_hook_register_strategies() -> None:
    with GatewayServer(config("reverse"), extra_plugins=(Echo(), Reverse())) as gw:
        assert gw.gateway is not None and "reverse" in gw.gateway.runtime.host.strategies


def test_hook_select_provider() -> None:
    reverse = Reverse()
    with GatewayServer(config("reverse"), extra_plugins=(Echo(), reverse)) as gw:
        first = post(gw, CHAT)
        second = post(gw, CHAT)
        assert gw.gateway is not None
        assert gw.gateway.strategy_state[("m", "reverse")]["calls"] == 2  # state kept per alias
    assert first.json()["choices"][0]["message"]["content"] == "secret-two"
    assert second.status_code == 200
    assert reverse.seen[0] == ["k1", "k2"]


def test_select_provider_is_not_called_with_a_single_usable_candidate() -> None:
    reverse = Reverse()
    one_key = config("reverse").replace(", {name: k2, value: secret-two}", "")
    with GatewayServer(one_key, extra_plugins=(Echo(), reverse)) as gw:
        answer = post(gw, CHAT)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "secret-one"
    assert reverse.seen == []  # nothing to order


class Recorder:
    """A logger class registered through register_loggers."""

    instances: list[Recorder] = []

    class Options(msgspec.Struct, forbid_unknown_fields=True):
        tag: str = "default"

    def __init__(self, options: Recorder.Options) -> None:
        self.options = options
        self.records: list[RequestRecord] = []
        self.started = self.stopped = False
        self.event = threading.Event()
        Recorder.instances.append(self)

    @hookimpl
    async def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.event.set()

    @hookimpl
    def startup(self, app: Any) -> None:
        self.started = True
        self.app = app

    @hookimpl
    async def shutdown(self, app: Any) -> None:
        self.stopped = True

    @hookimpl
    def render_metrics(self) -> bytes:
        return f'recorder_records{{tag="{self.options.tag}"}} {len(self.records)}\n'.encode()


class Broken:
    __name__ = "broken-logger"

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        raise RuntimeError("logger down")


class LoggerPlugin:
    __name__ = "throwaway-loggers"

    @hookimpl
    def register_loggers(self, register: Callable[[str, type], None]) -> None:
        register("recorder", Recorder)


def test_hook_register_loggers() -> None:
    Recorder.instances.clear()
    cfg = config(extra="loggers: [{recorder: {tag: t1}}]\nadmin: {token: adm}\n")
    with GatewayServer(cfg, extra_plugins=(Echo(), LoggerPlugin())) as gw:
        (rec,) = Recorder.instances
        assert rec.options.tag == "t1" and rec.started
        assert gw.gateway is not None and gw.gateway.loggers[0][1] is rec
    assert rec.stopped


def test_hook_emit_log() -> None:
    Recorder.instances.clear()
    cfg = config(extra="loggers: [recorder]\n")
    with GatewayServer(cfg, extra_plugins=(Echo(), LoggerPlugin(), Broken())) as gw:
        post(gw, {**CHAT, "stream": True}, headers={"x-request-id": "abc-1"})
        (rec,) = Recorder.instances
        assert rec.event.wait(5)
    record = rec.records[0]
    assert record.request_id == "abc-1" and record.stream and record.status == 200
    assert record.provider == "e" and record.provider_key == "k1" and record.model == "up-model"
    assert record.usage is not None and record.usage.total_tokens == 2
    assert "secret" not in msgspec.json.encode(record).decode()
    assert gw.gateway is not None
    assert gw.gateway.background.plugin_errors[("broken-logger", "emit_log")] == 1  # counted, isolated


def test_hook_render_metrics() -> None:
    Recorder.instances.clear()
    cfg = config(extra="loggers: [{recorder: {tag: m1}}]\nadmin: {token: adm}\n")
    with GatewayServer(cfg, extra_plugins=(Echo(), LoggerPlugin())) as gw:
        assert httpx.get(gw.url + "/metrics").status_code == 401
        text = httpx.get(gw.url + "/metrics", headers={"authorization": "Bearer adm"}).text
    assert 'recorder_records{tag="m1"} 0' in text


def test_hook_startup() -> None:
    Recorder.instances.clear()
    with GatewayServer(config(extra="loggers: [recorder]\n"), extra_plugins=(Echo(), LoggerPlugin())):
        rec = Recorder.instances[0]
        assert rec.started
        app = rec.app  # a read-only view: live state, and no way to the config's secrets
        assert app.runtime.version == 1 and set(app.runtime.aliases) == {"m"} and app.in_flight == 0
        for hidden in ("config", "secrets", "store", "source", "reload"):
            assert not hasattr(app, hidden) and not hasattr(app.runtime, hidden)


def test_hook_shutdown() -> None:
    Recorder.instances.clear()
    with GatewayServer(config(extra="loggers: [recorder]\n"), extra_plugins=(Echo(), LoggerPlugin())):
        assert not Recorder.instances[0].stopped
    assert Recorder.instances[0].stopped


class TinyStore:
    """A store that admits the first N requests and records usage."""

    name = "tiny"
    instances: list[TinyStore] = []

    class Options(msgspec.Struct, forbid_unknown_fields=True):
        allow: int = 1

    def __init__(self, options: TinyStore.Options) -> None:
        self.allow = options.allow
        self.records: list[RequestRecord] = []
        self.settled: list[Settlement] = []
        self.closed = False
        TinyStore.instances.append(self)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True

    async def admit(self, admission: Admission) -> Decision:
        if self.allow <= 0:
            return Decision(allowed=False, denied_by=admission.rates[0].key, kind="rate", retry_after=2.5)
        self.allow -= 1
        return Decision(allowed=True)

    async def settle(self, settlement: Settlement) -> None:
        self.settled.append(settlement)

    async def mark_cooldown(self, mark: CooldownMark) -> None:
        pass

    async def cooldowns(self) -> list[CooldownMark]:
        return []

    async def usage(self, query: UsageQuery) -> UsageReport:
        return UsageReport(rows=[], total=UsageRow(requests=len(self.records)))

    async def ready(self) -> dict[str, Any]:
        return {"ok": True}

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        self.records.append(record)


class StorePlugin:
    __name__ = "throwaway-store"

    @hookimpl
    def register_stores(self, register: Callable[[str, type], None]) -> None:
        register("tiny", TinyStore)


STORE_CFG = """
store: {type: tiny, allow: 1}
admin: {token: adm}
keys:
  - {name: team, value: team-secret, rpm: 5, tpm: 1000}
"""


def test_hook_register_stores() -> None:
    TinyStore.instances.clear()
    with GatewayServer(config(extra=STORE_CFG), extra_plugins=(Echo(), StorePlugin())) as gw:
        assert gw.gateway is not None and gw.gateway.store is TinyStore.instances[0]
    assert TinyStore.instances[0].closed


def test_hook_store_usage() -> None:
    TinyStore.instances.clear()
    auth = {"authorization": "Bearer team-secret"}
    with GatewayServer(config(extra=STORE_CFG), extra_plugins=(Echo(), StorePlugin())) as gw:
        ok = post(gw, CHAT, headers=auth)
        limited = post(gw, CHAT, headers=auth)
        bad = post(gw, CHAT, headers={"authorization": "Bearer wrong"})
        usage = httpx.get(gw.url + "/admin/v1/usage", headers={"authorization": "Bearer adm"})
    store = TinyStore.instances[0]
    assert ok.status_code == 200
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert bad.status_code == 401
    # one record per request, rejected ones included; all flushed before close
    assert [(r.status, r.gateway_key, r.error_kind) for r in store.records] == [
        (200, "team", None),
        (429, "team", "rate_limit"),
        (401, None, "auth"),
    ]
    (settled,) = store.settled
    assert settled.rate_adjust["gk:team:tpm"] == 5 - min(len(msgspec.json.encode(CHAT)) // 4 + 1024, 1000)
    assert usage.json()["total"]["requests"] >= 1


class TinyDialect:
    """A throwaway inbound dialect: POST /tiny/{model} with {"q": text}, answers {"a": text}."""

    name = "tiny"
    routes = (DialectRoute(path="/tiny/{model}", endpoint="chat"),)

    def credentials(self, headers: Any, query: Any) -> str | None:
        return query.get("key")

    def parse(self, route: DialectRoute, body: bytes, path_params: Any, query: Any, headers: Any) -> ChatRequest:
        try:
            question = msgspec.json.decode(body)["q"]
        except (msgspec.DecodeError, KeyError, TypeError):
            raise GatewayError(400, "tiny wants {\"q\": text}") from None
        model = path_params["model"]
        stream = query.get("stream") == "1"
        typed = ChatCompletionRequest(model=model, messages=[UserMessage(content=str(question))], stream=stream)
        return ChatRequest(endpoint="chat", dialect="tiny", body=body, model=model, stream=stream, typed=typed)

    def error_body(self, error: GatewayError) -> bytes:
        return msgspec.json.encode({"tiny_error": error.message, "status": error.status})

    def stream_error(self, error: GatewayError) -> bytes:
        return b"!" + self.error_body(error) + b"\n"

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        assert source == "openai"
        return msgspec.json.encode({"a": msgspec.json.decode(body)["choices"][0]["message"]["content"]})

    def stream(self, request: ChatRequest, source: str) -> Any:
        return _TinyFrames()

    def stream_content_type(self, request: ChatRequest) -> str:
        return "text/plain"


class _TinyFrames:
    def feed(self, frames: bytes) -> bytes:
        out = []
        for frame in frames.split(b"\n\n"):
            if frame.startswith(b"data: {"):
                for choice in msgspec.json.decode(frame[6:])["choices"]:
                    out.append(choice["delta"].get("content") or "")
        return "".join(out).encode()

    def close(self) -> bytes:
        return b"<end>"


class DialectPlugin:
    __name__ = "throwaway-dialect"

    @hookimpl
    def register_dialects(self, register: Callable[[Any], None]) -> None:
        register(TinyDialect())


def test_hook_register_dialects() -> None:
    Recorder.instances.clear()
    cfg = config(extra="loggers: [recorder]\n").replace("type: echo", "type: mock").replace(
        "keys: [{name: k1, value: secret-one}, {name: k2, value: secret-two}]", "")
    with GatewayServer(cfg, extra_plugins=(DialectPlugin(), LoggerPlugin())) as gw:
        whole = httpx.post(gw.url + "/tiny/m", json={"q": "hello you"})
        streamed = httpx.post(gw.url + "/tiny/m?stream=1", json={"q": "one two"})
        bad = httpx.post(gw.url + "/tiny/m", json={"nope": 1})
        unknown = httpx.post(gw.url + "/tiny/zzz", json={"q": "x"})
        assert Recorder.instances[0].event.wait(5)
    assert whole.status_code == 200 and whole.json() == {"a": "mock: hello you"}
    assert streamed.text == "mock: one two<end>" and streamed.headers["content-type"].startswith("text/plain")
    assert bad.status_code == 400 and bad.json() == {"tiny_error": 'tiny wants {"q": text}', "status": 400}
    assert unknown.status_code == 404 and "tiny_error" in unknown.json()
    deadline = time.monotonic() + 5
    while len(Recorder.instances[0].records) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert {r.dialect for r in Recorder.instances[0].records} == {"tiny"}
