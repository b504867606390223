"""Golden files both directions: OpenAI requests → Converse bodies (``golden/requests``),
Converse answers → OpenAI completions (``golden/responses``), Converse event streams → OpenAI
chunks (``golden/streams``). ``TRUCKLLM_UPDATE_GOLDEN=1`` rewrites the expected files.

Every translated request is also validated against botocore's service model of Converse, as the
fake (and Bedrock) does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import msgspec
import pytest
import truckllm_provider_bedrock as plugin
from botocore.validate import ParamValidator
from truckllm_provider_bedrock.options import Options

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.types import ChatRequest, Provider, UpstreamResponse
from truckllm_testing.fakes.bedrock_wire import event_frame
from truckllm_testing.golden import case_names, check_file

GOLDEN = Path(__file__).parent / "golden"
KEY = "AKIDGOLDEN:golden-secret"
MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
PROVIDER = Provider(
    name="br",
    type="bedrock",
    base_url="https://bedrock-runtime.us-east-1.amazonaws.com",
    options=Options(region="us-east-1"),
)
_SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")


def _request(body: dict[str, Any]) -> ChatRequest:
    raw = json.dumps(body).encode()
    stream = bool(body.get("stream"))
    return ChatRequest(
        endpoint="chat",
        body=raw,
        model="alias",
        stream=stream,
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        typed=msgspec.json.decode(raw, type=ChatCompletionRequest),
    )


def _strip(chunk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in chunk.items() if k not in ("id", "created")}


@pytest.mark.parametrize("case", case_names(GOLDEN / "requests", ".in.json"))
def test_request(case: str) -> None:
    body = json.loads((GOLDEN / "requests" / f"{case}.in.json").read_text())
    up = plugin.transform_request(provider=PROVIDER, model=body["model"], request=_request(body), api_key=KEY)
    assert up is not None
    converse = json.loads(up.body)
    operation = _SERVICE.operation_model("ConverseStream" if up.stream else "Converse")
    shape = operation.input_shape
    assert shape is not None
    report = ParamValidator().validate({**converse, "modelId": body["model"]}, shape)
    assert not report.has_errors(), report.generate_report()
    check_file(GOLDEN / "requests" / f"{case}.out.json", converse)


@pytest.mark.parametrize("case", case_names(GOLDEN / "responses", ".in.json"))
def test_response(case: str) -> None:
    raw = (GOLDEN / "responses" / f"{case}.in.json").read_bytes()
    result = plugin.transform_response(
        model=MODEL_ID,
        provider=PROVIDER,
        request=_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]}),
        response=UpstreamResponse(status=200, body=raw),
    )
    assert result is not None and result.error is None
    usage = plugin.parse_usage(
        provider=PROVIDER,
        request=_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]}),
        body=raw,
    )
    answer = {"completion": _strip(json.loads(result.body)), "recorded_usage": msgspec.to_builtins(usage)}
    check_file(GOLDEN / "responses" / f"{case}.out.json", answer)


@pytest.mark.parametrize("case", case_names(GOLDEN / "streams", ".events.json"))
def test_stream(case: str) -> None:
    events = json.loads((GOLDEN / "streams" / f"{case}.events.json").read_text())
    data = b"".join(event_frame(name, payload) for name, payload in events)
    request = _request(
        {
            "model": "alias",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    stream = plugin.transform_stream(
        model=MODEL_ID, provider=PROVIDER, request=request, response=UpstreamResponse(status=200)
    )
    assert stream is not None
    out = b"".join(stream.feed(data[i : i + 7]) for i in range(0, len(data), 7)) + stream.close()
    frames = [f for f in out.split(b"\n\n") if f]
    assert frames[-1] == b"data: [DONE]"
    chunks = [_strip(json.loads(f[6:])) for f in frames[:-1]]
    check_file(GOLDEN / "streams" / f"{case}.out.json", chunks)
