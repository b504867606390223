"""``/v1/batches``: a batch runs on the account that holds its input file; its usage is recorded
once, when it is first seen finished.

- create: the input file must be this gateway key's; the batch is created on the file's account
  (kernel endpoint ``batches.create``) and recorded with a *bill token*;
- retrieve, cancel: on that account (``batches.retrieve``, ``batches.cancel``); the Batch object
  seen is kept (the list answers from what was last seen), and its output and error files become
  this key's files on that account;
- usage: when a retrieve (or a cancel) sees the batch in a final status (``completed``,
  ``cancelled``, ``expired``: work was done) with an output file, the call that takes the bill
  token (an atomic delete in the runtime store: one winner across workers and replicas) sends
  ``batches.usage`` (the output file read by the provider, its lines' usage summed) as the
  batch's one usage record, priced at the deployment's price times ``price.batch`` (0.5 when
  unset). If that call fails the token is put back: a later retrieve tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import msgspec
from loguru import logger

from truckllm.errors import GatewayError
from truckllm.kit.dialect import LocalAnswer, LocalCall
from truckllm.kit.safejson import decode_json
from truckllm.types import ChatRequest, Upload, UploadedFile

from . import blobs, registry
from .errors import invalid, not_found
from .files import answer_object, forwarded, owned_file
from .paging import page
from .records import (
    BatchRecord,
    FileRecord,
    add_to_index,
    bill_name,
    index,
    load_batch,
    save_batch,
    save_file,
)

__all__ = ["BILLED", "ENDPOINTS", "FINAL", "refresh", "serve_batches", "settle"]

ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions")
"""The ``endpoint`` a batch may name."""
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
"""The statuses a batch never leaves."""
BILLED = frozenset({"completed", "expired", "cancelled"})
"""The final statuses whose output file is read for usage (work was done)."""
_TOKEN = b"1"
_MAX_METADATA = 16


def _create_body(call: LocalCall) -> dict[str, Any]:
    decoded = decode_json(call.body) if call.body else None
    if not isinstance(decoded, dict):
        raise invalid("The body must be a JSON object.")
    allowed = {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}
    for name in decoded:
        if name not in allowed:
            raise invalid(f"Unrecognized request argument supplied: {name}", name, "unknown_parameter")
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(decoded.get(name), str):
            raise invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    if decoded["endpoint"] not in ENDPOINTS:
        supported = ", ".join(f"'{e}'" for e in ENDPOINTS)
        raise invalid(f"Invalid value for 'endpoint'. Supported values are: {supported}.", "endpoint")
    if decoded["completion_window"] != "24h":
        raise invalid(
            "Invalid value for 'completion_window'. Supported values are: '24h'.", "completion_window"
        )
    metadata = decoded.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= _MAX_METADATA
        and all(isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())
    ):
        raise invalid(
            "Invalid 'metadata': at most 16 pairs of strings (keys up to 64 characters, values up to 512).",
            "metadata",
        )
    return decoded


async def _owned(call: LocalCall, batch_id: str) -> BatchRecord:
    record = await load_batch(call.state, batch_id)
    if record is None:
        raise not_found("batch", batch_id)
    return record


async def _send_create(
    call: LocalCall, request: ChatRequest, source: FileRecord, file_id: str
) -> LocalAnswer:
    """Forward ``batches.create``; a held input file is given back to the provider from the
    gateway's parts, through a private temporary file removed at once after."""
    if not source.held:
        return await call.forward(request)
    path = await blobs.spool(call.state, file_id, source.parts)
    try:
        size = await asyncio.to_thread(os.path.getsize, path)
        file = UploadedFile(
            field="file",
            filename=str(source.object.get("filename") or "batch.jsonl"),
            content_type="application/jsonl",
            path=path,
            size=size,
        )
        request.upload = Upload(fields={"purpose": "batch"}, multi={"purpose": ("batch",)}, files=(file,))
        return await call.forward(request)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


async def _create(call: LocalCall) -> LocalAnswer:
    body = _create_body(call)
    source = await load_file(call, body["input_file_id"])
    request = forwarded("batches.create", source.alias, msgspec.json.encode(body), source)
    answer = await _send_create(call, request, source, body["input_file_id"])
    obj = answer_object(answer.body, "batch")
    if source.held:  # what the provider does not keep, as the client gave it
        obj.update(input_file_id=body["input_file_id"], metadata=body.get("metadata"))
    record = BatchRecord(
        provider=source.provider, key=source.key, alias=source.alias, object=obj, held=source.held
    )
    save_batch(call.state, obj["id"], record)
    call.state.put(bill_name(obj["id"]), _TOKEN)
    await add_to_index(call.state, "batch", obj["id"])
    await call.state.flush()
    if not await registry.add(call, obj["id"], time.time()):
        logger.warning(
            "batch {} is not in the poller's registry: it is billed when a client retrieves it", obj["id"]
        )
    return LocalAnswer(body=msgspec.json.encode(obj))


async def load_file(call: LocalCall, file_id: str) -> FileRecord:
    """The input file of a batch being created: this key's, else 404 naming ``input_file_id``."""
    try:
        return await owned_file(call, file_id)
    except GatewayError as exc:
        raise GatewayError(exc.status, exc.message, param="input_file_id") from None


def _adopt(call: LocalCall, record: BatchRecord, obj: dict[str, Any]) -> None:
    """The batch's output and error files become this key's files on the batch's account."""
    for field in ("output_file_id", "error_file_id"):
        file_id = obj.get(field)
        if isinstance(file_id, str) and file_id:
            stub: dict[str, Any] = {"id": file_id, "object": "file", "purpose": "batch_output"}
            if record.held:  # an Anthropic batch's results: no File object upstream
                stub.update(filename=f"{record.object.get('id')}_output.jsonl", status="processed")
                stub["created_at"] = (
                    obj.get("completed_at") or obj.get("cancelled_at") or obj.get("expired_at")
                )
            save_file(
                call.state,
                file_id,
                FileRecord(
                    provider=record.provider,
                    key=record.key,
                    alias=record.alias,
                    object=stub,
                    virtual=record.held,
                ),
            )


async def settle(call: LocalCall, batch_id: str, record: BatchRecord) -> BatchRecord:
    """Record the batch's usage if it has finished and no one has yet (see the module's doc)."""
    obj = record.object
    output = obj.get("output_file_id")
    if record.billed or obj.get("status") not in BILLED or not isinstance(output, str) or not output:
        return record
    if not await call.state.delete(bill_name(batch_id)):
        return record  # another call (a client's retrieve, the poller, another replica) took it
    request = forwarded("batches.usage", record.alias, msgspec.json.encode({"id": output}), record)
    try:
        await _read_usage(call, request)
    except Exception as exc:
        call.state.put(bill_name(batch_id), _TOKEN)
        logger.warning("the usage of batch {} could not be read yet: {}", batch_id, exc)
        return record
    return msgspec.structs.replace(record, billed=True)


async def _read_usage(call: LocalCall, request: ChatRequest) -> None:
    """Send ``batches.usage``: the output file read for its usage line by line as it arrives
    (read to its end here; the request's record carries the usage), or whole where the kernel
    offers no stream."""
    if call.forward_stream is None:
        await call.forward(request)
        return
    request.stream = True
    answer = await call.forward_stream(request)
    stream = answer.stream
    if stream is None:
        return
    try:
        async for _ in stream:
            pass
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def refresh(call: LocalCall, batch_id: str, record: BatchRecord, endpoint: str) -> dict[str, Any]:
    """Ask the batch's account about it (``endpoint``: ``batches.retrieve`` or ``batches.cancel``),
    keep what it says, adopt its output files and record its usage if it just finished."""
    body = msgspec.json.encode({"id": batch_id})
    answer = await call.forward(forwarded(endpoint, record.alias, body, record))
    obj = answer_object(answer.body, "batch")
    if record.held:  # what the provider does not keep, from the first object seen
        obj.update(input_file_id=record.object.get("input_file_id"), metadata=record.object.get("metadata"))
    record = msgspec.structs.replace(record, object=obj)
    _adopt(call, record, obj)
    record = await settle(call, batch_id, record)
    save_batch(call.state, batch_id, record)
    return obj


async def _list(call: LocalCall) -> LocalAnswer:
    rows: list[dict[str, Any]] = []
    for batch_id in await index(call.state, "batch"):
        record = await load_batch(call.state, batch_id)
        if record is not None:
            rows.append(record.object)
    return LocalAnswer(body=msgspec.json.encode(page(rows, call.query, 20, 100)))


async def serve_batches(route: str, call: LocalCall) -> LocalAnswer:
    """Answer one ``/v1/batches`` route (``route``: ``batches``, ``batch`` or ``batch_cancel``)."""
    if route == "batches":
        return await _create(call) if call.method == "POST" else await _list(call)
    batch_id = call.path_params.get("batch_id", "")
    record = await _owned(call, batch_id)
    endpoint = "batches.cancel" if route == "batch_cancel" else "batches.retrieve"
    return LocalAnswer(body=msgspec.json.encode(await refresh(call, batch_id, record, endpoint)))
