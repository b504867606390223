"""A conformance suite for provider plugins: subclass it in a test module and run pytest.

Every check drives a real gateway (:class:`~truckllm.testing.server.GatewayServer`) in front of
one of the fake upstreams (:mod:`truckllm.testing.fakes`), through plain HTTP, as a client
would. A provider plugin passes when clients see OpenAI's wire format and the kernel's routing
rules hold::

    # tests/test_myllm_conformance.py
    from truckllm.testing.conformance import ProviderConformance
    from truckllm.testing.fakes import FakeOpenAI


    class TestMyLLMConformance(ProviderConformance):
        provider_type = "myllm"          # the YAML type: your plugin registers
        fake_upstream = FakeOpenAI       # the fake speaking your upstream's wire format

What is checked: the provider type registers and ignores other types; chat; streams, event by
event, as they arrive, ending with ``data: [DONE]``; tool calls, streamed and not; usage (in the
answer, in the final stream chunk when asked, and always in the request record); errors mapped
(429 with ``Retry-After`` fails over, then 429 with ``Retry-After`` when every key is limited;
401 disables the key; 5xx fails over; 400 is final); a client disconnect cancels the upstream
request; a stream failing mid-way ends with an error event, never a clean end.

Class attributes configure the suite (see :class:`ProviderConformance`); override
:meth:`ProviderConformance.provider_entry` when the provider needs more config than
``type``/``base_url``/``keys``/``options``. Set ``supports_tools = False`` to skip the tool
checks for a provider without tools.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
import pytest

from truckllm import hookimpl
from truckllm.hookspecs import HOOKSPEC_VERSION
from truckllm.plugins import list_plugins, make_plugin_manager
from truckllm.schemas.openai import ChatCompletionRequest
from truckllm.testing.fakes import FakeOpenAI, FakeUpstream, Fault, Reply, ToolCall
from truckllm.testing.server import GatewayServer
from truckllm.types import ChatRequest, Provider, RequestRecord, UpstreamResponse

__all__ = [
    "Answer",
    "GatewayClient",
    "ProviderConformance",
    "RecordingPlugin",
    "StreamAnswer",
    "StreamEvent",
    "wait_for",
]

ADMIN_TOKEN = "conformance-admin-token"
ALIAS = "conformance"
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} of a place",
            "parameters": {"type": "object", "properties": {"where": {"type": "string"}}},
        },
    }
    for name in ("get_weather", "get_time")
]


# --- a small HTTP client (stdlib only, so the suite needs nothing but pytest) -----------------------


@dataclass
class Answer:
    """A whole HTTP answer: status, lower-case headers, body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


@dataclass
class StreamEvent:
    """One server-sent event as the client received it, with its arrival time."""

    data: bytes
    at: float
    """``time.monotonic()`` when the event's last byte arrived."""

    @property
    def done(self) -> bool:
        """The ``data: [DONE]`` terminator."""
        return self.data == b"[DONE]"

    def json(self) -> Any:
        """The event's data decoded as JSON."""
        return json.loads(self.data)


@dataclass
class StreamAnswer:
    """A streamed answer: status, headers, the events and the raw bytes."""

    status: int
    headers: dict[str, str]
    events: list[StreamEvent] = field(default_factory=list)
    raw: bytes = b""

    @property
    def chunks(self) -> list[dict[str, Any]]:
        """Every JSON event but errors, in order (the ``[DONE]`` terminator excluded)."""
        out = []
        for event in self.events:
            if event.done:
                continue
            value = event.json()
            if "error" not in value:
                out.append(value)
        return out

    @property
    def error(self) -> dict[str, Any] | None:
        """The ``{"error": {...}}`` event's ``error`` object, if the stream ended with one."""
        for event in self.events:
            if not event.done:
                value = event.json()
                if isinstance(value, dict) and "error" in value:
                    return dict(value["error"])
        return None

    @property
    def done(self) -> bool:
        """The stream ended cleanly with ``data: [DONE]``."""
        return bool(self.events) and self.events[-1].done

    def text(self) -> str:
        """The concatenated ``delta.content`` of choice 0."""
        return "".join(
            (c["choices"][0]["delta"].get("content") or "") for c in self.chunks if c.get("choices")
        )


class GatewayClient:
    """A blocking HTTP client for a gateway on loopback (``http.client``, nothing to install).

    :param server: the running gateway.
    :param api_key: the gateway key sent as ``Authorization: Bearer``.
    :param timeout: socket timeout in seconds.
    """

    def __init__(
        self, server: GatewayServer, api_key: str = "conformance-client", timeout: float = 30
    ) -> None:
        self.server = server
        self.api_key = api_key
        self.timeout = timeout

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=self.timeout)

    def _headers(self, token: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "authorization": f"Bearer {token or self.api_key}"}
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send one request and read the whole answer."""
        conn = self._connect()
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers=self._headers(token, headers))
            response = conn.getresponse()
            data = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            conn.close()

    def chat(self, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Answer:
        """``POST /v1/chat/completions``, not streamed."""
        return self.request("POST", "/v1/chat/completions", body, headers=headers)

    def stream(
        self,
        body: Mapping[str, Any],
        *,
        stop_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> StreamAnswer:
        """``POST /v1/chat/completions`` with ``stream: true``; read events as they arrive.

        :param stop_after: close the connection (a client that goes away) after this many events.
        """
        conn = self._connect()
        try:
            payload = json.dumps({**body, "stream": True}).encode()
            conn.request("POST", "/v1/chat/completions", body=payload, headers=self._headers(None, headers))
            response = conn.getresponse()
            answer = StreamAnswer(response.status, {k.lower(): v for k, v in response.getheaders()})
            if response.status != 200:
                answer.raw = response.read()
                return answer
            buffer = b""
            while True:
                chunk = response.read1(65536)
                if not chunk:
                    break
                answer.raw += chunk
                buffer += chunk
                now = time.monotonic()
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    if frame.startswith(b":"):
                        continue  # an SSE comment (keep-alive): clients ignore it
                    if not frame.startswith(b"data: "):
                        raise AssertionError(f"not an SSE data frame: {frame[:200]!r}")
                    answer.events.append(StreamEvent(frame[len(b"data: ") :], now))
                if stop_after is not None and len(answer.events) >= stop_after:
                    if conn.sock is not None:
                        conn.sock.shutdown(socket.SHUT_RDWR)
                    break
            if buffer.strip():
                raise AssertionError(f"stream ended inside a frame: {buffer[:200]!r}")
            return answer
        finally:
            conn.close()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``condition`` every 10 ms until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


class RecordingPlugin:
    """A throwaway logger plugin keeping every :class:`~truckllm.types.RequestRecord`."""

    def __init__(self) -> None:
        self.__name__ = f"conformance-recorder-{id(self):x}"
        self.records: list[RequestRecord] = []

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Keep the record."""
        self.records.append(record)


# --- the suite -------------------------------------------------------------------------------------


class ProviderConformance:
    """Checks every provider plugin must pass; subclass as ``Test<Name>Conformance``.

    The gateway under test has one provider entry (``providers.upstream``) of
    :attr:`provider_type` with two keys, pointed at a fresh :attr:`fake_upstream`, and one alias
    whose deployment uses it with the kernel's ``first`` strategy (keys tried in config order),
    so that failover between the two keys can be observed.
    """

    provider_type: ClassVar[str] = ""
    """The YAML ``type:`` the plugin under test registers. Required."""
    fake_upstream: ClassVar[Callable[..., FakeUpstream]] = FakeOpenAI
    """Builds the fake upstream: called with ``keys=`` and ``chunks=``. ``FakeOpenAI`` for any
    OpenAI-compatible API, ``FakeAnthropic``, ``FakeGemini``, or your own :class:`FakeUpstream`."""
    provider_options: ClassVar[Mapping[str, Any] | None] = None
    """``providers.<name>.options`` for the plugin, if it needs any."""
    base_url_suffix: ClassVar[str] = ""
    """Appended to the fake's ``base_url`` (when the plugin's paths differ from the fake's)."""
    model: ClassVar[str] = "conformance-model"
    """The deployment's upstream model name."""
    keys: ClassVar[tuple[str, str]] = ("conformance-key-1", "conformance-key-2")
    """The two provider key values (the fake accepts exactly these)."""
    extra_plugins: ClassVar[Sequence[object]] = ()
    """Plugin objects to register when the plugin under test is not installed (entry points)."""
    autoload: ClassVar[bool | None] = None
    """Load installed entry-point plugins (``None``: unless ``TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD``)."""
    supports_tools: ClassVar[bool] = True
    """Run the tool-call checks."""

    # --- configuration (override to adapt) --------------------------------------------------------

    def provider_entry(self, fake: FakeUpstream) -> dict[str, Any]:
        """The ``providers.upstream`` config entry for ``fake``."""
        entry: dict[str, Any] = {
            "type": self.provider_type,
            "base_url": fake.base_url + self.base_url_suffix,
            "keys": [{"name": f"key{i}", "value": value} for i, value in enumerate(self.keys, start=1)],
        }
        if self.provider_options is not None:
            entry["options"] = dict(self.provider_options)
        return entry

    def gateway_config(self, fake: FakeUpstream) -> dict[str, Any]:
        """The whole gateway config (JSON is YAML) for ``fake``."""
        return {
            "admin": {"token": ADMIN_TOKEN},
            "routing": {
                "backoff": {"base": "1ms", "max": "5ms"},
                "try_timeout": "10s",
                "cooldown": {"failures": 5, "duration": "30s"},
            },
            "providers": {"upstream": self.provider_entry(fake)},
            "models": {
                ALIAS: {"strategy": "first", "deployments": [{"provider": "upstream", "model": self.model}]}
            },
        }

    def chat_body(self, text: str = "Say hello", **extra: Any) -> dict[str, Any]:
        """A chat request body for the suite's alias."""
        return {"model": ALIAS, "messages": [{"role": "user", "content": text}], **extra}

    # --- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def upstream(self) -> Iterator[FakeUpstream]:
        """The fake upstream, serving from a thread; fails the test on contract violations."""
        if not self.provider_type:
            raise pytest.UsageError(f"{type(self).__name__}.provider_type is not set")
        fake = self.fake_upstream(keys=self.keys, chunks=4)
        with fake.running():
            yield fake
        assert fake.violations == [], f"the plugin sent requests the upstream rejects: {fake.violations}"

    @pytest.fixture
    def recorder(self) -> RecordingPlugin:
        """Keeps every request record the gateway emits."""
        return RecordingPlugin()

    @pytest.fixture
    def gateway(self, upstream: FakeUpstream, recorder: RecordingPlugin) -> Iterator[GatewayServer]:
        """A running gateway whose only provider is the plugin under test, in front of ``upstream``."""
        config = json.dumps(self.gateway_config(upstream), indent=1)
        with GatewayServer(
            config, extra_plugins=(*self.extra_plugins, recorder), autoload=self.autoload
        ) as gw:
            yield gw

    @pytest.fixture
    def client(self, gateway: GatewayServer) -> GatewayClient:
        """An HTTP client of ``gateway``."""
        return GatewayClient(gateway)

    # --- helpers ----------------------------------------------------------------------------------

    def key_states(self, client: GatewayClient) -> dict[str, dict[str, Any]]:
        """``/admin/v1/providers``: the state of each of the provider's keys, by key name."""
        answer = client.request("GET", "/admin/v1/providers", token=ADMIN_TOKEN)
        assert answer.status == 200, answer.body
        (provider,) = [p for p in answer.json()["providers"] if p["name"] == "upstream"]
        return {k["name"]: k for k in provider["keys"]}

    def records(self, recorder: RecordingPlugin, count: int) -> list[RequestRecord]:
        """The first ``count`` request records, waiting for them (they are emitted after the answer)."""
        wait_for(lambda: len(recorder.records) >= count, what=f"{count} request record(s)")
        return recorder.records[:count]

    def _chat_request(self, body: Mapping[str, Any]) -> ChatRequest:
        raw = json.dumps(body).encode()
        return ChatRequest(
            endpoint="chat",
            body=raw,
            model=str(body["model"]),
            stream=bool(body.get("stream")),
            typed=msgspec.json.decode(raw, type=ChatCompletionRequest),
        )

    # --- registration -----------------------------------------------------------------------------

    def test_registers_its_provider_type(self) -> None:
        """The type is registered by a plugin of this API version that implements the provider hooks."""
        host = make_plugin_manager(extra=tuple(self.extra_plugins), autoload=self.autoload)
        assert self.provider_type in host.providers, (
            f"no plugin registers provider type {self.provider_type!r}; failures: {host.failures}"
        )
        owner = host.owners[("providers", self.provider_type)]
        plugin = host.pm.get_plugin(owner)
        assert getattr(plugin, "TRUCKLLM_API", HOOKSPEC_VERSION) == HOOKSPEC_VERSION
        (row,) = [
            r
            for r in list_plugins(host)
            if (r["entry_point"] or "").split(" = ")[0] == owner
            or (not r["entry_point"] and r["name"] == owner)
        ]
        assert row["status"] == "loaded"
        wanted = {
            "register_providers",
            "transform_request",
            "transform_response",
            "transform_stream",
            "parse_usage",
        }
        assert wanted <= set(row["hooks"]), f"missing hooks: {sorted(wanted - set(row['hooks']))}"

    def test_other_provider_types_are_not_its_own(self) -> None:
        """Every request-path hook returns ``None`` at once for a provider type it does not own."""
        host = make_plugin_manager(extra=tuple(self.extra_plugins), autoload=self.autoload)
        plugin = host.pm.get_plugin(host.owners[("providers", self.provider_type)])
        foreign = Provider(name="other", type=f"not-{self.provider_type}", base_url="http://127.0.0.1:9")
        request = self._chat_request(self.chat_body())
        response = UpstreamResponse(status=200, headers={}, body=b"{}")
        calls: dict[str, dict[str, Any]] = {
            "transform_request": {"provider": foreign, "model": "m", "request": request, "api_key": "k"},
            "transform_response": {"provider": foreign, "request": request, "response": response},
            "transform_stream": {"provider": foreign, "request": request, "response": response},
            "parse_usage": {"provider": foreign, "request": request, "body": b"{}"},
        }
        for name, kwargs in calls.items():
            for impl in getattr(host.pm.hook, name).get_hookimpls():
                if impl.plugin is plugin:
                    args = {k: kwargs[k] for k in impl.argnames}
                    assert impl.function(**args) is None, f"{name} answered for another provider type"

    # --- answers ----------------------------------------------------------------------------------

    def test_chat(self, upstream: FakeUpstream, client: GatewayClient) -> None:
        """A chat answer in OpenAI's shape, from the deployment's model, with the first key."""
        upstream.script(Reply(text="Hello from the conformance suite"))
        answer = client.chat(self.chat_body())
        assert answer.status == 200, answer.body
        body = answer.json()
        assert body["object"] == "chat.completion"
        assert isinstance(body["id"], str) and body["id"]
        (choice,) = body["choices"]
        assert choice["index"] == 0
        assert choice["message"]["role"] == "assistant"
        assert choice["message"]["content"] == "Hello from the conformance suite"
        assert choice["finish_reason"] == "stop"
        assert answer.headers["x-truckllm-provider"] == "upstream"
        (received,) = upstream.requests
        assert received.model == self.model
        assert received.api_key == self.keys[0]
        assert not received.stream

    def test_stream_event_by_event(self, upstream: FakeUpstream, client: GatewayClient) -> None:
        """A stream of ``chat.completion.chunk`` events with one id, ending with ``data: [DONE]``."""
        upstream.script(Reply(text="one two three four five six seven eight"))
        answer = client.stream(self.chat_body())
        assert answer.status == 200, answer.raw
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.done, f"stream did not end with [DONE]: {answer.raw[-300:]!r}"
        assert [e.done for e in answer.events].count(True) == 1
        chunks = answer.chunks
        assert len(chunks) >= 3, "the answer was not streamed in several events"
        assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
        assert len({c["id"] for c in chunks}) == 1, "chunks of one answer must share one id"
        assert all(c["choices"] for c in chunks), "a usage-only chunk the client did not ask for"
        assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
        assert answer.text() == "one two three four five six seven eight"
        reasons = [c["choices"][0].get("finish_reason") for c in chunks]
        assert reasons[-1] == "stop" and not any(reasons[:-1])
        assert answer.error is None
        (received,) = upstream.requests
        assert received.stream

    def test_stream_is_forwarded_as_it_arrives(self, upstream: FakeUpstream, client: GatewayClient) -> None:
        """Events reach the client as the upstream sends them, not all at the end."""
        upstream.inject(Fault(chunk_delay=0.15))
        upstream.script(Reply(text="a b c d e f g h"))
        answer = client.stream(self.chat_body())
        assert answer.done
        content = [e for e in answer.events if not e.done]
        assert content[-1].at - content[0].at >= 0.3, "the stream was buffered, not forwarded"

    def test_stream_usage_when_asked(
        self, upstream: FakeUpstream, client: GatewayClient, recorder: RecordingPlugin
    ) -> None:
        """With ``stream_options.include_usage`` the last chunk has ``choices: []`` and the usage."""
        upstream.script(Reply(text="counted words here", prompt_tokens=11, completion_tokens=3))
        answer = client.stream(self.chat_body(stream_options={"include_usage": True}))
        assert answer.done
        last = answer.chunks[-1]
        assert last["choices"] == []
        assert last["usage"]["prompt_tokens"] == 11
        assert last["usage"]["completion_tokens"] == 3
        assert last["usage"]["total_tokens"] == 14
        (record,) = self.records(recorder, 1)
        assert record.usage is not None and record.usage.total_tokens == 14

    def test_stream_usage_is_recorded_even_when_not_asked(
        self, upstream: FakeUpstream, client: GatewayClient, recorder: RecordingPlugin
    ) -> None:
        """Tokens are counted for every stream: the record has the usage the client did not ask for."""
        upstream.script(Reply(text="counted anyway", prompt_tokens=9, completion_tokens=2))
        answer = client.stream(self.chat_body())
        assert answer.done
        (record,) = self.records(recorder, 1)
        assert record.usage is not None, "stream usage was not read: ask the upstream for it"
        assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (9, 2)

    def test_usage(self, upstream: FakeUpstream, client: GatewayClient, recorder: RecordingPlugin) -> None:
        """A non-stream answer's usage reaches the client and the request record (``parse_usage``)."""
        upstream.script(Reply(text="four words right here", prompt_tokens=21, completion_tokens=4))
        answer = client.chat(self.chat_body())
        assert answer.status == 200
        usage = answer.json()["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (21, 4, 25)
        (record,) = self.records(recorder, 1)
        assert record.status == 200 and record.provider == "upstream" and record.provider_key == "key1"
        assert record.usage is not None
        assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (21, 4)

    def test_tool_calls(self, upstream: FakeUpstream, client: GatewayClient) -> None:
        """Tool calls come back as OpenAI ``tool_calls`` with JSON arguments."""
        if not self.supports_tools:
            pytest.skip("the provider has no tool calls")
        calls = [ToolCall("get_weather", {"where": "Paris"}), ToolCall("get_time", {"where": "Oslo"})]
        upstream.script(Reply(tool_calls=calls))
        answer = client.chat(self.chat_body("Weather and time?", tools=WEATHER_TOOLS))
        assert answer.status == 200, answer.body
        choice = answer.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        tool_calls = choice["message"]["tool_calls"]
        assert [t["function"]["name"] for t in tool_calls] == ["get_weather", "get_time"]
        assert [json.loads(t["function"]["arguments"]) for t in tool_calls] == [
            {"where": "Paris"},
            {"where": "Oslo"},
        ]
        assert all(t["type"] == "function" and t["id"] for t in tool_calls)

    def test_tool_calls_streamed(self, upstream: FakeUpstream, client: GatewayClient) -> None:
        """Streamed tool calls: by ``index``, name once, arguments in pieces that join into JSON."""
        if not self.supports_tools:
            pytest.skip("the provider has no tool calls")
        calls = [ToolCall("get_weather", {"where": "Paris"}), ToolCall("get_time", {"where": "Oslo"})]
        upstream.script(Reply(tool_calls=calls))
        answer = client.stream(self.chat_body("Weather and time?", tools=WEATHER_TOOLS))
        assert answer.done, answer.raw[-300:]
        names: dict[int, str] = {}
        ids: dict[int, str] = {}
        arguments: dict[int, str] = {}
        for chunk in answer.chunks:
            for call in chunk["choices"][0]["delta"].get("tool_calls") or []:
                index = call["index"]
                function = call.get("function") or {}
                if function.get("name"):
                    assert index not in names, "a tool call's name was sent twice"
                    names[index] = function["name"]
                if call.get("id"):
                    ids[index] = call["id"]
                arguments[index] = arguments.get(index, "") + (function.get("arguments") or "")
        assert names == {0: "get_weather", 1: "get_time"}
        assert set(ids) == {0, 1}
        assert json.loads(arguments[0]) == {"where": "Paris"}
        assert json.loads(arguments[1]) == {"where": "Oslo"}
        assert answer.chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    # --- errors -----------------------------------------------------------------------------------

    def test_rate_limit_fails_over_and_cools_the_key(
        self, upstream: FakeUpstream, client: GatewayClient
    ) -> None:
        """A 429 with ``Retry-After`` on the first key: the second key answers; the first cools down."""
        upstream.inject(Fault(status=429, retry_after=12, key=self.keys[0]))
        answer = client.chat(self.chat_body())
        assert answer.status == 200, answer.body
        assert [r.api_key for r in upstream.requests] == list(self.keys)
        states = self.key_states(client)
        assert states["key1"]["state"] == "cooldown", states["key1"]
        # the config's cooldown is 30 s: 12 s means the provider's Retry-After was read
        assert 8 <= states["key1"]["cooldown_remaining_s"] <= 12, "Retry-After was not read"
        assert client.chat(self.chat_body()).status == 200
        assert upstream.requests[-1].api_key == self.keys[1], "a cooling key was used"

    def test_rate_limit_everywhere_is_a_429_with_retry_after(
        self, upstream: FakeUpstream, client: GatewayClient
    ) -> None:
        """Every key rate-limited: the client gets 429 with ``Retry-After``, in OpenAI's error shape."""
        upstream.inject(Fault(status=429, retry_after=7, times=2))
        answer = client.chat(self.chat_body())
        assert answer.status == 429, answer.body
        assert 1 <= float(answer.headers["retry-after"]) <= 8
        error = answer.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["message"]
        assert len(upstream.requests) == 2

    def test_auth_error_disables_the_key(self, upstream: FakeUpstream, client: GatewayClient) -> None:
        """A 401 disables the key (it never heals by itself); the request fails over to the next key."""
        upstream.inject(Fault(status=401, key=self.keys[0]))
        answer = client.chat(self.chat_body())
        assert answer.status == 200, answer.body
        assert self.key_states(client)["key1"]["state"] == "disabled"
        for _ in range(2):
            assert client.chat(self.chat_body()).status == 200
        assert [r.api_key for r in upstream.requests] == [
            self.keys[0],
            self.keys[1],
            self.keys[1],
            self.keys[1],
        ]

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_error_fails_over(
        self, upstream: FakeUpstream, client: GatewayClient, status: int
    ) -> None:
        """A 5xx is a failed attempt: the next key answers."""
        upstream.inject(Fault(status=status, key=self.keys[0]))
        answer = client.chat(self.chat_body())
        assert answer.status == 200, answer.body
        assert [r.api_key for r in upstream.requests] == list(self.keys)

    def test_stream_fails_over_before_the_first_byte(
        self, upstream: FakeUpstream, client: GatewayClient
    ) -> None:
        """A stream whose upstream fails before answering is retried on the next key, invisibly."""
        upstream.inject(Fault(status=503, key=self.keys[0]))
        answer = client.stream(self.chat_body())
        assert answer.status == 200 and answer.done and answer.error is None
        assert [r.api_key for r in upstream.requests] == list(self.keys)

    def test_client_error_is_final(self, upstream: FakeUpstream, client: GatewayClient) -> None:
        """A 400 (the request is at fault) is answered at once, with no other attempt and no penalty."""
        upstream.inject(Fault(status=400, kind="bad_request"))
        answer = client.chat(self.chat_body())
        assert answer.status == 400, answer.body
        assert answer.json()["error"]["message"]
        assert len(upstream.requests) == 1
        assert self.key_states(client)["key1"]["state"] == "ok"

    # --- streams that end badly -------------------------------------------------------------------

    def test_client_disconnect_cancels_the_upstream(
        self, upstream: FakeUpstream, client: GatewayClient
    ) -> None:
        """A client that goes away mid-stream cancels the upstream request at once."""
        upstream.inject(Fault(chunk_delay=0.2))
        upstream.script(Reply(text=" ".join(f"w{i}" for i in range(40))))
        answer = client.stream(self.chat_body(), stop_after=1)
        assert answer.status == 200 and not answer.done
        wait_for(
            lambda: upstream.requests[0].disconnected, timeout=3, what="the upstream request to be cancelled"
        )

    def _assert_failed_stream(
        self, answer: StreamAnswer, upstream: FakeUpstream, recorder: RecordingPlugin
    ) -> None:
        assert answer.status == 200
        assert answer.chunks, "no event before the failure"
        assert not answer.done, "a failed stream ended like a complete one"
        assert answer.error is not None, f"no error event: {answer.raw[-300:]!r}"
        assert answer.error.get("message")
        assert len(upstream.requests) == 1, "a stream was retried after its first byte"
        (record,) = self.records(recorder, 1)
        assert record.error_kind is not None

    def test_mid_stream_error_event_is_relayed(
        self, upstream: FakeUpstream, client: GatewayClient, recorder: RecordingPlugin
    ) -> None:
        """An error event from the upstream after the first byte: an error event with its message."""
        sent: list[bytes] = []
        original = upstream.stream_error

        def capture(ctx: Any, kind: str | None, index: int) -> bytes:
            data = original(ctx, kind, index)
            sent.append(data)
            return data

        upstream.stream_error = capture  # type: ignore[method-assign]
        upstream.inject(Fault(chunk_delay=0.1, error_after=2))
        upstream.script(Reply(text="one two three four five six seven eight"))
        answer = client.stream(self.chat_body())
        self._assert_failed_stream(answer, upstream, recorder)
        messages = _messages(sent[0]) if sent else []
        assert answer.error is not None
        if messages:
            assert any(m[:40] in answer.error["message"] for m in messages), (
                f"the upstream's error {messages} became {answer.error['message']!r}: "
                "was the error event read?"
            )

    def test_mid_stream_cut_is_an_error_event(
        self, upstream: FakeUpstream, client: GatewayClient, recorder: RecordingPlugin
    ) -> None:
        """The connection cut after the first byte: an error event, no [DONE]."""
        upstream.inject(Fault(chunk_delay=0.1, drop_after=2))
        upstream.script(Reply(text="one two three four five six seven eight"))
        self._assert_failed_stream(client.stream(self.chat_body()), upstream, recorder)

    def test_stream_ending_without_its_terminator_is_an_error_event(
        self, upstream: FakeUpstream, client: GatewayClient, recorder: RecordingPlugin
    ) -> None:
        """A stream that ends cleanly but early (no ``[DONE]`` or the dialect's end): an error event."""
        had_terminator: list[bool] = []
        original = upstream.send_stream

        async def truncated(ctx: Any, events: Any, **kwargs: Any) -> Any:
            had_terminator.append(kwargs.get("terminator") is not None)
            kwargs["terminator"] = None
            return await original(ctx, events, **kwargs)

        upstream.send_stream = truncated  # type: ignore[method-assign]
        upstream.inject(Fault(chunk_delay=0.05))
        answer = client.stream(self.chat_body())
        if had_terminator == [False]:
            pytest.skip("this upstream's streams have no terminator to leave out")
        self._assert_failed_stream(answer, upstream, recorder)


def _messages(data: bytes) -> list[str]:
    """Every ``message`` string in the JSON of an upstream error event (best effort)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "message" and isinstance(item, str) and item:
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    text = data.decode("utf-8", "replace")
    start = text.find("{")
    if start >= 0:
        with contextlib.suppress(ValueError):
            walk(json.JSONDecoder().raw_decode(text[start:])[0])
    return found
