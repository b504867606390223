"""An ``async def`` implementation of a hook the kernel calls synchronously is refused at load
(issue 13, finding 10).

Rule: for every hook whose spec does not return an awaitable (the request-path hooks and the
registration hooks), a coroutine or async-generator implementation makes its plugin fail to load,
listed as failed with a message naming the plugin and the hook; the hooks that may be async load.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from truckllm import hookimpl, hookspecs
from truckllm._internal.plugins import list_plugins, make_plugin_manager

HOOKS = sorted(name for name, f in vars(hookspecs).items() if callable(f) and hasattr(f, "truckllm_spec"))
MAY_BE_ASYNC = {"store_usage", "emit_log", "emit_alert", "startup", "shutdown", "cache_lookup", "cache_store"}


def plugin_with(hook: str, kind: str) -> Any:
    """A plugin object implementing ``hook`` as ``kind`` (sync, async, async generator)."""
    args = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    prefix = "" if kind == "sync" else "async "
    body = "        yield None" if kind == "asyncgen" else "        return None"
    source = f"class P:\n    __name__ = 'bad-{hook}'\n    {prefix}def {hook}(self, {args}):\n{body}\n"
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    cls = namespace["P"]
    setattr(cls, hook, hookimpl(getattr(cls, hook)))
    return cls()


def test_the_hooks_that_may_be_async_are_those_whose_spec_returns_an_awaitable() -> None:
    assert set(HOOKS) >= MAY_BE_ASYNC | {"transform_request", "select_provider", "register_providers"}
    for hook in HOOKS:
        returns = str(getattr(hookspecs, hook).__annotations__.get("return"))
        assert ("Awaitable" in returns) is (hook in MAY_BE_ASYNC), hook


@pytest.mark.parametrize("kind", ["async", "asyncgen"])
@pytest.mark.parametrize("hook", HOOKS)
def test_an_async_implementation_of_a_synchronous_hook_is_refused(hook: str, kind: str) -> None:
    plugin = plugin_with(hook, kind)
    host = make_plugin_manager(extra=[plugin], autoload=False)
    rows = {row["entry_point"] or row["name"]: row for row in list_plugins(host)}
    if hook in MAY_BE_ASYNC and kind == "async":
        assert host.failures == [] and rows[f"bad-{hook}"]["status"] == "loaded"
        return
    [failure] = host.failures
    assert failure.name == f"bad-{hook}"
    assert hook in failure.error and "async" in failure.error
    assert rows[f"bad-{hook}"]["status"] == "failed"
    assert not host.pm.is_registered(plugin)  # never called: no request fails because of it


@pytest.mark.parametrize("hook", HOOKS)
def test_a_synchronous_implementation_loads(hook: str) -> None:
    host = make_plugin_manager(extra=[plugin_with(hook, "sync")], autoload=False)
    assert host.failures == []


def test_the_other_plugins_still_load() -> None:
    """The refused plugin is listed as failed; the rest of the plugins are untouched."""
    host = make_plugin_manager(extra=[plugin_with("transform_request", "async")])
    assert "openai" in host.providers and "mock" in host.providers
    [failure] = host.failures
    assert failure.name == "bad-transform_request" and "transform_request" in failure.error
