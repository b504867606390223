"""Guardrails on every endpoint past chat: the official ``openai`` SDK (plain HTTP for rerank) ->
the gateway -> fakes that validate and record what they received.

The class: every text a client sends upstream passes the input guardrails, and every text answer
passes the output guardrails, whatever the endpoint. A throwaway guardrail type ``word`` masks one
word and blocks on another; the gateway key ``in`` has it on the input stage (masks
:data:`SECRET`, blocks ``BLOCKME``), the key ``out`` on the output stage (masks ``bytes``, blocks
``translation``). For each endpoint: a mask changes what the upstream receives (JSON members,
multipart text fields, a batch file's lines) and a block answers 400 ``guardrail_blocked`` in
OpenAI's format with nothing sent upstream; answers' texts (an image's ``revised_prompt``, a
transcript in every format and as events) are masked or blocked. The secret is in no record.

:func:`test_every_route_is_guarded_or_exempt` reads the routes the gateway mounts at runtime
(every dialect's, every mount's): each must be guarded (a request carrying the blocked word is
refused before any upstream call) or listed in :data:`EXEMPT` with the reason, so that a new
endpoint cannot skip the guardrails silently.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec
import openai
import pytest

from truckllm import hookimpl
from truckllm.types import GuardrailSpec, GuardSubject, RequestRecord, Verdict
from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.fakes.cohere import FakeCohere
from truckllm_testing.server import GatewayServer

SECRET = "sk-live-Q7x9SECRETx42"
MASK = "[MASKED]"
PROVIDER_KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa"
KEY_IN = "client-in-0123456789abcdef"
KEY_OUT = "client-out-0123456789abcdef"
KEY_NONE = "client-none-0123456789abcde"


class WordGuard:
    """Masks ``mask`` (as :data:`MASK`); blocks on ``block``."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
        mask: str
        block: str

    def __init__(self, options: WordGuard.Options) -> None:
        self.options = options

    async def check(self, subject: GuardSubject) -> Verdict:
        if any(self.options.block in t.text for t in subject.texts):
            return Verdict(action="block", reason="a forbidden word")
        found = sum(t.text.count(self.options.mask) for t in subject.texts)
        if not found:
            return Verdict()
        texts = tuple(t.text.replace(self.options.mask, MASK) for t in subject.texts)
        return Verdict(action="modify", reason="masked", texts=texts, findings={"word": found})


class Plugin:
    """Registers ``word``; keeps every request record."""

    __name__ = "throwaway-word-guardrail"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.event = threading.Event()

    @hookimpl
    def register_guardrails(self, register: Callable[[GuardrailSpec], None]) -> None:
        register(GuardrailSpec(type="word", make=WordGuard, options=WordGuard.Options))  # type: ignore[arg-type]

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.event.set()


def config(openai_url: str, cohere_url: str, spool: Path) -> str:
    return f"""
admin: {{token: admin-token-guard-endpoints}}
server: {{upload_dir: {spool}}}
keys:
  - {{name: in, value: {KEY_IN}, log_bodies: true}}
  - {{name: out, value: {KEY_OUT}, log_bodies: true}}
  - {{name: none, value: {KEY_NONE}}}
providers:
  oa:
    type: openai
    base_url: {openai_url}
    keys: [{{name: k, value: {PROVIDER_KEY}}}]
  co:
    type: cohere
    base_url: {cohere_url}
    keys: [{{name: c, value: co-key-1}}]
models:
  gpt: {{deployments: [{{provider: oa, model: gpt-4o}}]}}
  dalle: {{deployments: [{{provider: oa, model: dall-e-3}}]}}
  editor: {{deployments: [{{provider: oa, model: gpt-image-1}}]}}
  whisper: {{deployments: [{{provider: oa, model: whisper-1}}]}}
  transcribe: {{deployments: [{{provider: oa, model: gpt-4o-transcribe}}]}}
  tts: {{deployments: [{{provider: oa, model: gpt-4o-mini-tts}}]}}
  moderation: {{deployments: [{{provider: oa, model: omni-moderation-latest}}]}}
  rerank: {{deployments: [{{provider: co, model: rerank-v3.5}}]}}
guardrails:
  - {{type: word, name: in, keys: [in], options: {{mask: {SECRET}, block: BLOCKME}}}}
  - {{type: word, name: out, stages: [output], keys: [out], options: {{mask: bytes, block: translation}}}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=[PROVIDER_KEY])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def cohere() -> Iterator[FakeCohere]:
    upstream = FakeCohere(keys=["co-key-1"])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def plugin() -> Plugin:
    return Plugin()


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI, cohere: FakeCohere, plugin: Plugin, spool: Path) -> Iterator[GatewayServer]:
    with GatewayServer(config(fake.base_url, cohere.origin, spool), extra_plugins=(plugin,)) as server:
        yield server
    assert list(spool.iterdir()) == []  # every upload's files removed, masked ones too


@pytest.fixture(autouse=True)
def clean(fake: FakeOpenAI, cohere: FakeCohere, plugin: Plugin) -> Iterator[None]:
    """Each test starts with empty fakes; after it, every upstream request was valid and no
    record of it holds the secret."""
    fake.reset()
    cohere.requests.clear()
    plugin.records.clear()
    yield
    assert fake.violations == []
    assert cohere.violations == []
    for record in plugin.records:
        assert SECRET not in msgspec.json.encode(record).decode(), record.endpoint


_CLIENTS: dict[tuple[str, str], openai.OpenAI] = {}  # one SDK client per key, closed at the end


@pytest.fixture(scope="module", autouse=True)
def close_clients() -> Iterator[None]:
    yield
    for sdk in _CLIENTS.values():
        sdk.close()
    _CLIENTS.clear()


def client(gw: GatewayServer, key: str = KEY_IN) -> openai.OpenAI:
    found = _CLIENTS.get((gw.url, key))
    if found is None:
        found = _CLIENTS[gw.url, key] = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    return found


def blocked(call: Callable[[], Any]) -> openai.BadRequestError:
    """The SDK's error for a request a guardrail blocked."""
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    error = caught.value
    assert error.code == "guardrail_blocked"
    assert error.type == "invalid_request_error"
    return error


def sent(fake: FakeOpenAI) -> list[Any]:
    """What the fake received (its request records)."""
    return list(fake.requests)


def form(fake: FakeOpenAI) -> dict[str, Any]:
    summary = fake.requests[-1].json
    assert isinstance(summary, dict)
    return summary


def audio(size: int) -> bytes:
    block = hashlib.sha256(b"a").digest()
    return (block * (size // len(block) + 1))[:size]


# --- images -----------------------------------------------------------------------------------


def test_image_prompt_is_masked_upstream_and_blocked(gw: GatewayServer, fake: FakeOpenAI) -> None:
    result = client(gw).images.generate(model="dalle", prompt=f"a cat holding {SECRET} please")
    assert fake.requests[-1].json["prompt"] == f"a cat holding {MASK} please"
    assert result.data and result.data[0].revised_prompt == f"a cat holding {MASK} please"
    blocked(lambda: client(gw).images.generate(model="dalle", prompt="a BLOCKME cat"))
    assert len(sent(fake)) == 1  # the block sent nothing


def test_image_revised_prompt_is_masked_and_blocked(gw: GatewayServer, fake: FakeOpenAI) -> None:
    result = client(gw, KEY_OUT).images.generate(model="dalle", prompt="two bytes of cat")
    assert fake.requests[-1].json["prompt"] == "two bytes of cat"  # the input stage is the other key's
    assert result.data and result.data[0].revised_prompt == f"two {MASK} of cat"
    blocked(lambda: client(gw, KEY_OUT).images.generate(model="dalle", prompt="a translation"))
    assert len(sent(fake)) == 2  # an answer blocked: the upstream was called


def test_image_edit_prompt_field_is_masked_in_the_form_and_blocked(
    gw: GatewayServer, fake: FakeOpenAI
) -> None:
    image = audio(5000)
    client(gw).images.edit(model="editor", image=("a.png", image, "image/png"), prompt=f"add {SECRET} now")
    summary = form(fake)
    assert summary["fields"]["prompt"] == [f"add {MASK} now"]
    assert summary["fields"]["model"] == ["gpt-image-1"]
    (file,) = summary["files"]
    assert file["sha256"] == hashlib.sha256(image).hexdigest()  # the file as it came
    blocked(
        lambda: client(gw).images.edit(model="editor", image=("a.png", image, "image/png"), prompt="BLOCKME")
    )
    assert len(sent(fake)) == 1


# --- audio ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["transcriptions", "translations"])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_audio_prompt_field_is_masked_and_blocked(gw: GatewayServer, fake: FakeOpenAI, kind: str) -> None:
    api = getattr(client(gw).audio, kind)
    api.create(model="whisper", file=("a.wav", audio(16_000), "audio/wav"), prompt=f"names: {SECRET}, Bob")
    assert form(fake)["fields"]["prompt"] == [f"names: {MASK}, Bob"]
    assert fake.requests[-1].path == f"/v1/audio/{kind}"
    blocked(lambda: api.create(model="whisper", file=("a.wav", audio(16_000), "audio/wav"), prompt="BLOCKME"))
    assert len(sent(fake)) == 1


@pytest.mark.parametrize("response_format", ["json", "verbose_json", "text", "srt", "vtt"])
def test_transcript_is_masked_in_every_format(
    gw: GatewayServer, fake: FakeOpenAI, response_format: str
) -> None:
    words: Any = ["word", "segment"] if response_format == "verbose_json" else openai.NOT_GIVEN
    fmt: Any = response_format
    result: Any = client(gw, KEY_OUT).audio.transcriptions.create(
        model="whisper",
        file=("a.wav", audio(48_000), "audio/wav"),
        response_format=fmt,
        timestamp_granularities=words,
    )
    text = result if isinstance(result, str) else result.text
    assert "bytes" not in text and f"transcription of 48000 {MASK}" in text
    if response_format == "verbose_json":
        assert all("bytes" not in s.text for s in result.segments)
        assert [w.word for w in result.words].count(MASK) == 1
    if response_format == "srt":  # cue number and timing kept as they were
        assert text.splitlines()[:2] == ["1", "00:00:00,000 --> 00:00:01,500"]
    if response_format == "vtt":
        assert text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n")


def test_streamed_transcript_is_masked(gw: GatewayServer, fake: FakeOpenAI) -> None:
    stream = client(gw, KEY_OUT).audio.transcriptions.create(
        model="transcribe", file=("a.wav", audio(4000), "audio/wav"), stream=True
    )
    events = list(stream)
    deltas = "".join(getattr(e, "delta", "") for e in events)
    assert "bytes" not in deltas and MASK in deltas
    assert events[-1].type == "transcript.text.done"
    assert events[-1].text.strip() == deltas.strip()  # the whole text as released


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_translation_answer_is_blocked(gw: GatewayServer, fake: FakeOpenAI) -> None:
    blocked(
        lambda: client(gw, KEY_OUT).audio.translations.create(
            model="whisper", file=("a.wav", audio(16_000), "audio/wav")
        )
    )
    assert len(sent(fake)) == 1


def test_speech_input_and_instructions_are_masked_and_blocked(gw: GatewayServer, fake: FakeOpenAI) -> None:
    with client(gw).audio.speech.with_streaming_response.create(
        model="tts", voice="alloy", input=f"say {SECRET}", instructions=f"calm, {SECRET}"
    ) as response:
        response.read()
    body = fake.requests[-1].json
    assert body["input"] == f"say {MASK}" and body["instructions"] == f"calm, {MASK}"
    blocked(lambda: client(gw).audio.speech.create(model="tts", voice="alloy", input="BLOCKME"))
    blocked(
        lambda: client(gw).audio.speech.create(model="tts", voice="alloy", input="hi", instructions="BLOCKME")
    )
    assert len(sent(fake)) == 1


# --- moderations and rerank -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (f"is {SECRET} ok", f"is {MASK} ok"),
        ([f"a {SECRET}", "plain"], [f"a {MASK}", "plain"]),
        (
            [
                {"type": "text", "text": f"b {SECRET}"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
            [
                {"type": "text", "text": f"b {MASK}"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        ),
    ],
)
def test_moderation_input_is_masked_and_blocked(
    gw: GatewayServer, fake: FakeOpenAI, given: Any, expected: Any
) -> None:
    client(gw).moderations.create(model="moderation", input=given)
    assert fake.requests[-1].json["input"] == expected
    blocked(lambda: client(gw).moderations.create(model="moderation", input=["fine", "BLOCKME"]))
    assert len(sent(fake)) == 1


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_rerank_query_and_documents_are_masked_and_blocked(
    gw: GatewayServer, cohere: FakeCohere, path: str
) -> None:
    auth = {"authorization": f"Bearer {KEY_IN}"}
    body = {
        "model": "rerank",
        "query": f"who has {SECRET}",
        "documents": [f"doc {SECRET}", {"text": f"obj {SECRET}"}, "plain"],
        "return_documents": True,
    }
    answer = httpx.post(gw.url + path, json=body, headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    upstream = cohere.requests[-1].json
    assert upstream["query"] == f"who has {MASK}"
    assert upstream["documents"] == [f"doc {MASK}", f"obj {MASK}", "plain"]
    for bad in ({"query": "BLOCKME"}, {"documents": ["a", {"text": "BLOCKME"}]}):
        refused = httpx.post(gw.url + path, json={**body, **bad}, headers=auth, timeout=30)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "guardrail_blocked"
    assert len(cohere.requests) == 1


# --- batch files ------------------------------------------------------------------------------


def batch_lines(texts: list[str], url: str = "/v1/chat/completions") -> bytes:
    lines = []
    for i, text in enumerate(texts):
        body: dict[str, Any] = (
            {"model": "gpt", "input": text}
            if url == "/v1/embeddings"
            else {"model": "gpt", "messages": [{"role": "user", "content": text}]}
        )
        lines.append(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": url, "body": body}))
    return ("\n".join(lines) + "\n").encode()


def test_batch_file_lines_are_masked_as_it_uploads(gw: GatewayServer, fake: FakeOpenAI) -> None:
    texts = ["hello", f"mail {SECRET} now", "bye", f"{SECRET} and {SECRET}"]
    uploaded = client(gw).files.create(file=("in.jsonl", batch_lines(texts)), purpose="batch")
    stored = fake.files[uploaded.id].content.decode()
    lines = [json.loads(line) for line in stored.splitlines()]
    assert [line["body"]["messages"][0]["content"] for line in lines] == [
        "hello",
        f"mail {MASK} now",
        "bye",
        f"{MASK} and {MASK}",
    ]
    assert {line["body"]["model"] for line in lines} == {"gpt-4o"}  # rewritten after the mask
    assert [line["custom_id"] for line in lines] == ["r0", "r1", "r2", "r3"]
    assert uploaded.bytes == len(stored.encode())  # the masked file's own size went upstream


def test_a_batch_file_line_blocked_is_named(gw: GatewayServer, fake: FakeOpenAI) -> None:
    lines = batch_lines(["fine", "also fine", "then BLOCKME"])
    error = blocked(lambda: client(gw).files.create(file=("in.jsonl", lines), purpose="batch"))
    assert "line 3 of the file" in error.message and error.param == "file"
    embeddings = batch_lines(["ok", "BLOCKME"], url="/v1/embeddings")
    error = blocked(lambda: client(gw).files.create(file=("in.jsonl", embeddings), purpose="batch"))
    assert "line 2 of the file" in error.message
    assert sent(fake) == []  # nothing uploaded


def test_a_large_batch_file_is_checked_line_by_line(gw: GatewayServer, fake: FakeOpenAI) -> None:
    """Over several read slices (1 MiB each): every line checked, masked lines far apart."""
    texts = [("x" * 400) + (f" {SECRET}" if i % 1000 == 999 else "") for i in range(6000)]
    uploaded = client(gw).files.create(file=("in.jsonl", io.BytesIO(batch_lines(texts))), purpose="batch")
    stored = fake.files[uploaded.id].content.decode().splitlines()
    assert len(stored) == 6000
    masked = [i for i, line in enumerate(stored) if MASK in line]
    assert masked == [999, 1999, 2999, 3999, 4999, 5999] and SECRET not in "".join(stored)


def test_a_key_without_guardrails_is_untouched(gw: GatewayServer, fake: FakeOpenAI) -> None:
    client(gw, KEY_NONE).images.generate(model="dalle", prompt=f"BLOCKME {SECRET}")
    assert fake.requests[-1].json["prompt"] == f"BLOCKME {SECRET}"
    fake.reset()


# --- every route ------------------------------------------------------------------------------

EXEMPT: dict[tuple[str, str], str] = {
    # no text a model reads: ids, listings, metadata
    ("GET", "/v1/files"): "a listing of the key's own files",
    ("GET", "/v1/files/{file_id}"): "a file object (names and sizes)",
    ("DELETE", "/v1/files/{file_id}"): "a deletion",
    ("GET", "/v1/files/{file_id}/content"): "a file's bytes: an input file is the client's own (checked at "
    "upload); a batch output file's answers are not checked (see the README)",
    ("GET", "/v1/batches"): "a listing of the key's own batches",
    ("POST", "/v1/batches"): "names an uploaded file (its lines were checked at upload)",
    ("GET", "/v1/batches/{batch_id}"): "a batch object (status and counts)",
    ("POST", "/v1/batches/{batch_id}/cancel"): "a cancellation",
    ("GET", "/v1/responses/{response_id}"): "no input text; a stored answer was checked when made, one "
    "fetched upstream passes the output stage",
    ("DELETE", "/v1/responses/{response_id}"): "a deletion",
    ("POST", "/v1/responses/{response_id}/cancel"): "a cancellation (its answer passes the output stage)",
    ("GET", "/v1/responses/{response_id}/input_items"): "the client's own input, as stored after its check",
    ("POST", "/v1beta/models/{model}:{method}"): "a method Gemini's dialect does not serve: refused (404)",
    ("POST", "/v1/models/{model}:{method}"): "a method Gemini's dialect does not serve: refused (404)",
    ("MOUNT", "/console"): "the admin's web console (admin sign-in; no model traffic)",
    ("MOUNT", "/mcp"): "MCP tool calls: guarded by truckllm-mcp through GatewayView.guard "
    "(plugins/truckllm-mcp/tests/test_mcp_guardrails.py)",
}
"""Routes the input stage has nothing to check on, each with the reason (the README's list)."""

_GEMINI = {"contents": [{"role": "user", "parts": [{"text": "BLOCKME"}]}]}
_ANTHROPIC = {"model": "gpt", "max_tokens": 5, "messages": [{"role": "user", "content": "BLOCKME"}]}
_OPENAI_CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "BLOCKME"}]}
SAMPLES: dict[str, Any] = {
    "/v1/chat/completions": _OPENAI_CHAT,
    "/v1/completions": {"model": "gpt", "prompt": "BLOCKME"},
    "/v1/embeddings": {"model": "gpt", "input": ["BLOCKME"]},
    "/v1/images/generations": {"model": "dalle", "prompt": "BLOCKME"},
    "/v1/moderations": {"model": "moderation", "input": "BLOCKME"},
    "/v1/audio/speech": {"model": "tts", "voice": "alloy", "input": "BLOCKME"},
    "/v1/rerank": {"model": "rerank", "query": "BLOCKME", "documents": ["a"]},
    "/v2/rerank": {"model": "rerank", "query": "q", "documents": ["BLOCKME"]},
    "/v1/audio/transcriptions": ("whisper", "audio"),
    "/v1/audio/translations": ("whisper", "audio"),
    "/v1/images/edits": ("editor", "image"),
    "/v1/files": ("gpt", "batch"),
    "/v1/messages": _ANTHROPIC,
    "/v1/messages/count_tokens": _ANTHROPIC,
    "/v1/responses": {"model": "gpt", "input": "BLOCKME"},
    "/v1/responses/input_tokens": {"model": "gpt", "input": "BLOCKME"},
}
"""A request per guarded path carrying the blocked word (a form: ``(alias, file field)``)."""


def mounted(gw: GatewayServer) -> list[tuple[str, str]]:
    """Every (method, path) the running gateway serves for clients: each dialect's routes (read
    from the plugin host at runtime) and each mount's prefix."""
    assert gw.gateway is not None
    host = gw.gateway.runtime.host
    routes = [(m, r.path) for d in host.dialects.values() for r in d.routes for m in r.methods]
    return routes + [("MOUNT", m.prefix) for m in host.mounts.values()]


def _send(gw: GatewayServer, method: str, path: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {KEY_IN}", "x-api-key": KEY_IN, "x-goog-api-key": KEY_IN}
    headers["anthropic-version"] = "2023-06-01"
    url = gw.url + path.replace("{model}", "gpt")
    sample = SAMPLES.get(path)
    if sample is None:  # gemini: its routes are templates of one shape per method
        body: Any = _GEMINI
        if path.endswith(":embedContent"):
            body = {"content": _GEMINI["contents"][0]}
        elif path.endswith(":batchEmbedContents"):
            body = {"requests": [{"model": "models/gpt", "content": _GEMINI["contents"][0]}]}
        return httpx.post(url + ("?alt=sse" if "stream" in path else ""), json=body, headers=headers)
    if isinstance(sample, tuple):
        alias, kind = sample
        if kind == "batch":
            files = {"file": ("in.jsonl", batch_lines(["BLOCKME"]), "application/jsonl")}
            return httpx.post(url, data={"purpose": "batch"}, files=files, headers=headers, timeout=30)
        name = "image" if kind == "image" else "file"
        files = {name: ("a.bin", audio(2000), "application/octet-stream")}
        form = {"model": alias, "prompt": "BLOCKME"}
        return httpx.post(url, data=form, files=files, headers=headers, timeout=30)
    return httpx.post(url, json=sample, headers=headers, timeout=30)


def _is_blocked(answer: httpx.Response) -> bool:
    if answer.status_code != 400:
        return False
    text = answer.text
    return "guardrail_blocked" in text or "Blocked by guardrail 'in'" in text


def test_every_route_is_guarded_or_exempt(gw: GatewayServer, fake: FakeOpenAI, cohere: FakeCohere) -> None:
    routes = mounted(gw)
    assert ("POST", "/v1/images/edits") in routes and ("MOUNT", "/mcp") in routes  # read at runtime
    unexplained = []
    for method, path in routes:
        if (method, path) in EXEMPT:
            assert EXEMPT[method, path]  # every exemption says why
            continue
        if method != "POST":
            unexplained.append((method, path, "not a POST and not exempt"))
            continue
        answer = _send(gw, method, path)
        if not _is_blocked(answer):
            unexplained.append((method, path, f"{answer.status_code} {answer.text[:200]}"))
    assert unexplained == []
    assert sent(fake) == [] and cohere.requests == []  # every block before any upstream call
    assert set(EXEMPT) <= set(routes)  # no stale exemption
