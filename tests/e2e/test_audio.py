"""Audio and image edits end to end: the official openai SDK -> gateway -> fake OpenAI / Azure.

Transcriptions, translations and image edits are multipart uploads the gateway spools and streams
upstream with ``model`` rewritten (the fake checks every file's size and hash); speech's audio is
relayed as it arrives. Usage goes in the request's record.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from truckllm.types import RequestRecord
from truckllm_testing.fakes import FakeOpenAI, Fault
from truckllm_testing.fakes.azure import FakeAzure
from truckllm_testing.fakes.openai_media import speech_audio
from truckllm_testing.server import GatewayServer

KEYS = ("sk-test-aaaaaaaaaaaaaaaaaaaa", "sk-test-bbbbbbbbbbbbbbbbbbbb")
AZURE_KEY = "azure-key-cccccccccccccccc"


def config(openai_url: str, azure_url: str, spool: Path) -> str:
    return f"""
server: {{upload_dir: {spool}}}
routing: {{backoff: {{base: 1ms, max: 5ms}}}}
providers:
  oa:
    type: openai
    base_url: {openai_url}
    keys:
      - {{name: first, value: {KEYS[0]}}}
      - {{name: second, value: {KEYS[1]}}}
  az:
    type: azure
    base_url: {azure_url}
    keys: [{{name: main, value: {AZURE_KEY}}}]
models:
  whisper:
    strategy: first
    deployments: [{{provider: oa, model: whisper-1}}]
  transcribe:
    deployments: [{{provider: oa, model: gpt-4o-transcribe}}]
  tts:
    deployments: [{{provider: oa, model: gpt-4o-mini-tts}}]
  editor:
    deployments: [{{provider: oa, model: gpt-image-1}}]
  az-whisper:
    deployments: [{{provider: az, model: my-whisper}}]
  az-tts:
    deployments: [{{provider: az, model: my-tts}}]
  az-editor:
    deployments: [{{provider: az, model: my-image}}]
"""


class Records:
    """Collects request records (an ``emit_log`` plugin)."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    from truckllm import hookimpl as _hookimpl

    @_hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Keep the record."""
        self.records.append(record)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=KEYS)
    with upstream.running():
        yield upstream
    assert upstream.violations == []


@pytest.fixture
def azure() -> Iterator[FakeAzure]:
    upstream = FakeAzure(keys=(AZURE_KEY,))
    with upstream.running():
        yield upstream
    assert upstream.violations == []


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def records() -> Records:
    return Records()


@pytest.fixture
def gw(fake: FakeOpenAI, azure: FakeAzure, spool: Path, records: Records) -> Iterator[GatewayServer]:
    with GatewayServer(config(fake.base_url, azure.base_url, spool), extra_plugins=(records,)) as server:
        yield server
    assert list(spool.iterdir()) == []  # every upload's files removed


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gw.url + "/v1", api_key="client-key", max_retries=0
    ) as sdk:  # closed: no socket left for a later test's GC
        yield sdk


def audio(size: int, seed: bytes = b"a") -> bytes:
    """``size`` deterministic bytes standing for an audio file."""
    block = hashlib.sha256(seed).digest()
    return (block * (size // len(block) + 1))[:size]


def form_of(fake: FakeOpenAI | FakeAzure, index: int = -1) -> dict[str, Any]:
    """The form summary the fake recorded for a request."""
    summary = fake.requests[index].json
    assert isinstance(summary, dict)
    return summary


def wait_records(records: Records, count: int) -> list[RequestRecord]:
    import time

    for _ in range(500):
        if len(records.records) >= count:
            break
        time.sleep(0.01)
    return records.records


# --- transcriptions and translations ------------------------------------------------------------


@pytest.mark.parametrize(
    ("response_format", "expect"),
    [
        ("json", "transcription of 96000 bytes"),
        ("verbose_json", "transcription of 96000 bytes"),
        ("text", "transcription of 96000 bytes"),
        ("srt", "00:00:03,000"),
        ("vtt", "WEBVTT"),
    ],
)
def test_transcription_formats_pass_through_with_model_rewritten(
    fake: FakeOpenAI, client: openai.OpenAI, records: Records, response_format: str, expect: str
) -> None:
    data = audio(96_000)
    result: Any = client.audio.transcriptions.create(
        model="whisper",
        file=("speech.mp3", io.BytesIO(data), "audio/mpeg"),
        response_format=response_format,  # type: ignore[arg-type]
        language="en",
    )
    text = result if isinstance(result, str) else result.text
    assert expect in text
    form = form_of(fake)
    assert form["fields"]["model"] == ["whisper-1"]  # rewritten
    assert form["fields"]["language"] == ["en"]  # the rest as sent
    (file,) = form["files"]
    assert file == {
        "field": "file",
        "filename": "speech.mp3",
        "content_type": "audio/mpeg",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert fake.requests[-1].headers["content-length"].isdigit()  # a known length, not chunked
    (record,) = wait_records(records, 1)
    assert record.endpoint == "audio.transcriptions" and record.status == 200
    assert record.usage is not None
    # whisper-1 reports 3 s (json, verbose_json); srt/vtt: the last cue; text: 96,000 B at 16 kB/s
    assert record.usage.audio_seconds == (6.0 if response_format == "text" else 3.0)


def test_transcription_tokens_and_timestamp_granularities(
    fake: FakeOpenAI, client: openai.OpenAI, records: Records
) -> None:
    result = client.audio.transcriptions.create(
        model="whisper",
        file=("a.wav", audio(64_000), "audio/wav"),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert result.words and result.segments
    assert form_of(fake)["fields"]["timestamp_granularities[]"] == ["word", "segment"]  # repeated, in order
    tokens = client.audio.transcriptions.create(model="transcribe", file=("a.wav", audio(5000), "audio/wav"))
    assert tokens.text.startswith("transcription of 5000 bytes")
    usage = wait_records(records, 2)[1].usage
    assert usage is not None and usage.prompt_tokens == 5 and usage.completion_tokens == 5
    assert usage.audio_seconds == 0.0  # billed in tokens


def test_streaming_transcription_passes_events_through(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    stream = client.audio.transcriptions.create(
        model="transcribe", file=("a.wav", audio(4000), "audio/wav"), stream=True
    )
    events = list(stream)
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert "".join(getattr(e, "delta", "") for e in events).strip() == events[-1].text  # type: ignore[union-attr]
    assert form_of(fake)["stream"] is True


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's translations resource warns
def test_translation(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    result = client.audio.translations.create(model="whisper", file=("fr.mp3", audio(32_000), "audio/mpeg"))
    assert result.text.startswith("translation of 32000 bytes")
    assert fake.requests[-1].path == "/v1/audio/translations"


# --- speech ------------------------------------------------------------------------------------


def test_speech_streams_the_audio_as_it_arrives(
    fake: FakeOpenAI, client: openai.OpenAI, records: Records
) -> None:
    gate = threading.Event()
    fake.speech_gate = gate  # the fake sends one piece, then waits for the gate
    try:
        with client.audio.speech.with_streaming_response.create(
            model="tts", voice="alloy", input="Hello there, world.", response_format="wav"
        ) as response:
            assert response.headers["content-type"] == "audio/wav"  # the upstream's
            chunks = response.iter_bytes(4096)
            first = next(chunks)
            assert first  # the first bytes reached the client...
            assert fake.requests[-1].finished is None  # ...while the upstream is still sending
            gate.set()
            body = first + b"".join(chunks)
    finally:
        gate.set()
        fake.speech_gate = None
    assert body == speech_audio(fake.speech_bytes)
    assert fake.requests[-1].json["model"] == "gpt-4o-mini-tts"
    usage = wait_records(records, 1)[0].usage
    assert usage is not None and usage.characters == len("Hello there, world.")


def test_speech_sse_passes_through(fake: FakeOpenAI, gw: GatewayServer) -> None:
    import httpx2 as httpx

    with httpx.stream(
        "POST",
        gw.url + "/v1/audio/speech",
        json={"model": "tts", "voice": "alloy", "input": "hi", "stream_format": "sse"},
        headers={"authorization": "Bearer x"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    assert '"type":"speech.audio.done"' in text and text.count("speech.audio.delta") == 16


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"voice": "alloy", "input": "hi"}, "model"),
        ({"model": "tts", "voice": "alloy"}, "input"),
        ({"model": "tts", "voice": "alloy", "input": ""}, "input"),
        ({"model": "tts", "voice": "alloy", "input": "x" * 4097}, "input"),
        ({"model": "tts", "voice": "alloy", "input": "hi", "response_format": "mp4"}, "response_format"),
        ({"model": "tts", "voice": "alloy", "input": "hi", "speed": 9}, "speed"),
        ({"model": "tts", "voice": "alloy", "input": "hi", "stream_format": "ws"}, "stream_format"),
    ],
)
def test_bad_speech_requests_get_a_400_naming_the_field(
    fake: FakeOpenAI, client: openai.OpenAI, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/audio/speech", body=body, cast_to=bytes)
    assert caught.value.param == param
    assert fake.requests == []


# --- image edits -------------------------------------------------------------------------------


def test_image_edit_with_several_images_and_a_mask(
    fake: FakeOpenAI, client: openai.OpenAI, records: Records
) -> None:
    images = [audio(10_000, b"one"), audio(20_000, b"two")]
    mask = audio(3000, b"mask")
    result = client.images.edit(
        model="editor",
        image=[("one.png", images[0], "image/png"), ("two.png", images[1], "image/png")],
        mask=("mask.png", mask, "image/png"),
        prompt="Put them together",
        n=2,
    )
    assert result.data is not None and len(result.data) == 2
    form = form_of(fake)
    assert form["fields"]["model"] == ["gpt-image-1"] and form["fields"]["n"] == ["2"]
    sent = [(f["field"], f["size"], f["sha256"]) for f in form["files"]]
    expected = [
        (f, len(b), hashlib.sha256(b).hexdigest())
        for f, b in (("image[]", images[0]), ("image[]", images[1]), ("mask", mask))
    ]
    assert sorted(sent) == sorted(expected)
    usage = wait_records(records, 1)[0].usage
    assert usage is not None and usage.images == 2 and usage.completion_tokens == 2000


# --- Azure -------------------------------------------------------------------------------------


def test_azure_serves_audio_and_edits_at_its_deployment_paths(
    azure: FakeAzure, client: openai.OpenAI
) -> None:
    text = client.audio.transcriptions.create(model="az-whisper", file=("a.mp3", audio(32_000), "audio/mpeg"))
    assert text.text.startswith("transcription of 32000 bytes")
    assert azure.requests[-1].path == "/openai/deployments/my-whisper/audio/transcriptions"
    assert azure.requests[-1].headers["api-key"] == AZURE_KEY
    with client.audio.speech.with_streaming_response.create(
        model="az-tts", voice="alloy", input="hi"
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        assert response.read() == speech_audio(azure.speech_bytes)
    assert azure.requests[-1].path == "/openai/deployments/my-tts/audio/speech"
    edit = client.images.edit(model="az-editor", image=("i.png", audio(500), "image/png"), prompt="p")
    assert edit.data and azure.requests[-1].path == "/openai/deployments/my-image/images/edits"


# --- failover ----------------------------------------------------------------------------------


def test_failover_on_429_replays_the_upload_byte_exact(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.inject(Fault(status=429, kind="rate_limit", key=KEYS[0], path="audio"))
    data = audio(300_000, b"replay")
    result = client.audio.transcriptions.create(model="whisper", file=("r.mp3", data, "audio/mpeg"))
    assert result.text.startswith("transcription of 300000 bytes")
    first, second = fake.requests
    assert (first.api_key, first.status, second.api_key, second.status) == (KEYS[0], 429, KEYS[1], 200)
    assert first.json["files"] == second.json["files"]
    assert second.json["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
