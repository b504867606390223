"""The admin API: one handler per URL (``truckllm._internal.admin.ROUTES``), and what a new user met
(issue 14, item 8): problems of a config sent in a request name the request body, the first
gateway key of an open gateway says that it closed it, ``/metrics`` says how to enable metrics."""

from __future__ import annotations

import inspect
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from loguru import logger

from truckllm._internal.admin import ROUTES, admin_routes
from truckllm._internal.admin.config import REQUEST_BODY
from truckllm._internal.admin.status import METRICS_OFF
from truckllm._internal.gateway import Gateway
from truckllm_testing.server import GatewayServer

TOKEN = "an-admin-token-for-the-admin-tests"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parents[2]
CONFIG = f"""\
# the user's own comment
admin: {{token: {TOKEN}}}
providers:
  demo: {{type: mock}}
models:
  demo:
    deployments:
      - {{provider: demo, model: echo}}
"""


@pytest.fixture
def warnings() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    handle = logger.add(sink, level="WARNING", format="{level} {message}")
    yield sink
    logger.remove(handle)


def test_every_admin_url_has_one_documented_module_level_handler() -> None:
    seen = set()
    for route in ROUTES:
        assert (route.method, route.path) not in seen
        seen.add((route.method, route.path))
        handler = route.handler
        assert inspect.iscoroutinefunction(handler) and handler.__doc__
        assert handler.__module__.startswith("truckllm._internal.admin.")
        assert list(inspect.signature(handler).parameters) == ["gateway", "request"]
    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"^\| `(GET|PUT|POST|DELETE) (/[^`?\[ ]*)", readme, re.MULTILINE))
    assert seen <= documented
    assert not [r for r in ROUTES if not r.guarded and not r.path.endswith(("/health", "/ready"))]


def test_routes_are_built_in_the_order_of_the_table() -> None:
    gateway = Gateway("<t>", config_text=CONFIG)
    assert [(r.path, sorted(r.methods or ())) for r in admin_routes(gateway)] == [
        (r.path, sorted({r.method, "HEAD"} if r.method == "GET" else {r.method})) for r in ROUTES
    ]


def test_put_config_names_the_request_body_and_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "truckllm.yaml"
    path.write_text(CONFIG)
    body = f"admin: {{token: {TOKEN}}}\nproviders:\n  demo: {{type: mock}}\nmodels:\n  x:\n    deployments:\n      - {{provider: nope, model: m}}\n"
    with GatewayServer(config_path=str(path)) as gw:
        for method, url in (("PUT", "/admin/v1/config"), ("POST", "/admin/v1/config/validate")):
            answer = httpx.request(method, gw.url + url, content=body, headers=ADMIN)
            assert answer.status_code == 422, answer.text
            (problem,) = answer.json()["problems"]
            assert problem["file"] == REQUEST_BODY == "<request body>"
            assert problem["line"] == 7 and problem["field"] == "models.x.deployments[0].provider"
        unparsable = httpx.put(gw.url + "/admin/v1/config", content="a: 1\nb: [\n", headers=ADMIN).json()
        assert unparsable["problems"][0]["file"] == "<request body>"
    assert path.read_text() == CONFIG  # nothing written


def test_the_first_gateway_key_says_it_closed_the_open_gateway(tmp_path: Path, warnings: io.StringIO) -> None:
    path = tmp_path / "truckllm.yaml"
    path.write_text(CONFIG)
    with GatewayServer(config_path=str(path)) as gw:
        chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(gw.url + "/v1/chat/completions", json=chat).status_code == 200  # open
        assert httpx.get(gw.url + "/admin/v1/keys", headers=ADMIN).json() == {"open": True, "keys": []}
        first = httpx.post(gw.url + "/admin/v1/keys", json={"name": "ci"}, headers=ADMIN).json()
        assert first["open_before"] is True and first["now_requires_keys"] is True
        assert "every request needs a gateway key" in first["warning"]
        assert httpx.post(gw.url + "/v1/chat/completions", json=chat).status_code == 401  # closed now
        second = httpx.post(gw.url + "/admin/v1/keys", json={"name": "ci2"}, headers=ADMIN).json()
        assert second["open_before"] is False and "warning" not in second
    logged = [line for line in warnings.getvalue().splitlines() if "gateway key 'ci'" in line]
    assert logged and logged[0].startswith("WARNING") and "now every request needs a gateway key" in logged[0]
    assert path.read_text().startswith(CONFIG)  # the user's text, untouched, and the keys after it


def test_metrics_without_a_metrics_plugin_is_a_404_saying_how_to_enable_them() -> None:
    with GatewayServer(CONFIG, autoload=True) as gw:
        answer = httpx.get(gw.url + "/metrics", headers=ADMIN)
        assert httpx.get(gw.url + "/metrics").status_code == 401  # the token is checked first
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == METRICS_OFF
    assert "loggers: [prometheus]" in METRICS_OFF


def test_the_admin_plugin_list_is_the_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    """The store and logger instances registered while serving (``store``, ``logger-0-stdout``)
    are not listed: ``/admin/v1/plugins`` and ``truckllm plugins`` show the same rows."""
    from truckllm._internal.cli import main

    config = CONFIG + "loggers: [{stdout: {format: text}}]\nstore: {type: memory}\n"
    for flag in ("", "1"):
        with GatewayServer(config, autoload=True) as gw:
            served = httpx.get(gw.url + f"/admin/v1/plugins?all={flag}", headers=ADMIN).json()["plugins"]
            assert gw.gateway is not None and gw.gateway.store is not None and gw.gateway.loggers
        assert main(["plugins", "--json", *(["--all"] if flag else [])]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(p["name"], p["entry_point"]) for p in served] == [
            (p["name"], p["entry_point"]) for p in listed
        ]
        names = {p["name"] for p in served}
        assert "truckllm-logger-stdout" in names and "truckllm-store-memory" in names
        assert not names & {"store", "logger-0-stdout"}


def test_the_docs_say_what_a_new_user_needs() -> None:
    """A plugin installed while serving needs a restart (README, Plugins); the plugin guide names
    the dialect kind and where a fake upstream listens."""
    readme = (REPO / "README.md").read_text()
    plugins_section = readme[readme.index("\n## Plugins\n") : readme.index("\n### Writing a plugin\n")]
    assert "Install plugins, then restart." in plugins_section
    guide = (REPO / "docs" / "plugins.md").read_text()
    assert "`provider`, `strategy`, `store`, `logger` and `dialect`" in guide
    assert "\n## Dialect plugins\n" in guide and "register_dialects" in guide
    assert "`fake.base_url` is what a provider's `base_url` is for it" in guide


def test_a_key_is_created_in_a_team_with_tags_and_listed_back(tmp_path: Path) -> None:
    path = tmp_path / "truckllm.yaml"
    path.write_text(CONFIG + "teams:\n  eng: {}\n")
    with GatewayServer(config_path=str(path)) as gw:
        body = {
            "name": "ci",
            "team": "eng",
            "tags": ["nightly", "ci"],
            "user_budget": {"usd": 5, "period": "day"},
            "log_bodies": True,
        }
        created = httpx.post(gw.url + "/admin/v1/keys", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
        (row,) = httpx.get(gw.url + "/admin/v1/keys", headers=ADMIN).json()["keys"]
        assert row["team"] == "eng" and row["tags"] == ["nightly", "ci"] and row["log_bodies"] is True
        assert row["user_budget"] == {"usd": 5.0, "period": "day"}
        ghost = httpx.post(gw.url + "/admin/v1/keys", json={"name": "x", "team": "ghost"}, headers=ADMIN)
        assert ghost.status_code == 422 and "ghost" in ghost.text  # refused, nothing written
    assert "ghost" not in path.read_text()
