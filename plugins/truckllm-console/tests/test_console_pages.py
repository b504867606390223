"""Pages rendered from canned admin answers (a fake view): hostile strings escaped, admin errors
readable, states worded; and the pure helpers (charts, the ``next`` check, the key form)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, get_args

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.testclient import TestClient
from truckllm_console.app import build_routes
from truckllm_console.charts import Axis, bar_chart, line_chart
from truckllm_console.pages.auth import safe_next
from truckllm_console.pages.keys import new_key_body, period_start
from truckllm_console.pages.overview import charts
from truckllm_console.pages.providers import STATES
from truckllm_console.pages.teams import budgets

from truckllm.kit.web import AdminAnswer
from truckllm.types import KeyHealth

EVIL = "<script>alert('x')</script>"
NOW = 1_800_000_000.0


class FakeSessions:
    async def sign_in(self, request: Request, response: Response, token: str) -> bool:
        return False

    async def sign_out(self, request: Request, response: Response) -> None:
        return None

    def csrf_token(self, request: Request) -> str:
        return "csrf-fake"

    async def signed_in(self, request: Request) -> bool:
        return True


class FakeView:
    """Answers admin calls from a table of canned answers; records the calls."""

    def __init__(self, answers: Mapping[str, AdminAnswer]) -> None:
        self.answers = dict(answers)
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.sessions = FakeSessions()

    async def admin(
        self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: object = None
    ) -> AdminAnswer:
        self.calls.append((method, path, dict(query or {})))
        return self.answers.get(
            f"{method} {path}", AdminAnswer(status=404, body={"error": {"message": "nothing here"}})
        )


def record(**fields: Any) -> dict[str, Any]:
    base = {
        "request_id": "req_1",
        "started_at": NOW - 10,
        "endpoint": "chat",
        "dialect": "openai",
        "alias": "chat",
        "gateway_key": "team",
        "stream": False,
        "status": 200,
        "latency_ms": 12.5,
        "ttft_ms": None,
        "upstream_ms": 10.0,
        "provider": "p",
        "provider_type": "mock",
        "deployment": "d0",
        "model": "m",
        "provider_key": "k1",
        "attempts": [],
        "fallbacks": [],
        "usage": {"prompt_tokens": 3, "total_tokens": 5},
        "cost_usd": 0.0012,
        "error_kind": None,
        "error_message": None,
        "client_disconnected": False,
        "extra": {},
        "bodies": None,
    }
    return {**base, **fields}


def client_for(view: FakeView) -> TestClient:
    app = Starlette(routes=[Mount("/console", routes=list(build_routes(view, clock=lambda: NOW)))])
    return TestClient(app)


@pytest.fixture
def hostile() -> Iterator[tuple[FakeView, TestClient]]:
    rec = record(
        request_id="req_evil",
        alias=EVIL,
        model=EVIL,
        gateway_key=EVIL,
        error_message=EVIL,
        status=502,
        attempts=[
            {
                "provider": EVIL,
                "provider_key": EVIL,
                "deployment": "d",
                "model": EVIL,
                "status": 502,
                "latency_ms": 3.0,
                "error_kind": EVIL,
            }
        ],
        bodies={"request": '{"content": "' + EVIL + '"}', "response": EVIL},
        team=EVIL,
        org=EVIL,
        user=EVIL,
        tags=[EVIL, "ok"],
        metadata={EVIL: EVIL},
        guardrails=[
            {"name": EVIL, "stage": "input", "action": "block", "reason": EVIL, "ms": 8.5, "error": EVIL},
            {"name": "pii", "stage": "output", "action": "modify", "findings": {EVIL: 2}},
        ],
    )
    view = FakeView(
        {
            "GET /admin/v1/requests": AdminAnswer(
                status=200, body={"object": "list", "data": [rec], "next_cursor": EVIL}
            ),
            "GET /admin/v1/requests/req_evil": AdminAnswer(status=200, body=rec),
            "GET /admin/v1/requests/stats": AdminAnswer(
                status=200,
                body={
                    "step": "minute",
                    "points": [{"at": NOW - 60, "requests": 2, "errors": 1, "added_p50_ms": 1.0}],
                    "totals": {"at": NOW - 3600, "requests": 2, "errors": 1},
                    "top_aliases": [{"name": EVIL, "requests": 2}],
                    "top_keys": [{"name": None, "requests": 2}],
                },
            ),
            "GET /admin/v1/status": AdminAnswer(
                status=200,
                body={"in_flight": 1, "keys": [{"provider": "p", "name": EVIL, "state": EVIL}]},
            ),
            "GET /admin/v1/providers": AdminAnswer(
                status=200,
                body={
                    "providers": [
                        {
                            "name": "p",
                            "type": "mock",
                            "keys": [
                                {
                                    "name": EVIL,
                                    "state": "cooldown",
                                    "cooldown_remaining_s": 75.0,
                                    "cooldown_reason": EVIL,
                                    "requests_last_minute": 3,
                                    "tokens_last_minute": 40,
                                    "limits": {"limit_requests": 100},
                                }
                            ],
                        }
                    ],
                    "deployments": [{"alias": EVIL, "provider": "p", "key": EVIL, "latency_ewma_ms": 120.0}],
                },
            ),
            "GET /admin/v1/keys": AdminAnswer(
                status=200,
                body={
                    "open": False,
                    "keys": [
                        {
                            "name": EVIL,
                            "models": [EVIL],
                            "budget": {"usd": 5.0, "period": "month"},
                            "team": EVIL,
                            "tags": [EVIL],
                        }
                    ],
                },
            ),
            "GET /admin/v1/usage": AdminAnswer(
                status=200,
                body={
                    "rows": [{"group": {"key": EVIL, "tag": EVIL}, "requests": 1, "cost_usd": 1.5}],
                    "total": {"requests": 1, "cost_usd": 1.5},
                },
            ),
            "GET /admin/v1/teams": AdminAnswer(
                status=200,
                body={
                    "teams": [
                        {
                            "name": EVIL,
                            "org": EVIL,
                            "models": [EVIL],
                            "metadata": {EVIL: EVIL},
                            "keys": [EVIL],
                            "budgets": [{"usd": 10, "period": "month", "window": EVIL, "spent_usd": 9.0}],
                        }
                    ],
                    "orgs": [{"name": EVIL, "teams": [EVIL], "metadata": {}, "budgets": []}],
                },
            ),
            "GET /admin/v1/plugins": AdminAnswer(
                status=200, body={"plugins": [{"name": EVIL, "hooks": [EVIL]}]}
            ),
            "GET /admin/v1/config": AdminAnswer(
                status=200, body={"version": 1, "config": {"models": {EVIL: {}}}}
            ),
        }
    )
    with client_for(view) as client:
        yield view, client


@pytest.mark.parametrize(
    "page",
    [
        "/console/",
        "/console/requests",
        "/console/requests/req_evil",
        "/console/providers",
        "/console/keys",
        "/console/usage",
        "/console/usage?group_by=key&group_by=tag",
        "/console/teams",
        "/console/plugins",
        "/console/config",
        "/console/fragments/providers",
        "/console/fragments/overview",
    ],
)
def test_hostile_strings_are_escaped(hostile: tuple[FakeView, TestClient], page: str) -> None:
    _, client = hostile
    answer = client.get(page)
    assert answer.status_code == 200, answer.text[:300]
    assert "<script>alert" not in answer.text
    assert "&lt;script&gt;" in answer.text


def test_request_detail_shows_attempts_bodies_and_cost(hostile: tuple[FakeView, TestClient]) -> None:
    html = hostile[1].get("/console/requests/req_evil").text
    assert '<pre class="body">{\n  &#34;content&#34;: &#34;&lt;script&gt;' in html
    assert "$0.0012" in html and "prompt tokens" in html


def test_request_detail_shows_the_units_of_work() -> None:
    units = {"images": 2, "audio_seconds": 12.5, "characters": 1400, "search_units": 3, "requests": 1}
    rec = record(request_id="req_units", endpoint="images.generations", usage=units)
    view = FakeView({"GET /admin/v1/requests/req_units": AdminAnswer(status=200, body=rec)})
    with client_for(view) as client:
        html = client.get("/console/requests/req_units").text
    shown = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", html))
    assert {name: shown.get(name) for name in ("images", "audio seconds", "characters", "search units")} == {
        "images": "2",
        "audio seconds": "12.5",
        "characters": "1,400",
        "search units": "3",
    }
    assert shown.get("calls charged") == "1"


def test_request_detail_shows_who_made_it_and_the_guardrail_decisions(
    hostile: tuple[FakeView, TestClient],
) -> None:
    html = hostile[1].get("/console/requests/req_evil").text
    esc = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    shown = dict(re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", html))
    assert shown["Team"] == f"{esc} (organisation {esc})"
    assert shown["End user"] == esc
    assert shown["Tags"] == f'<span class="tag">{esc}</span> <span class="tag">ok</span> '
    assert shown[esc] == esc  # the metadata
    guardrails = html.split("<h2>Guardrails</h2>")[1].split("</table>")[0]
    rows = re.findall(
        r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td class=\"num\">(.*?)</td>", guardrails
    )
    assert rows == [
        (esc, "input", f'<span class="status bad">block</span> ({esc})', "8.5 ms"),
        ("pii", "output", '<span class="status good">modify</span>', "0.0 ms"),
    ]
    assert f"{esc} 2" in guardrails


def test_a_request_without_team_tags_or_guardrails_says_so() -> None:
    rec = record(request_id="req_plain")
    view = FakeView({"GET /admin/v1/requests/req_plain": AdminAnswer(status=200, body=rec)})
    with client_for(view) as client:
        html = client.get("/console/requests/req_plain").text
    assert "No guardrail ran." in html and "<h2>Metadata</h2>" not in html and "<dt>Tags</dt>" not in html
    assert "<dt>Team</dt><dd>–</dd>" in html and "<dt>End user</dt><dd>–</dd>" in html


def test_the_log_lists_team_user_and_tags_as_filter_links(hostile: tuple[FakeView, TestClient]) -> None:
    html = hostile[1].get("/console/requests").text
    row = html.split("<tbody>")[1].split("</tbody>")[0]
    evil = "%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E"
    assert f'<a href="/console/requests?team={evil}">&lt;script&gt;' in row
    assert f'<a href="/console/requests?user={evil}">&lt;script&gt;' in row
    assert '<a class="tag" href="/console/requests?tag=ok">ok</a>' in row
    for name, label in (("team", "Team"), ("user", "End user"), ("tag", "Tag")):
        assert f'<label for="f-{name}">{label}</label><input id="f-{name}" name="{name}"' in html


def test_the_team_user_and_tag_filters_reach_the_admin_api(hostile: tuple[FakeView, TestClient]) -> None:
    view, client = hostile
    html = client.get("/console/requests", params={"team": EVIL, "user": "ann", "tag": "a&b=c"}).text
    (call,) = view.calls
    assert call[2] == {"limit": "50", "team": EVIL, "user": "ann", "tag": "a&b=c"}
    assert 'value="&lt;script&gt;' in html  # the form keeps them, escaped
    older = re.search(r'href="([^"]*)" rel="next"', html)
    assert older is not None and "team=%3Cscript%3E" in older.group(1) and "tag=a%26b%3Dc" in older.group(1)


def test_one_admin_call_per_log_page_with_the_filters(hostile: tuple[FakeView, TestClient]) -> None:
    view, client = hostile
    client.get("/console/requests?alias=chat&status=5xx&last=1h&cursor=abc&model=")
    (call,) = view.calls
    assert call[:2] == ("GET", "/admin/v1/requests")
    assert call[2] == {
        "limit": "50",
        "alias": "chat",
        "status": "5xx",
        "since": f"{NOW - 3600:.3f}",
        "cursor": "abc",
    }


def test_the_older_link_keeps_the_filters(hostile: tuple[FakeView, TestClient]) -> None:
    html = hostile[1].get("/console/requests?alias=chat&last=1h").text
    assert 'href="/console/requests?alias=chat&amp;last=1h&amp;cursor=%3Cscript%3E' in html


def test_key_states_are_worded(hostile: tuple[FakeView, TestClient]) -> None:
    html = hostile[1].get("/console/providers").text
    assert "cooling down" in html and "until 2027-01-15 08:01:15 UTC (1 min 15 s)" in html
    assert "Back in rotation" in html
    assert "3 of 100" in html and "120 ms" in html


def test_spend_so_far_is_shown_per_key(hostile: tuple[FakeView, TestClient]) -> None:
    view, client = hostile
    html = client.get("/console/keys").text
    assert "$5.00 per month" in html and "$1.50" in html
    usage = [c for c in view.calls if c[1] == "/admin/v1/usage"]
    assert usage == [
        ("GET", "/admin/v1/usage", {"group_by": "key", "since": f"{period_start('month', NOW):.0f}"})
    ]


def test_admin_errors_are_readable() -> None:
    broken = AdminAnswer(status=503, body={"error": {"message": "Usage is unavailable: store down"}})
    view = FakeView(
        {
            "GET /admin/v1/keys": AdminAnswer(status=200, body={"keys": [{"name": "a"}]}),
            "GET /admin/v1/usage": broken,
        }
    )
    with client_for(view) as client:
        html = client.get("/console/keys").text
        assert "Spend is unavailable: The admin API answered 503: Usage is unavailable: store down" in html
        html = client.get("/console/plugins").text
        assert "The admin API answered 404: nothing here" in html


def test_an_admin_call_that_raises_is_a_message_not_a_500() -> None:
    class Raising(FakeView):
        async def admin(
            self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: object = None
        ) -> AdminAnswer:
            raise ConnectionError("boom")

    with client_for(Raising({})) as client:
        answer = client.get("/console/providers")
        assert answer.status_code == 200
        assert "The admin API answered 500: ConnectionError" in answer.text


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/console/requests?alias=a", "/console/requests?alias=a"),
        ("/console", "/console"),
        (None, "/console/"),
        ("https://evil.example/console/", "/console/"),
        ("//evil.example", "/console/"),
        ("/\\evil", "/console/"),
        ("/consoles", "/console/"),
        ("/console/../admin", "/console/"),
        ("/console/login", "/console/"),
        ("/console/\x00", "/console/"),
    ],
)
def test_safe_next(given: str | None, expected: str) -> None:
    assert safe_next(given, "/console") == expected


def test_new_key_body_reads_the_form() -> None:
    body, problems = new_key_body(
        {
            "name": " a ",
            "models": "x, y,",
            "rpm": "10",
            "budget_usd": "2.5",
            "budget_period": "week",
            "expires": "2027-01-01",
        }
    )
    assert problems == []
    assert body == {
        "name": "a",
        "models": ["x", "y"],
        "rpm": 10,
        "budget": {"usd": 2.5, "period": "week"},
        "expires": "2027-01-01",
    }
    _, problems = new_key_body({"name": "", "tpm": "-1", "budget_usd": "lots"})
    assert len(problems) == 3


def test_period_start() -> None:
    assert period_start("day", NOW) == NOW // 86400 * 86400
    assert period_start("total", NOW) is None
    assert period_start("week", NOW) is not None and NOW - 7 * 86400 < period_start("week", NOW) <= NOW  # type: ignore[operator]


def test_bar_chart_places_buckets_by_time_and_scales_to_the_highest() -> None:
    axis = Axis(since=0, until=600, step=60, stamp=lambda at: f"{at:.0f}")
    chart = bar_chart(
        "R", "r", [{"at": 0, "requests": 1}, {"at": 540, "requests": 4}], lambda p: p["requests"], str, axis
    )
    first, last = chart.bars
    assert first.height == pytest.approx(last.height / 4)
    assert first.x < 100 < 500 < last.x  # the first and the last of ten buckets, the gap between kept
    assert first.width == pytest.approx(last.width) and first.width < 60
    assert chart.rows == (("0", "1.0"), ("540", "4.0")) and chart.top == "4.0"
    assert (chart.first, chart.last) == ("0", "600")
    assert bar_chart("R", "r", [], lambda p: 0, str, axis).empty


def test_line_chart_leaves_out_missing_values() -> None:
    axis = Axis(since=0, until=120, step=60, stamp=lambda at: f"{at:.0f}")
    points = [{"at": 0, "a": 1.0, "b": None}, {"at": 60, "a": 2.0, "b": 4.0}]
    chart = line_chart("L", "l", points, {"p50": "a", "p99": "b"}, str, axis)
    assert len(chart.lines[0].dots) == 2 and len(chart.lines[1].dots) == 1
    assert chart.rows[0] == ("0", "1.0", "–")


def test_charts_cover_the_range_asked_for() -> None:
    made = charts(
        [{"at": NOW - 120, "requests": 60, "errors": 1, "cost_usd": 0.5}], "minute", NOW - 3600, NOW
    )
    assert [c.title for c in made][:2] == ["Requests per second", "Errors (status 400 or more)"]
    assert made[0].rows == ((made[0].rows[0][0], "1.00/s"),)
    assert made[2].empty  # no latency figure: no line drawn


def usage_view(rows: list[dict[str, Any]], total: dict[str, Any] | None = None) -> FakeView:
    return FakeView(
        {"GET /admin/v1/usage": AdminAnswer(status=200, body={"rows": rows, "total": total or {}})}
    )


def test_usage_asks_one_call_with_the_groups_and_the_range() -> None:
    view = usage_view([])
    with client_for(view) as client:
        client.get("/console/usage")
        client.get("/console/usage?group_by=tag&group_by=team&range=hour&sort=requests")
        client.get("/console/usage?group_by=model&since=2027-01-01T00:00&until=2027-01-02T00:00&range=hour")
    assert view.calls == [
        ("GET", "/admin/v1/usage", {"group_by": "key", "since": f"{NOW - 86400:.3f}"}),
        ("GET", "/admin/v1/usage", {"group_by": "team,tag", "since": f"{NOW - 3600:.3f}"}),
        (
            "GET",
            "/admin/v1/usage",
            {"group_by": "model", "since": "1798761600.000", "until": "1798848000.000"},
        ),
    ]


def test_usage_refuses_bad_values_without_calling() -> None:
    view = usage_view([])
    with client_for(view) as client:
        html = client.get("/console/usage?group_by=secret&since=yesterday").text
    assert view.calls == []
    assert "Cannot group by &#39;secret&#39;." in html
    assert "since is not a date and time" in html


def test_usage_sorts_by_cost_or_requests_and_keeps_the_top_rows() -> None:
    rows = [{"group": {"team": f"t{i:03}"}, "requests": i, "cost_usd": 1000.0 - i} for i in range(250)]
    view = usage_view(rows, {"requests": 31125, "cost_usd": 218875.0})
    with client_for(view) as client:
        by_cost = client.get("/console/usage?group_by=team").text
        by_requests = client.get("/console/usage?group_by=team&sort=requests").text
    cost_order = re.findall(r"<td>(t\d{3})</td>", by_cost)
    assert cost_order[:2] == ["t000", "t001"] and len(cost_order) == 200
    request_order = re.findall(r"<td>(t\d{3})</td>", by_requests)
    assert request_order[:2] == ["t249", "t248"] and len(request_order) == 200
    assert "Showing the top 200 of 250 rows by cost" in by_cost
    assert "$218,875.00" in by_cost  # the total of all rows, not of those shown
    # the sort and range links keep the groups chosen
    assert 'href="/console/usage?group_by=team&amp;range=day&amp;sort=requests"' in by_cost
    assert 'href="/console/usage?group_by=team&amp;range=hour&amp;sort=cost"' in by_cost


def test_usage_by_tag_says_how_tags_count() -> None:
    rows = [
        {"group": {"tag": "a"}, "requests": 2, "cost_usd": 0.2},
        {"group": {"tag": "b"}, "requests": 2, "cost_usd": 0.2},
        {"group": {"tag": "-"}, "requests": 1, "cost_usd": 0.1},
    ]
    with client_for(usage_view(rows, {"requests": 3, "cost_usd": 0.3})) as client:
        tagged = client.get("/console/usage?group_by=tag").text
        plain = client.get("/console/usage?group_by=key").text
    assert "counts once in each of its tags" in tagged and "<td>-</td>" in tagged
    assert "counts once in each of its tags" not in plain
    assert "Showing the top" not in tagged


@pytest.mark.parametrize(
    ("status", "message", "shown"),
    [
        (501, "No store plugin is configured: usage is not recorded.", "Usage is not recorded."),
        (400, "group_by accepts ['key'], not ['x']", "The admin API answered 400: group_by accepts"),
        (503, "Usage is unavailable: store down", "The admin API answered 503: Usage is unavailable"),
    ],
)
def test_usage_errors_are_readable(status: int, message: str, shown: str) -> None:
    view = FakeView({"GET /admin/v1/usage": AdminAnswer(status=status, body={"error": {"message": message}})})
    with client_for(view) as client:
        answer = client.get("/console/usage")
    assert answer.status_code == 200
    assert shown in answer.text and "No usage in this range" not in answer.text


def test_budgets_are_bars_red_beyond_80_percent() -> None:
    row = {
        "budgets": [
            {"usd": 10, "period": "month", "window": "2027-01", "spent_usd": 9.0},
            {"usd": 100, "period": "day", "window": "2027-01-15", "spent_usd": 50.0},
            {"usd": 5, "period": "week", "window": "2027-W03", "spent_usd": 12.0},
            {"usd": 0, "period": "total", "window": "total", "spent_usd": 0.5},
            {"usd": 10, "period": "month", "window": "2027-01", "spent_usd": None},
        ]
    }
    made = budgets(row)
    assert [(b.width, b.over) for b in made] == [
        (90.0, True),
        (50.0, False),
        (100.0, True),
        (100.0, True),
        (0.0, False),
    ]
    assert made[0].share == pytest.approx(0.9) and made[3].share is None and made[4].spent is None


def test_teams_page_shows_limits_keys_and_budget_spend() -> None:
    body = {
        "teams": [
            {
                "name": "search",
                "org": "acme",
                "rpm": 600,
                "tpm": None,
                "models": None,
                "metadata": {"cost_centre": "cc-42"},
                "keys": ["search-prod", "search-dev"],
                "budgets": [
                    {"usd": 10, "period": "month", "window": "2027-01", "spent_usd": 9.0},
                    {"usd": 100, "period": "day", "window": "2027-01-15", "spent_usd": None},
                ],
            }
        ],
        "orgs": [
            {
                "name": "acme",
                "teams": ["search"],
                "metadata": {},
                "budgets": [{"usd": 1000, "period": "month", "window": "2027-01", "spent_usd": 250.0}],
            }
        ],
    }
    view = FakeView({"GET /admin/v1/teams": AdminAnswer(status=200, body=body)})
    with client_for(view) as client:
        html = client.get("/console/teams").text
    assert view.calls == [("GET", "/admin/v1/teams", {})]
    assert '<tr id="team-search">' in html and '<a href="#org-acme">acme</a>' in html
    assert "600 req/min" in html and "search-prod, search-dev" in html and "cc-42" in html
    assert '<div class="budget over">' in html and "$9.00 of $10.00 per month (90.0 %)" in html
    assert "$100.00 per day: spend unknown (no store)" in html
    assert "$250.00 of $1,000.00 per month (25.0 %)" in html
    assert html.count('<div class="budget">') == 2  # the unknown and the org's 25 %


def test_teams_page_without_teams_or_with_an_admin_error() -> None:
    with client_for(
        FakeView({"GET /admin/v1/teams": AdminAnswer(status=200, body={"teams": [], "orgs": []})})
    ) as client:
        assert "No teams: add a <code>teams:</code> section" in client.get("/console/teams").text
    with client_for(FakeView({})) as client:
        html = client.get("/console/teams").text
        assert "The admin API answered 404: nothing here" in html and "<h2>Teams</h2>" not in html


def test_keys_show_their_team_and_tags() -> None:
    keys = [{"name": "a", "team": "search", "tags": ["prod", "eu"]}, {"name": "b", "tags": []}]
    view = FakeView(
        {
            "GET /admin/v1/keys": AdminAnswer(status=200, body={"keys": keys}),
            "GET /admin/v1/usage": AdminAnswer(status=200, body={"rows": []}),
        }
    )
    with client_for(view) as client:
        html = client.get("/console/keys").text
    assert '<a href="/console/teams#team-search">search</a>' in html
    assert '<span class="tag">prod</span> <span class="tag">eu</span>' in html


def test_every_key_state_has_words_on_the_providers_page() -> None:
    assert sorted(STATES) == sorted(get_args(KeyHealth))


def test_a_key_out_of_rotation_says_why() -> None:
    """Ejected: after what; disabled: the provider's refusal; a fetched credential keeping its key
    out: in words. Every text from the admin API escaped."""
    keys = [
        {"name": "e", "state": "ejected", "ejected_remaining_s": 30.0, "ejected_reason": EVIL},
        {"name": "d", "state": "disabled", "disabled": f"401 auth: {EVIL}"},
        {"name": "c", "state": "credential", "credential": "refused"},
        {"name": "o", "state": "ok", "credential": "ok"},
    ]
    body = {"providers": [{"name": "p", "type": "vertex", "keys": keys}], "deployments": []}
    view = FakeView({"GET /admin/v1/providers": AdminAnswer(status=200, body=body)})
    with client_for(view) as client:
        html = client.get("/console/providers").text
    assert "<script>alert" not in html
    assert "(30 s): &lt;script&gt;" in html  # the ejection's reason after its end
    assert "401 auth: &lt;script&gt;" in html
    assert "credential refused by the provider: fetching a fresh one" in html
    ok_row = re.search(r'<tr data-key="p/o">.*?</tr>', html, re.S)
    assert ok_row is not None and "credential" not in ok_row.group(0)  # a good credential says nothing
