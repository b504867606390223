"""The console in a real headless chromium: sign in, every page, requests in the log, a filter,
one request opened, usage grouped by team and tag, the teams' budgets, a gateway key made and
revoked, a provider key disabled and enabled again, sign out; a second browser with JavaScript off
reads the log and pages through it by links, and groups usage with the form.
Every page is saved as a screenshot in ``artifacts/console/``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
from truckllm_browser_kit import ADMIN_TOKEN, GATEWAY_KEY, PROVIDER_KEYS

from truckllm_testing.server import GatewayServer

WAIT = 20.0  # the longest a page may take to show what a step expects (a deadline, not a timing)


def by(kind: str, value: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return {"css": By.CSS_SELECTOR, "link": By.LINK_TEXT, "id": By.ID}[kind], value


def wait_for(driver: Any, check: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(check, message=what)


def traffic(gateway: GatewayServer, n: int, text: str = "hello console", model: str = "chat") -> None:
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {GATEWAY_KEY}"}) as client:
        for i in range(n):
            answer = client.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": f"{text} {i}"}]},
            )
            assert answer.status_code in (200, 404), answer.text


def logged(gateway: GatewayServer) -> int:
    """How many records the request log holds now (through the admin API)."""
    answer = httpx.get(
        gateway.url + "/admin/v1/requests",
        params={"limit": "500"},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    return len(answer.json()["data"]) if answer.status_code == 200 else -1


def until_logged(gateway: GatewayServer, driver: Any, n: int) -> None:
    wait_for(driver, lambda _: logged(gateway) >= n, f"{n} records in the request log")


def no_secret(driver: Any) -> None:
    html = driver.page_source
    for secret in (ADMIN_TOKEN, GATEWAY_KEY, *PROVIDER_KEYS):
        assert secret not in html


def sign_in(driver: Any, gateway: GatewayServer, page: str = "/console/") -> None:
    driver.get(gateway.url + page)
    wait_for(driver, lambda d: "/console/login" in d.current_url, "the sign-in page")
    driver.find_element(*by("id", "token")).send_keys(ADMIN_TOKEN)
    driver.find_element(*by("css", "form button[type=submit]")).click()
    wait_for(driver, lambda d: d.current_url == gateway.url + page, f"back on {page}")


def csp_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def key_row_state(driver: Any, key: str) -> str:
    return str(driver.find_element(*by("css", f'tr[data-key="mock/{key}"] .state')).text)


def test_the_console_end_to_end(
    gateway: GatewayServer, make_driver: Callable[..., Any], shot: Callable[[Any, str], Path]
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.keys import Keys

    driver = make_driver()
    traffic(gateway, 6)
    traffic(gateway, 1, model="no-such-model")
    until_logged(gateway, driver, 7)

    # signed out: the sign-in page, reached from the page asked for; a wrong token is refused
    driver.get(gateway.url + "/console/requests")
    wait_for(driver, lambda d: "/console/login?next=" in d.current_url, "the sign-in page")
    shot(driver, "01-sign-in")
    driver.find_element(*by("id", "token")).send_keys("wrong")
    driver.find_element(*by("css", "form button[type=submit]")).click()
    wait_for(driver, lambda d: "not the admin token" in d.page_source, "the refusal")
    driver.find_element(*by("id", "token")).send_keys(ADMIN_TOKEN)
    driver.find_element(*by("css", "form button[type=submit]")).click()
    wait_for(driver, lambda d: d.current_url.endswith("/console/requests"), "the log after signing in")
    session = driver.get_cookie("truckllm_admin")
    assert session is not None and session["httpOnly"] and session["sameSite"] == "Strict"

    # the keyboard reaches the skip link first, and it has a visible focus
    driver.find_element(*by("css", "body")).send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Skip to content"
    outline = driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    driver.switch_to.active_element.send_keys(Keys.TAB)  # then the navigation
    assert driver.switch_to.active_element.text == "TruckLLM"

    # every page, with htmx loaded and no CSP violation
    pages = {
        "02-overview": "/console/",
        "03-overview-day": "/console/?range=day",
        "04-providers": "/console/providers",
        "05-requests": "/console/requests",
        "06-keys": "/console/keys",
        "07-plugins": "/console/plugins",
        "08-config": "/console/config",
        "20-usage": "/console/usage",
        "21-teams": "/console/teams",
    }
    for name, page in pages.items():
        driver.get(gateway.url + page)
        wait_for(driver, lambda d: d.find_elements(*by("css", "main h1")), f"{page} rendered")
        assert "The admin API answered" not in driver.page_source, page
        assert driver.execute_script("return typeof window.htmx") == "object", page
        no_secret(driver)
        shot(driver, name)
    assert csp_errors(driver) == []
    driver.get(gateway.url + "/console/")
    assert "In flight now" in driver.page_source
    assert driver.find_elements(*by("css", "figure.chart svg title"))

    # usage: group by team and tag with the form's checkboxes, sort by requests with a link
    driver.get(gateway.url + "/console/usage")
    driver.find_element(*by("css", "input[name=group_by][value=key]")).click()  # untick the default
    driver.find_element(*by("css", "input[name=group_by][value=team]")).click()
    driver.find_element(*by("css", "input[name=group_by][value=tag]")).click()
    driver.find_element(*by("css", "form.filters button[type=submit]")).click()
    wait_for(driver, lambda d: "group_by=team&group_by=tag" in d.current_url, "usage by team and tag")
    cells = [td.text for td in driver.find_elements(*by("css", "table.usage tbody td"))]
    assert "demo" in cells and "browser" in cells and "eu" in cells
    assert "counts once in each of its tags" in driver.page_source
    driver.find_element(*by("link", "requests")).click()
    wait_for(driver, lambda d: "sort=requests" in d.current_url, "usage sorted by requests")
    assert "group_by=team&group_by=tag" in driver.current_url
    shot(driver, "22-usage-by-team-and-tag")
    driver.get(gateway.url + "/console/teams")
    demo = driver.find_element(*by("id", "team-demo")).text
    assert "team-demo" in demo and "cc-42" in demo and "of $500.00 per month" in demo
    assert driver.find_elements(*by("css", "#org-acme .budget svg.meter rect.fill"))
    driver.get(gateway.url + "/console/keys")
    assert driver.find_element(*by("link", "demo")).get_attribute("href").endswith("/console/teams#team-demo")
    assert csp_errors(driver) == []

    # the request log: filter by status, then by alias, open a request
    driver.get(gateway.url + "/console/requests")
    status = driver.find_element(*by("id", "f-status"))
    status.send_keys("4xx")
    status.submit()
    wait_for(driver, lambda d: "status=4xx" in d.current_url, "the filtered log")
    rows = driver.find_elements(*by("css", "table.log tbody tr"))
    assert len(rows) == 1 and "404" in rows[0].text
    shot(driver, "09-requests-filtered")
    driver.get(gateway.url + "/console/requests?alias=chat&status=200")
    links = driver.find_elements(*by("css", "table.log tbody a.req"))
    assert len(links) == 6
    links[0].click()
    wait_for(driver, lambda d: "/console/requests/req" in d.current_url, "a request's page")
    page = driver.page_source
    assert "Attempts" in page and "mock / key-" in page and "prompt tokens" in page
    assert "demo (organisation acme)" in page and "cc-42" in page  # the key's team, org and metadata
    assert "hello console" in driver.find_element(*by("css", "pre.body")).text  # the alias keeps bodies
    no_secret(driver)
    shot(driver, "10-request-detail")

    # a gateway key: made (its value shown once), listed, revoked after a confirmation
    driver.get(gateway.url + "/console/keys")
    driver.find_element(*by("id", "k-name")).send_keys("team-browser")
    driver.find_element(*by("id", "k-rpm")).send_keys("120")
    driver.find_element(*by("id", "k-usd")).send_keys("25")
    driver.find_element(*by("css", "form.grid-form button[type=submit]")).click()
    value = wait_for(driver, lambda d: d.find_elements(*by("id", "new-key")), "the new key's value")[0].text
    assert value.startswith("tllm_") and "/keys/new" in driver.current_url and value not in driver.current_url
    shot(driver, "11-key-created")
    assert all(value not in c["value"] for c in driver.get_cookies())
    driver.find_element(*by("link", "Back to the gateway keys")).click()
    wait_for(driver, lambda d: "team-browser" in d.page_source, "the key listed")
    assert value not in driver.page_source
    driver.find_element(*by("css", 'a[href="/console/keys/team-browser/revoke"]')).click()
    wait_for(driver, lambda d: "Revoke the gateway key" in d.page_source, "the confirmation")
    shot(driver, "12-key-revoke")
    driver.find_element(*by("css", "main form button.danger")).click()
    wait_for(driver, lambda d: "Key team-browser revoked." in d.page_source, "the key revoked")
    assert not driver.find_elements(*by("css", 'a[href="/console/keys/team-browser/revoke"]'))

    # a provider key disabled, seen disabled, enabled again
    driver.get(gateway.url + "/console/providers")
    assert key_row_state(driver, "key-one") == "healthy"
    driver.find_element(*by("css", 'tr[data-key="mock/key-one"] button')).click()
    wait_for(driver, lambda d: "Key mock/key-one disabled." in d.page_source, "the key disabled")
    assert key_row_state(driver, "key-one") == "disabled"
    shot(driver, "13-providers-key-disabled")

    def key_state_of(d: Any, key: str) -> str | bool:
        try:
            return key_row_state(d, key)
        except StaleElementReferenceException:  # htmx swapped the table meanwhile
            return False

    driver.find_element(*by("css", 'tr[data-key="mock/key-one"] button')).click()
    wait_for(driver, lambda d: "Key mock/key-one enabled." in d.page_source, "the key enabled")
    wait_for(driver, lambda d: key_state_of(d, "key-one") == "healthy", "the key healthy again")

    # htmx refreshes the table in place: a change made by a script shows without reloading
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    url = driver.current_url
    httpx.post(
        gateway.url + "/admin/v1/providers/mock/keys/key-two/disable", headers=admin
    ).raise_for_status()
    wait_for(driver, lambda d: key_state_of(d, "key-two") == "disabled", "key-two disabled, live")
    httpx.post(gateway.url + "/admin/v1/providers/mock/keys/key-two/enable", headers=admin).raise_for_status()
    wait_for(driver, lambda d: key_state_of(d, "key-two") == "healthy", "key-two healthy, live")
    assert driver.current_url == url

    # the config check shows problems
    driver.get(gateway.url + "/console/config")
    driver.find_element(*by("id", "config-text")).send_keys("providers: {broken: {type: nope}}")
    driver.find_element(*by("css", "form.stack button[type=submit]")).click()
    wait_for(driver, lambda d: "Nothing was applied" in d.page_source, "the config's problems")
    shot(driver, "14-config-validate")

    # on a phone-sized window
    driver.set_window_size(390, 844)
    driver.get(gateway.url + "/console/")
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    shot(driver, "15-phone-overview")
    driver.get(gateway.url + "/console/providers")
    shot(driver, "16-phone-providers")
    driver.set_window_size(1280, 900)
    assert csp_errors(driver) == []

    # sign out: back to the sign-in page, and pages need signing in again
    driver.find_element(*by("css", "form.signout button")).click()
    wait_for(driver, lambda d: d.current_url.endswith("/console/login"), "the sign-in page")
    driver.get(gateway.url + "/console/keys")
    wait_for(driver, lambda d: "/console/login?next=" in d.current_url, "signed out")


def test_the_log_reads_and_pages_without_javascript(
    gateway: GatewayServer, make_driver: Callable[..., Any], shot: Callable[[Any, str], Path]
) -> None:
    driver = make_driver(javascript=False)
    before = logged(gateway)
    traffic(gateway, 55, text="paging")
    until_logged(gateway, driver, min(500, before + 55))
    sign_in(driver, gateway, "/console/requests")
    assert driver.execute_script("return typeof window.htmx") == "undefined"  # no page script ran
    first = [a.text for a in driver.find_elements(*by("css", "table.log tbody a.req"))]
    assert len(first) == 50
    shot(driver, "17-nojs-requests")
    driver.find_element(*by("link", "Older »")).click()
    wait_for(driver, lambda d: "cursor=" in d.current_url, "the older page")
    second = [a.text for a in driver.find_elements(*by("css", "table.log tbody a.req"))]
    assert second and not set(first) & set(second)
    shot(driver, "18-nojs-requests-older")
    # filters are a GET form: submit it without script
    driver.find_element(*by("id", "f-status")).send_keys("200")
    driver.find_element(*by("css", "form.filters button[type=submit]")).click()
    wait_for(driver, lambda d: "status=200" in d.current_url, "the filtered log")
    driver.find_elements(*by("css", "table.log tbody a.req"))[0].click()
    wait_for(driver, lambda d: "Attempts" in d.page_source, "a request's page")
    # a tag in the log is a link filtering by it (a GET, no script)
    driver.back()
    driver.find_element(*by("css", "table.log tbody a.tag")).click()
    wait_for(driver, lambda d: "tag=" in d.current_url, "the log filtered by a tag")
    tagged = driver.find_elements(*by("css", "table.log tbody tr"))
    assert tagged and all("browser" in row.text for row in tagged)
    # the usage form works without script too
    driver.get(gateway.url + "/console/usage")
    driver.find_element(*by("css", "input[name=group_by][value=model]")).click()
    driver.find_element(*by("css", "form.filters button[type=submit]")).click()
    wait_for(driver, lambda d: "group_by=model" in d.current_url, "usage by key and model")
    assert "mock-large" in [td.text for td in driver.find_elements(*by("css", "table.usage tbody td"))]
    shot(driver, "23-nojs-usage")
    # the overview's charts are SVG drawn by the server, with a table of the figures
    driver.get(gateway.url + "/console/?range=day")
    assert driver.find_elements(*by("css", "figure.chart svg rect.bar"))
    assert driver.find_elements(*by("css", "figure.chart details table"))
    shot(driver, "19-nojs-overview")
