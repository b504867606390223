"""Teams' and organisations' default metadata (issue 19, point 1): merged once per key (the org's,
then the team's over it), carried on every request record and written by the loggers; a reload
changes it; the config bounds it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec
import pytest
from truckllm_logger_otel._spans import request_attributes

from truckllm import hookimpl
from truckllm._internal.gateway import Gateway
from truckllm._internal.records import FIELDS, record_fields, text_line
from truckllm.errors import ConfigError
from truckllm.types import RequestRecord
from truckllm_testing.server import GatewayServer

CHAT = {"model": "demo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
TEAMS = """
orgs:
  acme: {metadata: {region: eu, cost_centre: org-default}}
teams:
  eng: {org: acme, metadata: {cost_centre: cc-42}}
  solo: {metadata: {owner: ann}}
keys:
  - {name: a, value: key-a-0123456789, team: eng}
  - {name: s, value: key-s-0123456789, team: solo}
  - {name: plain, value: key-plain-0123456789}
"""


def _config(log: Path, teams: str = TEAMS) -> str:
    return f"""
loggers: [{{file: {{path: "{log}"}}}}]
providers:
  demo: {{type: mock}}
models:
  demo: {{deployments: [{{provider: demo, model: echo}}]}}
{teams}"""


def _chat(gw: GatewayServer, key: str) -> str:
    answer = httpx.post(
        gw.url + "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer key-{key}-0123456789"}
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["x-request-id"]


def _lines(log: Path, *ids: str) -> dict[str, dict[str, object]]:
    """The file logger's JSON lines of ``ids``, by request id (waits for them to be written)."""
    deadline = time.monotonic() + 15
    while True:
        found: dict[str, dict[str, object]] = {}
        if log.exists():
            for line in log.read_text().splitlines():
                fields = msgspec.json.decode(line)
                if fields.get("request_id") in ids:
                    found[fields["request_id"]] = fields
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_records_carry_the_merged_metadata_and_a_reload_changes_it(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with GatewayServer(_config(log)) as gw:
        eng, solo, plain = _chat(gw, "a"), _chat(gw, "s"), _chat(gw, "plain")
        lines = _lines(log, eng, solo, plain)
        assert lines[eng]["metadata"] == {"region": "eu", "cost_centre": "cc-42"}  # the team's wins
        assert (lines[eng]["team"], lines[eng]["org"]) == ("eng", "acme")
        assert lines[solo]["metadata"] == {"owner": "ann"} and lines[solo]["org"] is None
        assert lines[plain]["metadata"] == {} and lines[plain]["team"] is None  # no team: empty
        assert tuple(lines[plain]) == FIELDS

        assert gw.gateway is not None
        gw.gateway.reload(_config(log, TEAMS.replace("cost_centre: cc-42", "cost_centre: cc-7")))
        after = _chat(gw, "a")
        assert _lines(log, after)[after]["metadata"] == {"region": "eu", "cost_centre": "cc-7"}


@pytest.mark.parametrize(
    "metadata",
    [
        "{" + ", ".join(f"k{n}: v" for n in range(33)) + "}",  # more than 32 entries
        '{"a key": v}',  # a key outside letters, digits and _.:-
        "{k: " + "x" * 257 + "}",  # a value over 256 characters
        "{k: 7}",  # not a string
    ],
)
def test_the_config_bounds_metadata(metadata: str) -> None:
    text = "providers: {demo: {type: mock}}\nteams: {eng: {metadata: " + metadata + "}}\n"
    with pytest.raises(ConfigError) as refused:
        Gateway(config_text=text, env={})
    assert "teams" in str(refused.value)
    org = "providers: {demo: {type: mock}}\norgs: {acme: {metadata: " + metadata + "}}\n"
    with pytest.raises(ConfigError):
        Gateway(config_text=org, env={})


def test_every_logger_shape_carries_the_metadata() -> None:
    record = RequestRecord(
        request_id="r1",
        started_at=1748779200.0,
        endpoint="chat",
        dialect="openai",
        alias="demo",
        gateway_key="a",
        stream=False,
        status=200,
        latency_ms=10.0,
        team="eng",
        org="acme",
        user="ann",
        tags=("t1", "t2"),
        metadata={"region": "eu", "cost_centre": "cc-42"},
    )
    fields = record_fields(record)
    assert fields["metadata"] == {"region": "eu", "cost_centre": "cc-42"}
    assert (fields["team"], fields["org"], fields["user"], fields["tags"]) == (
        "eng",
        "acme",
        "ann",
        ["t1", "t2"],
    )
    line = text_line(record)
    assert "team=eng org=acme user=ann tags=t1,t2" in line
    assert 'metadata="{\\"region\\":\\"eu\\",\\"cost_centre\\":\\"cc-42\\"}"' in line
    attributes = request_attributes(record)
    assert attributes["truckllm.metadata.region"] == "eu"
    assert attributes["truckllm.metadata.cost_centre"] == "cc-42"
    assert (attributes["truckllm.team"], attributes["truckllm.org"]) == ("eng", "acme")
    assert msgspec.json.decode(msgspec.json.encode(record), type=RequestRecord) == record
    assert RequestRecord(**{**msgspec.structs.asdict(record), "metadata": {}}).metadata == {}


class Sink:
    """Keeps every record the loggers get."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)


def test_a_plugin_made_record_gets_its_key_s_metadata(tmp_path: Path) -> None:
    """``GatewayView.record`` (an MCP tool call...): a record naming a key and its team and no
    metadata gets the key's, as the kernel's own records do; one with its own keeps it."""
    sink = Sink()

    def made(rid: str, **fields: Any) -> RequestRecord:
        base: dict[str, Any] = {
            "request_id": rid, "started_at": 1.0, "endpoint": "mcp.tools/call", "dialect": "mcp",
            "alias": "", "gateway_key": "a", "stream": False, "status": 200, "latency_ms": 1.0,
        }  # fmt: skip
        return RequestRecord(**{**base, **fields})

    async def record_them(view: Any) -> None:
        view.record(made("p1", team="eng", org="acme"))
        view.record(made("p2", team="eng", org="acme", metadata={"own": "x"}))
        view.record(made("p3"))  # no team named: left alone
        view.record(made("p4", gateway_key="plain", team="eng"))  # not that key's team

    with GatewayServer(_config(tmp_path / "log.jsonl"), extra_plugins=(sink,)) as gw:
        assert gw.gateway is not None
        gw.call(record_them(gw.gateway.view))
        deadline = time.monotonic() + 10
        while len({r.request_id for r in sink.records} & {"p1", "p2", "p3", "p4"}) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    got = {r.request_id: r.metadata for r in sink.records}
    assert got["p1"] == {"region": "eu", "cost_centre": "cc-42"}
    assert got["p2"] == {"own": "x"} and got["p3"] == {} and got["p4"] == {}
