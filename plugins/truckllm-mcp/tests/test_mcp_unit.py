"""The MCP gateway's parts on their own: names, options, access rules, scrubbing, listings
(collisions, bad names, bounds, endless pagination), the supervisor's backoff, the metrics."""

from __future__ import annotations

import asyncio
import string
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from truckllm_mcp.access import grant_for
from truckllm_mcp.metrics import CallMetrics, prometheus_text
from truckllm_mcp.names import MAX_NAME, namespaced, split
from truckllm_mcp.options import SERVER_NAME, AccessRule, McpOptions
from truckllm_mcp.secrets import MIN_FRAGMENT, SecretText
from truckllm_mcp.upstream import MAX_PAGES, Upstream, json_depth

from truckllm._internal.config.loader import decode_options
from truckllm.kit.options import REDACTED, Secret
from truckllm.kit.web import GatewayCaller

server_names = st.from_regex(SERVER_NAME, fullmatch=True)
tool_names = st.text(alphabet=string.ascii_letters + string.digits + "_.-", min_size=1, max_size=90)


# --- names -----------------------------------------------------------------------------------------


@given(server=server_names, name=tool_names)
def test_a_namespaced_name_splits_back_into_its_server_and_name(server: str, name: str) -> None:
    full = namespaced(server, name)
    if len(server) + 2 + len(name) > MAX_NAME:
        assert full is None
        return
    assert full is not None and len(full) <= MAX_NAME
    assert split(full) == (server, name)  # even when the name itself holds "__"


@pytest.mark.parametrize("name", ["", "bad name", "é", "a/b", "x" * 129, "tool\n", "a:b", "😀"])
def test_names_breaking_mcps_rules_are_refused(name: str) -> None:
    assert namespaced("srv", name) is None


@pytest.mark.parametrize("full", ["plain", "__tool", "srv__", ""])
def test_a_name_without_a_server_is_not_namespaced(full: str) -> None:
    assert split(full) is None


@pytest.mark.parametrize("name", ["a__b", "A", "-a", "a-", "a_b", "a" * 33, "a.b", "", "a\n"])
def test_server_names_that_would_make_names_ambiguous_are_refused(name: str) -> None:
    assert not SERVER_NAME.fullmatch(name)
    with pytest.raises(msgspec.ValidationError, match="server name"):
        options({"servers": {name: {"command": "x"}}})


# --- options -----------------------------------------------------------------------------------------


def options(raw: dict[str, Any]) -> McpOptions:
    decoded: McpOptions = decode_options(raw, McpOptions)
    return decoded


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"servers": {"a": {}}}, "either url"),
        ({"servers": {"a": {"url": "http://x/mcp", "command": "x"}}}, "either url"),
        ({"servers": {"a": {"url": "ftp://x/mcp"}}}, "http"),
        ({"servers": {"a": {"url": "http://u:p@x/mcp"}}}, "credentials"),
        ({"servers": {"a": {"url": "http://x/mcp", "env": {"A": "b"}}}}, "stdio"),
        ({"servers": {"a": {"command": "x", "headers": {"A": "b"}}}}, "streamable-HTTP"),
        ({"servers": {"a": {"url": "http://x/mcp", "headers": {"bad header": "b"}}}}, "header name"),
        ({"servers": {"a": {"command": "  "}}}, "empty"),
        ({"servers": {"a": {"command": "x", "timeout": "0s"}}}, "positive"),
        ({"servers": {"a__b": {"command": "x"}}}, "server name"),
        ({"servers": {"A": {"command": "x"}}}, "server name"),
        ({"servers": {"a": {"command": "x"}}, "access": [{"servers": ["a"]}]}, "keys"),
        (
            {"servers": {"a": {"command": "x"}}, "access": [{"keys": ["k"], "servers": ["b"]}]},
            "unknown server",
        ),
        ({"servers": {"a": {"command": "x"}}, "access": [{"keys": ["k"], "tools": []}]}, "empty"),
        ({"servers": {"a": {"command": "x"}}, "backoff_base": "2s", "backoff_max": "1s"}, "backoff_max"),
        ({"servers": {"a": {"command": "x"}}, "max_result_bytes": 0}, ">= 1"),
        ({"servers": {"a": {"command": "x"}}, "nonsense": 1}, "nonsense"),
    ],
)
def test_bad_options_are_refused_saying_why(raw: dict[str, Any], why: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=why):
        options(raw)


def test_credentials_are_secrets() -> None:
    parsed = options(
        {
            "servers": {
                "h": {
                    "url": "https://mcp.example.com/mcp",
                    "headers": {"Authorization": "Bearer abcdefgh12345"},
                },
                "s": {"command": "srv", "env": {"TOKEN": "s3cr3t-v4lue"}},
            }
        }
    )
    header = parsed.servers["h"].headers["Authorization"]
    assert (
        isinstance(header, Secret) and str(header) == REDACTED and header.reveal() == "Bearer abcdefgh12345"
    )
    assert parsed.servers["s"].env["TOKEN"].reveal() == "s3cr3t-v4lue"
    assert "abcdefgh" not in repr(parsed) and "s3cr3t" not in repr(parsed)
    assert parsed.servers["h"].transport == "http" and parsed.servers["s"].transport == "stdio"


# --- access -------------------------------------------------------------------------------------------

RULES = (
    AccessRule(keys=("dev",), servers=("*",)),
    AccessRule(teams=("search",), servers=("github",), tools=("github__search_*",)),
    AccessRule(keys=("ops",), servers=("files", "github"), tools=("files__read_*",)),
)


@pytest.mark.parametrize(
    ("caller", "server", "tool", "allowed"),
    [
        (GatewayCaller(name="dev"), "github", "github__delete_repo", True),
        (GatewayCaller(name="dev"), "files", "files__write", True),
        (GatewayCaller(name="x", team="search"), "github", "github__search_code", True),
        (GatewayCaller(name="x", team="search"), "github", "github__delete_repo", False),
        (GatewayCaller(name="x", team="search"), "files", "files__read_file", False),
        (GatewayCaller(name="ops"), "files", "files__read_file", True),
        (GatewayCaller(name="ops"), "github", "github__search_code", False),
        (GatewayCaller(name="ops"), "files", "files__write", False),
        (GatewayCaller(name="stranger"), "github", "github__search_code", False),
        (GatewayCaller(name=None), "github", "github__search_code", False),  # the open gateway
        (GatewayCaller(name="x", team="other"), "github", "github__search_code", False),
        (None, "github", "github__search_code", False),
    ],
)
def test_access_rules(caller: GatewayCaller | None, server: str, tool: str, allowed: bool) -> None:
    assert grant_for(RULES, caller).tool(server, tool) is allowed


def test_nothing_is_allowed_without_a_rule_and_star_means_every_caller() -> None:
    assert not grant_for((), GatewayCaller(name="dev")).anything
    everyone = (AccessRule(keys=("*",), servers=("github",)),)
    assert grant_for(everyone, GatewayCaller(name=None)).tool("github", "github__x")
    assert not grant_for(everyone, GatewayCaller(name="k")).server("files")


# --- scrubbing ------------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    secret=st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=MIN_FRAGMENT, max_size=60),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    start=st.integers(min_value=0, max_value=60),
    length=st.integers(min_value=MIN_FRAGMENT, max_value=60),
)
def test_a_held_secret_leaves_no_fragment(
    secret: str, before: str, after: str, start: int, length: int
) -> None:
    piece = secret[start : start + length]
    scrub = SecretText([Secret(secret)])
    for text in (before + secret + after, before + piece + after):
        out = scrub(text)
        windows = {secret[i : i + MIN_FRAGMENT] for i in range(len(secret) - MIN_FRAGMENT + 1)}
        assert not any(w in out for w in windows if w not in before + after), (text, out)


def test_nothing_held_changes_nothing() -> None:
    assert SecretText([])("anything at all") == "anything at all"
    assert SecretText([Secret("abc")])("abc") == "abc"  # too short to be told from text


# --- listings -------------------------------------------------------------------------------------------


@dataclass
class FakeClient:
    """What :meth:`Upstream._list` reads of an SDK client."""

    tools: list[types.Tool]
    endless: bool = False
    server_capabilities: types.ServerCapabilities = field(
        default_factory=lambda: types.ServerCapabilities(tools=types.ToolsCapability())
    )
    pages: int = 0

    async def list_tools(self, cursor: str | None = None) -> types.ListToolsResult:
        self.pages += 1
        return types.ListToolsResult(tools=self.tools, next_cursor="again" if self.endless else None)


def tool(name: str, schema: dict[str, Any] | None = None, description: str = "d") -> types.Tool:
    return types.Tool(name=name, description=description, input_schema=schema or {"type": "object"})


def upstream(**settings: Any) -> Upstream:
    opts = options({"servers": {"srv": {"url": "http://127.0.0.1:1/mcp"}}, **settings})
    return Upstream("srv", opts.servers["srv"], opts, lambda text: text)


async def test_a_listing_keeps_valid_unique_bounded_tools() -> None:
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"x": deep}}
    tools = [
        tool("b"),
        tool("a", description="x" * 100_000),
        tool("b", description="a second b"),  # the same name twice: the first kept
        tool("bad name"),
        tool("deep", deep),
        tool("n" * 130),
    ]
    listing = await upstream()._list(FakeClient(tools))  # type: ignore[arg-type]
    assert sorted(listing.tools) == ["srv__a", "srv__b"]
    assert listing.tools["srv__b"].description == "d"
    assert (
        listing.tools["srv__a"].name == "srv__a"
        and len(listing.tools["srv__a"].description or "") <= 16 * 1024
    )
    assert listing.skipped == 4


async def test_a_listing_is_capped_and_an_endless_cursor_stops() -> None:
    client = FakeClient([tool(f"t{i}") for i in range(30)], endless=True)
    listing = await upstream(max_items=25)._list(client)  # type: ignore[arg-type]
    assert len(listing.tools) == 25 and client.pages <= MAX_PAGES
    client = FakeClient([tool("t")], endless=True)
    await upstream()._list(client)  # type: ignore[arg-type]
    assert client.pages == MAX_PAGES


@pytest.mark.parametrize(
    ("value", "depth"), [(1, 0), ([], 0), ([1], 1), ({"a": [{"b": 1}]}, 3), ([[[[]]]], 3)]
)
def test_json_depth(value: object, depth: int) -> None:
    assert json_depth(value) == depth


# --- the supervisor --------------------------------------------------------------------------------------


async def test_a_server_that_keeps_failing_is_retried_with_doubling_backoff() -> None:
    waits: list[float] = []
    reached = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= 6:
            reached.set()
            await asyncio.Event().wait()  # parked until stopped
        await asyncio.sleep(0)

    opts = options(
        {
            "servers": {"srv": {"url": "http://127.0.0.1:1/mcp", "headers": {"X-Key": "held-secret-123456"}}},
            "backoff_base": "1s",
            "backoff_max": "5s",
        }
    )
    up = Upstream("srv", opts.servers["srv"], opts, lambda text: text, sleep=sleep)

    async def refuse(stack: Any) -> Any:
        raise ConnectionRefusedError("refused, key held-secret-123456")

    up._connect = refuse  # type: ignore[method-assign]
    up.start()
    await asyncio.wait_for(reached.wait(), 5)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert up.state == "down" and up.failures == 6 and up.settled.is_set()
    assert up.error is not None and "held-secret" not in up.error and "ConnectionRefusedError" in up.error
    await up.stop()
    state: str = up.state
    assert state == "stopped"


# --- metrics ---------------------------------------------------------------------------------------------


def test_the_metrics_are_valid_prometheus_text() -> None:
    calls = CallMetrics()
    calls.observe("srv", 'we"ird\\tool', "ok", 0.25)
    calls.observe("srv", "t", "unavailable", None)
    text = prometheus_text(calls, {"srv": upstream()}).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == {
        "truckllm_mcp_server_up",
        "truckllm_mcp_server_tools",
        "truckllm_mcp_server_failures",
        "truckllm_mcp_server_list_changed",
        "truckllm_mcp_tool_calls",
        "truckllm_mcp_tool_call_seconds",
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in families["truckllm_mcp_tool_calls"].samples
    }
    assert (
        samples[
            (
                "truckllm_mcp_tool_calls_total",
                (("outcome", "ok"), ("server", "srv"), ("tool", 'we"ird\\tool')),
            )
        ]
        == 1
    )
    assert calls.figures({"srv": upstream()})["tool_calls_unavailable"] == 1.0
