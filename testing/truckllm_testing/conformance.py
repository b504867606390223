"""A conformance suite for provider plugins: subclass it in a test module and run pytest.

Every check drives a real gateway (:class:`~truckllm_testing.server.GatewayServer`) in front of
one of the fake upstreams (:mod:`truckllm_testing.fakes`), through plain HTTP, as a client
would. A provider plugin passes when clients see OpenAI's wire format and the kernel's routing
rules hold::

    # tests/test_myllm_conformance.py
    from truckllm_testing.conformance import ProviderConformance
    from truckllm_testing.fakes import FakeOpenAI


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
import io
import json
import math
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import unquote

import msgspec
import pytest
from loguru import logger

from truckllm import hookimpl
from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import StartupError
from truckllm.hookspecs import HOOKSPEC_VERSION
from truckllm.types import ChatRequest, Provider, RequestRecord, UpstreamResponse
from truckllm_testing.fakes import FakeOpenAI, FakeUpstream, Fault, Reply, ToolCall
from truckllm_testing.hostile import (
    MARKER,
    RETRY_AFTER_MS_VALUES,
    RETRY_AFTER_VALUES,
    TOKEN_VALUES,
    Hostile,
    HostileRequest,
    HostileUpstream,
    key_fragments,
)
from truckllm_testing.server import GatewayServer

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


# --- checks against a hostile upstream ------------------------------------------------------------

HOSTILE_KEY = "hk-Zq8Wv3Lr7Tn2Xc5Kp9Hd4Mf6Gb1Jy0SaE"
"""The provider key of the hostile checks: no key-looking prefix, so only the scrubbing of
configured secrets (not the ``sk-...`` pattern) can hide it."""
MAX_RETRY_AFTER = 3600.0
"""The longest ``Retry-After`` (and key cooldown) an upstream may cause: the default of
``routing.cooldown.max_retry_after``."""
MAX_LIMIT = 10**15
"""Rate-limit figures above this (or below 0) are absurd: they must be read as unknown."""

_SEGMENT = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=@-]|%[0-9A-Fa-f]{2})+")
"""One path segment (RFC 3986 ``pchar``), ``:`` excluded: Gemini's ``:method`` follows the model."""
_GARBAGE_ACTS = (
    "html",
    "random_bytes",
    "empty",
    "truncated_json",
    "json_array",
    "wrong_object",
    "other_dialect",
    "error_in_200",
    "deep_json",
)


@dataclass(frozen=True)
class HostileCase:
    """One row of the hostile-answer table: what the upstream does, and what the client may see."""

    id: str
    hostile: Hostile
    stream: bool
    kind: str | None = "bad_response"
    """The error kind every failed attempt must be recorded with (``None``: any but ``plugin``)."""


HOSTILE_CASES: tuple[HostileCase, ...] = (
    *(
        HostileCase(
            f"redirect-{status}{'-stream' if stream else ''}", Hostile("redirect", status=status), stream
        )
        for status in (301, 302, 303, 307, 308)
        for stream in (False, True)
    ),
    *(
        HostileCase(act + ("-stream" if stream else ""), Hostile(act), stream)
        for act in _GARBAGE_ACTS
        for stream in (False, True)
    ),
    HostileCase("huge_body", Hostile("huge_body"), False, kind=None),
    HostileCase("wrong_content_type", Hostile("wrong_content_type"), True),
    HostileCase("sse_invalid_first", Hostile("sse_invalid_first"), True),
    HostileCase("sse_invalid_after", Hostile("sse_invalid_after", after=2, chunk_delay=0.02), True),
    HostileCase("sse_non_json_first", Hostile("sse_non_json", after=0), True),
    HostileCase("sse_non_json_after", Hostile("sse_non_json", after=3, chunk_delay=0.02), True),
    HostileCase("sse_wrong_shape", Hostile("sse_wrong_shape", after=2), True),
    HostileCase("sse_cut", Hostile("sse_cut", after=2), True, kind=None),
    HostileCase("sse_error_event", Hostile("sse_error_event", after=2), True, kind=None),
    HostileCase("sse_huge_frame", Hostile("sse_huge_frame", after=2), True, kind=None),
)
"""Every hostile answer the suite tries, whole and streamed."""

KEY_LEAK_CASES: tuple[tuple[str, int, bool], ...] = (
    *(("echo_key", status, False) for status in (400, 401, 403, 404, 413, 422, 429, 500, 502, 503)),
    ("echo_key_fragments", 400, False),
    ("echo_key_fragments", 500, False),
    ("echo_key_straddle", 400, False),
    ("echo_key_straddle", 500, False),
    ("echo_key", 400, True),
    ("echo_key", 500, True),
    ("echo_key_fragments", 400, True),
    ("echo_key_straddle", 429, True),
    ("sse_error_event", 200, True),
)
"""(act, status, stream): every way the suite's upstream echoes the key it was sent."""

URL_MODELS: tuple[str, ...] = (
    "x",
    "m:latest",
    "x@y+z",
    "org/model:tag",
    "gem/../../zzz#",
    "x?key=evil&",
    "../../v1/models",
    "..",
    ".",
    "%2e%2e",
    "a%2Fb",
    "a/b",
    "a b",
    "a\r\nx-injected: 1",
    "m\n",
    "m#fragment",
    "m?alt=json",
    "m;param",
    ":generateContent",
    "m:streamGenerateContent?alt=sse&key=x",
    "模型-ü",
    "\u2028",
    "",
)
"""Model names a client (or a careless config) may give: each is either one encoded URL segment
(or a body field) or refused with 400 before anything is sent."""

NASTY_PIECES = ("../", "..", ".", "/", "?", "#", "&", "=", "%", "%2F", "%2e", " ", "\r", "\n", "\t",
                ":", ":generateContent", "?key=evil&", "\\", "@", ";", "+", "é", "模型", "\x00",
                "gem", "model", "x")  # fmt: skip
"""What the arbitrary model strings of the URL checks are made of, besides any text."""


def model_strings() -> Any:
    """A hypothesis strategy of arbitrary model strings, biased towards what URLs make special
    (hypothesis is imported here: the rest of the suite needs only pytest)."""
    st = pytest.importorskip("hypothesis.strategies")
    return st.one_of(st.text(max_size=24), st.lists(st.sampled_from(NASTY_PIECES), max_size=6).map("".join))


Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def _property(examples: int) -> Decorator:
    """hypothesis ``settings`` for a check run from inside a test (fixtures are reused)."""
    hypothesis = pytest.importorskip("hypothesis")
    return hypothesis.settings(  # type: ignore[no-any-return]
        max_examples=_examples(examples),
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        database=None,
    )


@dataclass(frozen=True)
class UpstreamTarget:
    """Where a provider plugin must send a request for one model, as the hostile server sees it.

    With ``model_in_path`` the raw path is ``prefix + <model as one percent-encoded segment> +
    suffix``; otherwise the path is ``prefix`` exactly and the model is the body's ``model``. The
    query string holds exactly ``params``.
    """

    prefix: str
    suffix: str = ""
    params: tuple[tuple[str, str], ...] = ()
    model_in_path: bool = False

    def check(self, seen: HostileRequest, model: str) -> None:
        """Fail unless ``seen`` is this target for ``model``."""
        where = f"the plugin sent {seen.method} {seen.target!r} for the model {model!r}"
        assert seen.params == list(self.params), f"{where}: query parameters it did not mean to send"
        if not self.model_in_path:
            assert seen.path == self.prefix, f"{where}: expected the path {self.prefix!r}"
            body = seen.json()
            assert isinstance(body, dict) and body.get("model") == model, f"{where}: the body's model changed"
            return
        path = seen.path
        assert path.startswith(self.prefix) and path.endswith(self.suffix), (
            f"{where}: expected {self.prefix}<model>{self.suffix}"
        )
        segment = path[len(self.prefix) : len(path) - len(self.suffix)]
        assert _SEGMENT.fullmatch(segment), f"{where}: the model is not one percent-encoded segment"
        if not self.suffix or self.suffix[0] == "/":
            assert segment not in (".", ".."), f"{where}: the model is a dot segment"
        assert unquote(segment, errors="strict") == model, f"{where}: the segment decodes to another model"


_SURROGATE_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def yaml_json(value: Any) -> str:
    """``value`` as JSON that a YAML loader reads back exactly: ASCII only, characters beyond the
    BMP as YAML's ``\\UXXXXXXXX`` (YAML reads JSON's surrogate-pair escapes as two characters)."""

    def astral(match: re.Match[str]) -> str:
        high, low = int(match.group(1), 16), int(match.group(2), 16)
        return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08x}"

    return _SURROGATE_PAIR.sub(astral, json.dumps(value, indent=1))


class LogCapture:
    """Every log line of the gateway (loguru, DEBUG and up, exceptions included) while it is open."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._sink: int | None = None

    def __enter__(self) -> LogCapture:
        self._sink = logger.add(
            self._buffer, level="DEBUG", format="{message} {extra} {exception}", backtrace=True, diagnose=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sink is not None:
            logger.remove(self._sink)
            self._sink = None

    @property
    def text(self) -> str:
        """What was logged so far."""
        return self._buffer.getvalue()


def assert_no_secret(text: str, secret: str, where: str) -> None:
    """Fail if ``secret``, or any run of 8 of its characters, is in ``text``."""
    for fragment in key_fragments(secret):
        assert fragment not in text, f"{len(fragment)} characters of the provider key reached {where}"


def _is_chat_completion(body: bytes) -> bool:
    try:
        value = json.loads(body)
    except ValueError:
        return False
    choices = value.get("choices") if isinstance(value, dict) else None
    return (
        value.get("object") == "chat.completion"
        and isinstance(choices, list)
        and all(isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices)
    )


class HostileUpstreamChecks:
    """Checks of a provider plugin against :class:`~truckllm_testing.hostile.HostileUpstream`.

    Part of :class:`ProviderConformance`. The gateway under test has one provider entry
    (``providers.upstream``, one key, :data:`HOSTILE_KEY`) pointed at the hostile server, with
    ``direct: true`` so ``upstream/<model>`` can be sent. What is held, for every hostile answer:
    the client gets a valid answer or an upstream error (502, or an error event once a stream has
    started), never a 200 carrying garbage, never a 500 or a traceback; the provider key (or 8 of
    its characters) is in no answer, header, record or log line; ``Retry-After`` and key
    cooldowns stay within an hour; recorded usage is never negative; a model name reaches the
    upstream URL only as one percent-encoded segment (or in the body), or is refused with a 400.
    """

    provider_type: ClassVar[str] = ""
    provider_options: ClassVar[Mapping[str, Any] | None] = None
    base_url_suffix: ClassVar[str] = ""
    model: ClassVar[str] = "conformance-model"
    extra_plugins: ClassVar[Sequence[object]] = ()
    autoload: ClassVar[bool | None] = None
    hostile_key: ClassVar[str] = HOSTILE_KEY
    """The provider key of the hostile checks."""
    upstream_dialect: ClassVar[str | None] = None
    """``openai``, ``anthropic`` or ``gemini``: the wire format the plugin speaks upstream
    (``None``: the ``dialect`` its ``ProviderSpec`` registers)."""

    # --- configuration (override to adapt) --------------------------------------------------------

    def hostile_dialect(self) -> str:
        """The upstream wire format of the plugin under test."""
        if self.upstream_dialect is not None:
            return self.upstream_dialect
        host = make_plugin_manager(extra=tuple(self.extra_plugins), autoload=self.autoload)
        return host.providers[self.provider_type].dialect

    def hostile_entry(self, hostile: HostileUpstream) -> dict[str, Any]:
        """The ``providers.upstream`` entry pointing at ``hostile``."""
        entry: dict[str, Any] = {
            "type": self.provider_type,
            "base_url": hostile.base_url(self.hostile_dialect()) + self.base_url_suffix,
            "keys": [{"name": "key1", "value": self.hostile_key}],
            "direct": True,
        }
        if self.provider_options is not None:
            entry["options"] = dict(self.provider_options)
        return entry

    def hostile_config(self, hostile: HostileUpstream, models: Sequence[str] = ()) -> dict[str, Any]:
        """The gateway config in front of ``hostile``: aliases ``conformance`` and ``m0``, ``m1``...
        for ``models``; failures never eject the key; answers over 1 MiB are refused."""
        aliases = {ALIAS: self.model, **{f"m{i}": model for i, model in enumerate(models)}}
        return {
            "admin": {"token": ADMIN_TOKEN},
            "server": {"max_response_bytes": 1024 * 1024},
            "routing": {
                "retries": 1,
                "backoff": {"base": "1ms", "max": "2ms"},
                "try_timeout": "10s",
                "stream_idle_timeout": "5s",
                "cooldown": {"failures": 1000000, "error_ratio": 1.0, "duration": "1s"},
                "retry_budget": {"tokens": 1000000, "ratio": 1000, "min": 1000},
            },
            "providers": {"upstream": self.hostile_entry(hostile)},
            "models": {
                name: {"strategy": "first", "deployments": [{"provider": "upstream", "model": model}]}
                for name, model in aliases.items()
            },
        }

    def upstream_target(self, model: str, stream: bool) -> UpstreamTarget:
        """Where a chat request for ``model`` must go (override for a plugin with other paths)."""
        dialect = self.hostile_dialect()
        base = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}[dialect] + self.base_url_suffix
        params = tuple((str(k), str(v)) for k, v in (self.provider_options or {}).get("query", {}).items())
        if dialect == "gemini":
            method = ":streamGenerateContent" if stream else ":generateContent"
            return UpstreamTarget(
                base + "/models/", method, (("alt", "sse"),) if stream else (), model_in_path=True
            )
        return UpstreamTarget(
            base + ("/v1/messages" if dialect == "anthropic" else "/chat/completions"), params=params
        )

    def hostile_gateway_for(
        self, hostile: HostileUpstream, recorder: RecordingPlugin, models: Sequence[str] = ()
    ) -> GatewayServer:
        """A gateway (not started) in front of ``hostile``."""
        config = yaml_json(self.hostile_config(hostile, models))
        return GatewayServer(config, extra_plugins=(*self.extra_plugins, recorder), autoload=self.autoload)

    # --- fixtures -------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def hostile_server(cls) -> Iterator[HostileUpstream]:
        """The hostile upstream, shared by the checks of one class."""
        if not cls.provider_type:
            raise pytest.UsageError(f"{cls.__name__}.provider_type is not set")
        with HostileUpstream().running() as server:
            yield server

    @pytest.fixture(scope="class")
    @classmethod
    def hostile_recorder(cls) -> RecordingPlugin:
        """Keeps the request records of the shared hostile gateway."""
        return RecordingPlugin()

    @pytest.fixture(scope="class")
    @classmethod
    def hostile_gateway(
        cls, hostile_server: HostileUpstream, hostile_recorder: RecordingPlugin
    ) -> Iterator[GatewayServer]:
        """One gateway in front of the hostile server, shared by the checks of one class."""
        with cls().hostile_gateway_for(hostile_server, hostile_recorder) as gw:
            yield gw

    @pytest.fixture
    def hostile(self, hostile_server: HostileUpstream, hostile_recorder: RecordingPlugin) -> HostileUpstream:
        """The hostile server, its queue, requests and the records emptied for this check."""
        hostile_server.reset()
        hostile_recorder.records.clear()
        return hostile_server

    @pytest.fixture
    def gateway_logs(self) -> Iterator[LogCapture]:
        """The gateway's log lines during the check."""
        with LogCapture() as logs:
            yield logs

    @pytest.fixture
    def hostile_client(self, hostile_gateway: GatewayServer) -> GatewayClient:
        """A client of the shared hostile gateway, its key put back in rotation (an earlier check
        may have had it disabled by a 401 or cooled by a 429)."""
        client = GatewayClient(hostile_gateway)
        enabled = client.request("POST", "/admin/v1/providers/upstream/keys/key1/enable", token=ADMIN_TOKEN)
        assert enabled.status == 200, enabled.body
        return client

    # --- helpers ----------------------------------------------------------------------------------

    def _hostile_body(self, model: str = ALIAS, stream: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
        if stream:
            body["stream"] = True
        return body

    def _send(self, client: GatewayClient, stream: bool, model: str = ALIAS) -> Answer | StreamAnswer:
        if stream:
            return client.stream(self._hostile_body(model))
        return client.chat(self._hostile_body(model))

    @staticmethod
    def _everything(answer: Answer | StreamAnswer) -> str:
        body = answer.raw if isinstance(answer, StreamAnswer) else answer.body
        head = json.dumps(answer.headers)
        return f"{answer.status}\n{head}\n{body.decode('utf-8', 'replace')}"

    @staticmethod
    def _failed_or_valid(answer: Answer | StreamAnswer) -> bool:
        """Check the client's answer is a valid answer or an upstream error; True when it failed."""
        text = HostileUpstreamChecks._everything(answer)
        assert MARKER not in text, f"the upstream's garbage reached the client: {text[:300]!r}"
        assert "Traceback" not in text, "a traceback reached the client"
        assert answer.status != 500, f"a hostile upstream made the gateway fail (500): {text[:300]!r}"
        if isinstance(answer, StreamAnswer) and answer.status == 200:
            for chunk in answer.chunks:
                assert chunk.get("object") == "chat.completion.chunk", f"not a chunk: {chunk!r}"
                assert isinstance(chunk.get("choices"), list), f"a chunk without choices: {chunk!r}"
            if answer.done:
                assert answer.error is None
                return False
            assert answer.error is not None, (
                f"a stream ended with neither [DONE] nor an error: {answer.raw[-300:]!r}"
            )
            assert answer.error.get("message")
            return True
        body = answer.raw if isinstance(answer, StreamAnswer) else answer.body
        if answer.status == 200:
            assert _is_chat_completion(body), f"a 200 that is not a chat completion: {body[:300]!r}"
            return False
        assert answer.status == 502, f"expected a valid answer or a 502, got {answer.status}: {body[:300]!r}"
        error = json.loads(body)["error"]
        assert error["message"] and error["type"], error
        return True

    def _attempt_kinds(self, recorder: RecordingPlugin) -> list[str | None]:
        (record,) = self.records(recorder, 1)
        return [a.error_kind for a in record.attempts]

    def records(self, recorder: RecordingPlugin, count: int) -> list[RequestRecord]:
        """The first ``count`` request records, waiting for them (they are emitted after the answer)."""
        wait_for(lambda: len(recorder.records) >= count, what=f"{count} request record(s)")
        return recorder.records[:count]

    def _key_states(self, gateway: GatewayServer) -> dict[str, dict[str, Any]]:
        answer = GatewayClient(gateway).request("GET", "/admin/v1/providers", token=ADMIN_TOKEN)
        assert answer.status == 200, answer.body
        (provider,) = [p for p in answer.json()["providers"] if p["name"] == "upstream"]
        return {k["name"]: k for k in provider["keys"]}

    # --- the checks -------------------------------------------------------------------------------

    @pytest.mark.parametrize("case", HOSTILE_CASES, ids=[c.id for c in HOSTILE_CASES])
    def test_hostile_answer_is_a_valid_answer_or_a_502(
        self,
        case: HostileCase,
        hostile: HostileUpstream,
        hostile_client: GatewayClient,
        hostile_recorder: RecordingPlugin,
        gateway_logs: LogCapture,
    ) -> None:
        """A redirect, a 200 that is not the dialect's answer (HTML, bytes, empty, cut, wrong shape,
        another dialect, deep, huge) or a broken stream: a valid answer or an upstream error, never
        garbage, a 500 or a plugin crash; every failed attempt is recorded as ``bad_response``."""
        hostile.script(replace(case.hostile, times=-1))
        answer = self._send(hostile_client, case.stream)
        failed = self._failed_or_valid(answer)
        kinds = self._attempt_kinds(hostile_recorder)
        assert hostile.requests, "nothing reached the upstream"
        assert all(r.act == case.hostile.act for r in hostile.requests)
        assert "plugin" not in kinds, f"the plugin crashed on a hostile answer: {kinds}"
        assert "Traceback" not in gateway_logs.text, "a hostile answer logged a traceback"
        if case.stream and answer.status == 200 and not failed:
            return  # e.g. a whole answer to a stream request, translated into a valid stream
        assert failed, "a hostile answer was served as a success"
        if case.kind is not None:
            assert kinds and all(k == case.kind for k in kinds), (
                f"attempts recorded as {kinds}, not {case.kind}"
            )
        if case.hostile.act == "redirect":
            assert all(r.path != "/latest/meta-data/" for r in hostile.requests), "a redirect was followed"

    @pytest.mark.parametrize(
        ("act", "status", "stream"),
        KEY_LEAK_CASES,
        ids=[f"{a}-{s}{'-stream' if t else ''}" for a, s, t in KEY_LEAK_CASES],
    )
    def test_hostile_upstream_cannot_leak_the_key(
        self,
        act: str,
        status: int,
        stream: bool,
        hostile: HostileUpstream,
        hostile_gateway: GatewayServer,
        hostile_client: GatewayClient,
        hostile_recorder: RecordingPlugin,
        gateway_logs: LogCapture,
    ) -> None:
        """An upstream echoing the key (whole, in pieces, across byte 300, in every string field,
        nested ones too, in headers, mid-stream): no 8 characters of it reach the client's status,
        headers or body, a request record, a log line or the admin view."""
        hostile.script(Hostile(act, status=status, after=2, times=-1))
        answer = self._send(hostile_client, stream)
        assert stream or answer.status != 200, answer
        assert "Traceback" not in self._everything(answer)
        (record,) = self.records(hostile_recorder, 1)
        assert hostile.requests and hostile.requests[0].api_key == self.hostile_key
        admin = GatewayClient(hostile_gateway).request("GET", "/admin/v1/providers", token=ADMIN_TOKEN)
        assert_no_secret(self._everything(answer), self.hostile_key, "the client")
        assert_no_secret(msgspec.json.encode(record).decode(), self.hostile_key, "the request record")
        assert_no_secret(gateway_logs.text, self.hostile_key, "the logs")
        assert_no_secret(admin.body.decode(), self.hostile_key, "the admin view")

    @pytest.mark.parametrize(
        ("header", "value", "status"),
        [
            *(("retry_after", v, 429) for v in RETRY_AFTER_VALUES),
            *(("retry_after", v, 503) for v in RETRY_AFTER_VALUES[:2]),
            *(("retry_after_ms", v, 429) for v in RETRY_AFTER_MS_VALUES),
        ],
    )
    def test_hostile_retry_after_is_bounded(
        self,
        header: str,
        value: str,
        status: int,
        hostile: HostileUpstream,
        hostile_recorder: RecordingPlugin,
    ) -> None:
        """``Retry-After`` of 3000 years, negative, ``nan``, a date in year 9999...: the client is told
        to wait at most an hour (or nothing), and the key cools for at most an hour."""
        hostile.script(Hostile(header, status=status, value=value, times=-1))
        recorder = RecordingPlugin()
        with self.hostile_gateway_for(hostile, recorder) as gw:
            answer = GatewayClient(gw).chat(self._hostile_body())
            assert answer.status in (429, 503, 502), answer.body
            assert "Traceback" not in answer.body.decode("utf-8", "replace")
            retry = answer.headers.get("retry-after")
            if retry is not None:
                seconds = float(retry)
                assert math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_AFTER, f"Retry-After: {retry}"
            state = self._key_states(gw)["key1"]
            assert 0 <= state["cooldown_remaining_s"] <= MAX_RETRY_AFTER, state
            assert 0 <= state["ejected_remaining_s"] <= MAX_RETRY_AFTER, state
            self.records(recorder, 1)
        assert "plugin" not in [a.error_kind for a in recorder.records[0].attempts]

    @pytest.mark.parametrize("tokens", TOKEN_VALUES, ids=[repr(v) for v in TOKEN_VALUES])
    @pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
    def test_hostile_usage_is_never_negative(
        self,
        tokens: Any,
        stream: bool,
        hostile: HostileUpstream,
        hostile_client: GatewayClient,
        hostile_recorder: RecordingPlugin,
    ) -> None:
        """Token counts of -1 000 000, 10**18, 1.5, ``"12"``, ``null``: a valid answer or a 502, and
        the recorded usage and cost are never negative."""
        hostile.script(Hostile("usage", tokens=tokens, times=-1))
        answer = self._send(hostile_client, stream)
        self._failed_or_valid(answer)
        (record,) = self.records(hostile_recorder, 1)
        assert record.cost_usd >= 0, record.cost_usd
        if record.usage is not None:
            for name in record.usage.__struct_fields__:
                assert getattr(record.usage, name) >= 0, (
                    f"recorded usage {name} = {getattr(record.usage, name)}"
                )
        assert "plugin" not in [a.error_kind for a in record.attempts]

    @pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
    def test_hostile_rate_limit_headers_are_read_as_unknown(
        self,
        stream: bool,
        hostile: HostileUpstream,
        hostile_gateway: GatewayServer,
        hostile_client: GatewayClient,
    ) -> None:
        """Negative, absurd and non-numeric rate-limit headers on a valid answer: the answer is served
        and the key's recorded limits are unknown or sane (0 to 10**15, resets within a day)."""
        hostile.script(Hostile("ratelimit_headers", times=-1))
        answer = self._send(hostile_client, stream)
        assert not self._failed_or_valid(answer), "a valid answer with odd rate-limit headers failed"
        limits = self._key_states(hostile_gateway)["key1"]["limits"] or {}
        for name, value in limits.items():
            if value is None:
                continue
            assert isinstance(value, int | float) and math.isfinite(value), f"{name} = {value!r}"
            if name.startswith("reset"):
                assert 0 <= value <= 86400, f"{name} = {value!r}"
            else:
                assert 0 <= value <= MAX_LIMIT, f"{name} = {value!r}"

    @pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
    def test_model_names_are_one_url_segment_direct(
        self, stream: bool, hostile: HostileUpstream, hostile_client: GatewayClient
    ) -> None:
        """``upstream/<model>`` for every model of :data:`URL_MODELS`: the upstream gets exactly the
        expected path, the model as one encoded segment (or in the body) and no query parameter the
        plugin did not mean; or the client gets a 400 and nothing is sent."""
        sent = [model for model in URL_MODELS if self._check_direct(hostile, hostile_client, model, stream)]
        assert "x" in sent, "even a plain model name was not sent: the check would prove nothing"

    @pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
    def test_arbitrary_model_names_are_one_url_segment_direct(
        self, stream: bool, hostile: HostileUpstream, hostile_client: GatewayClient
    ) -> None:
        """The same for arbitrary model strings (hypothesis)."""
        given: Callable[..., Decorator] = pytest.importorskip("hypothesis").given

        @_property(25)
        @given(model_strings())
        def arbitrary(model: str) -> None:
            self._check_direct(hostile, hostile_client, model, stream)

        arbitrary()

    def test_model_names_are_one_url_segment_configured(self, hostile: HostileUpstream) -> None:
        """The same for every model of :data:`URL_MODELS` configured as a deployment's ``model``
        (one alias each, whole and streamed); a model the config refuses at load is never sent."""
        self._check_configured(hostile, [m for m in URL_MODELS if m])

    def test_arbitrary_model_names_are_one_url_segment_configured(self, hostile: HostileUpstream) -> None:
        """The same for arbitrary configured models (hypothesis; a gateway per batch)."""
        hypothesis = pytest.importorskip("hypothesis")
        given: Callable[..., Decorator] = hypothesis.given
        st = hypothesis.strategies

        @_property(6)
        @given(st.lists(model_strings().filter(bool), min_size=1, max_size=6, unique=True))
        def arbitrary(models: list[str]) -> None:
            self._check_configured(hostile, models)

        arbitrary()

    def _check_direct(
        self, hostile: HostileUpstream, client: GatewayClient, model: str, stream: bool
    ) -> bool:
        hostile.reset()
        answer = self._send(client, stream, model=f"upstream/{model}")
        return self._check_url(hostile, answer, model, stream)

    def _check_configured(self, hostile: HostileUpstream, models: Sequence[str]) -> None:
        hostile.reset()
        recorder = RecordingPlugin()
        try:
            gateway = self.hostile_gateway_for(hostile, recorder, models).start()
        except StartupError:
            assert not hostile.requests
            if len(models) > 1:  # find which: each alone
                for model in models:
                    self._check_configured(hostile, [model])
            return  # refused at load: nothing was ever sent
        try:
            client = GatewayClient(gateway)
            for i, model in enumerate(models):
                for stream in (False, True):
                    hostile.reset()
                    self._check_url(hostile, self._send(client, stream, model=f"m{i}"), model, stream)
        finally:
            gateway.stop()

    def _check_url(
        self, hostile: HostileUpstream, answer: Answer | StreamAnswer, model: str, stream: bool
    ) -> bool:
        """Check where ``model`` went: ``True`` when it was sent upstream, ``False`` when refused."""
        text = self._everything(answer)
        assert answer.status != 500 and "Traceback" not in text, f"model {model!r}: {text[:300]!r}"
        if not hostile.requests:
            assert answer.status in (400, 404), (
                f"model {model!r}: nothing was sent, yet the client got {text[:300]!r}"
            )
            return False
        assert answer.status == 200, f"model {model!r} was sent upstream, yet the client got {text[:300]!r}"
        for seen in hostile.requests:
            self.upstream_target(model, stream).check(seen, model)
            assert seen.api_key == self.hostile_key
        return True


def _examples(default: int) -> int:
    """Hypothesis examples per check: ``TRUCKLLM_PROPERTY_EXAMPLES`` or ``default``."""
    return int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", str(default)))


# --- the suite -------------------------------------------------------------------------------------


class ProviderConformance(HostileUpstreamChecks):
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
    credentials_expire: ClassVar[bool] = False
    """The keys' credentials are fetched by a ``ProviderSpec.credentials`` source and expire
    (cloud tokens): a 401 makes the kernel fetch a fresh one, and the key is disabled only when
    that one is refused as well."""

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
            "transform_response": {
                "provider": foreign,
                "request": request,
                "response": response,
                "model": "m",
            },
            "transform_stream": {"provider": foreign, "request": request, "response": response, "model": "m"},
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
        """A 401 disables the key (it never heals by itself); the request fails over to the next key.
        With :attr:`credentials_expire` the key first waits for a fresh credential, fetched at
        once, and is disabled when that one is refused as well (one refresh, not a storm)."""
        refusals = 2 if self.credentials_expire else 1
        upstream.inject(Fault(status=401, key=self.keys[0], times=-1))
        answer = client.chat(self.chat_body())
        assert answer.status == 200, answer.body
        if self.credentials_expire:
            wait_for(
                lambda: self.key_states(client)["key1"]["state"] == "ok", 20, what="key1's fresh credential"
            )
            answer = client.chat(self.chat_body())  # key1 first again, its fresh credential refused
            assert answer.status == 200, answer.body
        assert self.key_states(client)["key1"]["state"] == "disabled"
        for _ in range(2):
            assert client.chat(self.chat_body()).status == 200
        assert [r.api_key for r in upstream.requests] == [self.keys[0], self.keys[1]] * refusals + [
            self.keys[1],
            self.keys[1],
        ]

    def test_a_credential_refused_once(self, upstream: FakeUpstream, client: GatewayClient) -> None:
        """One 401: with :attr:`credentials_expire` the key gets a fresh credential at once and
        serves again (a revoked or rotated token), not disabled; any other key is disabled by
        that one 401 (a static key never heals by itself)."""
        upstream.inject(Fault(status=401, key=self.keys[0]))
        answer = client.chat(self.chat_body())
        assert answer.status == 200, answer.body
        if self.credentials_expire:
            wait_for(
                lambda: self.key_states(client)["key1"]["state"] == "ok", 20, what="key1's fresh credential"
            )
            again = self.keys[0]
        else:
            assert self.key_states(client)["key1"]["state"] == "disabled"
            again = self.keys[1]
        assert client.chat(self.chat_body()).status == 200
        assert [r.api_key for r in upstream.requests] == [self.keys[0], self.keys[1], again]

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
        """A stream that ends cleanly but early (no ``[DONE]``, or without the dialect's last
        event: Anthropic's ``message_stop``, Gemini's chunk with the ``finishReason``): an error
        event."""
        original = upstream.send_stream

        async def truncated(ctx: Any, events: Any, **kwargs: Any) -> Any:
            if kwargs.get("terminator") is None:  # the end is the dialect's last event: leave it out
                events = list(events)[:-1]
            kwargs["terminator"] = None
            return await original(ctx, events, **kwargs)

        upstream.send_stream = truncated  # type: ignore[method-assign]
        upstream.inject(Fault(chunk_delay=0.05))
        answer = client.stream(self.chat_body())
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
