"""``register_mounts``: a plugin's pages and JSON endpoints behind the admin sign-in.

The trust boundary: nothing but a public path is served without the admin token or a signed-in
session; a session cookie is worthless once tampered with, expired, signed out or signed under
another admin token; a cookie-admitted change needs the session's CSRF token; a cross-site
request that could change something is refused even on a public path.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Sequence

import httpx2 as httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from truckllm import hookimpl
from truckllm._internal.gateway import Gateway
from truckllm._internal.mounts import RESERVED_PREFIXES, check_prefix
from truckllm.errors import GatewayError, StartupError
from truckllm.kit.options import Secret
from truckllm.kit.view import GatewayView
from truckllm.kit.web import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Mount, admin_identity, gateway_caller
from truckllm.types import RequestRecord
from truckllm_testing.conformance import RecordingPlugin, wait_for
from truckllm_testing.server import GatewayServer

TOKEN = "admin-token-0123456789abcdef"
CONFIG = f"""\
admin: {{token: {TOKEN}}}
providers:
  demo: {{type: mock}}
models:
  m:
    deployments: [{{provider: demo, model: echo}}]
"""


def routes(view: GatewayView) -> Sequence[BaseRoute]:
    async def page(request: Request) -> Response:
        return PlainTextResponse(f"page {admin_identity(request.scope)} {view.sessions.csrf_token(request)}")

    async def login(request: Request) -> Response:
        form = await request.form()
        response = PlainTextResponse("in")
        if not await view.sessions.sign_in(request, response, str(form.get("token", ""))):
            return PlainTextResponse("no", status_code=401)
        return response

    async def logout(request: Request) -> Response:
        response = PlainTextResponse("out")
        await view.sessions.sign_out(request, response)
        return response

    async def change(request: Request) -> Response:
        form = await request.form()
        return JSONResponse({"form": dict(form), "by": admin_identity(request.scope)})

    async def providers(request: Request) -> Response:
        answer = await view.admin("GET", "/admin/v1/providers")
        return JSONResponse({"status": answer.status, "body": answer.body})

    return [
        Route("/", page),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/change", change, methods=["POST"]),
        Route("/providers", providers),
        Route("/static/app.css", lambda r: PlainTextResponse("body{}")),
    ]


class Plugin:
    __name__ = "test-mount"

    def __init__(self, *mounts: Mount) -> None:
        self.mounts = mounts or (
            Mount(
                name="panel", prefix="/panel", routes=routes, public=("/login", "/static/"), login="/login"
            ),
        )

    @hookimpl
    def register_mounts(self, register: Callable[[Mount], None]) -> None:
        for mount in self.mounts:
            register(mount)


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayServer]:
    with GatewayServer(CONFIG, extra_plugins=(Plugin(),)) as server:
        yield server


def sign_in(gw: GatewayServer, token: str = TOKEN) -> httpx.Response:
    return httpx.post(gw.url + "/panel/login", data={"token": token})


def session(gw: GatewayServer) -> tuple[str, str]:
    """A signed-in session's cookie value and its CSRF token."""
    answer = sign_in(gw)
    assert answer.status_code == 200, answer.text
    cookie = answer.cookies[SESSION_COOKIE]
    page = httpx.get(gw.url + "/panel/", cookies={SESSION_COOKIE: cookie})
    assert page.status_code == 200
    csrf = page.text.split()[-1]
    return cookie, csrf


def test_hook_register_mounts(gw: GatewayServer) -> None:
    """The plugin's routes are served under its prefix; public ones to anyone; the rest with the
    admin token; a signed-out browser is sent to the sign-in page, a script gets a 401."""
    assert httpx.get(gw.url + "/panel/static/app.css").text == "body{}"
    by_token = httpx.get(gw.url + "/panel/", headers={"authorization": f"Bearer {TOKEN}"})
    assert by_token.status_code == 200 and by_token.text.startswith("page token")
    browser = httpx.get(gw.url + "/panel/?a=1&b=2", headers={"accept": "text/html"})
    assert browser.status_code == 303
    assert browser.headers["location"] == "/panel/login?next=%2Fpanel%2F%3Fa%3D1%26b%3D2"
    script = httpx.get(gw.url + "/panel/")
    assert script.status_code == 401 and script.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.get(gw.url + "/panel/", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(gw.url + "/panel").headers.get("location") == "/panel/"
    assert (
        httpx.get(gw.url + "/panel/nothing-here", headers={"authorization": f"Bearer {TOKEN}"}).status_code
        == 404
    )


def test_sign_in_sets_a_strict_http_only_cookie(gw: GatewayServer) -> None:
    refused = sign_in(gw, "wrong")
    assert refused.status_code == 401 and SESSION_COOKIE not in refused.cookies
    answer = sign_in(gw)
    header = answer.headers["set-cookie"]
    assert header.startswith(SESSION_COOKIE + "=")
    lowered = header.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
    assert "secure" not in lowered  # plain http here; over TLS it is Secure
    assert TOKEN not in header
    cookie = answer.cookies[SESSION_COOKIE]
    page = httpx.get(gw.url + "/panel/", cookies={SESSION_COOKIE: cookie})
    assert page.status_code == 200 and page.text.startswith("page session ")
    assert len(page.text.split()[-1]) >= 32  # the CSRF token


def test_secure_cookie_marks_the_session_secure_behind_a_tls_proxy() -> None:
    """Behind a TLS-terminating proxy the gateway sees plain HTTP: ``admin.secure_cookie`` makes
    the session cookie (and its removal at sign-out) ``Secure`` all the same."""
    config = CONFIG.replace(f"admin: {{token: {TOKEN}}}", f"admin: {{token: {TOKEN}, secure_cookie: true}}")
    with GatewayServer(config, extra_plugins=(Plugin(),)) as server:
        answer = sign_in(server)
        assert answer.status_code == 200
        attributes = [part.strip().lower() for part in answer.headers["set-cookie"].split(";")]
        assert "secure" in attributes and "httponly" in attributes and "samesite=strict" in attributes
        cookie, csrf = session(server)
        out = httpx.post(
            server.url + "/panel/logout",
            cookies={SESSION_COOKIE: cookie},
            headers={CSRF_HEADER: csrf},
        )
        assert out.status_code == 200, out.text
        removal = [part.strip().lower() for part in out.headers["set-cookie"].split(";")]
        assert "secure" in removal and "max-age=0" in removal


@given(st.integers(min_value=0, max_value=200), st.sampled_from("AZaz09-_."))
@settings(max_examples=40, deadline=None)
def test_a_tampered_cookie_is_refused(gw: GatewayServer, position: int, char: str) -> None:
    cookie, _ = _SESSION.setdefault("s", session(gw))
    index = position % len(cookie)
    if cookie[index] == char:
        return
    forged = cookie[:index] + char + cookie[index + 1 :]
    assert httpx.get(gw.url + "/panel/", cookies={SESSION_COOKIE: forged}).status_code == 401


_SESSION: dict[str, tuple[str, str]] = {}


def test_forged_expiry_and_foreign_cookies_are_refused(gw: GatewayServer) -> None:
    cookie, _ = session(gw)
    version, expires, nonce, mac = cookie.split(".")
    later = f"{version}.{int(expires) + 86400}.{nonce}.{mac}"
    for value in (later, "v1.99999999999.abc.def", "", "x" * 300, cookie + ".extra", TOKEN):
        assert httpx.get(gw.url + "/panel/", cookies={SESSION_COOKIE: value}).status_code == 401, value


def test_an_expired_session_is_refused(gw: GatewayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    cookie, _ = session(gw)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 9 * 3600)  # past the 8 h default
    assert httpx.get(gw.url + "/panel/", cookies={SESSION_COOKIE: cookie}).status_code == 401


def test_sign_out_revokes_the_cookie_everywhere_it_is_replayed(gw: GatewayServer) -> None:
    cookie, csrf = session(gw)
    out = httpx.post(gw.url + "/panel/logout", cookies={SESSION_COOKIE: cookie}, data={CSRF_FIELD: csrf})
    assert out.status_code == 200
    assert (
        'truckllm_admin=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
    )
    assert httpx.get(gw.url + "/panel/", cookies={SESSION_COOKIE: cookie}).status_code == 401


def test_a_new_admin_token_signs_every_session_out() -> None:
    with GatewayServer(CONFIG, extra_plugins=(Plugin(),)) as server:
        cookie, _ = session(server)
        gateway = server.gateway
        assert isinstance(gateway, Gateway)
        server.call(_apply(gateway, CONFIG.replace(TOKEN, "another-admin-token-xyz")))
        assert httpx.get(server.url + "/panel/", cookies={SESSION_COOKIE: cookie}).status_code == 401


async def _apply(gateway: Gateway, text: str) -> None:
    gateway.apply(text)


def test_a_gateway_without_an_admin_token_serves_only_public_paths() -> None:
    text = CONFIG.replace(f"admin: {{token: {TOKEN}}}\n", "")
    with GatewayServer(text, extra_plugins=(Plugin(),)) as server:
        assert httpx.get(server.url + "/panel/static/app.css").status_code == 200
        assert httpx.get(server.url + "/panel/", headers={"authorization": "Bearer x"}).status_code == 403
        assert httpx.get(server.url + "/panel/").status_code == 403
        assert sign_in(server, "").status_code == 401


def test_a_cookie_admitted_change_needs_the_csrf_token(gw: GatewayServer) -> None:
    cookie, csrf = session(gw)
    jar = {SESSION_COOKIE: cookie}
    missing = httpx.post(gw.url + "/panel/change", cookies=jar, data={"a": "1"})
    assert missing.status_code == 403 and "CSRF" in missing.json()["error"]["message"]
    wrong = httpx.post(gw.url + "/panel/change", cookies=jar, data={"a": "1", CSRF_FIELD: csrf[:-1] + "x"})
    assert wrong.status_code == 403
    other_session = session(gw)[1]
    assert other_session != csrf
    stolen = httpx.post(gw.url + "/panel/change", cookies=jar, data={CSRF_FIELD: other_session})
    assert stolen.status_code == 403  # another session's token
    ok = httpx.post(gw.url + "/panel/change", cookies=jar, data={"a": "1 & 2", CSRF_FIELD: csrf})
    assert ok.status_code == 200
    assert ok.json() == {
        "form": {"a": "1 & 2", CSRF_FIELD: csrf},
        "by": "session",
    }  # the body reached the plugin whole
    header = httpx.post(gw.url + "/panel/change", cookies=jar, headers={CSRF_HEADER: csrf}, json={"x": 1})
    assert header.status_code == 200
    json_body = httpx.post(gw.url + "/panel/change", cookies=jar, json={CSRF_FIELD: csrf})
    assert json_body.status_code == 403  # only a form field or the header count
    by_token = httpx.post(
        gw.url + "/panel/change", headers={"authorization": f"Bearer {TOKEN}"}, data={"a": "1"}
    )
    assert by_token.status_code == 200 and by_token.json()["by"] == "token"


def test_cross_site_changes_are_refused_even_on_public_paths(gw: GatewayServer) -> None:
    host = gw.url.removeprefix("http://")
    for headers in (
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ):
        answer = httpx.post(gw.url + "/panel/login", data={"token": TOKEN}, headers=headers)
        assert answer.status_code == 403, headers
        assert SESSION_COOKIE not in answer.cookies
    for headers in (
        {"origin": f"http://{host}", "sec-fetch-site": "same-origin"},
        {"origin": f"http://{host}"},
        {"origin": "null", "sec-fetch-site": "same-origin"},  # a no-referrer page's form, in Chromium
        {},  # not a browser
    ):
        same = httpx.post(gw.url + "/panel/login", data={"token": TOKEN}, headers=headers)
        assert same.status_code == 200, headers
    spoofed = httpx.post(
        gw.url + "/panel/login",
        data={"token": TOKEN},
        headers={"origin": f"http://{host}", "sec-fetch-site": "cross-site"},
    )
    assert spoofed.status_code == 403


def test_pages_call_the_admin_api_in_process(gw: GatewayServer) -> None:
    cookie, _ = session(gw)
    answer = httpx.get(gw.url + "/panel/providers", cookies={SESSION_COOKIE: cookie}).json()
    direct = httpx.get(gw.url + "/admin/v1/providers", headers={"authorization": f"Bearer {TOKEN}"}).json()
    assert answer["status"] == 200
    assert answer["body"]["providers"] == direct["providers"]


def test_view_admin_answers_like_http(gw: GatewayServer) -> None:
    gateway = gw.gateway
    assert isinstance(gateway, Gateway)
    view = gateway.view
    missing = gw.call(view.admin("GET", "/admin/v1/nothing"))
    assert missing.status == 404
    plugins = gw.call(view.admin("GET", "/admin/v1/plugins"))
    assert plugins.ok and isinstance(plugins.body, list | dict)
    bad = gw.call(view.admin("GET", "/admin/v1/usage", query={"group_by": "nope"}))
    assert bad.status in (400, 501) and bad.error
    invalid = gw.call(view.admin("POST", "/admin/v1/config/validate", body="models: [\n"))
    assert invalid.status == 422 and invalid.body["valid"] is False


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "/",
        "console",
        "/Console",
        "/con sole",
        "/a//b",
        "/a/",
        *RESERVED_PREFIXES,
        "/v1/x",
        "/admin/v1/x",
        "/v1.x",
    ],
)
def test_refused_prefixes(prefix: str) -> None:
    assert check_prefix(prefix) is not None
    mount = Mount(name="bad", prefix=prefix, routes=routes)
    with pytest.raises(StartupError):
        Gateway("<t>", config_text=CONFIG, extra_plugins=(Plugin(mount),), watch_interval=0)


@given(st.from_regex(r"/[a-z0-9][a-z0-9._-]{0,10}(/[a-z0-9][a-z0-9._-]{0,10}){0,2}", fullmatch=True))
def test_accepted_prefixes_are_outside_the_kernels(prefix: str) -> None:
    if check_prefix(prefix) is None:
        assert not any(prefix == r or prefix.startswith(r + "/") for r in RESERVED_PREFIXES)
        assert re.fullmatch(r"(/[a-z0-9][a-z0-9._-]*)+", prefix)


def test_overlapping_and_twice_named_mounts_stop_start_up() -> None:
    a = Mount(name="a", prefix="/ops", routes=routes)
    for b in (
        Mount(name="b", prefix="/ops/panel", routes=routes),
        Mount(name="a", prefix="/other", routes=routes),
    ):
        with pytest.raises(StartupError):
            Gateway("<t>", config_text=CONFIG, extra_plugins=(Plugin(a, b),), watch_interval=0)
    with pytest.raises(StartupError):
        Gateway(
            "<t>",
            config_text=CONFIG,
            extra_plugins=(Plugin(Mount(name="c", prefix="/c", routes=routes, public=("x",))),),
            watch_interval=0,
        )
    sibling = Mount(name="b", prefix="/opsx", routes=routes)
    Gateway("<t>", config_text=CONFIG, extra_plugins=(Plugin(a, sibling),), watch_interval=0)  # no overlap


# --- mounts for clients: auth="gateway_key" --------------------------------------------------------

KEY_A = "tllm_key_alpha_0123456789"
KEY_OLD = "tllm_key_old_0123456789ab"
KEY_SLOW = "tllm_key_slow_0123456789a"
UPSTREAM_SECRET = "ups-3f9a7c1e5b2d8046"
KEYED = f"""\
admin: {{token: {TOKEN}}}
providers:
  demo: {{type: mock}}
models:
  m:
    deployments: [{{provider: demo, model: echo}}]
orgs:
  acme: {{}}
teams:
  search: {{org: acme}}
keys:
  - {{name: alpha, value: {KEY_A}, team: search, tags: [blue]}}
  - {{name: old, value: {KEY_OLD}, expires: "2001-01-01"}}
  - {{name: slow, value: {KEY_SLOW}, rpm: 2}}
loggers:
  - component: {{secret: {UPSTREAM_SECRET}}}
"""


class Component:
    """A logger-style component whose API a ``gateway_key`` mount serves."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
        secret: Secret

    def __init__(self, options: Options) -> None:
        self.options = options

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        return None


def api_routes(view: GatewayView) -> Sequence[BaseRoute]:
    async def whoami(request: Request) -> Response:
        caller = gateway_caller(request.scope)
        return JSONResponse(None if caller is None else dataclasses.asdict(caller))

    async def admit(request: Request) -> Response:
        caller = gateway_caller(request.scope)
        assert caller is not None
        try:
            await view.admit(caller)
        except GatewayError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)
        return JSONResponse({"ok": True})

    async def record(request: Request) -> Response:
        component = view.component(Component)
        assert component is not None
        caller = gateway_caller(request.scope)
        view.record(
            RequestRecord(
                request_id="req-1",
                started_at=time.time(),
                endpoint="test.call",
                dialect="test",
                alias="",
                gateway_key=caller.name if caller else None,
                stream=False,
                status=502,
                latency_ms=1.0,
                error_message=f"upstream said {component.options.secret.reveal()}",
            )
        )
        return JSONResponse({"scrubbed": view.scrub(f"echo {component.options.secret.reveal()}")})

    async def root(request: Request) -> Response:
        return JSONResponse({"root": request.method})

    return [
        Route("/", root, methods=["GET", "POST", "DELETE"]),
        Route("/whoami", whoami),
        Route("/admit", admit, methods=["POST"]),
        Route("/record", record),
    ]


class ApiPlugin:
    __name__ = "test-api-mount"

    def __init__(self) -> None:
        self.recorder = RecordingPlugin()

    @hookimpl
    def register_mounts(self, register: Callable[[Mount], None]) -> None:
        register(Mount(name="api", prefix="/api", routes=api_routes, auth="gateway_key"))

    @hookimpl
    def register_loggers(self, register: Callable[[str, type], None]) -> None:
        register("component", Component)


@pytest.fixture(scope="module")
def keyed() -> Iterator[tuple[GatewayServer, ApiPlugin]]:
    plugin = ApiPlugin()
    with GatewayServer(KEYED, extra_plugins=(plugin, plugin.recorder, Plugin())) as server:
        yield server, plugin


def _as(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key is not None else {}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "no key"),
        (_as("tllm_key_unknown_000000000"), "unknown key"),
        (_as(KEY_OLD), "expired key"),
        (_as(TOKEN), "the admin token is no gateway key"),
        ({"authorization": f"Basic {KEY_A}"}, "not a bearer token"),
        ({"x-api-key": KEY_A}, "another header"),
    ],
)
def test_a_gateway_key_mount_refuses_without_a_valid_gateway_key(
    keyed: tuple[GatewayServer, ApiPlugin], headers: dict[str, str], why: str
) -> None:
    server, _ = keyed
    answer = httpx.get(server.url + "/api/whoami", headers=headers)
    assert answer.status_code == 401, why
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_a_gateway_key_mount_tells_the_routes_who_called(keyed: tuple[GatewayServer, ApiPlugin]) -> None:
    server, _ = keyed
    answer = httpx.get(server.url + "/api/whoami", headers=_as(KEY_A))
    assert answer.status_code == 200
    assert answer.json() == {"name": "alpha", "team": "search", "org": "acme", "tags": ["blue"], "rpm": None}
    # an admin session's cookie does not open it either
    cookie, _ = session(server)
    assert httpx.get(server.url + "/api/whoami", cookies={SESSION_COOKIE: cookie}).status_code == 401


def test_a_gateway_key_mount_refuses_cross_site_changes(keyed: tuple[GatewayServer, ApiPlugin]) -> None:
    server, _ = keyed
    headers = {**_as(KEY_A), "origin": "https://evil.example"}
    assert httpx.post(server.url + "/api/admit", headers=headers).status_code == 403


def test_view_admit_takes_from_the_keys_rpm(keyed: tuple[GatewayServer, ApiPlugin]) -> None:
    server, _ = keyed
    answers = [httpx.post(server.url + "/api/admit", headers=_as(KEY_SLOW)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["retry-after"]) >= 1
    # another key is not limited by it
    assert httpx.post(server.url + "/api/admit", headers=_as(KEY_A)).status_code == 200


def test_view_record_reaches_the_loggers_scrubbed(keyed: tuple[GatewayServer, ApiPlugin]) -> None:
    server, plugin = keyed
    answer = httpx.get(server.url + "/api/record", headers=_as(KEY_A))
    assert answer.status_code == 200
    assert UPSTREAM_SECRET not in answer.text and "<secret>" in answer.json()["scrubbed"]
    wait_for(lambda: any(r.endpoint == "test.call" for r in plugin.recorder.records), what="the record")
    record = next(r for r in plugin.recorder.records if r.endpoint == "test.call")
    assert record.gateway_key == "alpha" and record.status == 502
    assert record.error_message is not None and UPSTREAM_SECRET not in record.error_message


def test_a_gateway_key_mount_on_an_open_gateway_names_no_key() -> None:
    plugin = ApiPlugin()
    with GatewayServer(CONFIG, extra_plugins=(plugin,)) as server:
        answer = httpx.get(server.url + "/api/whoami")
        assert answer.status_code == 200 and answer.json()["name"] is None
        assert plugin  # the view finds no component the config did not name


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_a_gateway_key_mount_serves_its_prefix_itself(
    keyed: tuple[GatewayServer, ApiPlugin], method: str
) -> None:
    """An API's clients are configured with the prefix (``/mcp``): every method reaches the ``/``
    route, with no redirect, behind the same key check."""
    server, _ = keyed
    assert httpx.request(method, server.url + "/api", headers=_as(KEY_A)).json() == {"root": method}
    assert httpx.request(method, server.url + "/api/", headers=_as(KEY_A)).json() == {"root": method}
    assert httpx.request(method, server.url + "/api").status_code == 401
