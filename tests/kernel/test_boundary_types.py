"""No ``Any`` at the plugin boundary: every hook's parameters and result, every field and member of
the value types and protocols plugins receive, and everything the gateway view returns are typed."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from types import ModuleType

import msgspec
import pytest

from truckllm import dialect, hookspecs, store, types, view
from truckllm.background import Background
from truckllm.gateway import Gateway, RetryBudget
from truckllm.health import HealthRegistry
from truckllm.runtime import AliasPlan, Runtime

# names the view module imports for type checking only
LOCALS = {
    "Background": Background,
    "Gateway": Gateway,
    "RetryBudget": RetryBudget,
    "HealthRegistry": HealthRegistry,
    "AliasPlan": AliasPlan,
    "Runtime": Runtime,
}


def mentions_any(annotation: object) -> bool:
    """``annotation`` is ``Any`` or has it somewhere inside (``dict[str, Any]``, ``Any | None``...)."""
    if annotation is typing.Any:
        return True
    if isinstance(annotation, list | tuple):  # a Callable's parameter list
        return any(mentions_any(arg) for arg in annotation)
    return any(mentions_any(arg) for arg in typing.get_args(annotation))


def hints(module: ModuleType, target: object) -> dict[str, object]:
    return typing.get_type_hints(target, globalns=vars(module), localns=LOCALS)


def members(module: ModuleType, cls: type) -> Iterator[tuple[str, object]]:
    """Every annotated attribute, and every public method's and property's annotations, of ``cls``."""
    for klass in reversed(cls.__mro__):
        if klass.__module__ != module.__name__:
            continue
        yield from ((f"{cls.__name__}.{n}", h) for n, h in hints(module, klass).items())
        for name, member in vars(klass).items():
            if name.startswith("_") and name != "__call__":
                continue
            function = member.fget if isinstance(member, property) else member
            if inspect.isfunction(function):
                for arg, hint in hints(module, function).items():
                    yield f"{cls.__name__}.{name}({arg})", hint


def boundary() -> Iterator[tuple[str, object]]:
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(fn, "truckllm_spec"):
            for arg, hint in hints(hookspecs, fn).items():
                yield f"hookspecs.{name}({arg})", hint
    for module in (types, view, dialect):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type):
                yield from members(module, value)
            elif inspect.isfunction(value):
                for arg, hint in hints(module, value).items():
                    yield f"{module.__name__}.{name}({arg})", hint
    yield from members(store, store.Store)
    yield from members(store, store.CooldownPush)


BOUNDARY = list(boundary())


def test_the_boundary_is_walked() -> None:
    names = {name for name, _ in BOUNDARY}
    assert {"hookspecs.startup(app)", "Candidate.stats", "GatewayView.snapshot(return)"} <= names
    assert {"hookspecs.register_stores(register)", "InboundDialect.reframes_own"} <= names
    assert len(BOUNDARY) > 200


def test_no_any_at_the_plugin_boundary() -> None:
    untyped = [name for name, hint in BOUNDARY if mentions_any(hint)]
    # the store protocol's readiness details are free-form by design (any JSON for the admin API)
    assert untyped == ["Store.ready(return)"]


@pytest.mark.parametrize(
    "annotation, expected",
    [
        (int, False),
        (typing.Any, True),
        (dict[str, typing.Any], True),
        (typing.Optional[typing.Any], True),  # noqa: UP045
        (Callable[[str, type[typing.Any]], None], True),
        (Callable[..., object], False),
        (tuple[msgspec.Struct, ...], False),
    ],
)
def test_mentions_any(annotation: object, expected: bool) -> None:
    assert mentions_any(annotation) is expected
