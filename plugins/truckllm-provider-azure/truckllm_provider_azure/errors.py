"""Azure OpenAI's own errors: content-filter refusals (an error answer, or an answer the filter
withheld) and rate limits that say when to retry in words; the rest read as OpenAI's.

Azure's content filter refuses a prompt with a 400 whose ``error.code`` is ``content_filter``
(``innererror.code``: ``ResponsibleAIPolicyViolation``, ``innererror.content_filter_result``: one
object per category, ``{"filtered": true, "severity": "high"}`` or ``{"filtered": true,
"detected": true}``), and withholds a completion with ``finish_reason: content_filter`` and the
choice's ``content_filter_results``. Both become a 400 ``content_filter`` naming the categories.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from truckllm_provider_openai import read_error

from truckllm.kit.openai_wire import upstream_error
from truckllm.types import UpstreamError

__all__ = ["filtered_answer", "read_azure_error"]

_RETRY_IN_WORDS = re.compile(r"(?:retry after|try again in) (\d+(?:\.\d+)?) ?(seconds?|secs?|s|ms)\b", re.I)
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


class _Inner(msgspec.Struct):
    code: Any = None
    content_filter_result: Any = None
    content_filter_results: Any = None


class _Error(msgspec.Struct):
    code: Any = None
    param: Any = None
    innererror: _Inner | None = None


class _ErrorBody(msgspec.Struct):
    error: _Error | None = None


class _Choice(msgspec.Struct):
    finish_reason: Any = None
    content_filter_results: Any = None


class _Answer(msgspec.Struct):
    choices: list[_Choice] | None = None


_ERROR = msgspec.json.Decoder(_ErrorBody)
_ANSWER = msgspec.json.Decoder(_Answer)


def _reasons(results: Any) -> list[str]:
    """The filtered categories of a ``content_filter_result(s)`` object, with their severity."""
    if not isinstance(results, dict):
        return []
    reasons = []
    for name, verdict in results.items():
        if not isinstance(name, str) or not isinstance(verdict, dict) or verdict.get("filtered") is not True:
            continue
        severity = verdict.get("severity")
        detail = severity if isinstance(severity, str) and severity != "safe" else "detected"
        reasons.append(f"{name[:64]} ({str(detail)[:32]})")
    return reasons


def _refusal(what: str, reasons: list[str], param: str | None) -> UpstreamError:
    because = ", ".join(reasons) if reasons else "no category given"
    message = f"Azure OpenAI's content filter {what} (content_filter: {because})"
    return upstream_error(400, message, kind="bad_request", code="content_filter", param=param)


def read_azure_error(status: int, headers: Any, body: bytes) -> UpstreamError:
    """Classify an Azure OpenAI error answer (see the module docstring)."""
    error = read_error(status, headers, body)
    try:
        parsed = _ERROR.decode(body).error
    except _UNREADABLE:
        parsed = None
    inner = parsed.innererror if parsed is not None else None
    inner_code = inner.code if inner is not None else None
    if parsed is not None and (
        parsed.code == "content_filter" or inner_code == "ResponsibleAIPolicyViolation"
    ):
        results = inner.content_filter_result or inner.content_filter_results if inner else None
        param = parsed.param if isinstance(parsed.param, str) else None
        return _refusal("refused the request", _reasons(results), param)
    if status == 429 and error.retry_after is None:
        match = _RETRY_IN_WORDS.search(error.message)
        if match:
            seconds = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
            return msgspec.structs.replace(error, retry_after=seconds)
    return error


def filtered_answer(body: bytes) -> UpstreamError | None:
    """The refusal of a 2xx chat or text completion the content filter withheld
    (``finish_reason: content_filter``), else ``None``."""
    if b"content_filter" not in body:
        return None
    try:
        choices = _ANSWER.decode(body).choices or []
    except _UNREADABLE:
        return None
    reasons: list[str] = []
    filtered = False
    for choice in choices:
        if choice.finish_reason == "content_filter":
            filtered = True
            reasons.extend(r for r in _reasons(choice.content_filter_results) if r not in reasons)
    return _refusal("withheld the answer", reasons, None) if filtered else None
