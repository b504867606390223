"""Media answers end to end, what the client sees and what the record keeps.

- A raw stream (speech audio) cut mid-way by the upstream reaches the client as a truncated body
  (the connection closes without the chunked body's end): the openai SDK and httpx both fail the
  read, never hand over shorter audio as if complete; the record says 502 ``stream``.
- ``log_bodies``: a record's body is text the scrubber read, or absent. Speech audio is never
  captured (its content type and size are); transcriptions as ``text``/``srt``/``vtt``/JSON and
  image edits' ``b64_json`` JSON are kept (cut as usual); an upload's request body is its form's
  summary (fields, file names, types and sizes), never the file's bytes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from truckllm import hookimpl
from truckllm.types import RequestRecord
from truckllm_testing.fakes import FakeOpenAI, Fault
from truckllm_testing.fakes.openai_media import speech_audio
from truckllm_testing.server import GatewayServer

KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa"
CLIENT_KEY = "sk-gw-client-0123456789abcdef"
LIMIT = 512


class Records:
    """Collects request records (an ``emit_log`` plugin)."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Keep the record."""
        self.records.append(record)

    def wait(self, count: int) -> list[RequestRecord]:
        """The records once ``count`` have come (bounded wait, no timing asserted)."""
        for _ in range(1000):
            if len(self.records) >= count:
                break
            time.sleep(0.01)
        assert len(self.records) >= count
        return self.records


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=(KEY,))
    with upstream.running():
        yield upstream
    assert upstream.violations == []


@pytest.fixture
def records() -> Records:
    return Records()


@pytest.fixture
def gw(fake: FakeOpenAI, records: Records, tmp_path: Path) -> Iterator[GatewayServer]:
    spool = tmp_path / "spool"
    spool.mkdir()
    config = f"""
server: {{upload_dir: {spool}, log_bodies_max_bytes: {LIMIT}}}
routing: {{backoff: {{base: 1ms, max: 5ms}}, max_attempts: 1}}
keys:
  - {{name: client, value: {CLIENT_KEY}, log_bodies: true}}
providers:
  oa: {{type: openai, base_url: {fake.base_url}, keys: [{{name: k, value: {KEY}}}]}}
models:
  tts: {{deployments: [{{provider: oa, model: gpt-4o-mini-tts}}]}}
  whisper: {{deployments: [{{provider: oa, model: whisper-1}}]}}
  editor: {{deployments: [{{provider: oa, model: gpt-image-1}}]}}
"""
    with GatewayServer(config, extra_plugins=(records,)) as server:
        yield server


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gw.url + "/v1", api_key=CLIENT_KEY, max_retries=0
    ) as sdk:  # closed: no socket left for a later test's GC
        yield sdk


def audio(size: int, seed: bytes = b"a") -> bytes:
    block = hashlib.sha256(seed).digest()
    return (block * (size // len(block) + 1))[:size]


# --- a raw stream cut short ----------------------------------------------------------------------


def test_speech_cut_mid_stream_is_a_truncated_answer_for_the_sdk(
    fake: FakeOpenAI, client: openai.OpenAI, records: Records
) -> None:
    fake.inject(Fault(drop_after=3, path="audio/speech"))
    got = b""
    with (
        pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)),
        client.audio.speech.with_streaming_response.create(
            model="tts", voice="alloy", input="Hello there.", response_format="wav"
        ) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            got += chunk
    assert got == speech_audio(fake.speech_bytes)[: len(got)]  # what came is the audio's start
    assert 0 < len(got) <= 3 * fake.speech_chunk
    (record,) = records.wait(1)
    assert record.endpoint == "audio.speech" and record.stream
    assert record.status == 502 and record.error_kind == "stream"
    assert record.usage is not None and record.usage.characters == len("Hello there.")
    assert record.bodies is not None and record.bodies.response == ""  # audio is never text
    assert record.bodies.response_type == "audio/wav" and record.bodies.response_bytes == len(got)


def test_speech_cut_mid_stream_fails_a_plain_httpx_read(fake: FakeOpenAI, gw: GatewayServer) -> None:
    fake.inject(Fault(drop_after=1, path="audio/speech"))
    with httpx.stream(
        "POST",
        gw.url + "/v1/audio/speech",
        json={"model": "tts", "voice": "alloy", "input": "hi"},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ) as response:
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()


def test_speech_complete_ends_cleanly_and_keeps_the_connection(
    fake: FakeOpenAI, gw: GatewayServer, records: Records
) -> None:
    with httpx.Client(headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
        for _ in range(2):  # the same keep-alive connection serves both: each ended properly
            answer = http.post(
                gw.url + "/v1/audio/speech", json={"model": "tts", "voice": "a", "input": "hi"}
            )
            assert answer.status_code == 200 and answer.content == speech_audio(fake.speech_bytes)
    first, second = records.wait(2)
    for record in (first, second):
        assert record.status == 200 and record.bodies is not None
        assert record.bodies.response == "" and record.bodies.response_type == "audio/mpeg"
        assert record.bodies.response_bytes == fake.speech_bytes
        assert '"input":"hi"' in record.bodies.request  # the JSON request is kept


def test_a_speech_event_stream_cut_short_ends_with_an_error_event(
    fake: FakeOpenAI, gw: GatewayServer
) -> None:
    fake.inject(Fault(drop_after=2, path="audio/speech"))
    with httpx.stream(
        "POST",
        gw.url + "/v1/audio/speech",
        json={"model": "tts", "voice": "alloy", "input": "hi", "stream_format": "sse"},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ) as response:
        text = response.read().decode()  # an event stream says its error in band, and ends
    assert text.count("speech.audio.delta") == 2 and '"error"' in text


# --- what a record keeps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response_format", "expect"),
    [("text", "transcription of"), ("srt", "-->"), ("vtt", "WEBVTT"), ("json", '"text"')],
)
def test_transcription_answers_are_kept_as_text_and_the_upload_as_its_summary(
    client: openai.OpenAI, records: Records, response_format: str, expect: str
) -> None:
    data = audio(50_000)
    client.audio.transcriptions.create(  # type: ignore[call-overload]
        model="whisper", file=("speech.mp3", data, "audio/mpeg"), response_format=response_format
    )
    (record,) = records.wait(1)
    bodies = record.bodies
    assert bodies is not None and expect in bodies.response
    assert bodies.response_type == "" and bodies.response_bytes == 0
    assert '"filename":"speech.mp3"' in bodies.request and '"size":50000' in bodies.request
    assert '"model":["whisper"]' in bodies.request
    assert data[:64].decode("latin-1") not in bodies.request  # never the file's bytes


def test_image_edit_b64_json_is_kept_cut_to_the_limit(
    fake: FakeOpenAI, client: openai.OpenAI, records: Records
) -> None:
    result = client.images.edit(model="editor", image=("i.png", audio(500), "image/png"), prompt="p", n=10)
    assert result.data is not None and len(result.data) == 10
    (record,) = records.wait(1)
    bodies = record.bodies
    assert bodies is not None and bodies.response.lstrip().startswith("{") and '"created"' in bodies.response
    assert '"b64_json"' in bodies.response
    assert len(bodies.response.encode()) <= LIMIT and bodies.response_truncated  # ~800 bytes, cut
    assert bodies.response_type == "" and bodies.response_bytes == 0
