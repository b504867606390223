"""Teams, organisations, end users and tags (issue 19, parts 1-3): config checks, the levels one
admission checks (a denial names its level), the records and usage groups, ``/admin/v1/teams``
and budget threshold alerts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import msgspec
import pytest
from ruamel.yaml import YAML

from truckllm import hookimpl
from truckllm._internal.admission import budget_alerts
from truckllm._internal.auth import narrow
from truckllm._internal.config.loader import decode_options
from truckllm._internal.config.schema import BudgetConfig, Config
from truckllm._internal.governance import Level, config_problems, user_digest
from truckllm._internal.identity import end_user, request_tags
from truckllm._internal.store import BudgetCheck, Decision
from truckllm.errors import GatewayError
from truckllm.types import Alert, ChatRequest, RequestRecord
from truckllm_testing.server import GatewayServer

TOKEN = "an-admin-token-for-the-teams-tests"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
PRICE = "price: {input: 1000000, output: 1000000}"  # $1 a token: costs are whole dollars
CHAT = {"model": "demo", "max_tokens": 5, "messages": [{"role": "user", "content": "one two three"}]}
CONFIG = f"""
admin: {{token: {TOKEN}}}
providers:
  demo: {{type: mock}}
models:
  demo: {{deployments: [{{provider: demo, model: echo, {PRICE}}}]}}
  other: {{deployments: [{{provider: demo, model: echo, {PRICE}}}]}}
orgs:
  acme: {{rpm: 1000, budgets: [{{usd: 100000, period: month}}]}}
teams:
  eng: {{org: acme, budgets: [{{usd: 100, period: month}}, {{usd: 100000, period: day}}]}}
  ops: {{org: acme, models: [other]}}
  solo: {{}}
tags:
  budgets: {{capped: {{usd: 60, period: day}}}}
  metrics: [capped]
  max_tags: 4
  max_length: 16
keys:
  - {{name: a, value: key-a-0123456789, team: eng}}
  - {{name: b, value: key-b-0123456789, team: eng}}
  - {{name: o, value: key-o-0123456789, team: ops, tags: [ops-default]}}
  - {{name: u, value: key-u-0123456789, team: solo, user_budget: {{usd: 60, period: day}}}}
  - {{name: plain, value: key-plain-0123456789}}
"""


def _auth(key: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer key-{key}-0123456789", **headers}


def _config(text: str) -> Config:
    return decode_options(YAML(typ="safe").load(text), Config)  # type: ignore[no-any-return]


# --- config checks -------------------------------------------------------------------------------


def test_config_problems_name_the_field() -> None:
    config = _config(
        """
providers: {demo: {type: mock}}
models: {demo: {deployments: [{provider: demo, model: echo}]}}
orgs: {acme: {models: [nope]}}
teams:
  eng: {org: missing, budgets: [{usd: 1, period: month}, {usd: 2, period: month}]}
tags: {budgets: {"bad tag": {usd: 1}}, metrics: [ok, "-x"], max_tags: 2, max_length: 8}
keys:
  - {name: a, value: v, team: nobody, tags: [a, b, c]}
  - {name: b, value: v, tags: [waytoolongtag]}
"""
    )
    found = {".".join(map(str, path)): message for path, message in config_problems(config)}
    assert "no team named 'nobody'" in found["keys.0.team"]
    assert "no organisation named 'missing'" in found["teams.eng.org"]
    assert "one per period" in found["teams.eng.budgets.1.period"]
    assert "no model alias named 'nope'" in found["orgs.acme.models.0"]
    assert "tags.max_tags" in found["keys.0.tags"]
    assert "tags.max_length" in found["keys.1.tags.0"]
    assert "letters, digits" in found["tags.budgets.bad tag"]
    assert "letters, digits" in found["tags.metrics.1"]
    assert len(found) == 8, found


def test_config_problems_bound_the_tags_section() -> None:
    config = _config("tags: {max_tags: 1000, max_length: 100000}\n")
    paths = {".".join(map(str, path)) for path, _ in config_problems(config)}
    assert paths == {"tags.max_tags", "tags.max_length"}
    assert config_problems(_config(CONFIG)) == []


def test_narrow_is_the_intersection_of_allow_lists() -> None:
    assert narrow(None, None) is None
    assert narrow(frozenset({"a", "b"}), None) == frozenset({"a", "b"})
    assert narrow(frozenset({"a", "b"}), frozenset({"b", "c"})) == frozenset({"b"})
    both = narrow(frozenset({"openai/*", "a"}), frozenset({"openai/gpt-4o", "a", "x"}))
    assert both == frozenset({"openai/gpt-4o", "a"})
    assert narrow(frozenset({"a"}), frozenset({"b"}), None) == frozenset()


# --- end users and tags --------------------------------------------------------------------------


def test_request_tags_merge_the_header_and_the_key_and_are_bounded() -> None:
    assert request_tags(" x, y ,x,", ("y", "k"), 4, 16) == ("x", "y", "k")
    assert request_tags(None, (), 4, 16) == ()
    with pytest.raises(GatewayError) as too_many:
        request_tags("a,b,c", ("d", "e"), 4, 16)
    assert too_many.value.status == 400 and too_many.value.param == "x-truckllm-tags"
    for bad in ("a b", "é", "-lead", "x" * 17, "a;b"):
        with pytest.raises(GatewayError) as invalid:
            request_tags(bad, (), 4, 16)
        assert invalid.value.status == 400 and invalid.value.param == "x-truckllm-tags"


def _request(body: dict[str, Any], dialect: str = "openai") -> ChatRequest:
    return ChatRequest(model="demo", endpoint="chat", dialect=dialect, body=msgspec.json.encode(body))


def test_end_user_reads_the_gemini_labels_and_the_body() -> None:
    assert end_user(_request({"labels": {"user": "ann"}}, "gemini")) == "ann"
    assert end_user(_request({"labels": {"team": "x"}}, "gemini")) is None
    assert end_user(_request({"user": "bob"})) == "bob"
    assert end_user(_request({"user": 7})) is None
    long = end_user(_request({"labels": {"user": "x" * 129}}, "gemini"))
    assert long is not None and long.startswith("sha256:") and len(long) == 39


def test_user_digest_is_stable_and_short() -> None:
    assert user_digest("ann") == user_digest("ann") != user_digest("bob")
    assert len(user_digest("x" * 128)) == 24


# --- through a gateway ---------------------------------------------------------------------------


class AlertSink:
    """A throwaway logger that keeps every alert."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.records: list[RequestRecord] = []

    @hookimpl
    def emit_alert(self, alert: Alert) -> None:
        self.alerts.append(alert)

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def sink() -> AlertSink:
    return AlertSink()


@pytest.fixture(scope="module")
def gw(sink: AlertSink) -> Iterator[GatewayServer]:
    with GatewayServer(CONFIG, extra_plugins=(sink,)) as server:
        yield server


def _chat(
    gw: GatewayServer, key: str, body: dict[str, Any] | None = None, tags: str | None = None
) -> httpx.Response:
    headers = _auth(key, **({"x-truckllm-tags": tags} if tags is not None else {}))
    return httpx.post(gw.url + "/v1/chat/completions", json=body or CHAT, headers=headers)


def _until_refused(
    gw: GatewayServer, key: str, body: dict[str, Any] | None = None, tags: str | None = None
) -> tuple[int, dict[str, Any]]:
    for served in range(40):
        answer = _chat(gw, key, body, tags)
        if answer.status_code == 429:
            return served, answer.json()["error"]
        assert answer.status_code == 200, answer.text
    raise AssertionError("never refused")


def test_a_team_budget_binds_every_key_of_the_team(gw: GatewayServer, sink: AlertSink) -> None:
    served, error = _until_refused(gw, "a")
    assert served >= 1
    assert error["code"] == "budget_exceeded"
    assert error["message"] == "The team 'eng' has used its budget of $100 for this month."
    refused = _chat(gw, "b")  # the other key of the team
    assert refused.status_code == 429 and "team 'eng'" in refused.json()["error"]["message"]
    assert _chat(gw, "plain").status_code == 200  # no team: not bound
    ids = [a.id for a in sink.alerts if a.subject == "team:eng"]
    window = time.strftime("%Y-%m", time.gmtime())
    for threshold in ("0.5", "0.8", "1"):
        assert ids.count(f"budget:team:eng:month:{window}:{threshold}") == 1, ids
    alert = next(a for a in sink.alerts if a.id.endswith(":0.5") and a.subject == "team:eng")
    assert alert.kind == "budget" and alert.limit_usd == 100 and alert.period == window
    assert alert.spent_usd is not None and alert.spent_usd >= 50


def test_a_team_narrows_the_models_of_its_keys(gw: GatewayServer) -> None:
    refused = _chat(gw, "o")
    assert refused.status_code in (403, 404), refused.text
    assert _chat(gw, "o", {**CHAT, "model": "other"}).status_code == 200


def test_an_end_user_budget_binds_one_user_of_the_key(gw: GatewayServer) -> None:
    body = {**CHAT, "user": "ann"}
    served, error = _until_refused(gw, "u", body=body)
    assert served >= 1 and error["code"] == "budget_exceeded"
    assert error["message"] == "The end user 'ann' of API key 'u' has used its budget of $60 for this day."
    assert _chat(gw, "u", {**CHAT, "user": "bob"}).status_code == 200
    assert _chat(gw, "u").status_code == 200  # no user named: no user budget


def test_an_anthropic_user_id_is_the_end_user(gw: GatewayServer, sink: AlertSink) -> None:
    body = {
        "model": "demo",
        "max_tokens": 5,
        "metadata": {"user_id": "carol"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    answer = httpx.post(
        gw.url + "/v1/messages",
        json=body,
        headers={"x-api-key": "key-plain-0123456789", "anthropic-version": "2023-06-01"},
    )
    assert answer.status_code == 200, answer.text
    rid = answer.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while not any(r.request_id == rid for r in sink.records) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert next(r for r in sink.records if r.request_id == rid).user == "carol"


def test_a_long_or_unprintable_user_is_kept_as_its_digest(gw: GatewayServer, sink: AlertSink) -> None:
    """Never refused (Claude Code's metadata.user_id is a JSON document of hundreds of characters):
    bounded by its digest, the same for the same id."""
    claude_code = '{"device_id":"' + "d" * 64 + '","account_uuid":"","session_id":"' + "s" * 36 + '"}' * 2
    seen = []
    for user in ("x" * 129, "tab\there", claude_code, claude_code):
        answer = _chat(gw, "plain", {**CHAT, "user": user})
        assert answer.status_code == 200, answer.text
        rid = answer.headers["x-request-id"]
        deadline = time.monotonic() + 10
        while not any(r.request_id == rid for r in sink.records) and time.monotonic() < deadline:
            time.sleep(0.02)
        record = next(r for r in sink.records if r.request_id == rid)
        assert record.user is not None and record.user.startswith("sha256:") and len(record.user) == 39
        seen.append(record.user)
    assert seen[2] == seen[3] and len(set(seen)) == 3


def test_a_tag_budget_and_bad_tags(gw: GatewayServer) -> None:
    served, error = _until_refused(gw, "plain", tags="capped,free")
    assert served >= 1 and error["message"] == "The tag 'capped' has used its budget of $60 for this day."
    assert _chat(gw, "plain", tags="free").status_code == 200
    bad = _chat(gw, "plain", tags="a,b,c,d,e")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-truckllm-tags"


def test_records_and_usage_carry_team_org_user_and_tags(gw: GatewayServer, sink: AlertSink) -> None:
    tagged = _chat(gw, "plain", {**CHAT, "user": "dave"}, tags="t1,t2,t3")
    assert tagged.status_code == 200
    assert _chat(gw, "o", {**CHAT, "model": "other"}).status_code == 200
    rid = tagged.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while not any(r.request_id == rid for r in sink.records) and time.monotonic() < deadline:
        time.sleep(0.02)
    record = next(r for r in sink.records if r.request_id == rid)
    assert (record.user, record.tags, record.team) == ("dave", ("t1", "t2", "t3"), None)
    mine = [r for r in sink.records if r.gateway_key == "o" and r.status == 200]
    assert mine and (mine[-1].team, mine[-1].org, mine[-1].tags) == ("ops", "acme", ("ops-default",))

    def usage(group_by: str) -> dict[str, Any]:
        answer = httpx.get(gw.url + "/admin/v1/usage", params={"group_by": group_by}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    deadline = time.monotonic() + 10
    by_tag = usage("tag")
    while "t3" not in {r["group"]["tag"] for r in by_tag["rows"]} and time.monotonic() < deadline:
        time.sleep(0.05)
        by_tag = usage("tag")
    tags = {row["group"]["tag"]: row["requests"] for row in by_tag["rows"]}
    assert tags["t1"] == tags["t2"] == tags["t3"] == 1
    assert "*" not in tags and tags["-"] >= 1
    plain = usage("")
    assert by_tag["total"]["requests"] == plain["total"]["requests"]  # the total counts a request once
    assert sum(tags.values()) > plain["total"]["requests"]
    teams = {row["group"]["team"]: row["requests"] for row in usage("team")["rows"]}
    assert teams["ops"] >= 1 and teams["eng"] >= 1 and teams["-"] >= 1
    orgs = {row["group"]["org"] for row in usage("org")["rows"]}
    assert {"acme", "-"} <= orgs
    users = {row["group"]["user"]: row["requests"] for row in usage("user,key")["rows"]}
    assert users["dave"] == 1
    bad = httpx.get(gw.url + "/admin/v1/usage", params={"group_by": "nope"}, headers=ADMIN)
    assert bad.status_code == 400


def test_admin_teams_shows_limits_budgets_and_spend(gw: GatewayServer) -> None:
    assert _chat(gw, "o", {**CHAT, "model": "other"}).status_code == 200
    answer = httpx.get(gw.url + "/admin/v1/teams", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    teams = {row["name"]: row for row in body["teams"]}
    assert set(teams) == {"eng", "ops", "solo"}
    assert teams["eng"]["keys"] == ["a", "b"] and teams["eng"]["org"] == "acme"
    assert teams["ops"]["models"] == ["other"]
    month = next(b for b in teams["eng"]["budgets"] if b["period"] == "month")
    assert month["usd"] == 100 and month["window"] == time.strftime("%Y-%m", time.gmtime())
    assert month["spent_usd"] is not None and 0 < month["spent_usd"] <= 100
    (acme,) = body["orgs"]
    assert acme["name"] == "acme" and acme["teams"] == ["eng", "ops"] and acme["rpm"] == 1000
    assert acme["budgets"][0]["spent_usd"] > 0
    assert httpx.get(gw.url + "/admin/v1/teams").status_code == 401


def test_an_org_rate_limit_names_the_organisation() -> None:
    config = CONFIG.replace("acme: {rpm: 1000,", "acme: {rpm: 2,")
    with GatewayServer(config) as gw:
        answers = [_chat(gw, "o", {**CHAT, "model": "other"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    error = answers[2].json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"].startswith("Rate limit reached for organisation 'acme' (requests per minute).")


# --- alerts --------------------------------------------------------------------------------------


def test_budget_alerts_fire_for_each_threshold_reached() -> None:
    level = Level("tag", "x", "tag:x", "tag 'x'", "tag:x", budgets=(BudgetConfig(usd=10, period="day"),))
    check = BudgetCheck(key="tag:x:budget", limit=10, period="day", amount=1)
    sent: list[tuple[Alert, float]] = []
    now = 1_796_000_000.0  # 2026-11-30 ... UTC
    decision = Decision(allowed=True, remaining={"tag:x:budget": 1.5})
    budget_alerts(
        decision,
        [check],
        {check.key: (level, level.budgets[0])},
        (0.5, 0.8, 1.0),
        lambda a, e: sent.append((a, e)),
        now,
    )
    assert [a.threshold for a, _ in sent] == [0.5, 0.8]
    alert, every = sent[0]
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    assert alert.id == f"budget:tag:x:day:{day}:0.5" and alert.subject == "tag:x"
    assert alert.spent_usd == pytest.approx(8.5) and alert.limit_usd == 10
    assert 1 <= every <= 86400
    sent.clear()
    budget_alerts(
        Decision(allowed=True, remaining={"tag:x:budget": 9}),
        [check],
        {check.key: (level, None)},
        (0.5,),
        lambda a, e: sent.append((a, e)),
        now,
    )
    assert sent == []
