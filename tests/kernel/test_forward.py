"""A dialect's own requests served through the request path: ``LocalCall.forward_stream``
(relayed as it arrives, one record when the stream ends, refusals before the first byte in the
dialect's format) and ``GatewayView.local_call`` (background work as a named gateway key)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx2 as httpx
import msgspec
import pytest

from truckllm import hookimpl
from truckllm.errors import GatewayError
from truckllm.kit.dialect import DialectRoute, FrameTranslator, LocalAnswer, LocalCall, bearer
from truckllm.types import ChatRequest, RequestRecord
from truckllm_testing.conformance import wait_for
from truckllm_testing.server import GatewayServer

CONFIG = """
keys: [{name: team, value: team-secret-1}]
providers: {demo: {type: mock}}
models: {demo: {deployments: [{provider: demo, model: echo}]}}
"""


class _Same:
    def feed(self, frames: bytes) -> bytes:
        return frames

    def close(self) -> bytes:
        return b""


class Relay:
    """A dialect whose one local route streams a chat answer it asks for itself."""

    name = "relay"
    reframes_own = False
    routes = (DialectRoute(path="/relay/{model}", endpoint="local", methods=("GET",), name="relay"),)

    def credentials(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        return bearer(headers.get("authorization"))

    def parse(self, *args: Any) -> ChatRequest:
        raise GatewayError(404, "No such route.")

    async def serve_local(self, route: DialectRoute, call: LocalCall) -> LocalAnswer:
        assert call.forward_stream is not None and call.shared is not None
        assert call.state.key == "team" and call.shared.key is None
        body = {
            "model": call.path_params["model"],
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        from truckllm.kit.openai_schemas import ChatCompletionRequest

        typed = msgspec.json.decode(msgspec.json.encode(body), type=ChatCompletionRequest)
        request = ChatRequest(
            endpoint="chat",
            dialect="openai",
            body=msgspec.json.encode(body),
            model=body["model"],
            typed=typed,
            stream=True,
        )
        return await call.forward_stream(request)

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        return body

    def stream(self, request: ChatRequest, source: str) -> FrameTranslator:
        return _Same()

    def stream_content_type(self, request: ChatRequest) -> str:
        return "text/event-stream"

    def error_body(self, error: GatewayError) -> bytes:
        return msgspec.json.encode({"relay_error": error.message, "status": error.status})

    def stream_error(self, error: GatewayError) -> bytes:
        return b""


class Plugin:
    """Registers the dialect and keeps the records."""

    __name__ = "relay-plugin"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def register_dialects(self, register: Callable[[Any], None]) -> None:
        register(Relay())

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def served() -> Any:
    plugin = Plugin()
    import truckllm_provider_mock

    with GatewayServer(CONFIG, autoload=False, extra_plugins=(plugin, truckllm_provider_mock)) as gw:
        yield gw, plugin


def test_a_forwarded_stream_is_relayed_and_recorded_once(served: Any) -> None:
    gw, plugin = served
    plugin.records.clear()
    with httpx.stream(
        "GET", gw.url + "/relay/demo", headers={"authorization": "Bearer team-secret-1"}
    ) as answer:
        assert answer.status_code == 200
        assert "chunked" in answer.headers.get("transfer-encoding", "")
        text = b"".join(answer.iter_bytes()).decode()
    assert "data: " in text and "[DONE]" in text
    wait_for(lambda: bool(plugin.records), what="the record")
    (record,) = plugin.records
    assert record.stream and record.status == 200 and record.gateway_key == "team" and record.alias == "demo"


def test_a_refusal_before_the_first_byte_is_an_answer_in_the_dialects_format(served: Any) -> None:
    gw, _ = served
    answer = httpx.get(gw.url + "/relay/nope", headers={"authorization": "Bearer team-secret-1"})
    assert answer.status_code == 404 and "relay_error" in answer.json()


def test_local_call_names_a_key_and_refuses_unknown_ones(served: Any) -> None:
    gw, _ = served
    view = gw.gateway.view
    call = view.local_call("relay", "team")
    assert call.state.key == "team" and call.shared is not None and call.shared.key is None
    assert call.forward_stream is not None
    with pytest.raises(LookupError):
        view.local_call("relay", "nobody")
    with pytest.raises(LookupError):
        view.local_call("no-such-dialect", "team")
