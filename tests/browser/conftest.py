"""Real-browser tests of the console (``make test-browser``): Debian's chromium and
chromium-driver driven by selenium, against a real gateway on loopback.

They run only when ``TRUCKLLM_BROWSER=1`` (else they are skipped, saying so) and are skipped with
the reason when chromium, chromedriver or selenium is missing. The gateway logs to
``truckllm-logger-sql`` on SQLite in a temporary folder when that plugin is installed, else to
the console tests' in-memory request log. Screenshots go to ``artifacts/console/``.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from truckllm_testing.server import GatewayServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "console"
CHROMIUM = os.environ.get("TRUCKLLM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TRUCKLLM_CHROMEDRIVER", "/usr/bin/chromedriver")
ADMIN_TOKEN = "browser-admin-token-7Hq2LxP9"
PROVIDER_KEYS = ("sk-browser-provider-secret-1111", "sk-browser-provider-secret-2222")
GATEWAY_KEY = "tllm-browser-gateway-key-5Kd8Wq1z"
HEADLESS_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-default-browser-check",
    "--disable-extensions",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real headless chromium (TRUCKLLM_BROWSER=1)")


def _missing() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install selenium)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} not found: apt-get install {package}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(str(item.path)).parents]
    for item in mine:
        item.add_marker(pytest.mark.browser)
    if os.environ.get("TRUCKLLM_BROWSER") != "1":
        reason = "real-browser tests run with TRUCKLLM_BROWSER=1 (make test-browser)"
    else:
        reason = _missing() or ""
    if reason:
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))


def _memlog() -> ModuleType:
    """The console tests' in-memory request log (loaded by path: test folders are no packages)."""
    name = "truckllm_console_tests_memlog"
    if name not in sys.modules:
        path = ROOT / "plugins" / "truckllm-console" / "tests" / "memlog.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def gateway_config(folder: Path, sql: bool) -> str:
    """Two mock keys, one gateway key (in team ``demo`` of org ``acme``, tagged), the admin token,
    a request log; bodies kept for ``chat``."""
    log = (
        f"  - sql: {{url: 'sqlite:///{folder / 'requests.db'}', flush_interval: 0.05s}}\n"
        if sql
        else "  - memlog\n"
    )
    return f"""
admin: {{token: {ADMIN_TOKEN}}}
orgs:
  acme: {{budgets: [{{usd: 1000, period: month}}], metadata: {{region: eu}}}}
teams:
  demo: {{org: acme, rpm: 6000, metadata: {{cost_centre: cc-42}}, budgets: [{{usd: 500, period: month}}]}}
  research: {{org: acme, models: [embed], budgets: [{{usd: 50, period: day}}]}}
keys:
  - {{name: team-demo, value: {GATEWAY_KEY}, rpm: 6000, team: demo, tags: [browser, eu]}}
loggers:
{log}providers:
  mock:
    type: mock
    keys:
      - {{name: key-one, value: {PROVIDER_KEYS[0]}}}
      - {{name: key-two, value: {PROVIDER_KEYS[1]}}}
# prices far above real ones, so that the screenshots show some spend
models:
  chat:
    log_bodies: true
    deployments: [{{provider: mock, model: mock-large, price: {{input: 2500, output: 10000}}}}]
  embed:
    deployments: [{{provider: mock, model: mock-embed, price: {{input: 100}}}}]
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """A real gateway with the console, on a writable config file."""
    folder = tmp_path_factory.mktemp("gateway")
    sql = (
        importlib.util.find_spec("truckllm_logger_sql") is not None
        and os.environ.get("TRUCKLLM_BROWSER_LOG") != "memory"
    )
    path = folder / "truckllm.yaml"
    path.write_text(gateway_config(folder, sql))
    plugins = () if sql else (_memlog().MemoryLogPlugin(),)
    server = GatewayServer(config_path=str(path), extra_plugins=plugins).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_driver(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make_driver(javascript=True, width=1280, height=900)``: a fresh headless chromium (its own
    profile folder), quit at the test's end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers: list[Any] = []

    def make(*, javascript: bool = True, width: int = 1280, height: int = 900) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in HEADLESS_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tmp_path / f'profile-{len(drivers)}'}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        if not javascript:
            options.add_experimental_option(
                "prefs", {"profile.managed_default_content_settings.javascript": 2}
            )
        # an explicit driver path: Selenium Manager never runs (nothing is downloaded)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    try:
        yield make
    finally:
        for driver in drivers:
            driver.quit()


@pytest.fixture(scope="session")
def shot() -> Callable[[Any, str], Path]:
    """``shot(driver, name)``: a full-window screenshot to ``artifacts/console/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def save(driver: Any, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        # the whole page, not only the window (Chrome DevTools; works with JavaScript off)
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    return save


# the test module imports the constants above by this name (test files are imported by path)
sys.modules.setdefault("truckllm_browser_kit", sys.modules[__name__])
