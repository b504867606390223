"""Credential sources (``ProviderSpec.credentials``): fetched before serving, refreshed before
they expire, never on the request path, kept across reloads, closed when their key goes.

A throwaway provider type ``tok`` answers in-process and checks that the ``api_key`` each attempt
carries is a token its issuer made and that has not expired: a run of 2,000 requests across many
token lifetimes must see zero failures.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Callable

import httpx2 as httpx
import pytest
from loguru import logger

from truckllm import hookimpl
from truckllm._internal.credentials import MIN_MARGIN, Credentials, _Entry, refresh_at
from truckllm.errors import CredentialError
from truckllm.kit.openai_wire import chat_completion
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)
from truckllm_testing.server import GatewayServer

LIFETIME = 2.5  # seconds a token lives: a 2,000-request run outlives many of them


class Issuer:
    """Mints tokens with an expiry (``lifetime`` seconds); knows which are valid now; can be made
    to fail (``failing``: minting raises) or to mint tokens the upstream refuses (``refusing``)."""

    def __init__(self, lifetime: float = LIFETIME) -> None:
        self.lifetime = lifetime
        self.refusing: set[str] = set()
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}
        self.refreshes: dict[str, int] = {}
        self.closed: list[str] = []
        self.failing: set[str] = set()
        self.seen_values: list[str] = []

    def mint(self, who: str) -> tuple[str, float]:
        with self.lock:
            if who in self.failing:
                raise ConnectionError(f"token endpoint refused {who} (secret-value-123)")
            self.refreshes[who] = self.refreshes.get(who, 0) + 1
            token = f"tok-{who}-{self.refreshes[who]}"
            expires = time.time() + self.lifetime
            if who not in self.refusing:
                self.tokens[token] = expires
            return token, expires

    def revoke(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def valid(self, token: str) -> bool:
        with self.lock:
            return self.tokens.get(token, 0.0) > time.time()


class TokenSource:
    def __init__(self, issuer: Issuer, who: str) -> None:
        self.issuer, self.who, self.token = issuer, who, ""

    async def refresh(self) -> float:
        token, expires = await asyncio.to_thread(self.issuer.mint, self.who)
        self.token = token
        return expires

    def current(self) -> str:
        return self.token

    async def close(self) -> None:
        self.issuer.closed.append(self.who)


class TokPlugin:
    """Provider type ``tok``: its credential is a token from :class:`Issuer`."""

    __name__ = "throwaway-tok"

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.bad: list[str] = []
        self.used: list[str] = []

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        def factory(provider: Provider, value: str) -> TokenSource:
            self.issuer.seen_values.append(value)
            return TokenSource(self.issuer, f"{provider.name}:{value or 'ambient'}")

        register(ProviderSpec(type="tok", default_base_url="tok://x", needs_keys=False, credentials=factory))

    @hookimpl
    def transform_request(
        self, provider: Provider, model: str, request: ChatRequest, api_key: str
    ) -> UpstreamRequest | None:
        if provider.type != "tok":
            return None
        ok = self.issuer.valid(api_key)
        self.used.append(api_key)
        if not ok:
            self.bad.append(api_key)

        echo = request.model == "echo-token"

        async def local() -> UpstreamResponse:
            if echo:  # a hostile upstream quoting the credential it was sent
                return UpstreamResponse(status=400, body=f"bad request for token {api_key}!".encode())
            if not ok:
                return UpstreamResponse(status=401, body=b"expired token")
            body = chat_completion(
                model=model,
                choices=[
                    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                ],
                usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
            )
            return UpstreamResponse(status=200, body=body)

        return UpstreamRequest(url="tok://x", local=local)

    @hookimpl
    def transform_response(
        self, provider: Provider, request: ChatRequest, response: UpstreamResponse
    ) -> ProviderResult | None:
        if provider.type != "tok":
            return None
        if response.status == 400:
            return ProviderResult(
                error=UpstreamError(status=400, kind="bad_request", message=response.body.decode())
            )
        if response.status >= 400:
            return ProviderResult(error=UpstreamError(status=401, kind="auth", message="expired token"))
        return ProviderResult(body=response.body)

    @hookimpl
    def parse_usage(self, provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
        return Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2) if provider.type == "tok" else None


CONFIG = """
providers:
  t:
    type: tok
    keys: [{name: a, value: sa-one}, {name: b, value: sa-two}]
models:
  m: {deployments: [{provider: t, model: x}]}
"""
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_refresh_happens_before_expiry_with_a_margin() -> None:
    assert refresh_at(0, 3600) == 3600 - 720  # 20% of an hour
    assert refresh_at(0, 200) == 200 - MIN_MARGIN  # at least a minute
    assert refresh_at(100, 130) == 100  # shorter-lived than the margin: at once
    assert math.isinf(refresh_at(0, math.inf))


def test_a_credential_expiring_during_2000_requests_never_fails_one() -> None:
    issuer = Issuer()
    plugin = TokPlugin(issuer)
    with GatewayServer(CONFIG, extra_plugins=(plugin,)) as gw:

        async def run() -> list[int]:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                semaphore = asyncio.Semaphore(16)

                async def one() -> int:
                    async with semaphore:
                        response = await client.post("/v1/chat/completions", json=CHAT)
                        return response.status_code

                return await asyncio.gather(*(one() for _ in range(2000)))

        started = time.monotonic()
        statuses = asyncio.run(run())
        took = time.monotonic() - started
    assert statuses.count(200) == 2000, {s: statuses.count(s) for s in set(statuses)}
    assert plugin.bad == []
    assert sorted(issuer.seen_values) == ["sa-one", "sa-two"]  # one source per key, given its value
    lifetimes = took / LIFETIME
    refreshed = min(issuer.refreshes.values())
    assert refreshed >= 2 and refreshed >= lifetimes * 0.5, (issuer.refreshes, took)
    assert sorted(issuer.closed) == ["t:sa-one", "t:sa-two"]  # closed at shutdown


def test_a_key_whose_credential_never_came_is_skipped_and_named() -> None:
    issuer = Issuer()
    issuer.failing = {"t:sa-one", "t:sa-two"}
    logs: list[str] = []
    handle = logger.add(logs.append, level="DEBUG", format="{message} {exception}")
    with GatewayServer(CONFIG, extra_plugins=(TokPlugin(issuer),)) as gw:
        refused = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=10)
        assert gw.gateway is not None
        shown = gw.gateway.health.key("t", "a").state(gw.gateway.clock())
        issuer.failing.discard("t:sa-two")  # the token endpoint is back for one key
        deadline = time.monotonic() + 10
        served = refused
        while time.monotonic() < deadline:
            served = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=10)
            if served.status_code == 200:
                break
            time.sleep(0.2)
    logger.remove(handle)
    assert any("credential refresh failed (ConnectionError)" in line for line in logs)  # the type only
    assert refused.status_code == 503, refused.text
    assert "credential is not ready" in refused.json()["error"]["message"]
    assert shown == "credential"  # the admin API, the console and truckllm_key_state say so
    assert "secret-value-123" not in refused.text and "secret-value-123" not in "".join(logs)
    assert served.status_code == 200


def test_a_reload_keeps_unchanged_sources_and_closes_removed_ones() -> None:
    issuer = Issuer()
    with GatewayServer(CONFIG, extra_plugins=(TokPlugin(issuer),)) as gw:
        assert gw.gateway is not None
        before = dict(issuer.refreshes)
        fewer = CONFIG.replace(", {name: b, value: sa-two}", "")
        gw.call(gw.gateway.apply_off_loop(fewer, persist=False), timeout=10)
        deadline = time.monotonic() + 5
        while "t:sa-two" not in issuer.closed and time.monotonic() < deadline:
            time.sleep(0.05)
        after = dict(issuer.refreshes)
        served = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=10)
    assert issuer.closed[:1] == ["t:sa-two"]  # the removed key's source, at once
    assert issuer.seen_values == ["sa-one", "sa-two"]  # the kept key's source was not made again
    assert after["t:sa-one"] >= before["t:sa-one"]
    assert served.status_code == 200


@pytest.mark.parametrize("value", ["", "sa-x"])
def test_keyless_providers_get_one_source(value: str) -> None:
    """No ``keys:`` (ambient credentials): one source, given ""; one key: its value."""
    issuer = Issuer()
    keys = f"    keys: [{{name: only, value: {value}}}]\n" if value else ""
    config = f"""
providers:
  t:
    type: tok
{keys}models:
  m: {{deployments: [{{provider: t, model: x}}]}}
"""
    plugin = TokPlugin(issuer)
    with GatewayServer(config, extra_plugins=(plugin,)) as gw:
        served = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=10)
    assert served.status_code == 200, served.text
    assert issuer.seen_values == [value]


def test_an_upstream_echoing_the_credential_it_was_sent_reaches_nobody_with_it() -> None:
    """The scrubber knows every value a credential source handed out, not only the config's."""
    issuer = Issuer()
    config = CONFIG + "  echo-token: {deployments: [{provider: t, model: x}]}\n"
    with GatewayServer(config, extra_plugins=(TokPlugin(issuer),)) as gw:
        answer = httpx.post(gw.url + "/v1/chat/completions", json=dict(CHAT, model="echo-token"), timeout=10)
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert "bad request for token" in message and "tok-" not in message, message


def test_a_credential_error_message_is_logged_other_messages_are_not() -> None:
    """A plugin raising ``CredentialError`` chose a message free of secrets: operators see it."""

    class Refused(TokenSource):
        async def refresh(self) -> float:
            raise CredentialError("the token endpoint said invalid_grant")

    class RefusedPlugin(TokPlugin):
        @hookimpl
        def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
            def factory(provider: Provider, value: str) -> TokenSource:
                return Refused(self.issuer, value)

            register(
                ProviderSpec(type="tok", default_base_url="tok://x", needs_keys=False, credentials=factory)
            )

    logs: list[str] = []
    handle = logger.add(logs.append, level="WARNING", format="{message}")
    with GatewayServer(CONFIG, extra_plugins=(RefusedPlugin(Issuer()),)):
        pass
    logger.remove(handle)
    assert any("credential refresh failed (the token endpoint said invalid_grant)" in line for line in logs)


def test_a_reload_off_the_event_loop_starts_and_closes_sources_on_it() -> None:
    """``Gateway.reload`` may run off the loop (a test thread, an admin helper): new sources still
    start refreshing, removed ones still close."""
    issuer = Issuer()
    with GatewayServer(CONFIG, extra_plugins=(TokPlugin(issuer),)) as gw:
        assert gw.gateway is not None
        gw.gateway.reload(CONFIG.replace("{name: b, value: sa-two}", "{name: c, value: sa-three}"))
        deadline = time.monotonic() + 5
        while (
            "t:sa-three" not in issuer.refreshes or "t:sa-two" not in issuer.closed
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        served = [
            httpx.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code for _ in range(4)
        ]
    assert "t:sa-three" in issuer.refreshes and "t:sa-two" in issuer.closed
    assert served == [200] * 4


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"waited 10 s for {what}"
        time.sleep(0.02)


def _serve_until(gw: GatewayServer, check: Callable[[], bool], what: str) -> list[int]:
    """Send requests one by one until ``check`` holds; returns their statuses."""
    statuses: list[int] = []
    for _ in range(200):
        statuses.append(httpx.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code)
        if check():
            return statuses
    raise AssertionError(f"200 requests and still not {what}")


def test_a_revoked_credential_is_refreshed_at_once_and_no_request_fails() -> None:
    """A token the provider stops taking long before its expiry (revoked, rotated): its 401 fails
    over to the other key, its key is out of selection until a fresh token comes, fetched at once
    (not at the next scheduled refresh, an hour away), and then serves again; not disabled."""
    issuer = Issuer(lifetime=3600)
    plugin = TokPlugin(issuer)
    with GatewayServer(CONFIG, extra_plugins=(plugin,)) as gw:
        assert gw.gateway is not None
        state = gw.gateway.health.key("t", "a")
        issuer.revoke("tok-t:sa-one-1")
        first = _serve_until(gw, lambda: "tok-t:sa-one-1" in plugin.bad, "the revoked token tried")
        _until(lambda: issuer.refreshes["t:sa-one"] == 2 and not state.credential_refused, "the fresh token")
        then = _serve_until(gw, lambda: "tok-t:sa-one-2" in plugin.used, "the fresh token used")
        disabled = state.disabled
    assert set(first + then) == {200}  # the refused attempt failed over within its request
    assert plugin.bad == ["tok-t:sa-one-1"]
    assert issuer.refreshes == {"t:sa-one": 2, "t:sa-two": 1}  # one refresh, for the refused key
    assert disabled == ""


@pytest.mark.parametrize(
    ("lifetime", "refused", "refreshes"),
    [
        # its service account lost the role: one refresh at the first 401, disabled at the second
        (3600, ["tok-t:sa-one-1", "tok-t:sa-one-2"], 2),
        # a static credential (expiry inf) cannot be fixed by fetching it again: disabled at once
        (math.inf, ["tok-t:sa-one-1"], 1),
    ],
    ids=["expiring", "static"],
)
def test_a_credential_refused_every_time_disables_its_key_without_a_refresh_storm(
    lifetime: float, refused: list[str], refreshes: int
) -> None:
    """Every token of the key is refused: the key is disabled like any refused key after at most
    one refresh (none for a credential that never expires), and stays so; no client error."""
    issuer = Issuer(lifetime=lifetime)
    issuer.refusing = {"t:sa-one"}
    plugin = TokPlugin(issuer)
    with GatewayServer(CONFIG, extra_plugins=(plugin,)) as gw:
        assert gw.gateway is not None
        state = gw.gateway.health.key("t", "a")
        statuses = _serve_until(gw, lambda: bool(state.disabled), "the key disabled")
        statuses += [
            httpx.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code for _ in range(10)
        ]
        counted = dict(issuer.refreshes)
    assert set(statuses) == {200}
    assert plugin.bad == refused
    assert counted == {"t:sa-one": refreshes, "t:sa-two": 1}


def test_refused_state_machine_an_earlier_value_a_fresh_one_and_a_refused_fresh_one() -> None:
    """``Credentials.refused`` on its own: a 401 from an attempt that carried a value replaced
    since changes nothing; one on the current value starts one refresh (however many 401s come
    while it runs); one on the value that refresh fetched is the credential's: ``False``, unless
    that value is over a minute old."""
    issuer = Issuer(lifetime=3600)

    async def scenario() -> list[object]:
        creds = Credentials(time.monotonic, time.time, asyncio.sleep, random.Random(1))
        source = TokenSource(issuer, "w")
        entry = _Entry(provider="p", key="k", signature="", source=source)
        creds.entries[("p", "k")] = entry
        creds._begin(entry)
        await entry.first.wait()
        seen: list[object] = [issuer.refreshes["w"]]
        seen.append(creds.refused("p", "k", entry.published - 1))  # an earlier value's 401
        await asyncio.sleep(0.05)
        seen.append(issuer.refreshes["w"])
        seen.append([creds.refused("p", "k", time.monotonic()) for _ in range(3)])  # three 401s at once
        while entry.wanted:
            await asyncio.sleep(0.01)
        seen.append(issuer.refreshes["w"])
        seen.append(creds.refused("p", "k", time.monotonic()))  # the fresh value refused too
        entry.published -= 61  # that value served a minute: a refusal now is a new event
        seen.append(creds.refused("p", "k", time.monotonic()))
        while entry.wanted:
            await asyncio.sleep(0.01)
        seen.append(issuer.refreshes["w"])
        await creds.stop()
        return seen

    seen = asyncio.run(scenario())
    assert seen == [1, True, 1, [True, True, True], 2, False, True, 3]


def test_the_admin_api_says_which_fetched_credential_keeps_its_key_out() -> None:
    """``/admin/v1/providers``: ``credential`` is ``waiting`` for a key whose first fetch failed,
    ``ok`` for one whose token came."""
    issuer = Issuer(lifetime=3600)
    issuer.failing = {"t:sa-one"}
    config = CONFIG + "admin: {token: admin-token-for-credentials}\n"
    with GatewayServer(config, extra_plugins=(TokPlugin(issuer),)) as gw:
        shown = httpx.get(
            gw.url + "/admin/v1/providers",
            headers={"authorization": "Bearer admin-token-for-credentials"},
            timeout=10,
        ).json()
    keys = {k["name"]: k for k in shown["providers"][0]["keys"]}
    assert (keys["a"]["state"], keys["a"]["credential"]) == ("credential", "waiting")
    assert (keys["b"]["state"], keys["b"]["credential"]) == ("ok", "ok")
