"""Where the guardrails find text on every kernel endpoint (guard_endpoints), the per-endpoint
filters of a ``guardrails:`` entry, plain-text transcripts, and a batch file's lines.

:func:`test_every_endpoint_a_provider_serves_has_a_text_rule` enumerates the endpoints every
installed provider plugin declares (read at runtime): each must be read by a table (its own, or
its dialect's for the chat-like ones) or be a documented endpoint with no text, so that a new
endpoint cannot reach an upstream with its text unread.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from truckllm._internal.config.schema import GuardrailConfig
from truckllm._internal.guard_batch import READ_BYTES, check_batch_file
from truckllm._internal.guard_endpoints import (
    ANSWER,
    REQUEST,
    UPLOAD_FIELDS,
    answer_of,
    event_of,
    plain_lines,
    request_of,
    upload_fields,
)
from truckllm._internal.guard_text import rewrite
from truckllm._internal.guardrails import Entry, Guards
from truckllm._internal.plugins import make_plugin_manager
from truckllm._internal.request import RequestContext
from truckllm.types import ChatRequest, GuardSubject, Upload, UploadedFile, Verdict

CHAT_LIKE = frozenset({"chat", "completions", "embeddings", "count_tokens"})
"""Read by their dialect's tables (guard_text)."""


def test_every_endpoint_a_provider_serves_has_a_text_rule() -> None:
    host = make_plugin_manager()
    served = {endpoint for spec in host.providers.values() for endpoint in spec.endpoints}
    assert {"rerank", "images.edits", "audio.speech", "files.create"} <= served  # read at runtime
    unread = sorted(e for e in served if e not in CHAT_LIKE and e not in REQUEST and e not in UPLOAD_FIELDS)
    assert unread == []
    answers_unread = sorted(e for e in served if e not in CHAT_LIKE and e not in ANSWER)
    assert answers_unread == ["responses.retrieve"]  # read in the Responses dialect's table


REQUESTS: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "rerank",
        {
            "model": "r",
            "query": "q",
            "documents": ["a", {"text": "b", "id": "x"}, {"no": "text"}],
            "top_n": 1,
        },
        ["q", "a", "b"],
    ),
    ("images.generations", {"model": "m", "prompt": "p", "size": "1024x1024", "user": "u"}, ["p"]),
    ("audio.speech", {"model": "m", "input": "i", "voice": "alloy", "instructions": "s"}, ["i", "s"]),
    ("moderations", {"model": "m", "input": "one"}, ["one"]),
    ("moderations", {"model": "m", "input": ["a", "b"]}, ["a", "b"]),
    (
        "moderations",
        {"input": [{"type": "text", "text": "t"}, {"type": "image_url", "image_url": {"url": "u"}}]},
        ["t"],
    ),
    ("batches.create", {"input_file_id": "f", "metadata": {"input": "not a prompt"}}, []),
    ("files.retrieve", {"id": "file-1"}, []),
]


@pytest.mark.parametrize(("endpoint", "body", "texts"), REQUESTS)
def test_request_texts_per_endpoint_and_their_rewrite(
    endpoint: str, body: dict[str, Any], texts: list[str]
) -> None:
    found = request_of(endpoint, "openai", body)
    assert [f.text for f in found] == texts
    masked = rewrite(json.loads(json.dumps(body)), found, [f"<{t}>" for t in texts])
    assert [f.text for f in request_of(endpoint, "openai", masked)] == [f"<{t}>" for t in texts]
    # nothing but the texts changed
    assert request_of(endpoint, "openai", rewrite(masked, found, texts)) == found


def test_answer_and_event_texts_per_endpoint() -> None:
    image = {"data": [{"b64_json": "AAAA", "revised_prompt": "r0"}, {"url": "u"}], "usage": {}}
    assert [f.text for f in answer_of("images.generations", "openai", image)] == ["r0"]
    verbose = {
        "text": "all",
        "segments": [{"id": 0, "text": "seg"}],
        "words": [{"word": "w", "start": 0.0}],
        "language": "english",
    }
    assert [f.text for f in answer_of("audio.transcriptions", "openai", verbose)] == ["all", "seg", "w"]
    for endpoint in ("moderations", "rerank", "audio.speech", "batches.retrieve"):
        assert answer_of(endpoint, "openai", {"results": [{"document": {"text": "own"}}], "text": "x"}) == []
    delta = event_of("audio.transcriptions", "openai", {"type": "transcript.text.delta", "delta": "d"})
    done = event_of("audio.transcriptions", "openai", {"type": "transcript.text.done", "text": "dd"})
    assert [(f.text, f.full, f.channel) for f in delta + done] == [
        ("d", False, ("transcript",)),
        ("dd", True, ("transcript",)),
    ]
    assert (
        event_of("images.generations", "openai", {"type": "image_generation.partial_image", "b64_json": "A"})
        == []
    )
    # the chat-like endpoints keep their dialect's tables
    chat = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    assert [f.text for f in answer_of("chat", "openai", chat)] == ["hi"]


def test_upload_fields() -> None:
    names = {"model": (), "prompt": (), "language": (), "file": ()}
    assert upload_fields("images.edits", names) == ("prompt",)
    assert upload_fields("audio.transcriptions", {"model": ()}) == ()
    assert upload_fields("files.create", {"purpose": (), "prompt": ()}) == ()
    assert upload_fields("someone.elses", {"prompt": (), "instructions": (), "model": ()}) == (
        "prompt",
        "instructions",
    )


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("hello world\n", [(0, "hello world")]),
        (
            "1\n00:00:00,000 --> 00:00:01,500\nfirst line\nsecond\n\n2\n00:00:02,000 --> 00:00:03,000\nthird\n\n",
            [(2, "first line"), (3, "second"), (7, "third")],
        ),
        ("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nthe cue\n\n", [(3, "the cue")]),
        ("1\r\n00:00:00,000 --> 00:00:01,000\r\ncrlf text\r\n", [(2, "crlf text\r")]),
    ],
)
def test_plain_transcript_lines(text: str, lines: list[tuple[int, str]]) -> None:
    assert plain_lines(text) == lines


@given(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20), max_size=6))
def test_plain_lines_never_pick_a_timing_or_cue_number(rows: list[str]) -> None:
    for _, line in plain_lines("\n".join(rows)):
        assert line.strip() and not line.strip().isdigit() and "-->" not in line


# --- entry filters --------------------------------------------------------------------------------


def entry(**config: Any) -> Entry:
    return Entry("g", GuardrailConfig(type="x", **config), None)


@pytest.mark.parametrize(
    ("config", "endpoint", "applies"),
    [
        ({}, "moderations", True),
        ({}, None, True),
        ({"endpoints": ("chat",)}, "chat", True),
        ({"endpoints": ("chat",)}, "rerank", False),
        ({"endpoints": ("chat",)}, None, True),  # no endpoint named: the filter does not apply
        ({"exclude_endpoints": ("moderations",)}, "moderations", False),
        ({"exclude_endpoints": ("moderations",)}, "chat", True),
        (
            {"endpoints": ("mcp.tools/call",), "exclude_endpoints": ("mcp.tools/call",)},
            "mcp.tools/call",
            False,
        ),
    ],
)
def test_endpoint_filters(config: dict[str, Any], endpoint: str | None, applies: bool) -> None:
    assert entry(**config).applies("input", "alias", "key", endpoint) is applies


# --- batch files ----------------------------------------------------------------------------------


class Word:
    """Masks ``SECRET``; blocks ``BLOCKME``; keeps every subject."""

    def __init__(self) -> None:
        self.subjects: list[GuardSubject] = []

    async def check(self, subject: GuardSubject) -> Verdict:
        self.subjects.append(subject)
        if any("BLOCKME" in t.text for t in subject.texts):
            return Verdict(action="block", reason="no")
        if any("SECRET" in t.text for t in subject.texts):
            return Verdict(
                action="modify", texts=tuple(t.text.replace("SECRET", "***") for t in subject.texts)
            )
        return Verdict()


class _Runtime:
    """What check_batch_file reads of a runtime."""

    def __init__(self, guard: Word, **config: Any) -> None:
        self.extra = {"guardrails": Guards((Entry("word", GuardrailConfig(type="word", **config), guard),))}
        self.config = msgspec.structs.replace(
            msgspec.convert({}, type=_ConfigShape), server=_Server(max_body_bytes=4 * 1024 * 1024)
        )


class _Server(msgspec.Struct):
    max_body_bytes: int = 4 * 1024 * 1024


class _ConfigShape(msgspec.Struct):
    server: _Server = msgspec.field(default_factory=_Server)
    guardrails: tuple[int, ...] = (1,)


def _upload(path: Path) -> Upload:
    file = UploadedFile(
        field="file",
        filename="in.jsonl",
        content_type="application/jsonl",
        path=str(path),
        size=path.stat().st_size,
    )
    return Upload(fields={"purpose": "batch"}, multi={"purpose": ("batch",)}, files=(file,))


def _line(i: int, text: str, url: str = "/v1/chat/completions") -> bytes:
    body = {"model": "gpt", "messages": [{"role": "user", "content": text}]}
    return json.dumps({"custom_id": f"r{i}", "method": "POST", "url": url, "body": body}).encode() + b"\n"


def _check(
    tmp_path: Path, content: bytes, guard: Word, **config: Any
) -> tuple[Upload | None, bytes, RequestContext]:
    path = tmp_path / "part-0"
    path.write_bytes(content)
    ctx = RequestContext(request_id="r", dialect=None, endpoint="files.create")  # type: ignore[arg-type]
    request = ChatRequest(endpoint="files.create", dialect="batches", body=b"", model="gpt")
    rt: Any = _Runtime(guard, **config)
    upload = _upload(path)
    result = asyncio.run(check_batch_file(rt, ctx, request, upload))
    return result, path.read_bytes(), ctx


def test_batch_lines_masked_in_place_across_read_slices(tmp_path: Path) -> None:
    filler = "x" * 1000
    lines = [_line(i, filler + (" SECRET" if i in (3, 1500) else "")) for i in range(2000)]
    content = b"".join(lines) + b"not json\n\n"
    assert len(content) > 2 * READ_BYTES  # several slices
    guard = Word()
    upload, after, ctx = _check(tmp_path, content, guard)
    assert upload is not None and upload.files[0].size == len(after)
    rows = after.split(b"\n")
    assert rows[3].endswith(b' ***"}]}}') and rows[1500].endswith(b' ***"}]}}')
    assert b"SECRET" not in after
    untouched = [i for i in range(2000) if i not in (3, 1500)]
    assert all(rows[i] + b"\n" == lines[i] for i in untouched)  # every other line byte-exact
    assert after.endswith(b"not json\n\n")
    assert len(guard.subjects) == 2000  # every JSON line, one subject each
    (result,) = ctx.guardrails  # one result for the whole file
    assert result.action == "modify"
    assert list(tmp_path.iterdir()) == [tmp_path / "part-0"]  # no temporary file left


def test_batch_block_names_the_line_and_leaves_the_file(tmp_path: Path) -> None:
    content = _line(0, "SECRET") + _line(1, "fine") + _line(2, "BLOCKME")
    from truckllm.errors import GatewayError

    with pytest.raises(GatewayError) as caught:
        _check(tmp_path, content, Word())
    assert "line 3 of the file" in caught.value.message and caught.value.code == "guardrail_blocked"
    assert (tmp_path / "part-0").read_bytes() == content
    assert list(tmp_path.iterdir()) == [tmp_path / "part-0"]


def test_batch_lines_follow_their_endpoint_and_the_files_create_filter(tmp_path: Path) -> None:
    content = (
        _line(0, "SECRET")
        + json.dumps(
            {"custom_id": "e", "url": "/v1/embeddings", "body": {"model": "gpt", "input": ["SECRET"]}}
        ).encode()
        + b"\n"
    )
    guard = Word()
    upload, after, _ = _check(tmp_path, content, guard)
    assert [s.endpoint for s in guard.subjects] == ["chat", "embeddings"]
    assert after.count(b"***") == 2
    guard = Word()
    upload, after, _ = _check(tmp_path, content, guard, exclude_endpoints=("files.create",))
    assert upload is None and guard.subjects == [] and after == content
    guard = Word()
    upload, after, _ = _check(tmp_path, content, guard, endpoints=("embeddings", "files.create"))
    assert [s.endpoint for s in guard.subjects] == ["embeddings"]
