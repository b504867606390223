"""An upstream's ``list_changed`` lists that server again at once, not at the next ``refresh``:
a 2025-era ``notifications/*/list_changed`` (the SDK's message handler) and a 2026-era
``subscriptions/listen`` event alike. Passing ``list_changed`` on to the gateway's own clients is
not done: ``/mcp`` is stateless (no stream to push on); they see the change at their next
listing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost, ToolsListChanged
from truckllm_mcp import McpGateway
from truckllm_mcp.options import McpOptions
from truckllm_mcp.upstream import RELISTEN, Upstream

from truckllm._internal.config.loader import decode_options
from truckllm_testing.conformance import wait_for
from truckllm_testing.server import GatewayServer

from .conftest import UpstreamProcess, mcp_client

KEY = "tllm_listchanged_0123456789ab"


def upstream(refresh: str = "60s", sleeps: list[float] | None = None) -> Upstream:
    raw = {"servers": {"srv": {"url": "http://127.0.0.1:1/mcp"}}, "refresh": refresh}
    opts = decode_options(raw, McpOptions)

    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        await asyncio.sleep(0)

    return Upstream("srv", opts.servers["srv"], opts, lambda text: text, sleep=sleep)


# --- 2025 era: notifications through the SDK's message handler ------------------------------------------

NOTIFICATIONS: list[tuple[object, bool]] = [
    (types.ToolListChangedNotification(), True),
    (types.PromptListChangedNotification(), True),
    (types.ResourceListChangedNotification(), True),
    (types.ResourceUpdatedNotification(params=types.ResourceUpdatedNotificationParams(uri="a://b")), False),
    (
        types.ProgressNotification(params=types.ProgressNotificationParams(progress_token=1, progress=0.5)),
        False,
    ),
    (
        types.LoggingMessageNotification(
            params=types.LoggingMessageNotificationParams(level="info", data="x")
        ),
        False,
    ),
    (types.CancelledNotification(params=types.CancelledNotificationParams(request_id=1)), False),
    (ConnectionError("a transport fault"), False),
]


@pytest.mark.parametrize(("message", "lists"), NOTIFICATIONS, ids=lambda v: type(v).__name__)
async def test_only_list_changed_notifications_list_the_server_again(message: object, lists: bool) -> None:
    up = upstream()
    await up.on_message(message)
    assert up._kick.is_set() is lists and up.list_changes == int(lists)


# --- 2026 era: subscriptions/listen ---------------------------------------------------------------------


class FakeListening:
    """A client whose ``listen`` streams end as ``plans`` say: each plan is a number of events, then
    the stream ends (``lost`` raises SubscriptionLost after them)."""

    def __init__(
        self, caps: types.ServerCapabilities, plans: list[tuple[int, bool]], legacy: bool = False
    ) -> None:
        self.server_capabilities = caps
        self.plans = plans
        self.legacy = legacy
        self.asked: list[dict[str, bool]] = []
        self.done = asyncio.Event()

    @asynccontextmanager
    async def listen(self, **wanted: bool) -> AsyncIterator[AsyncIterator[object]]:
        if self.legacy:
            raise ListenNotSupportedError("2025-06-18")
        self.asked.append(wanted)
        if not self.plans:
            self.done.set()
            await asyncio.Event().wait()  # parked until cancelled
        events, lost = self.plans.pop(0)

        async def stream() -> AsyncIterator[object]:
            for _ in range(events):
                yield ToolsListChanged()
            if lost:
                raise SubscriptionLost("dropped")

        yield stream()


CAPS = types.ServerCapabilities(
    tools=types.ToolsCapability(list_changed=True),
    prompts=types.PromptsCapability(list_changed=False),
    resources=types.ResourcesCapability(list_changed=True),
)


async def test_listen_asks_for_what_the_server_announces_and_reopens_with_doubling_waits() -> None:
    sleeps: list[float] = []
    up = upstream(refresh="5s", sleeps=sleeps)
    client = FakeListening(CAPS, [(2, False), (0, True), (0, False), (0, False), (1, False), (0, False)])
    task = asyncio.get_running_loop().create_task(up._listen(client))  # type: ignore[arg-type]
    await asyncio.wait_for(client.done.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert client.asked[0] == {
        "tools_list_changed": True,
        "prompts_list_changed": False,
        "resources_list_changed": True,
    }
    assert up.list_changes == 3
    # after each end: RELISTEN, doubling while no event came, at most refresh; an event resets it
    assert sleeps == [RELISTEN, 2 * RELISTEN, 4 * RELISTEN, 5.0, RELISTEN, 2 * RELISTEN]


@pytest.mark.parametrize(
    ("caps", "legacy"),
    [
        (types.ServerCapabilities(tools=types.ToolsCapability(list_changed=False)), False),
        (types.ServerCapabilities(), False),
        (CAPS, True),  # a 2025-era connection: notifications come through on_message
    ],
)
async def test_no_listen_stream_when_there_is_nothing_to_follow(
    caps: types.ServerCapabilities, legacy: bool
) -> None:
    up = upstream()
    client = FakeListening(caps, [], legacy=legacy)
    await asyncio.wait_for(up._listen(client), 5)  # type: ignore[arg-type]
    assert client.asked == [] and not up._kick.is_set()


# --- end to end: a server adding a tool, the gateway's refresh an hour away -------------------------------


def test_a_tool_an_upstream_adds_is_listed_at_once(tmp_path: Path) -> None:
    grower = UpstreamProcess("grower", tmp_path / "grower.jsonl").start()
    config = {
        "providers": {"demo": {"type": "mock"}},
        "models": {"m": {"deployments": [{"provider": "demo", "model": "echo"}]}},
        "keys": [{"name": "dev", "value": KEY}],
        "loggers": [
            {
                "mcp": {
                    "servers": {"grower": {"url": grower.url}},
                    "access": [{"keys": ["dev"]}],
                    "refresh": "1h",
                }
            }
        ],
    }
    try:
        with GatewayServer(json.dumps(config), autoload=True) as gw:
            assert gw.gateway is not None
            component = gw.gateway.view.component(McpGateway)
            assert component is not None

            async def tools() -> list[str]:
                async with mcp_client(gw.url + "/mcp", KEY) as client:
                    return [t.name for t in (await client.list_tools()).tools]

            async def grow(name: str) -> Any:
                async with mcp_client(gw.url + "/mcp", KEY) as client:
                    return await client.call_tool("grower__grow", {"name": name})

            assert asyncio.run(tools()) == ["grower__grow"]
            for name in ("fresh", "later"):
                assert not asyncio.run(grow(name)).is_error
                wait_for(lambda n=name: f"grower__{n}" in asyncio.run(tools()), 20, f"{name} listed")  # type: ignore[misc]
            assert asyncio.run(tools()) == ["grower__fresh", "grower__grow", "grower__later"]
            assert component.upstreams["grower"].list_changes >= 2
            metrics = component.render_metrics().decode()
            changed = next(
                line
                for line in metrics.splitlines()
                if line.startswith("truckllm_mcp_server_list_changed_total{")
            )
            assert (
                changed.startswith('truckllm_mcp_server_list_changed_total{server="grower"} ')
                and float(changed.split()[-1]) >= 2
            )
    finally:
        grower.stop()
