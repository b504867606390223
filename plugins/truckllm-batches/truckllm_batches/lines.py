"""Reading a ``purpose=batch`` upload: the alias its lines name, every line checked.

A batch input file is JSON Lines, one request per line: ``{"custom_id", "method", "url",
"body": {"model": <alias>, ...}}``. The gateway routes the whole file by that alias, so every
line must name the same one: the file is read once from the spooled upload (line by line, in a
worker thread, never whole in memory) and the first line at fault is named in a 400.
"""

from __future__ import annotations

import asyncio

import msgspec

from truckllm.errors import GatewayError

from .errors import invalid, shown

__all__ = ["MAX_LINE_BYTES", "batch_alias"]

MAX_LINE_BYTES = 64 * 1024 * 1024
"""The longest line read (a longer one is refused, naming it)."""


class _Body(msgspec.Struct):
    model: object = None


class _Line(msgspec.Struct):
    custom_id: object = None
    body: _Body | None = None


_LINE = msgspec.json.Decoder(_Line)


def _read(path: str) -> str:
    alias: str | None = None
    number = 0
    with open(path, "rb") as file:
        while True:
            raw = file.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise invalid(f"Line {number} of the file is longer than {MAX_LINE_BYTES} bytes.", "file")
            if not raw.strip():
                continue
            try:
                line = _LINE.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                raise invalid(
                    f"Line {number} of the file is not a JSON object with a 'body' object.", "file"
                ) from None
            model = line.body.model if line.body is not None else None
            if not isinstance(model, str) or not model:
                raise invalid(f"Line {number} of the file has no 'body.model'.", "file")
            if alias is None:
                alias = model
            elif model != alias:
                raise invalid(
                    f"Line {number} of the file names the model '{shown(model)}' but line 1 names "
                    f"'{shown(alias)}': a batch is served by one model.",
                    "file",
                )
    if alias is None:
        raise invalid("The batch file has no requests.", "file")
    return alias


async def batch_alias(path: str) -> str:
    """The alias every line of the spooled batch file at ``path`` names.

    :raises GatewayError: 400 naming the first line that is not a JSON object with a string
        ``body.model``, or that names another model than line 1; or when the file has no line.
    """
    try:
        return await asyncio.to_thread(_read, path)
    except GatewayError:
        raise
    except OSError:
        raise invalid("The uploaded file could not be read.", "file") from None
