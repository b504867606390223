"""The request-path dispatcher: the plugin that registered a type answers first, whatever happened
before, with or without tracing; a type or strategy has one owner, checked at start-up."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loguru import logger

from truckllm import hookimpl
from truckllm._internal.plugins import PluginHost, make_plugin_manager
from truckllm.errors import StartupError
from truckllm.types import Candidate, ProviderSpec, SelectionContext, StrategySpec

TYPE = "t"


class Provider:
    """A plugin implementing ``transform_request`` (answering ``answer`` for ``TYPE``, or ``None``
    when ``answer`` is ``None`` or the model is not in ``models``); it registers ``TYPE`` when
    ``owns``."""

    def __init__(self, name: str, answer: str | None, owns: bool = False, models: set[str] | None = None):
        self.__name__ = name
        self.answer = answer
        self.owns = owns
        self.models = models
        self.calls = 0

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        if self.owns:
            register(ProviderSpec(type=TYPE))

    @hookimpl
    def transform_request(self, provider: Any, model: str) -> str | None:
        self.calls += 1
        if provider.type != TYPE or (self.models is not None and model not in self.models):
            return None
        return self.answer


class P:
    """Just enough of a ``Provider`` for the hooks above."""

    type = TYPE


def host_of(*plugins: object) -> PluginHost:
    return make_plugin_manager(extra=plugins, autoload=False)


def ask(host: PluginHost, model: str = "m") -> object:
    return host.dispatch.call("transform_request", TYPE, provider=P(), model=model, request=None, api_key="")


def pluggy_order(plugins: tuple[Provider, ...], model: str = "m") -> str | None:
    """What the contract says: the owner's answer, else the first answer in pluggy's order (the
    last registered is asked first)."""
    owner = [p for p in plugins if p.owns]
    for plugin in owner + [p for p in reversed(plugins) if not p.owns]:
        if plugin.answer is not None and (plugin.models is None or model in plugin.models):
            return plugin.answer
    return None


@pytest.fixture(params=[False, True], ids=["plain", "traced"])
def traced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Runs each test without and with ``TRUCKLLM_TRACE_PLUGINS``; yields the debug lines logged."""
    lines: list[str] = []
    if request.param:
        monkeypatch.setenv("TRUCKLLM_TRACE_PLUGINS", "1")
    else:
        monkeypatch.delenv("TRUCKLLM_TRACE_PLUGINS", raising=False)
    handle = logger.add(lambda message: lines.append(message.rstrip("\n")), level="DEBUG", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(handle)


ANSWERS = (None, "a", "b")


@pytest.mark.parametrize(
    "owner_answer, others",
    [(o, rest) for o in ANSWERS for n in range(3) for rest in itertools.product(ANSWERS, repeat=n)],
)
def test_every_combination_answers_as_the_contract_says(
    owner_answer: str | None, others: tuple[str | None, ...], traced: list[str]
) -> None:
    """Every owner answer x up to two other plugins' answers, owner registered first or last."""
    for owner_first in (True, False):
        owner = Provider("owner", owner_answer, owns=True)
        rest = [Provider(f"other-{i}", answer) for i, answer in enumerate(others)]
        plugins = (owner, *rest) if owner_first else (*rest, owner)
        host = host_of(*plugins)
        expected = pluggy_order(plugins)
        assert [ask(host) for _ in range(3)] == [expected] * 3
        # the owner is asked once per call; the others, in pluggy's order, until one answers
        asked, answered = {"owner"}, owner_answer is not None
        for plugin in reversed(rest):
            if not answered:
                asked.add(plugin.__name__)
                answered = plugin.answer is not None
        assert {p.__name__: p.calls for p in plugins} == {
            p.__name__: 3 if p.__name__ in asked else 0 for p in plugins
        }


def test_the_answer_never_depends_on_earlier_calls(traced: list[str]) -> None:
    """A plugin answering for some models only (asked first by pluggy too): the old per-type cache
    remembered whoever answered the first call and asked it first afterwards, so a ``plain`` call
    first made every later ``special`` one go to the fallback. Routes now come from registration
    alone."""
    choosy = Provider("choosy-owner", "owner", owns=True, models={"special"})
    fallback = Provider("fallback", "fallback")
    for models in (["plain", "special", "plain", "special"], ["special", "plain", "special", "plain"]):
        host = host_of(fallback, choosy)
        got = [ask(host, model) for model in models]
        assert got == [pluggy_order((fallback, choosy), model) for model in models]
        assert got == ["owner" if m == "special" else "fallback" for m in models]


def test_tracing_logs_each_call_and_changes_no_route(traced: list[str]) -> None:
    owner, other = Provider("owner", "mine", owns=True), Provider("other", "theirs")
    host = host_of(owner, other)
    assert ask(host) == "mine" and other.calls == 0
    traced_lines = [line for line in traced if line.startswith("hook transform_request")]
    if host.dispatch.trace:
        assert traced_lines == ["hook transform_request for 't' -> owner"]
    else:
        assert traced_lines == []


def test_fan_out_hooks_are_logged_when_tracing(traced: list[str]) -> None:
    seen: list[str] = []

    class Logger:
        __name__ = "a-logger"

        @hookimpl
        def emit_log(self, record: Any) -> None:
            seen.append(record)

    host = host_of(Logger())
    for name, function, argnames in host.dispatch.each("emit_log"):
        assert name == "a-logger" and argnames == ("record",)
        function("r")
    assert seen == ["r"]
    assert ("hook emit_log -> a-logger" in traced) is host.dispatch.trace


class Strategy:
    """Registers strategy ``name`` when ``owns``; orders candidates as ``order`` says."""

    def __init__(self, name: str, order: str | None, owns: bool) -> None:
        self.__name__ = f"strategy-{name}-{order}"
        self.name, self.order, self.owns = name, order, owns

    @hookimpl
    def register_strategies(self, register: Callable[[StrategySpec], None]) -> None:
        if self.owns:
            register(StrategySpec(name=self.name))

    @hookimpl
    def select_provider(self, strategy: str, candidates: list[Candidate]) -> list[Candidate] | None:
        if strategy != self.name or self.order is None:
            return None
        return list(reversed(candidates)) if self.order == "reversed" else list(candidates)


def test_select_provider_goes_to_the_plugin_that_registered_the_strategy(traced: list[str]) -> None:
    owner, other = Strategy("s", "reversed", owns=True), Strategy("s", "same", owns=False)
    host = host_of(owner, other)
    context = SelectionContext(alias="a", now=0.0, random=None, state={})  # type: ignore[arg-type]
    cands: list[Any] = [1, 2, 3]
    kwargs = {"strategy": "s", "candidates": cands, "context": context}
    ordered: object = host.dispatch.call("select_provider", "s", **kwargs)
    assert ordered == [3, 2, 1]
    # ``first`` belongs to the kernel's defaults, asked first although registered before the others
    first: object = host.dispatch.call("select_provider", "first", **{**kwargs, "strategy": "first"})
    assert first == [1, 2, 3]


class Twice:
    def __init__(self, name: str) -> None:
        self.__name__ = name

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        register(ProviderSpec(type="shared"))


def test_a_type_registered_by_two_plugins_stops_startup_naming_both() -> None:
    with pytest.raises(StartupError) as info:
        host_of(Twice("first-plugin"), Twice("second-plugin"))
    message = str(info.value)
    assert "'shared' is registered twice" in message
    assert "'first-plugin'" in message and "'second-plugin'" in message


class Wrapper:
    __name__ = "wrapper"

    def __init__(self) -> None:
        self.wrapped = 0

    @hookimpl(wrapper=True)
    def transform_request(self) -> Iterator[None]:
        self.wrapped += 1
        return (yield)


def test_a_hook_with_a_wrapper_goes_through_pluggy(traced: list[str]) -> None:
    owner, wrapper = Provider("owner", "mine", owns=True), Wrapper()
    host = host_of(owner, wrapper)
    assert host.dispatch.route("transform_request", TYPE) is None
    assert ask(host) == "mine" and wrapper.wrapped == 1


def test_routes_are_rebuilt_after_clear() -> None:
    owner = Provider("owner", "mine", owns=True)
    host = host_of(owner)
    assert ask(host) == "mine"
    late = Provider("late", "late")
    host.pm.register(late, name="late")
    host.dispatch.clear()
    route = host.dispatch.route("transform_request", TYPE)
    assert route is not None and [name for name, _, _ in route] == ["owner", "late"]
