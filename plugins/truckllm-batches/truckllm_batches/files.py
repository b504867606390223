"""``/v1/files``: uploads go to the account the alias's strategy picks; every later call on a
file goes back to that account, for the gateway key that uploaded it only.

Which alias an upload is for: a ``purpose=batch`` file's lines name it (``body.model``, the same
on every line: :mod:`.lines`); any other purpose names it in the form field ``model`` or the
header ``x-truckllm-model``. The upload is then served as the kernel endpoint ``files.create``
through the request path (the key's allow-list, limits, cooldowns, the strategy's choice of
provider key); the provider sends it on from the spooled file, never whole in memory.
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm.errors import GatewayError
from truckllm.kit.dialect import Affinity, LocalAnswer, LocalCall
from truckllm.types import ChatRequest

from . import blobs
from .errors import invalid, not_found
from .lines import batch_alias
from .paging import page
from .records import FileRecord, add_to_index, drop_from_index, index, load_file, save_file

__all__ = ["HELD", "MODEL_HEADER", "NAME", "answer_object", "forwarded", "owned_file", "serve_files"]

NAME = "batches"
"""The dialect's name: ``ChatRequest.dialect``, the label in records and metrics."""
MODEL_HEADER = "x-truckllm-model"
"""The header naming the alias of an upload whose purpose is not ``batch`` (or the form field ``model``)."""
HELD = "x_truckllm_held"
"""The File object member by which a provider that keeps no files (Anthropic) says the gateway
keeps this one (removed before the client sees the object)."""
MAX_LIST = 10_000
"""The most files one page lists (OpenAI's own bound)."""


def forwarded(endpoint: str, alias: str, body: bytes, record: FileRecord | Any | None) -> ChatRequest:
    """A request for ``endpoint`` through ``alias``, held to the account of ``record`` (``None``:
    any account the strategy picks)."""
    affinity = None if record is None else Affinity(provider=record.provider, key=record.key, elsewhere=None)
    return ChatRequest(endpoint=endpoint, dialect=NAME, body=body, model=alias, affinity=affinity)


def answer_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        decoded = None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("id"), str):
        raise GatewayError(
            502, f"The provider's {what} answer is not an object with an id.", type="server_error"
        )
    return decoded


def _json(value: object) -> LocalAnswer:
    return LocalAnswer(body=msgspec.json.encode(value))


async def owned_file(call: LocalCall, file_id: str) -> FileRecord:
    """The record of a file this gateway key holds.

    :raises GatewayError: OpenAI's 404 otherwise.
    """
    record = await load_file(call.state, file_id)
    if record is None:
        raise not_found("File object", file_id)
    return record


async def _upload(call: LocalCall) -> LocalAnswer:
    upload = call.upload
    if upload is None:
        raise invalid("The request must be multipart/form-data with the fields 'file' and 'purpose'.", "file")
    files = upload.named("file")
    if len(files) != 1:
        raise invalid("Missing required parameter: 'file' (exactly one file part).", "file")
    purpose = upload.fields.get("purpose")
    if not purpose:
        raise invalid("Missing required parameter: 'purpose'.", "purpose")
    if purpose == "batch":
        alias = await batch_alias(files[0].path)
    else:
        alias = upload.fields.get("model") or call.headers.get(MODEL_HEADER) or ""
        if not alias:
            raise invalid(
                f"Name the model this file is for: the form field 'model' or the header '{MODEL_HEADER}'.",
                "model",
            )
    request = forwarded("files.create", alias, b"", None)
    request.upload = upload
    answer = await call.forward(request)
    obj = answer_object(answer.body, "file")
    served = call.state.served_by
    if served is None:  # the kernel always says who answered a forwarded call
        raise GatewayError(
            502, "The gateway could not tell which account stored the file.", type="server_error"
        )
    record = FileRecord(provider=served.provider, key=served.key, alias=alias, object=obj)
    if obj.pop(HELD, None) is True:  # the provider keeps no files: the gateway keeps this one
        parts = await blobs.write(call.state, obj["id"], files[0].path)
        record = msgspec.structs.replace(record, object=obj, held=True, parts=parts)
    save_file(call.state, obj["id"], record)
    await add_to_index(call.state, "file", obj["id"])
    return _json(obj)


async def _list(call: LocalCall) -> LocalAnswer:
    purpose = call.query.get("purpose")
    rows: list[dict[str, Any]] = []
    for file_id in await index(call.state, "file"):
        record = await load_file(call.state, file_id)
        if record is not None and (purpose is None or record.object.get("purpose") == purpose):
            rows.append(record.object)
    return _json(page(rows, call.query, MAX_LIST, MAX_LIST))


async def serve_files(route: str, call: LocalCall) -> LocalAnswer:
    """Answer one ``/v1/files`` route (``route``: ``files``, ``file`` or ``file_content``)."""
    if route == "files":
        return await _upload(call) if call.method == "POST" else await _list(call)
    file_id = call.path_params.get("file_id", "")
    record = await owned_file(call, file_id)
    body = msgspec.json.encode({"id": file_id})
    if route == "file_content":
        return await _content(call, file_id, record)
    if call.method == "DELETE":
        if record.held or record.virtual:  # nothing upstream: the gateway's own record and bytes
            await blobs.drop(call.state, file_id, record.parts)
            answer = LocalAnswer(body=msgspec.json.encode({"id": file_id, "object": "file", "deleted": True}))
        else:
            answer = await call.forward(forwarded("files.delete", record.alias, body, record))
        await call.state.delete("file:" + file_id)
        await drop_from_index(call.state, "file", file_id)
        return LocalAnswer(body=answer.body)
    if record.held or record.virtual:
        return _json(record.object)
    answer = await call.forward(forwarded("files.retrieve", record.alias, body, record))
    obj = answer_object(answer.body, "file")
    save_file(call.state, file_id, msgspec.structs.replace(record, object=obj))
    return _json(obj)


async def _content(call: LocalCall, file_id: str, record: FileRecord) -> LocalAnswer:
    """A file's bytes as they come: the gateway's own parts of a held file, else the provider's
    answer relayed as it arrives (``files.content`` as a stream; whole where the kernel offers
    no stream)."""
    if record.held:
        return LocalAnswer(
            content_type="application/octet-stream", stream=blobs.read(call.state, file_id, record.parts)
        )
    request = forwarded("files.content", record.alias, msgspec.json.encode({"id": file_id}), record)
    if call.forward_stream is None:
        answer = await call.forward(request)
        return LocalAnswer(body=answer.body, content_type=answer.content_type)
    request.stream = True
    return await call.forward_stream(request)
