"""Issue 19's "done when": the log and usage records of a masked request contain only the masked
text. A gateway with the ``pii`` guardrail masking prompts and answers, bodies kept for its key,
and every place a request's record goes configured at once: the ``stdout`` and ``file`` loggers
(bodies included), the ``sql`` request log (SQLite), the ``webhook`` logger (a loopback
receiver; it sends no bodies), the ``file`` store (usage), the gateway's own log lines, and the admin API's answers
about the requests. Requests through the OpenAI chat, Responses and Anthropic doors, whole and
streamed, carry an e-mail, a card and a phone number in the prompt and get them back in the
answer. After the gateway stopped (everything flushed), every byte of every output is searched
for the original values: none may be there, and the masks must be.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from loguru import logger

from truckllm_testing.fakes import FakeOpenAI, Reply
from truckllm_testing.server import GatewayServer

pytest.importorskip("truckllm_provider_openai")
pytest.importorskip("truckllm_logger_sql")
pytest.importorskip("truckllm_logger_file")
pytest.importorskip("truckllm_logger_stdout")
pytest.importorskip("truckllm_logger_webhook")
pytest.importorskip("truckllm_store_file")

PROVIDER_KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa"
CLIENT_KEY = "client-key-0123456789"
ADMIN = "admin-token-pii-outputs-0123"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PHONE = "+44 20 7946 0958"
ORIGINALS = (EMAIL, CARD, "4111111111111111", PHONE, "7946 0958", "jane.doe")
MASKS = ("<EMAIL>", "<CARD>", "<PHONE>")


class Receiver:
    """A loopback HTTP endpoint keeping every body POSTed to it (the webhook logger's target)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                received.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(tmp: Path, upstream: str, hook: str) -> str:
    return f"""
admin: {{token: {ADMIN}}}
keys:
  - {{name: client, value: {CLIENT_KEY}, log_bodies: true, budget: {{usd: 100, period: day}}}}
store: {{type: file, path: "{tmp / "state.db"}", flush_interval: 50ms}}
loggers:
  - stdout: {{include_bodies: true, level: DEBUG}}
  - file: {{path: "{tmp / "requests.jsonl"}", include_bodies: true, level: DEBUG}}
  - sql: {{url: "sqlite:///{tmp / "requests.db"}", flush_interval: 20ms}}
  - webhook: {{url: "{hook}", flush_interval: 20ms, batch_size: 1}}
providers:
  oa: {{type: openai, base_url: {upstream}, keys: [{{name: k, value: {PROVIDER_KEY}}}]}}
models:
  gpt-4o: {{deployments: [{{provider: oa, model: gpt-4o, price: {{input: 1, output: 1}}}}]}}
guardrails:
  - {{type: pii, stages: [input, output], options: {{mode: mask}}}}
"""


def _request(url: str, door: str, stream: bool, prompt: str) -> httpx.Response:
    if door == "anthropic":
        headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
        path = "/v1/messages"
        body: dict[str, Any] = {
            "model": "gpt-4o",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": prompt}],
        }
    elif door == "responses":
        headers = {"authorization": f"Bearer {CLIENT_KEY}"}
        path, body = "/v1/responses", {"model": "gpt-4o", "input": prompt, "store": False}
    else:
        headers = {"authorization": f"Bearer {CLIENT_KEY}"}
        path = "/v1/chat/completions"
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    return httpx.post(url + path, json=body, headers=headers, timeout=30)


@pytest.fixture
def loguru_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(sink)


def test_no_output_holds_the_unmasked_text(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], loguru_lines: list[str]
) -> None:
    prompt = f"My mail is {EMAIL}, my card {CARD} and my phone {PHONE}."
    answer = f"Noted: {EMAIL}, card {CARD}, phone {PHONE}. Anything else?"
    doors = [(door, stream) for door in ("chat", "responses", "anthropic") for stream in (False, True)]
    admin: list[str] = []
    answers: list[str] = []
    with (
        Receiver() as receiver,
        FakeOpenAI(keys=[PROVIDER_KEY], chunks=7).running() as fake,
        GatewayServer(_config(tmp_path, fake.base_url, receiver.url)) as gw,
    ):
        for door, stream in doors:
            fake.script(Reply(text=answer))
            response = _request(gw.url, door, stream, prompt)
            assert response.status_code == 200, (door, stream, response.text)
            answers.append(response.text)
            upstream = fake.requests[-1].body
            assert EMAIL.encode() not in upstream and b"<EMAIL>" in upstream
        auth = {"authorization": f"Bearer {ADMIN}"}
        ids: list[str] = []
        for _ in range(200):  # the request log is written in the background
            page = httpx.get(gw.url + "/admin/v1/requests", headers=auth, params={"limit": 50})
            ids = [row["request_id"] for row in page.json()["data"]]
            if len(ids) == len(doors):
                break
            threading.Event().wait(0.05)
        assert len(ids) == len(doors)
        admin.append(page.text)
        for rid in ids:
            detail = httpx.get(gw.url + f"/admin/v1/requests/{rid}", headers=auth)
            assert detail.status_code == 200, detail.text
            admin.append(detail.text)
        usage = httpx.get(gw.url + "/admin/v1/usage", headers=auth, params={"group_by": "key,user,tag"})
        admin.append(usage.text)
    captured = capfd.readouterr()
    outputs: dict[str, bytes] = {
        "stdout": captured.out.encode(),
        "stderr": captured.err.encode(),
        "gateway log lines": "".join(loguru_lines).encode(),
        "webhook": b"".join(receiver.bodies),
        "admin API": "".join(admin).encode(),
        "answers": "".join(answers).encode(),
    }
    for path in sorted(tmp_path.iterdir()):  # the file logger, the request log, the store (+ -wal)
        outputs[path.name] = path.read_bytes()
    assert {"requests.jsonl", "requests.db", "state.db"} <= set(outputs)
    for name, data in outputs.items():
        for original in ORIGINALS:
            assert original.encode() not in data, f"{original!r} is in {name}"
    # and the outputs did hold the requests (the webhook sends no bodies), their text masked
    assert outputs["webhook"].count(b'"request_id"') == len(doors)
    for name in ("stdout", "requests.jsonl", "admin API", "answers"):
        for mask in MASKS:
            assert mask.encode() in outputs[name], f"{mask} is not in {name}"
    request_log = outputs["requests.db"] + outputs.get("requests.db-wal", b"")
    assert b"<EMAIL>" in request_log
