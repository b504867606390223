"""Usage and teams against a real gateway on loopback: keys in teams with tags, traffic through
them, then the usage table by team and by tag and the teams' budget spend, no secret shown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from truckllm_console_testkit import ADMIN_TOKEN, HTML, PROVIDER_KEYS, sign_in

from truckllm_testing.server import GatewayServer

SEARCH_KEY = "tllm-search-key-value-Qw3Er5Ty"
ADS_KEY = "tllm-ads-key-value-Zx8Cv6Bn"
CONFIG = f"""
admin: {{token: {ADMIN_TOKEN}}}
orgs:
  acme: {{budgets: [{{usd: 1000, period: month}}]}}
teams:
  search: {{org: acme, rpm: 600, metadata: {{cost_centre: cc-42}}, budgets: [{{usd: 0.1, period: month}}]}}
  ads: {{org: acme, budgets: [{{usd: 1000, period: day}}]}}
keys:
  - {{name: search-prod, value: {SEARCH_KEY}, team: search, tags: [prod, eu]}}
  - {{name: ads-dev, value: {ADS_KEY}, team: ads}}
providers:
  mock:
    type: mock
    keys:
      - {{name: k1, value: {PROVIDER_KEYS[0]}}}
models:
  chat:
    deployments: [{{provider: mock, model: m1, price: {{input: 2500, output: 10000}}}}]
"""


@pytest.fixture
def teams_gw(tmp_path: Path) -> Iterator[GatewayServer]:
    path = tmp_path / "truckllm.yaml"
    path.write_text(CONFIG)
    server = GatewayServer(config_path=str(path)).start()
    try:
        yield server
    finally:
        server.stop()


def chat_as(server: GatewayServer, key: str, n: int) -> None:
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}) as client:
        for _ in range(n):
            answer = client.post(
                "/v1/chat/completions",
                json={"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert answer.status_code in (200, 429), answer.text


def test_usage_by_team_and_tag_and_the_teams_budgets(teams_gw: GatewayServer) -> None:
    chat_as(teams_gw, SEARCH_KEY, 1)
    chat_as(teams_gw, ADS_KEY, 3)
    browser = sign_in(teams_gw)
    try:
        by_team = browser.get("/console/usage?group_by=team&sort=requests&range=hour")
        assert by_team.status_code == 200
        rows = by_team.text.split("<tbody>")[1].split("</tbody>")[0]
        assert rows.index("<td>ads</td>") < rows.index("<td>search</td>")  # 3 requests before 1
        by_tag = browser.get("/console/usage?group_by=tag").text
        assert "<td>prod</td>" in by_tag and "<td>eu</td>" in by_tag and "<td>-</td>" in by_tag
        assert "counts once in each of its tags" in by_tag

        teams = browser.get("/console/teams").text
        assert '<tr id="team-search">' in teams and "search-prod" in teams and "cc-42" in teams
        # one request ($0.025) of the search team's $0.10 (red beyond 80 %: test_console_pages)
        search = teams.split('<tr id="team-search">')[1].split("</tr>")[0]
        assert "per month (25.0 %)" in search and '<div class="budget">' in search
        ads = teams.split('<tr id="team-ads">')[1].split("</tr>")[0]
        assert '<div class="budget">' in ads

        keys = browser.get("/console/keys").text
        assert '<a href="/console/teams#team-search">search</a>' in keys
        assert '<span class="tag">prod</span>' in keys

        for page in (
            "/console/usage",
            "/console/usage?group_by=tag,user,org",
            "/console/teams",
            "/console/keys",
        ):
            html = browser.get(page).text
            for secret in (ADMIN_TOKEN, SEARCH_KEY, ADS_KEY, *PROVIDER_KEYS):
                assert secret not in html, (page, secret)
    finally:
        browser.close()


def test_the_usage_form_is_plain_get_and_needs_signing_in(teams_gw: GatewayServer) -> None:
    with httpx.Client(base_url=teams_gw.url, headers=HTML) as client:
        assert client.get("/console/usage").status_code == 303
        assert client.get("/console/teams").status_code == 303
    browser = sign_in(teams_gw)
    try:
        html = browser.get("/console/usage").text
        assert '<form method="get" action="/console/usage"' in html
        assert html.count('type="checkbox" name="group_by"') == 10
        assert 'value="key" checked' in html
    finally:
        browser.close()
