"""No ``Any`` at the plugin boundary: every hook's parameters and result, every field and member of
the value types and protocols plugins receive, and everything the gateway view returns are typed."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType

import msgspec
import pytest

from truckllm import hookspecs, types
from truckllm._internal import dialect, store, view
from truckllm._internal.background import Background
from truckllm._internal.gateway import Gateway, RetryBudget
from truckllm._internal.health import HealthRegistry
from truckllm._internal.runtime import AliasPlan, Runtime
from truckllm.errors import GatewayError

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


class _Methods:
    """Just enough of an inbound dialect's methods for registration."""

    __slots__ = ()

    def credentials(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        return None

    def parse(
        self,
        route: dialect.DialectRoute,
        body: bytes,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> types.ChatRequest:
        raise NotImplementedError

    def response(self, request: types.ChatRequest, body: bytes, source: str) -> bytes:
        return body

    def stream(self, request: types.ChatRequest, source: str) -> dialect.FrameTranslator:
        raise NotImplementedError

    def stream_content_type(self, request: types.ChatRequest) -> str:
        return "text/plain"

    def error_body(self, error: GatewayError) -> bytes:
        return b""

    def stream_error(self, error: GatewayError) -> bytes:
        return b""


class _Dialect(_Methods):
    """An inbound dialect without ``reframes_own``."""

    name = "plain"
    routes = ()


class _Slotted(_Methods):
    """The same, whose objects take no new attribute."""

    __slots__ = ()
    name = "slotted"
    routes = ()


class _Says(_Dialect):
    name = "says"
    reframes_own = "yes"


class _Reframing(_Methods, dialect.InboundDialect):
    """Subclasses the protocol: inherits its default, overrides it."""

    name = "reframing"
    routes = ()
    reframes_own = True


def _registered(obj: object) -> tuple[dict[str, dialect.InboundDialect], list[str]]:
    from truckllm import hookimpl
    from truckllm._internal.plugins import make_plugin_manager

    class Plugin:
        __name__ = f"dialect-{type(obj).__name__}"

        @hookimpl
        def register_dialects(self, register: Callable[[object], None]) -> None:
            register(obj)

    host = make_plugin_manager(extra=[Plugin()], autoload=False)
    return host.dialects, [f.error for f in host.failures]


def test_a_dialect_that_leaves_out_reframes_own_gets_the_default() -> None:
    dialects, failures = _registered(_Dialect())
    assert not failures and dialects["plain"].reframes_own is False
    assert isinstance(dialects["plain"], dialect.InboundDialect)
    dialects, failures = _registered(_Reframing())
    assert not failures and dialects["reframing"].reframes_own is True
    assert dialect.InboundDialect.reframes_own is False


@pytest.mark.parametrize(
    "obj, message",
    [
        (_Slotted(), "declares reframes_own (or subclasses truckllm.kit.dialect.InboundDialect)"),
        (_Says(), "reframes_own is a bool"),
        (object(), "register() takes an InboundDialect object"),
    ],
    ids=["slotted, without it", "not a bool", "not a dialect"],
)
def test_a_dialect_the_kernel_cannot_read_is_refused_at_registration(obj: object, message: str) -> None:
    dialects, failures = _registered(obj)
    assert not dialects.keys() - {"openai"}
    (failure,) = failures
    assert "register_dialects raised TypeError" in failure and message in failure
