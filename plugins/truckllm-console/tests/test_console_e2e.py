"""The console against a real gateway on loopback (mock provider, in-memory request log):
sign-in, every page, CSRF, Post/Redirect/Get actions, secrets never rendered."""

from __future__ import annotations

import re

import httpx2 as httpx
import pytest
from truckllm_console_testkit import ADMIN_TOKEN, HTML, PROVIDER_KEYS, chat, csrf_of, sign_in

from truckllm_testing.server import GatewayServer

PAGES = (
    "/console/",
    "/console/providers",
    "/console/requests",
    "/console/keys",
    "/console/usage",
    "/console/teams",
    "/console/plugins",
    "/console/config",
)
NAV = (
    'href="/console/providers"',
    'href="/console/requests"',
    'href="/console/keys"',
    'href="/console/config"',
)


def key_state(server: GatewayServer, key: str) -> str:
    answer = httpx.get(server.url + "/admin/v1/providers", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    (provider,) = answer.json()["providers"]
    return str({k["name"]: k["state"] for k in provider["keys"]}[key])


def test_signed_out_browser_is_sent_to_sign_in_and_back(gw: GatewayServer) -> None:
    with httpx.Client(base_url=gw.url, headers=HTML) as client:
        answer = client.get("/console/requests?alias=chat")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login?next=%2Fconsole%2Frequests%3Falias%3Dchat"
        login = client.get(answer.headers["location"])
        assert login.status_code == 200
        assert 'value="/console/requests?alias=chat"' in login.text
        assert 'type="password"' in login.text
        assert client.post("/console/keys/new", data={"name": "x"}).status_code == 401


def test_wrong_token_is_refused_and_sets_no_cookie(gw: GatewayServer) -> None:
    with httpx.Client(base_url=gw.url, headers=HTML) as client:
        answer = client.post("/console/login", data={"token": "not-the-token", "next": "/console/"})
        assert answer.status_code == 401
        assert "That is not the admin token" in answer.text
        assert "set-cookie" not in answer.headers
        assert client.get("/console/").status_code == 303


def test_right_token_signs_in_with_a_strict_httponly_cookie(gw: GatewayServer) -> None:
    with httpx.Client(base_url=gw.url, headers=HTML) as client:
        answer = client.post("/console/login", data={"token": ADMIN_TOKEN, "next": "/console/keys"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/keys"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert ADMIN_TOKEN.lower() not in cookie
        assert client.get("/console/keys").status_code == 200
        # signed in already: the sign-in page goes on to the page asked for
        assert client.get("/console/login?next=/console/plugins").headers["location"] == "/console/plugins"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/console/",
        "/\\evil.example",
        "/consolex",
        "javascript:alert(1)",
        "/console/../admin/v1/config",
        "http://127.0.0.1/console/",
        "/console/\r\nSet-Cookie: x=1",
    ],
)
def test_next_never_leaves_the_console(gw: GatewayServer, target: str) -> None:
    with httpx.Client(base_url=gw.url, headers=HTML) as client:
        answer = client.post("/console/login", data={"token": ADMIN_TOKEN, "next": target})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/"


def test_every_page_renders_with_security_headers_and_plain_links(
    gw: GatewayServer, browser: httpx.Client
) -> None:
    chat(gw, n=3)
    for page in PAGES:
        answer = browser.get(page)
        assert answer.status_code == 200, (page, answer.text[:500])
        headers = answer.headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "no-referrer"
        html = answer.text
        assert all(link in html for link in NAV), page
        # the only script is the vendored htmx file; no inline script, no external resource
        assert re.findall(r"<script[^>]*>", html) == [
            '<script src="/console/static/vendor/htmx.min.js" defer>'
        ]
        assert "http://" not in html and "https://" not in html


def test_static_files_are_served_to_anyone(gw: GatewayServer) -> None:
    for path in ("/console/static/console.css", "/console/static/vendor/htmx.min.js"):
        answer = httpx.get(gw.url + path)
        assert answer.status_code == 200
        assert answer.headers["x-frame-options"] == "DENY"


def test_no_secret_on_any_page(gw: GatewayServer, browser: httpx.Client) -> None:
    chat(gw, n=2)
    record_id = re.search(r'href="/console/requests/([^"]+)"', browser.get("/console/requests").text)
    assert record_id is not None
    pages = [
        *PAGES,
        "/console/fragments/providers",
        "/console/fragments/overview",
        f"/console/requests/{record_id.group(1)}",
    ]
    for page in pages:
        html = browser.get(page).text
        for secret in (ADMIN_TOKEN, *PROVIDER_KEYS):
            assert secret not in html, (page, secret)
    assert "&lt;secret&gt;" in browser.get("/console/config").text


def test_the_admin_token_as_bearer_also_opens_pages(gw: GatewayServer) -> None:
    answer = httpx.get(gw.url + "/console/providers", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 200
    assert "Provider keys" in answer.text


def test_csrf_token_is_required_on_every_form(gw: GatewayServer, browser: httpx.Client) -> None:
    token = csrf_of(browser.get("/console/providers").text)
    for path, data in [
        ("/console/providers/mock/keys/k1/disable", {}),
        ("/console/keys/new", {"name": "team-a"}),
        ("/console/keys/team-a/revoke", {}),
        ("/console/config/validate", {"config": "{}"}),
        ("/console/logout", {}),
    ]:
        assert browser.post(path, data=data).status_code == 403, path
        assert browser.post(path, data={**data, "csrf_token": "wrong" + token}).status_code == 403, path
    assert key_state(gw, "k1") == "ok"
    assert browser.get("/console/").status_code == 200  # still signed in


def test_disable_and_enable_a_provider_key(gw: GatewayServer, browser: httpx.Client) -> None:
    page = browser.get("/console/providers").text
    assert 'action="/console/providers/mock/keys/k1/disable"' in page
    answer = browser.post("/console/providers/mock/keys/k1/disable", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/providers?done=disable")
    assert key_state(gw, "k1") == "disabled"
    page = browser.get(answer.headers["location"]).text
    assert "Key mock/k1 disabled." in page
    row = page[page.index('data-key="mock/k1"') :].split("</tr>")[0]
    assert "disabled" in row and 'action="/console/providers/mock/keys/k1/enable"' in row
    answer = browser.post("/console/providers/mock/keys/k1/enable", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    assert key_state(gw, "k1") == "ok"


def test_provider_keys_show_use_against_their_configured_limits(
    gw: GatewayServer, browser: httpx.Client
) -> None:
    chat(gw, n=4)
    page = browser.get("/console/providers").text
    row = page[page.index('data-key="mock/k1"') :].split("</tr>")[0]
    assert re.search(r"\d of 600<", row) and re.search(r"\d of 90,000<", row) and "0 of 8<" in row
    other = page[page.index('data-key="mock/k2"') :].split("</tr>")[0]
    assert " of " not in other


def test_an_unknown_key_action_shows_the_admin_error(gw: GatewayServer, browser: httpx.Client) -> None:
    token = csrf_of(browser.get("/console/providers").text)
    answer = browser.post("/console/providers/mock/keys/nope/disable", data={"csrf_token": token})
    assert answer.status_code == 303
    page = browser.get(answer.headers["location"]).text
    assert "Could not disable mock/nope: The admin API answered 404" in page


def test_create_shows_the_value_once_and_revoke_removes_it(gw: GatewayServer, browser: httpx.Client) -> None:
    token = csrf_of(browser.get("/console/keys").text)
    form = {
        "csrf_token": token,
        "name": "team-a",
        "models": "chat",
        "rpm": "60",
        "budget_usd": "5",
        "budget_period": "day",
    }
    answer = browser.post("/console/keys/new", data=form)
    assert answer.status_code == 201
    value = re.search(r'<pre id="new-key" class="secret">(tllm_[^<]+)</pre>', answer.text)
    assert value is not None
    assert "set-cookie" not in answer.headers and "location" not in answer.headers
    assert answer.headers["cache-control"] == "no-store"
    # the key works, and is never shown again
    ok = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {value.group(1)}"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code != 401  # known (the unpriced mock model is refused to a budgeted key: 403)
    listing = browser.get("/console/keys").text
    assert value.group(1) not in listing
    assert "team-a" in listing and "$5.00 per day" in listing
    confirm = browser.get("/console/keys/team-a/revoke")
    assert confirm.status_code == 200 and "Revoke the gateway key" in confirm.text
    answer = browser.post("/console/keys/team-a/revoke", data={"csrf_token": csrf_of(confirm.text)})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/keys?revoked=team-a"
    assert "Key team-a revoked." in browser.get(answer.headers["location"]).text
    refused = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {value.group(1)}"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert refused.status_code == 401


def test_a_bad_key_form_says_why(gw: GatewayServer, browser: httpx.Client) -> None:
    token = csrf_of(browser.get("/console/keys").text)
    answer = browser.post("/console/keys/new", data={"csrf_token": token, "name": "b", "rpm": "lots"})
    assert answer.status_code == 400
    assert "rpm must be a whole number above 0." in answer.text
    assert 'value="lots"' in answer.text  # the form keeps what was typed


def test_request_log_filters_paginates_by_links_and_opens_a_request(
    gw: GatewayServer, browser: httpx.Client
) -> None:
    chat(gw, n=52)
    chat(gw, model="no-such-alias")
    first = browser.get("/console/requests").text
    assert first.count('href="/console/requests/') == 50
    older = re.search(r'<a href="([^"]+)" rel="next">Older', first)
    assert older is not None
    second = browser.get(older.group(1).replace("&amp;", "&")).text
    assert second.count('href="/console/requests/') == 3
    assert 'rel="next"' not in second and "Newest" in second
    failed = browser.get("/console/requests?status=4xx&last=1h").text
    assert failed.count('href="/console/requests/') == 1
    assert 'status bad">404' in failed
    rid = re.search(r'href="/console/requests/([^"]+)"', failed)
    assert rid is not None
    detail = browser.get(f"/console/requests/{rid.group(1)}")
    assert detail.status_code == 200
    assert rid.group(1) in detail.text and "Attempts" in detail.text
    ok = re.search(r'href="/console/requests/([^"]+)"', browser.get("/console/requests?status=200").text)
    assert ok is not None
    detail = browser.get(f"/console/requests/{ok.group(1)}").text
    assert "mock / k" in detail and "prompt tokens" in detail
    assert browser.get("/console/requests/does-not-exist").status_code == 404


def test_a_bad_filter_is_a_readable_error(gw: GatewayServer, browser: httpx.Client) -> None:
    answer = browser.get("/console/requests?status=teapot")
    assert answer.status_code == 200
    assert "The admin API answered 400" in answer.text
    assert "is not a date" in browser.get("/console/requests?since=yesterday").text


def test_overview_shows_figures_charts_and_top_lists(gw: GatewayServer, browser: httpx.Client) -> None:
    chat(gw, n=4)
    for name in ("hour", "day", "month"):
        html = browser.get(f"/console/?range={name}").text
        assert "<svg" in html and "<title" in html and "Table of requests per second" in html
        assert f'href="/console/?range={name}" aria-current="true"' in html
        assert "Top aliases" in html and "<td>chat</td>" in html
        assert "In flight now" in html and "2 ok" in html
    fragment = browser.get("/console/fragments/overview?range=day").text
    assert fragment.startswith('<section id="figures"') and "<html" not in fragment


def test_without_a_request_log_the_pages_say_how_to_enable_one(gw_nolog: GatewayServer) -> None:
    client = sign_in(gw_nolog)
    try:
        for page in ("/console/", "/console/requests", "/console/requests/abc"):
            html = client.get(page).text
            assert "No request log is kept" in html and "truckllm-logger-sql" in html, page
    finally:
        client.close()


def test_config_validate_shows_problems_and_applies_nothing(gw: GatewayServer, browser: httpx.Client) -> None:
    token = csrf_of(browser.get("/console/config").text)
    bad = browser.post(
        "/console/config/validate", data={"csrf_token": token, "config": "providers: {x: {type: nope}}\n"}
    )
    assert bad.status_code == 200
    assert "problem" in bad.text and "Nothing was applied" in bad.text
    good_text = gw.gateway.runtime.extra["text"] if gw.gateway else ""
    good = browser.post("/console/config/validate", data={"csrf_token": token, "config": str(good_text)})
    assert "This config is valid" in good.text


def test_sign_out_ends_the_session(gw: GatewayServer, browser: httpx.Client) -> None:
    token = csrf_of(browser.get("/console/").text)
    stolen = dict(browser.cookies)
    answer = browser.post("/console/logout", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    assert browser.get("/console/").status_code == 303
    # the old cookie is revoked, not only cleared
    with httpx.Client(base_url=gw.url, headers=HTML, cookies=stolen) as replay:
        assert replay.get("/console/").status_code == 303
