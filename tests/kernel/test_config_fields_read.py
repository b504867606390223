"""Every config field is read by something (issue 13, finding 8: ``server.max_in_flight`` and
``providers.<n>.keys[].max_in_flight`` were documented and never read).

Rule: every field of every struct of the config schema (walked recursively from ``Config``) is
read, as an attribute or through ``getattr(..., "<name>")``, somewhere in the kernel or a plugin
outside the schema module (a name several structs share: in a file that also names the struct or
where it sits, see :func:`unread`); every field of every installed plugin's ``Options`` is read in that
plugin's package or the kernel library it builds on. A field read only generically (through
``__struct_fields__``...) must be listed in ``READ_GENERICALLY`` with the reason.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest

from truckllm._internal.config.schema import Config
from truckllm._internal.plugins import make_plugin_manager

REPO = Path(__file__).resolve().parents[2]
KERNEL = REPO / "core" / "truckllm"
SCHEMA = KERNEL / "config" / "schema.py"

READ_GENERICALLY: dict[tuple[str, str], str] = {
    # (struct, field): why no code names it. Empty today: every field is read by name.
}
OVERRIDE = "Override"
"""``<X>Override`` structs (a partial routing block) are applied field by field onto ``<X>Config`` by
``merge_routing`` (through ``__struct_fields__``): each of their fields must be a field of
``<X>Config``, which is then read by name."""

Index = dict[Path, frozenset[str]]


@cache
def index(*folders: Path) -> Index:
    """Per file: the attribute names it reads, the names it mentions (type annotations, classes)
    and its string constants (``getattr(x, "name")``)."""
    found: dict[Path, frozenset[str]] = {}
    for folder in folders:
        for path in folder.rglob("*.py"):
            if path == SCHEMA or "tests" in path.relative_to(folder).parts:
                continue
            names: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute):
                    names.add(node.attr)
                elif isinstance(node, ast.Name):
                    names.add(node.id)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names.add(node.value)
            found[path] = frozenset(names)
    return found


def structs(t: mi.Type, seen: dict[type, mi.StructType], parents: dict[type, set[str]], under: str) -> None:
    """Every struct type reachable from ``t``, and the field names each sits under."""
    if isinstance(t, mi.StructType):
        parents.setdefault(t.cls, set()).add(under)
        if t.cls not in seen:
            seen[t.cls] = t
            for f in t.fields:
                structs(f.type, seen, parents, f.name)
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            structs(member, seen, parents, under)
    elif isinstance(t, mi.Metadata):
        structs(t.type, seen, parents, under)
    elif isinstance(t, mi.DictType):
        structs(t.value_type, seen, parents, under)
    elif isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        structs(t.item_type, seen, parents, under)


def unread(root: type, files: Index) -> list[str]:
    """``Struct.field`` of every field under ``root`` no file reads.

    A field name used by one struct of the schema only counts as read wherever it is read; a
    name several structs share (``max_in_flight``, ``tokens``...) counts only in a file that also
    names the struct or the field it sits under (``server``, ``keys``...): otherwise reading
    ``key.max_in_flight`` would hide that ``server.max_in_flight`` is read by nothing.
    """
    seen: dict[type, mi.StructType] = {}
    parents: dict[type, set[str]] = {}
    structs(mi.type_info(root), seen, parents, root.__name__)
    owners: dict[str, int] = {}
    for t in seen.values():
        for f in t.fields:
            owners[f.name] = owners.get(f.name, 0) + 1
    by_name = {cls.__name__: t for cls, t in seen.items()}
    missing = []
    for cls, t in seen.items():
        if cls.__name__.endswith(OVERRIDE):
            target = by_name.get(cls.__name__[: -len(OVERRIDE)] + "Config")
            names = {f.name for f in target.fields} if target else set()
            missing += [f"{cls.__name__}.{f.name}" for f in t.fields if f.name not in names]
            continue
        context = parents[cls] | {cls.__name__}
        for f in t.fields:
            if (cls.__name__, f.name) in READ_GENERICALLY:
                continue
            if not any(
                f.name in names and (owners[f.name] == 1 or names & context) for names in files.values()
            ):
                missing.append(f"{cls.__name__}.{f.name}")
    return missing


def test_the_walk_reaches_every_level() -> None:
    seen: dict[type, mi.StructType] = {}
    structs(mi.type_info(Config), seen, {}, "config")
    found = {cls.__name__ for cls in seen}
    assert {
        "ServerConfig",
        "LimitsConfig",
        "ProviderKeyConfig",
        "RoutingOverride",
        "RetryBudgetOverride",
        "BudgetConfig",
        "PriceConfig",
    } <= found


def test_every_config_field_is_read_by_something() -> None:
    files = index(KERNEL, *(p for p in (REPO / "plugins").iterdir() if p.is_dir()))
    assert unread(Config, files) == []


def plugin_options() -> list[tuple[str, type]]:
    host = make_plugin_manager()
    found = [(f"provider {n}", s.options) for n, s in host.providers.items() if s.options is not None]
    found += [(f"store {n}", c.Options) for n, c in host.stores.items() if getattr(c, "Options", None)]
    found += [(f"logger {n}", c.Options) for n, c in host.loggers.items() if getattr(c, "Options", None)]
    return sorted(found, key=lambda item: item[0])


@pytest.mark.parametrize(("plugin", "options"), plugin_options())
def test_every_plugin_option_is_read_by_its_plugin(plugin: str, options: type) -> None:
    """Every field is read by the plugin that declared it: an ``Options`` extending another
    plugin's (Vertex's extend Gemini's and Anthropic's) is read there too."""
    packages = []
    for cls in options.__mro__:
        module = sys.modules.get(cls.__module__)
        path = getattr(module, "__file__", None)
        if path is None or cls.__module__.split(".")[0] == "msgspec":
            continue
        packages.append(Path(path).parent)
    assert unread(options, index(*dict.fromkeys(packages), KERNEL)) == [], plugin


class Key(msgspec.Struct):
    max_in_flight: int = 0


class Server(msgspec.Struct):
    max_in_flight: int = 0
    never_read_anywhere: int = 0


class Root(msgspec.Struct):
    server: Server
    keys: list[Key]


def test_the_check_finds_an_unread_field() -> None:
    """The check itself, on the instance of issue 13: ``max_in_flight`` read on a key only."""
    availability = frozenset({"key", "keys", "max_in_flight"})  # for k in provider.keys: k.max_in_flight
    app = frozenset({"server", "Server"})
    assert unread(Root, {Path("a.py"): availability, Path("b.py"): app}) == [
        "Server.max_in_flight",
        "Server.never_read_anywhere",
    ]
    assert unread(Root, {Path("a.py"): availability | {"server", "never_read_anywhere"}}) == []
