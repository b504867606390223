"""A fake Amazon Bedrock Runtime: Converse, ConverseStream, InvokeModel (Anthropic bodies).

Routes (``{modelId}`` is one path segment, percent-encoded or not, as clients send it):

- ``POST /model/{modelId}/converse`` and ``/converse-stream``: the Converse API, the stream as
  AWS's binary event stream (``application/vnd.amazon.eventstream``: ``messageStart``,
  ``contentBlockStart``/``Delta``/``Stop``, ``messageStop``, ``metadata``; errors as
  ``:message-type exception``);
- ``POST /model/{modelId}/count-tokens``: CountTokens, for a Converse or an InvokeModel input
  (the words of every text, plus one);
- ``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream``: Anthropic Messages
  bodies (``anthropic_version: bedrock-2023-05-31``), the stream as ``chunk`` events whose
  ``bytes`` are Anthropic's stream events, as Anthropic's Bedrock client reads them.

Every request's SigV4 signature is recomputed with botocore's signer from the fake's known
credentials (``keys``: ``"ACCESS_KEY_ID:SECRET"`` or ``"ACCESS_KEY_ID:SECRET:SESSION_TOKEN"``):
a wrong signature, an expired date, another region or service, a temporary credential past its
expiry (:meth:`FakeBedrock.add_key`) is AWS's 403 with its error body and ``x-amzn-ErrorType``.
Bedrock API keys (``Authorization: Bearer``) are accepted when listed in ``api_keys``. A
Converse body is validated against botocore's service model of ``bedrock-runtime`` (an unknown
field, a wrong type, a content block with two members...) and Bedrock's own rules (roles
alternate starting with the user, ``toolConfig`` present when tool blocks are, ``toolUse`` never
before ``reasoningContent`` in an assistant turn, text never blank): a violation is
``ValidationException`` 400.

:attr:`Received.api_key` is the configured key the request was signed with (its
``ACCESS_KEY_ID:SECRET...`` text), or the bearer token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Collection
from typing import Any, ClassVar

import botocore.session
from aiohttp import web
from botocore.exceptions import ParamValidationError
from botocore.model import OperationModel
from botocore.validate import ParamValidator

from .base import (
    Answer,
    Ctx,
    FakeUpstream,
    Fault,
    Problem,
    Route,
    count_words,
    fmt_seconds,
    is_int,
    rand_id,
    split_json,
    split_text,
)
from .bedrock_wire import check_sigv4, event_frame, exception_frame

__all__ = ["FakeBedrock", "reasoning_signature"]

EVENT_STREAM = "application/vnd.amazon.eventstream"
"""``Content-Type`` of Bedrock's streams."""
_ERROR_NS = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_SIGNING_KEY = b"fake-bedrock-reasoning"
_VERSION = re.compile(r"^(bedrock-2023-05-31|\d{4}-\d{2}-\d{2})$")

# fault kind -> (status, exception name, default message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "model_not_ready": (429, "ModelNotReadyException", "Model is not ready to serve inference requests."),
    "overloaded": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
    "server": (500, "InternalServerException", "The server encountered an internal error."),
    "auth": (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
    "permission": (
        403,
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    "bad_request": (
        400,
        "ValidationException",
        "Malformed input request, please reformat your input and try again.",
    ),
    "context_length": (400, "ValidationException", "Input is too long for requested model."),
    "not_found": (
        404,
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    "quota": (
        400,
        "ServiceQuotaExceededException",
        "Your request exceeds the service quota for your account.",
    ),
    "timeout": (408, "ModelTimeoutException", "Model has timed out in processing the request."),
}
_BY_STATUS = {
    401: "auth",
    403: "permission",
    404: "not_found",
    408: "timeout",
    429: "rate_limit",
    503: "overloaded",
}
# exception name -> the event-stream :exception-type
_STREAM_EXCEPTIONS = {
    "rate_limit": "throttlingException",
    "overloaded": "serviceUnavailableException",
    "bad_request": "validationException",
}
_FIRST_USER = (
    "A conversation must start with a user message. "
    "Try again with a conversation that starts with a user message."
)
_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. "
    "Make sure the conversation alternates between user and assistant roles and try again."
)
_TOOL_CONFIG = "The toolConfig field must be defined when using toolUse and toolResult content blocks."
_STOP = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}


def reasoning_signature(text: str) -> str:
    """The signature the fake gives a reasoning block (and expects back unmodified)."""
    return base64.b64encode(hmac.new(_SIGNING_KEY, text.encode(), hashlib.sha256).digest()).decode()


def _service_operations() -> dict[str, OperationModel]:
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return {name: model.operation_model(name) for name in ("Converse", "ConverseStream", "CountTokens")}


def _parse_key(key: str) -> tuple[str, str, str | None] | None:
    parts = key.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _texts(blocks: Any) -> list[str]:
    out: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            out.append(block["text"])
        result = block.get("toolResult")
        if isinstance(result, dict):
            out.extend(_texts(result.get("content")))
    return out


class FakeBedrock(FakeUpstream):
    """Amazon Bedrock Runtime on loopback, SigV4 checked (see the module docstring).

    :param keys: the credentials accepted: ``"ACCESS_KEY_ID:SECRET"`` or with ``":SESSION_TOKEN"``.
    :param api_keys: Bedrock API keys accepted as ``Authorization: Bearer``.
    :param region: the region requests must be signed for.
    :param clock: the fake's clock (UTC), for the signature's date check.
    """

    provider: ClassVar[str] = "bedrock"
    default_models: ClassVar[tuple[str, ...]] = (
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "amazon.nova-pro-v1:0",
    )
    error_kinds: ClassVar[dict[str, int]] = {kind: spec[0] for kind, spec in _ERRORS.items()}
    server_name: ClassVar[str] = "Server"

    def __init__(
        self,
        keys: Collection[str] = ("AKIDFAKEBEDROCK1:fake-secret-1",),
        *,
        api_keys: Collection[str] = (),
        region: str = "us-east-1",
        clock: Callable[[], dt.datetime] | None = None,
        chunks: int = 3,
        chunk_delay: float = 0.0,
        strict: bool = True,
        models: Collection[str] | None = None,
    ) -> None:
        super().__init__(keys, chunks=chunks, chunk_delay=chunk_delay, strict=strict, models=models)
        self.region = region
        """The region requests must be signed for."""
        self.api_keys = frozenset(api_keys)
        """Bedrock API keys accepted as bearer tokens."""
        self.clock: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(dt.UTC))
        """The fake's UTC clock."""
        self._secrets: dict[str, tuple[str, str | None]] = {}
        self._key_of: dict[str, str] = {}
        self._expiry: dict[str, dt.datetime] = {}
        for key in keys:
            self.add_key(key)
        self._operations = _service_operations()
        self._validator = ParamValidator()

    def add_key(self, key: str, *, expires: dt.datetime | None = None) -> None:
        """Accept one more credential (``"ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]"``), e.g. temporary
        credentials a test's STS or container endpoint just issued. Once ``expires`` (UTC) has
        passed on :attr:`clock`, a request signed with it is AWS's 403 ``ExpiredTokenException``
        (a violation). Safe to call from another thread while the fake serves."""
        parsed = _parse_key(key)
        if parsed is None:
            raise ValueError("FakeBedrock keys are 'ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]'")
        if expires is not None:
            self._expiry[parsed[0]] = expires
        self._secrets[parsed[0]] = (parsed[1], parsed[2])
        self._key_of[parsed[0]] = key

    # ------------------------------------------------------------------ provider hooks

    def routes(self) -> list[Route]:
        """Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream."""
        return [
            Route("POST", "/model/{modelId}/converse", self._converse, self._validate_converse),
            Route("POST", "/model/{modelId}/converse-stream", self._converse, self._validate_converse),
            Route("POST", "/model/{modelId}/invoke", self._invoke, self._validate_invoke),
            Route(
                "POST", "/model/{modelId}/invoke-with-response-stream", self._invoke, self._validate_invoke
            ),
            Route("POST", "/model/{modelId}/count-tokens", self._count_tokens, self._validate_count),
        ]

    def api_key(self, request: web.Request) -> str | None:
        """The configured key that signed the request, or its bearer token."""
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        if "Credential=" in auth:
            akid = auth.split("Credential=", 1)[1].split("/", 1)[0]
            return self._key_of.get(akid, akid)
        return None

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """AWS's 403 for a missing, unknown or wrong signature (or bearer token)."""
        request = ctx.request
        auth = request.headers.get("authorization")
        if auth is None:
            return self._deny(ctx, "MissingAuthenticationTokenException", "Missing Authentication Token")
        if auth.startswith("Bearer "):
            if auth[7:] in self.api_keys:
                return None
            return self._deny(
                ctx, "UnrecognizedClientException", "Invalid API Key format: Must be a valid Bedrock API key."
            )
        headers = {k.lower(): v for k, v in request.headers.items()}
        now = self.clock()
        akid, denial = check_sigv4(
            method=request.method,
            origin=f"http://{request.host}",
            raw_path=request.raw_path,
            headers=headers,
            body=ctx.rec.body,
            secrets=self._secrets,
            region=self.region,
            service="bedrock",
            now=now,
        )
        if denial is None:
            expiry = self._expiry.get(akid or "")
            if expiry is None or now < expiry:
                return None
            return self._deny(
                ctx, "ExpiredTokenException", "The security token included in the request is expired"
            )
        return self._deny(ctx, denial.error, denial.message)

    def _deny(self, ctx: Ctx, error: str, message: str) -> web.Response:
        message = f"{error}: {message}"
        ctx.rec.violations.append(message)
        self.violations.append(message)
        return self._aws_error(403, error, message.split(": ", 1)[1])

    def model_of(self, ctx: Ctx) -> str | None:
        """The ``{modelId}`` of the path, decoded."""
        return ctx.request.match_info.get("modelId")

    def is_stream(self, ctx: Ctx) -> bool:
        """``/converse-stream`` and ``/invoke-with-response-stream``."""
        return ctx.request.path.endswith("-stream")

    def kind_for_status(self, status: int) -> str:
        """401 and 403 are credential failures; 429 throttling."""
        return _BY_STATUS.get(status) or ("server" if status >= 500 else "bad_request")

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """``{"message": ...}`` as every AWS JSON error."""
        return {"message": message or _ERRORS.get(kind, _ERRORS["server"])[2]}

    def error_headers(self, ctx: Ctx, status: int, kind: str, fault: Fault | None) -> dict[str, str]:
        """``x-amzn-ErrorType`` and ``x-amzn-RequestId`` (and ``retry-after`` when a fault says)."""
        headers = {
            "x-amzn-ErrorType": _ERRORS.get(kind, _ERRORS["server"])[1] + _ERROR_NS,
            "x-amzn-RequestId": rand_id("", 32),
        }
        if fault is not None and fault.retry_after is not None:
            headers["retry-after"] = fmt_seconds(fault.retry_after)
        return headers

    def success_headers(self, ctx: Ctx) -> dict[str, str]:
        """``x-amzn-RequestId``."""
        return {"x-amzn-RequestId": rand_id("", 32)}

    def stream_error(self, ctx: Ctx, kind: str | None, index: int) -> bytes:
        """A ``:message-type exception`` message (``internalServerException`` unless ``kind`` says)."""
        kind = kind or "server"
        name = _STREAM_EXCEPTIONS.get(kind, "internalServerException")
        return exception_frame(name, _ERRORS.get(kind, _ERRORS["server"])[2] + " (mid-stream)")

    def stream_error_status(self) -> int:
        """A mid-stream fault on a non-stream request: 500 InternalServerException."""
        return 500

    def bad_json(self, ctx: Ctx) -> web.Response:
        """Bedrock's answer to a body that is not JSON."""
        return self._aws_error(400, "SerializationException", "Unexpected JSON content")

    def unknown_model(self, ctx: Ctx, model: str) -> web.Response:
        """404 ResourceNotFoundException."""
        return self._aws_error(404, "ResourceNotFoundException", _ERRORS["not_found"][2])

    def combine(self, problems: Any) -> tuple[str, str | None]:
        """AWS lists every violation in one message."""
        if len(problems) == 1:
            return problems[0].message, problems[0].param
        return f"{len(problems)} validation errors detected: " + "; ".join(p.message for p in problems), None

    def _aws_error(self, status: int, error: str, message: str) -> web.Response:
        return web.Response(
            status=status,
            body=json.dumps({"message": message}).encode(),
            headers={
                "Content-Type": "application/json",
                "x-amzn-ErrorType": error + _ERROR_NS,
                "x-amzn-RequestId": rand_id("", 32),
            },
        )

    def error(
        self,
        ctx: Ctx,
        status: int,
        kind: str,
        message: str | None,
        param: str | None = None,
        fault: Fault | None = None,
    ) -> web.Response:
        """An AWS error: ``{"message"}`` with ``x-amzn-ErrorType``; validation problems are
        ``ValidationException``."""
        response = super().error(ctx, status, kind, message, param, fault)
        if status == 404 and kind == "unknown_url":
            response.headers["x-amzn-ErrorType"] = "UnknownOperationException" + _ERROR_NS
        return response

    # ------------------------------------------------------------------ validation

    def _validate_converse(self, ctx: Ctx) -> list[Problem]:
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem("Malformed input request: the body must be a JSON object")]
        operation = self._operations["ConverseStream" if self.is_stream(ctx) else "Converse"]
        params = {**body, "modelId": ctx.request.match_info.get("modelId", "")}
        problems: list[Problem] = []
        try:
            self._validator_check(params, operation)
        except ParamValidationError as exc:
            for line in str(exc).splitlines()[1:]:
                problems.append(Problem(line.strip()))
        if problems:
            return problems
        return self._check_conversation(body)

    def _validate_count(self, ctx: Ctx) -> list[Problem]:
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem("Malformed input request: the body must be a JSON object")]
        params = {**body, "modelId": ctx.request.match_info.get("modelId", "")}
        try:
            self._validator_check(params, self._operations["CountTokens"])
        except ParamValidationError as exc:
            return [Problem(line.strip()) for line in str(exc).splitlines()[1:]]
        given = body["input"]
        if len(given) != 1:
            return [Problem("input: set exactly one of converse, invokeModel")]
        if "converse" in given:
            return self._check_conversation(given["converse"])
        try:
            invoke = json.loads(base64.b64decode(given["invokeModel"]["body"], validate=True))
        except ValueError:
            return [Problem("input.invokeModel.body: not base64 JSON")]
        ctx.body = {**body, "_invoke": invoke}
        return self._check_invoke(invoke)

    def _validator_check(self, params: dict[str, Any], operation: OperationModel) -> None:
        shape = operation.input_shape
        assert shape is not None
        report = self._validator.validate(params, shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())

    @staticmethod
    def _check_conversation(body: dict[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        messages = body["messages"]
        if not messages or messages[0]["role"] != "user":
            problems.append(Problem(_FIRST_USER))
        previous = None
        for i, message in enumerate(messages):
            role = message["role"]
            if role == previous:
                problems.append(Problem(_ALTERNATE))
            previous = role
            seen_tool_use = False
            for j, block in enumerate(message["content"]):
                problems.extend(_check_block(block, f"messages.{i}.content.{j}", role, seen_tool_use))
                seen_tool_use = seen_tool_use or "toolUse" in block
        tool_blocks = any(
            "toolUse" in block or "toolResult" in block for m in messages for block in m["content"]
        )
        if tool_blocks and "toolConfig" not in body:
            problems.append(Problem(_TOOL_CONFIG))
        for k, block in enumerate(body.get("system") or []):
            if "text" in block and not block["text"].strip():
                problems.append(
                    Problem(f"The text field in the SystemContentBlock object at system.{k} is blank.")
                )
        return problems

    def _validate_invoke(self, ctx: Ctx) -> list[Problem]:
        return self._check_invoke(ctx.body)

    @staticmethod
    def _check_invoke(body: Any) -> list[Problem]:
        if not isinstance(body, dict):
            return [Problem("Malformed input request: the body must be a JSON object")]
        problems: list[Problem] = []
        version = body.get("anthropic_version")
        if not isinstance(version, str) or not _VERSION.match(version):
            problems.append(Problem("anthropic_version: must be bedrock-2023-05-31 (or a dated version)"))
        for name in ("model", "stream"):
            if name in body:
                problems.append(Problem(f"extraneous key [{name}] is not permitted"))
        if not is_int(body.get("max_tokens")):
            problems.append(Problem("#: required key [max_tokens] not found"))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            problems.append(Problem("#: required key [messages] not found"))
        return problems

    # ------------------------------------------------------------------ answers

    def _answer(self, ctx: Ctx, texts: list[str], prompt: str, max_tokens: Any, stops: Any) -> Answer:
        return self.build_answer(
            ctx,
            texts=texts,
            prompt=prompt,
            max_tokens=max_tokens if is_int(max_tokens) else None,
            stops=[s for s in stops or [] if isinstance(s, str)],
            id_prefix="tooluse_",
            id_length=22,
        )

    @staticmethod
    def _usage(answer: Answer) -> dict[str, int]:
        cached, written = answer.cached_tokens, answer.cache_write_tokens
        fresh = max(0, answer.prompt_tokens - cached - written)
        return {
            "inputTokens": fresh,
            "outputTokens": answer.completion_tokens,
            "totalTokens": fresh + cached + written + answer.completion_tokens,
            "cacheReadInputTokens": cached,
            "cacheWriteInputTokens": written,
        }

    async def _converse(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        texts = _texts(body.get("system"))
        prompt = ""
        for message in body["messages"]:
            found = _texts(message["content"])
            texts.extend(found)
            if message["role"] == "user":
                prompt = " ".join(t for t in found if t)
        config = body.get("inferenceConfig") or {}
        answer = self._answer(ctx, texts, prompt, config.get("maxTokens"), config.get("stopSequences"))
        stop = answer.finish or _STOP[answer.reason]
        usage = self._usage(answer)
        ctx.tokens = answer.prompt_tokens + answer.completion_tokens
        signature = reasoning_signature(answer.thinking) if answer.thinking is not None else ""
        if not ctx.rec.stream:
            content: list[dict[str, Any]] = []
            if answer.thinking is not None:
                content.append(
                    {"reasoningContent": {"reasoningText": {"text": answer.thinking, "signature": signature}}}
                )
            if answer.text:
                content.append({"text": answer.text})
            content.extend(
                {"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.arguments}}
                for c in answer.tool_calls
            )
            return self.json_response(
                ctx,
                {
                    "output": {"message": {"role": "assistant", "content": content}},
                    "stopReason": stop,
                    "usage": usage,
                    "metrics": {"latencyMs": 42},
                },
            )
        events = [event_frame("messageStart", {"role": "assistant", "p": "abcdefgh"})]
        index = 0
        if answer.thinking is not None:
            for piece in split_text(answer.thinking, self.chunks):
                events.append(
                    event_frame(
                        "contentBlockDelta",
                        {
                            "contentBlockIndex": index,
                            "delta": {"reasoningContent": {"text": piece}},
                            "p": "ab",
                        },
                    )
                )
            events.append(
                event_frame(
                    "contentBlockDelta",
                    {"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": signature}}},
                )
            )
            events.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        if answer.text:
            for piece in split_text(answer.text, self.chunks):
                events.append(
                    event_frame(
                        "contentBlockDelta",
                        {"contentBlockIndex": index, "delta": {"text": piece}, "p": "abc"},
                    )
                )
            events.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        for call in answer.tool_calls:
            events.append(
                event_frame(
                    "contentBlockStart",
                    {
                        "contentBlockIndex": index,
                        "start": {"toolUse": {"toolUseId": call.id, "name": call.name}},
                    },
                )
            )
            for fragment in split_json(json.dumps(call.arguments, ensure_ascii=False), self.chunks)[1:]:
                events.append(
                    event_frame(
                        "contentBlockDelta",
                        {"contentBlockIndex": index, "delta": {"toolUse": {"input": fragment}}},
                    )
                )
            events.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        events.append(event_frame("messageStop", {"stopReason": stop}))
        metadata = event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 42}, "p": "abcd"})
        return await self.send_stream(ctx, events, content_type=EVENT_STREAM, terminator=metadata)

    async def _count_tokens(self, ctx: Ctx) -> web.StreamResponse:
        """``{"inputTokens": N}``: the words of every text, plus one."""
        return self.json_response(ctx, {"inputTokens": count_words(*_count_texts(ctx.body)) + 1})

    async def _invoke(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        texts: list[str] = []
        system = body.get("system")
        texts.extend([system] if isinstance(system, str) else _anthropic_texts(system))
        prompt = ""
        for message in body.get("messages") or []:
            if not isinstance(message, dict):
                continue
            found = _anthropic_texts(message.get("content"))
            texts.extend(found)
            if message.get("role") == "user":
                prompt = " ".join(found)
        answer = self._answer(ctx, texts, prompt, body.get("max_tokens"), body.get("stop_sequences"))
        stop = answer.finish or _STOP[answer.reason]
        cached, written = answer.cached_tokens, answer.cache_write_tokens
        usage = {
            "input_tokens": max(0, answer.prompt_tokens - cached - written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": cached,
            "output_tokens": answer.completion_tokens,
        }
        ctx.tokens = answer.prompt_tokens + answer.completion_tokens
        model = ctx.rec.model or ""
        message_id = rand_id("msg_bdrk_01", 22)
        content: list[dict[str, Any]] = []
        if answer.thinking is not None:
            content.append(
                {
                    "type": "thinking",
                    "thinking": answer.thinking,
                    "signature": reasoning_signature(answer.thinking),
                }
            )
        if answer.text:
            content.append({"type": "text", "text": answer.text})
        content.extend(
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in answer.tool_calls
        )
        if not ctx.rec.stream:
            return self.json_response(
                ctx,
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": answer.stop_sequence,
                    "usage": usage,
                },
            )
        data: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": 1},
                },
            }
        ]
        for index, block in enumerate(content):
            if block["type"] == "text":
                start: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"], self.chunks)]
            elif block["type"] == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [
                    {"type": "thinking_delta", "thinking": p}
                    for p in split_text(block["thinking"], self.chunks)
                ]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            else:
                start = {**block, "input": {}}
                deltas = [
                    {"type": "input_json_delta", "partial_json": f}
                    for f in split_json(json.dumps(block["input"]), self.chunks)
                ]
            data.append({"type": "content_block_start", "index": index, "content_block": start})
            data.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
            data.append({"type": "content_block_stop", "index": index})
        data.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": answer.stop_sequence},
                "usage": {"output_tokens": answer.completion_tokens},
            }
        )
        events = [event_frame("chunk", {"bytes": _b64json(d)}) for d in data]
        last = {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": usage["input_tokens"],
                "outputTokenCount": answer.completion_tokens,
                "invocationLatency": 42,
                "firstByteLatency": 10,
            },
        }
        return await self.send_stream(
            ctx, events, content_type=EVENT_STREAM, terminator=event_frame("chunk", {"bytes": _b64json(last)})
        )


def _check_block(block: dict[str, Any], at: str, role: str, after_tool_use: bool) -> list[Problem]:
    """Bedrock's rules for one content block of a message in role ``role``."""
    problems: list[Problem] = []
    if len(block) != 1:
        problems.append(Problem(f"{at}: a content block sets exactly one member"))
    if "text" in block and not block["text"].strip():
        problems.append(
            Problem(
                f"The text field in the ContentBlock object at {at} is blank. "
                "Add text to the text field, and try again."
            )
        )
    if "toolUse" in block and role != "assistant":
        problems.append(Problem(f"{at}: toolUse is only allowed in assistant messages"))
    if "toolResult" in block and role != "user":
        problems.append(Problem(f"{at}: toolResult is only allowed in user messages"))
    if "reasoningContent" in block and after_tool_use:
        problems.append(Problem(f"{at}: reasoningContent must come before toolUse in an assistant message"))
    source = block.get("image", {}).get("source", {})
    if isinstance(source.get("bytes"), str):
        try:
            base64.b64decode(source["bytes"], validate=True)
        except ValueError:
            problems.append(Problem(f"{at}.image.source.bytes: invalid base64"))
    return problems


def _count_texts(body: dict[str, Any]) -> list[str]:
    """Every text a CountTokens input holds (Converse blocks or an Anthropic body)."""
    if "_invoke" in body:
        invoke = body["_invoke"]
        system = invoke.get("system")
        texts = [system] if isinstance(system, str) else _anthropic_texts(system)
        for message in invoke.get("messages") or []:
            texts.extend(_anthropic_texts(message.get("content")) if isinstance(message, dict) else [])
        return texts
    converse = body["input"]["converse"]
    texts = _texts(converse.get("system"))
    for message in converse["messages"]:
        texts.extend(_texts(message["content"]))
    return texts


def _b64json(data: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _anthropic_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            out.append(block["text"])
    return out
