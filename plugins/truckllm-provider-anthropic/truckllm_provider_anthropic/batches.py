"""OpenAI's Files and Batch APIs served by Anthropic's Message Batches (``truckllm-batches``).

Anthropic keeps no input files: a ``purpose=batch`` upload (``files.create``) is answered here,
in-process, once every line is checked to translate (an OpenAI chat-completions request:
``custom_id`` in Anthropic's form, ``method: POST``, ``url: /v1/chat/completions``, a ``body``
this plugin's chat → Messages translation accepts); the File object says
``"x_truckllm_held": true`` and the batches dialect keeps the bytes itself. At
``batches.create`` the dialect hands the file back (``request.upload``) and each line is
translated again as the body streams to ``POST /v1/messages/batches`` (``{"requests":
[{"custom_id", "params"}]}``).

=====================  ================================================  =======================
endpoint               upstream call                                     answer
=====================  ================================================  =======================
``files.create``       none (checked here)                               a File object
``batches.create``     ``POST /v1/messages/batches``                     an OpenAI Batch object
``batches.retrieve``   ``GET /v1/messages/batches/{id}``                 an OpenAI Batch object
``batches.cancel``     ``POST /v1/messages/batches/{id}/cancel``         an OpenAI Batch object
``files.content``      ``GET /v1/messages/batches/{id}/results``         OpenAI output lines
``batches.usage``      the same                                          the results' usage
=====================  ================================================  =======================

A batch's output file is ``file-results-<batch id>`` (its ``output_file_id`` once it ended).
Results are read at the documented path under the provider's ``base_url``, never at the
``results_url`` the answer names (the key is sent only where the config says).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import IO, Any
from urllib.parse import quote

import msgspec

from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_schemas import ChatCompletionRequest
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    RateLimits,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
)

from .batch_results import ResultsToOutput
from .errors import classify_error
from .numbers import token_count
from .options import Options
from .request import MAX_REQUEST_BYTES, translate

__all__ = [
    "ENDPOINTS",
    "HELD",
    "MAX_FILE_BYTES",
    "MAX_REQUESTS",
    "OUTPUT_PREFIX",
    "batch_call",
    "batch_object",
    "batch_path",
    "batch_result",
    "check_file",
    "create_stream",
    "results_batch",
]

ENDPOINTS = frozenset(
    {"files.create", "files.content", "batches.create", "batches.retrieve", "batches.cancel", "batches.usage"}
)
"""The kernel endpoints of the Files and Batch APIs Anthropic serves."""
HELD = "x_truckllm_held"
"""The File object member saying the gateway keeps the file's bytes (the dialect removes it)."""
OUTPUT_PREFIX = "file-results-"
"""The output file id of a batch: this prefix and the batch's id."""
MAX_REQUESTS = 100_000
"""Anthropic's most requests in one Message Batch."""
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Anthropic's largest Message Batch (bytes of the create request)."""
ENDPOINT = "/v1/chat/completions"
"""The only batch ``endpoint`` (and line ``url``) translated."""

_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_CHAT = msgspec.json.Decoder(ChatCompletionRequest)
_CHUNK = 1024 * 1024


class BadLine(Exception):
    """A line of a batch file Anthropic could not take (the message names it)."""


class _Line(msgspec.Struct):
    custom_id: Any = None
    method: Any = None
    url: Any = None
    body: msgspec.Raw = msgspec.Raw()


_LINE = msgspec.json.Decoder(_Line)


def _params(raw: bytes, number: int, model: str, options: Options) -> tuple[str, bytes]:
    """``(custom_id, params JSON)`` of line ``number``.

    :raises BadLine: naming the line and what is wrong.
    """
    try:
        line = _LINE.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise BadLine(f"Line {number} of the file is not a JSON object.") from None
    if not isinstance(line.custom_id, str) or _CUSTOM_ID.fullmatch(line.custom_id) is None:
        raise BadLine(
            f"Line {number}: 'custom_id' must be 1 to 64 letters, digits, '_' or '-' (Anthropic's form)."
        )
    if line.method != "POST" or line.url != ENDPOINT:
        raise BadLine(f"Line {number}: 'method' must be 'POST' and 'url' '{ENDPOINT}' for Anthropic.")
    if not line.body or not bytes(line.body).startswith(b"{"):
        raise BadLine(f"Line {number} has no 'body' object.")
    try:
        typed = _CHAT.decode(line.body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise BadLine(
            f"Line {number}: the body is not a chat completions request ({str(exc)[:200]})."
        ) from None
    if typed.stream is True:
        raise BadLine(f"Line {number}: a batch request cannot stream ('stream': true).")
    request = ChatRequest(endpoint="chat", dialect="openai", body=bytes(line.body), model=model, typed=typed)
    try:
        translation = translate(request, model, options)
    except UnsupportedRequest as exc:
        raise BadLine(f"Line {number}: {exc.message}") from None
    except RecursionError:
        raise BadLine(f"Line {number}: the request is nested too deeply to translate.") from None
    translation.body.pop("stream", None)
    params = msgspec.json.encode(translation.body)
    if len(params) > MAX_REQUEST_BYTES:
        raise BadLine(f"Line {number} is larger than Anthropic accepts once translated (32 MB).")
    return line.custom_id, params


def _check(path: str, model: str, options: Options) -> int:
    seen: set[str] = set()
    number = 0
    with open(path, "rb") as handle:
        while raw := handle.readline(MAX_REQUEST_BYTES + 1):
            number += 1
            if not raw.strip():
                continue
            custom_id, _ = _params(raw, number, model, options)
            if custom_id in seen:
                raise BadLine(f"Line {number}: the custom_id '{custom_id}' is used twice.")
            seen.add(custom_id)
            if len(seen) > MAX_REQUESTS:
                raise BadLine(f"The file has more than {MAX_REQUESTS} requests (Anthropic's limit).")
    if not seen:
        raise BadLine("The batch file has no requests.")
    return len(seen)


def _error(message: str) -> UpstreamResponse:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return UpstreamResponse(status=400, headers={}, body=msgspec.json.encode(body))


def check_file(request: ChatRequest, model: str, options: Options) -> Callable[[], Any]:
    """The in-process answer to ``files.create``: every line checked in a thread, then a File
    object marked :data:`HELD` (or Anthropic's 400 naming the first bad line).

    :raises UnsupportedRequest: the upload is not one ``purpose=batch`` file.
    """
    upload = request.upload
    files = upload.named("file") if upload is not None else ()
    if upload is None or len(files) != 1:
        raise UnsupportedRequest("an upload needs exactly one 'file' part", param="file")
    if upload.fields.get("purpose") != "batch":
        raise UnsupportedRequest(
            "Anthropic keeps only batch input files ('purpose': 'batch')", param="purpose"
        )
    file = files[0]

    async def answer() -> UpstreamResponse:
        if file.size > MAX_FILE_BYTES:
            return _error(f"The file is larger than {MAX_FILE_BYTES} bytes (Anthropic's batch limit).")
        try:
            await asyncio.to_thread(_check, file.path, model, options)
        except BadLine as exc:
            return _error(str(exc))
        except OSError:
            return _error("The uploaded file could not be read.")
        obj = {
            "id": "file-" + os.urandom(12).hex(),
            "object": "file",
            "bytes": file.size,
            "created_at": int(time.time()),
            "filename": file.filename,
            "purpose": "batch",
            "status": "processed",
            "expires_at": None,
            "status_details": None,
            HELD: True,
        }
        return UpstreamResponse(
            status=200, headers={"content-type": "application/json"}, body=msgspec.json.encode(obj)
        )

    return answer


def _read_lines(handle: IO[bytes]) -> list[bytes]:
    return handle.readlines(_CHUNK)


def create_stream(request: ChatRequest, model: str, options: Options) -> Callable[[], AsyncIterator[bytes]]:
    """The body of ``POST /v1/messages/batches``: the file given back by the dialect
    (``request.upload``), each line translated as it is read (in a thread), never whole.

    :raises UnsupportedRequest: no file, or an ``endpoint`` other than chat completions.
    """
    try:
        create = msgspec.json.decode(request.body, type=dict[str, Any])
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise UnsupportedRequest("the batch create body is not a JSON object") from None
    if create.get("endpoint") != ENDPOINT:
        raise UnsupportedRequest(f"Anthropic's Message Batches serve only '{ENDPOINT}'", param="endpoint")
    files = request.upload.named("file") if request.upload is not None else ()
    if len(files) != 1:
        raise UnsupportedRequest("the batch's input file was not given", param="input_file_id")
    path = files[0].path

    def translated(lines: list[bytes], start: int) -> list[bytes]:
        out: list[bytes] = []
        for offset, raw in enumerate(lines):
            if raw.strip():
                custom_id, params = _params(raw, start + offset, model, options)
                out.append(b'{"custom_id":' + msgspec.json.encode(custom_id) + b',"params":' + params + b"}")
        return out

    async def stream() -> AsyncIterator[bytes]:
        yield b'{"requests":['
        handle = await asyncio.to_thread(open, path, "rb")
        first, number = True, 1
        try:
            while lines := await asyncio.to_thread(_read_lines, handle):
                items = await asyncio.to_thread(translated, lines, number)
                number += len(lines)
                if items:
                    yield (b"" if first else b",") + b",".join(items)
                    first = False
        finally:
            handle.close()
        yield b"]}"

    return stream


def batch_path(request: ChatRequest) -> str:
    """The Message Batch path of a retrieve, cancel or results call (its id checked, quoted).

    :raises UnsupportedRequest: not an id Anthropic could have made.
    """
    try:
        ident = msgspec.json.decode(request.body, type=dict[str, Any]).get("id")
    except (msgspec.DecodeError, msgspec.ValidationError):
        ident = None
    if not isinstance(ident, str):
        raise UnsupportedRequest(f"a {request.endpoint} call needs a body {{'id': ...}}", param="id")
    if request.endpoint in ("files.content", "batches.usage"):
        if not ident.startswith(OUTPUT_PREFIX):
            raise UnsupportedRequest("Anthropic holds no such file", param="id")
        ident = ident.removeprefix(OUTPUT_PREFIX)
    if _BATCH_ID.fullmatch(ident) is None:
        raise UnsupportedRequest(f"'{ident[:80]}' is not a Message Batch id", param="id")
    base = "/v1/messages/batches/" + quote(ident, safe="")
    if request.endpoint == "batches.cancel":
        return base + "/cancel"
    if request.endpoint in ("files.content", "batches.usage"):
        return base + "/results"
    return base


def results_batch(file_id: str) -> str | None:
    """The batch id of an output file id (``None`` when it is not one)."""
    return file_id.removeprefix(OUTPUT_PREFIX) if file_id.startswith(OUTPUT_PREFIX) else None


def _time(value: Any) -> int | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except (ValueError, OverflowError, OSError):
        return None


def _status(batch: dict[str, Any], counts: dict[str, int]) -> str:
    processing = batch.get("processing_status")
    if processing == "canceling":
        return "cancelling"
    if processing != "ended":
        return "in_progress"
    if batch.get("cancel_initiated_at") or counts["canceled"]:
        return "cancelled"
    if counts["expired"]:
        return "expired"
    return "completed"


def batch_object(body: bytes, create: dict[str, Any] | None = None) -> dict[str, Any] | UpstreamError:
    """An OpenAI Batch object for an Anthropic Message Batch (``create``: the create call's
    body, for ``input_file_id`` and ``metadata``); an :class:`UpstreamError` when ``body`` is
    not a Message Batch. Counts are made sane (non-negative integers; anything else is 0)."""
    try:
        batch = msgspec.json.decode(body, type=dict[str, Any])
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        batch = {}
    ident = batch.get("id")
    if (
        batch.get("type") != "message_batch"
        or not isinstance(ident, str)
        or _BATCH_ID.fullmatch(ident) is None
    ):
        return UpstreamError(
            status=502, kind="bad_response", message="Anthropic's answer is not a Message Batch"
        )
    raw_counts = batch.get("request_counts")
    raw_counts = raw_counts if isinstance(raw_counts, dict) else {}
    counts = {
        name: token_count(raw_counts.get(name))
        for name in ("processing", "succeeded", "errored", "canceled", "expired")
    }
    status = _status(batch, counts)
    created = _time(batch.get("created_at"))
    ended = _time(batch.get("ended_at"))
    create = create or {}
    return {
        "id": ident,
        "object": "batch",
        "endpoint": ENDPOINT,
        "errors": None,
        "input_file_id": create.get("input_file_id"),
        "completion_window": "24h",
        "status": status,
        "output_file_id": OUTPUT_PREFIX + ident if ended is not None else None,
        "error_file_id": None,
        "created_at": created,
        "in_progress_at": created,
        "expires_at": _time(batch.get("expires_at")),
        "finalizing_at": None,
        "completed_at": ended if status == "completed" else None,
        "failed_at": None,
        "expired_at": ended if status == "expired" else None,
        "cancelling_at": _time(batch.get("cancel_initiated_at")),
        "cancelled_at": ended if status == "cancelled" else None,
        "request_counts": {
            "total": sum(counts.values()),
            "completed": counts["succeeded"],
            "failed": counts["errored"] + counts["canceled"] + counts["expired"],
        },
        "metadata": create.get("metadata"),
    }


def batch_call(
    provider: Provider, options: Options, request: ChatRequest, model: str, api_key: str
) -> UpstreamRequest:
    """The upstream call (or in-process answer) of one Files or Batch API endpoint.

    :raises UnsupportedRequest: a body the endpoint cannot carry.
    """
    endpoint = request.endpoint
    headers = {"accept": "application/json", "anthropic-version": options.anthropic_version}
    if api_key:
        headers["x-api-key"] = api_key
    headers.update(provider.headers)
    if endpoint == "files.create":
        return UpstreamRequest(url=provider.base_url + "/v1/files", local=check_file(request, model, options))
    if endpoint == "batches.create":
        return UpstreamRequest(
            url=provider.base_url + "/v1/messages/batches",
            headers={**headers, "content-type": "application/json"},
            body_stream=create_stream(request, model, options),
        )
    path = batch_path(request)
    if endpoint == "batches.cancel":
        return UpstreamRequest(url=provider.base_url + path, headers=headers, method="POST")
    if endpoint in ("files.content", "batches.usage"):
        headers["accept"] = "application/binary"
        return UpstreamRequest(
            url=provider.base_url + path, headers=headers, method="GET", stream=request.stream
        )
    return UpstreamRequest(url=provider.base_url + path, headers=headers, method="GET")


def batch_result(
    request: ChatRequest, response: UpstreamResponse, limits: RateLimits | None
) -> ProviderResult:
    """A Files or Batch API answer in OpenAI's shape (an error classified)."""
    endpoint = request.endpoint
    if response.status >= 400 or response.status < 200:
        error = classify_error(max(response.status, 400), response.headers, response.body)
        if endpoint == "files.create" and response.status == 400:
            error.param = "file"
        elif error.code == "model_not_found":  # a 404 here is about a batch, not a model
            error.code = None
        return ProviderResult(error=error, limits=limits)
    if endpoint == "files.create":
        return ProviderResult(body=response.body, limits=limits)
    if endpoint == "files.content":
        reader = ResultsToOutput(request.model, limits)
        body = reader.feed(response.body) + reader.close()
        return ProviderResult(body=body, limits=limits, content_type=reader.content_type)
    if endpoint == "batches.usage":
        return ProviderResult(body=b"{}", limits=limits)
    create: dict[str, Any] | None = None
    if endpoint == "batches.create":
        try:
            create = msgspec.json.decode(request.body, type=dict[str, Any])
        except (msgspec.DecodeError, msgspec.ValidationError):
            create = None
    obj = batch_object(response.body, create)
    if isinstance(obj, UpstreamError):
        return ProviderResult(error=obj, limits=limits)
    return ProviderResult(body=msgspec.json.encode(obj), limits=limits)
