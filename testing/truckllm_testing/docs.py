"""The plugin API reference, generated from :mod:`truckllm.hookspecs` and :mod:`truckllm.types`.

``docs/plugins.md`` is hand-written prose around one generated block, between the
:data:`BEGIN` and :data:`END` markers. This module renders that block from the hookspec
docstrings (so the reference cannot say something the code does not) and keeps the file current::

    python -m truckllm_testing.docs                          # print the reference
    python -m truckllm_testing.docs --write docs/plugins.md  # replace the block in the file
    python -m truckllm_testing.docs --check docs/plugins.md  # exit 1 if the block is stale

The output depends only on the kernel's source: no version, date or hash-ordered value appears in
it, so the same kernel always renders the same bytes (the test comparing them cannot flake).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from truckllm import errors, hookspecs, types
from truckllm.kit import dialect, store, view

__all__ = [
    "BEGIN",
    "END",
    "HookDoc",
    "hook_docs",
    "main",
    "render_reference",
    "replace_block",
]

BEGIN = "<!-- BEGIN GENERATED: python -m truckllm_testing.docs --write docs/plugins.md -->"
"""The line that opens the generated block in ``docs/plugins.md``."""

END = "<!-- END GENERATED -->"
"""The line that closes it."""

_SECTION = re.compile(r"^# --- (?P<title>.+?) -*$")
_FIELD = re.compile(r"^:(?P<kind>param|ivar|returns?|raises)(?: (?P<name>[\w.]+))?:\s*(?P<text>.*)$")
_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):`(?P<tilde>~?)(?P<target>[^`]+)`")
_DIRECTIVE = re.compile(r"^\.\. (?P<name>versionadded|versionchanged|deprecated)::\s*(?P<text>.*)$")
_FIRSTRESULT = "First non-None result wins."


def md(text: str) -> str:
    """Turn the reST used in kernel docstrings into Markdown: roles and double backticks."""

    def role(match: re.Match[str]) -> str:
        target = match.group("target")
        if match.group("tilde"):
            target = target.rsplit(".", 1)[-1]
        return f"`{target}`"

    text = _ROLE.sub(role, text)
    return text.replace("``", "`")


@dataclass
class HookDoc:
    """Everything the reference says about one hook, read from its spec."""

    name: str
    section: str
    signature: str
    firstresult: bool
    historic: bool
    warn_on_impl: str | None
    description: str
    params: list[tuple[str, str, str]] = field(default_factory=list)
    returns: str = ""
    return_type: str = ""
    directives: list[tuple[str, str]] = field(default_factory=list)
    lineno: int = 0


@dataclass
class _Doc:
    description: str
    fields: dict[str, dict[str, str]]
    returns: str
    directives: list[tuple[str, str]]


def _parse_docstring(doc: str) -> _Doc:
    """Split a reST docstring: description, ``:param:``/``:ivar:`` fields, returns, directives."""
    description: list[str] = []
    fields: dict[str, dict[str, str]] = {"param": {}, "ivar": {}, "raises": {}}
    returns = ""
    directives: list[tuple[str, str]] = []
    current: tuple[str, str] | None = None
    for raw in doc.splitlines():
        line = raw.strip()
        match = _FIELD.match(line)
        directive = _DIRECTIVE.match(line)
        if match:
            kind, name, text = match.group("kind"), match.group("name") or "", match.group("text")
            if kind in ("returns", "return"):
                returns = text
                current = ("returns", "")
            else:
                fields[kind][name] = text
                current = (kind, name)
        elif directive:
            directives.append((directive.group("name"), directive.group("text")))
            current = None
        elif current is not None and line and raw.startswith((" ", "\t")):
            kind, name = current
            if kind == "returns":
                returns += " " + line
            else:
                fields[kind][name] += " " + line
        else:
            current = None
            description.append(raw)
    text = "\n".join(description).replace(_FIRSTRESULT, "")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    return _Doc("\n\n".join(paragraphs), fields, returns, directives)


def _sections(module: ModuleType) -> list[tuple[int, str]]:
    """``(line, title)`` of every ``# --- title ---`` comment of a module."""
    lines, _ = inspect.getsourcelines(module)
    out = []
    for number, line in enumerate(lines, start=1):
        match = _SECTION.match(line.rstrip())
        if match:
            out.append((number, match.group("title").strip()))
    return out


def _section_of(lineno: int, sections: Sequence[tuple[int, str]]) -> str:
    title = ""
    for line, name in sections:
        if line < lineno:
            title = name
    return title


def _annotation(value: Any) -> str:
    if isinstance(value, str):
        return value
    return inspect.formatannotation(value)


def _signature(name: str, fn: Callable[..., Any]) -> tuple[str, str]:
    sig = inspect.signature(fn)
    params = [f"{p.name}: {_annotation(p.annotation)}" for p in sig.parameters.values()]
    ret = _annotation(sig.return_annotation)
    one_line = f"def {name}({', '.join(params)}) -> {ret}: ..."
    if len(one_line) <= 96:
        return one_line, ret
    inner = "".join(f"    {p},\n" for p in params)
    return f"def {name}(\n{inner}) -> {ret}: ...", ret


def hook_docs(module: ModuleType = hookspecs) -> list[HookDoc]:
    """Every hook specification of ``module``, in source order."""
    sections = _sections(module)
    docs: list[HookDoc] = []
    for name, fn in inspect.getmembers(module, inspect.isfunction):
        spec = getattr(fn, "truckllm_spec", None)
        if spec is None:
            continue
        lineno = inspect.getsourcelines(fn)[1]
        parsed = _parse_docstring(inspect.getdoc(fn) or "")
        signature, ret = _signature(name, fn)
        params = [
            (p, _annotation(fn.__annotations__.get(p, "")), parsed.fields["param"].get(p, ""))
            for p in inspect.signature(fn).parameters
        ]
        warn = spec.get("warn_on_impl")
        docs.append(
            HookDoc(
                name=name,
                section=_section_of(lineno, sections),
                signature=signature,
                firstresult=bool(spec.get("firstresult")),
                historic=bool(spec.get("historic")),
                warn_on_impl=str(warn) if warn is not None else None,
                description=parsed.description,
                params=params,
                returns=parsed.returns,
                return_type=ret,
                directives=parsed.directives,
                lineno=lineno,
            )
        )
    return sorted(docs, key=lambda d: d.lineno)


# --- value types -----------------------------------------------------------------------------------

_TYPE_NAMES = re.compile(r"\b[A-Z]\w*\b")


def _public_types() -> dict[str, type]:
    """The classes of :mod:`truckllm.types` and of the kit modules hooks name (the gateway view,
    dialects, stores)."""
    found: dict[str, type] = {}
    for module in (types, view, dialect, store):
        for name in module.__all__:
            value = getattr(module, name, None)
            if isinstance(value, type):
                found[name] = value
    return found


def _field_annotations(cls: type) -> dict[str, str]:
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, value in inspect.get_annotations(klass).items():
            if not name.startswith("_"):
                out[name] = _annotation(value)
    return out


def _member_annotations(cls: type) -> list[str]:
    """The annotations (arguments and result) of a class's public methods and properties."""
    found: list[str] = []
    for name, member in vars(cls).items():
        target = member.fget if isinstance(member, property) else member
        if not name.startswith("_") and inspect.isfunction(target):
            found += [_annotation(value) for value in target.__annotations__.values()]
    return found


def _referenced(texts: Iterable[str], known: dict[str, type]) -> list[str]:
    """Names of ``known`` types mentioned in ``texts``, closed over their own field types and
    (for protocols and classes) what their methods and properties take and return."""
    todo = [n for t in texts for n in _TYPE_NAMES.findall(t) if n in known]
    seen: list[str] = []
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        annotations = list(_field_annotations(known[name]).values())
        if not issubclass(known[name], msgspec.Struct):
            annotations += _member_annotations(known[name])
        for annotation in annotations:
            todo.extend(n for n in _TYPE_NAMES.findall(annotation) if n in known and n not in seen)
    return seen


def _default(info: msgspec.structs.FieldInfo) -> str:
    if info.default is not msgspec.NODEFAULT:
        value = info.default
        if isinstance(value, frozenset | set):
            inner = ", ".join(f'"{v}"' if isinstance(v, str) else repr(v) for v in sorted(value))
            return f"frozenset({{{inner}}})" if inner else "frozenset()"
        return repr(value)
    if info.default_factory is not msgspec.NODEFAULT:
        try:
            return repr(info.default_factory())
        except Exception:  # a factory with side effects: just name it
            return f"{getattr(info.default_factory, '__name__', 'factory')}()"
    return "required"


def _cell(text: str) -> str:
    return md(text).replace("|", "\\|").replace("\n", " ")


def _render_type(name: str, cls: type) -> list[str]:
    parsed = _parse_docstring(inspect.getdoc(cls) or "")
    out = [f"#### `{name}`", ""]
    if parsed.description:
        out += [md(parsed.description), ""]
    if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
        annotations = _field_annotations(cls)
        out += ["| field | type | default | meaning |", "|---|---|---|---|"]
        for info in msgspec.structs.fields(cls):
            if info.name.startswith("_"):
                continue
            meaning = parsed.fields["ivar"].get(info.name, "")
            out.append(
                f"| `{info.name}` | `{_cell(annotations.get(info.name, ''))}` | "
                f"`{_cell(_default(info))}` | {_cell(meaning)} |"
            )
        methods = [
            (n, m)
            for n, m in vars(cls).items()
            if not n.startswith("_") and (inspect.isfunction(m) or isinstance(m, property))
        ]
        if methods:
            out += ["", "Methods and properties:", ""]
            for method_name, member in methods:
                target = member.fget if isinstance(member, property) else member
                summary = (inspect.getdoc(target) or "").split("\n\n")[0].replace("\n", " ")
                out.append(f"- `{method_name}`: {md(summary)}")
    else:
        members = [
            (n, m)
            for n, m in vars(cls).items()
            if not n.startswith("_") and (inspect.isfunction(m) or isinstance(m, property))
        ]
        annotations = _field_annotations(cls)
        rows = [(n, annotations[n], "") for n in annotations]
        for member_name, member in members:
            target = member.fget if isinstance(member, property) else member
            summary = (inspect.getdoc(target) or "").split("\n\n")[0].replace("\n", " ")
            kind = "property" if isinstance(member, property) else "method"
            rows.append((member_name, kind, summary))
        if rows:
            out += ["| member | type | meaning |", "|---|---|---|"]
            out += [f"| `{n}` | `{_cell(t)}` | {_cell(s)} |" for n, t, s in rows]
    out.append("")
    return out


def _render_exception(cls: type) -> list[str]:
    parsed = _parse_docstring(inspect.getdoc(cls) or "")
    sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    params = [p for p in sig.parameters.values() if p.name != "self"]
    shown = ", ".join(
        f"{p.name}: {_annotation(p.annotation)}" + (f" = {p.default!r}" if p.default is not p.empty else "")
        for p in params
    )
    out = [f"#### `truckllm.errors.{cls.__name__}`", "", f"`{cls.__name__}({shown})`", ""]
    if parsed.description:
        out += [md(parsed.description), ""]
    described = [(p.name, parsed.fields["param"].get(p.name, "")) for p in params]
    described = [(n, m) for n, m in described if m]
    if described:
        out += [f"- `{n}`: {md(m)}" for n, m in described]
        out.append("")
    return out


# --- the block -------------------------------------------------------------------------------------


def _kind(doc: HookDoc) -> str:
    if doc.firstresult:
        return "first result"
    if doc.historic:
        return "historic"
    return "every implementation"


def _render_hook(doc: HookDoc) -> list[str]:
    out = [f"#### `{doc.name}`", "", "```python", "@hookimpl", doc.signature, "```", ""]
    if doc.description:
        out += [md(doc.description), ""]
    if doc.params:
        out += ["| argument | type | meaning |", "|---|---|---|"]
        out += [f"| `{p}` | `{_cell(t)}` | {_cell(text)} |" for p, t, text in doc.params]
        out.append("")
    returns = md(doc.returns).rstrip(".")
    if returns in ("", f"`{doc.return_type}`"):
        out.append(f"- **Returns** `{doc.return_type}`.")
    else:
        out.append(f"- **Returns** `{doc.return_type}`: {md(doc.returns)}")
    if doc.firstresult:
        out.append(
            "- **First non-None result wins** (`firstresult=True`): implementations are called "
            "newest-registered first until one returns something other than `None`; return `None` at "
            "once for what is not yours. Never `async def` (a coroutine is not `None`, so it would "
            "always win)."
        )
    else:
        out.append("- **Every implementation is called** (fan-out); results are not combined.")
    if doc.warn_on_impl:
        out.append(f"- **Deprecated**: implementing it warns: {md(doc.warn_on_impl)}")
    for name, text in doc.directives:
        label = {
            "versionadded": "Added in",
            "versionchanged": "Changed in",
            "deprecated": "Deprecated in",
        }[name]
        out.append(f"- **{label}** {md(text)}")
    out.append("")
    return out


def render_reference() -> str:
    """The generated block of ``docs/plugins.md`` (without the markers), ending with a newline."""
    docs = hook_docs()
    out = [
        "## Hook reference",
        "",
        f"Plugin API version: **{hookspecs.HOOKSPEC_VERSION}** "
        f"(`truckllm.hookspecs.HOOKSPEC_VERSION`; a plugin declares it with "
        f"`TRUCKLLM_API = {hookspecs.HOOKSPEC_VERSION}`).",
        "",
        *[md(" ".join(p.split())) + "\n" for p in (inspect.getdoc(hookspecs) or "").split("\n\n")],
        "An implementation is a function (or method) of the hook's name marked `@hookimpl`; it names "
        "only the arguments it uses, in any order, and pluggy passes those.",
        "",
        "| hook | called | result | since |",
        "|---|---|---|---|",
    ]
    for doc in docs:
        since = next((t for n, t in doc.directives if n == "versionadded"), "")
        when = doc.section.split(":")[0] or "-"
        out.append(f"| [`{doc.name}`](#{doc.name}) | {when} | {_kind(doc)} | {since} |")
    out.append("")
    section = None
    for doc in docs:
        if doc.section != section:
            section = doc.section
            title = section[:1].upper() + section[1:] if section else "Other hooks"
            out += [f"### {title}", ""]
        out += _render_hook(doc)
    known = _public_types()
    texts = [t for d in docs for _, t, _ in d.params] + [d.return_type for d in docs]
    names = _referenced(texts, known)
    out += [
        "### Value types",
        "",
        "The msgspec Structs and protocols the hooks take and return (`truckllm.types`; the gateway "
        "view, dialects and stores from `truckllm.kit.view`, `truckllm.kit.dialect`, `truckllm.kit.store`). "
        "Fields are only ever added, with defaults, within one API version.",
        "",
    ]
    for name in sorted(names):
        out += _render_type(name, known[name])
    out += ["### Exceptions a plugin raises", ""]
    for cls in (errors.UnsupportedRequest, errors.UpstreamFailure):
        out += _render_exception(cls)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between :data:`BEGIN` and :data:`END` replaced by ``block``.

    :raises ValueError: the markers are missing or out of order.
    """
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"the file has no {BEGIN!r} ... {END!r} block")
    head = text[: start + len(BEGIN)]
    return head + "\n\n" + block + "\n" + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m truckllm_testing.docs [--write PATH | --check PATH]``."""
    parser = argparse.ArgumentParser(
        prog="python -m truckllm_testing.docs", description="the plugin API reference"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", help="replace the generated block of PATH")
    group.add_argument("--check", metavar="PATH", help="exit 1 when the block of PATH is out of date")
    args = parser.parse_args(argv)
    block = render_reference()
    if args.write is None and args.check is None:
        sys.stdout.write(block)
        return 0
    path = Path(args.write or args.check)
    text = path.read_text(encoding="utf-8")
    new = replace_block(text, block)
    if args.check is not None:
        if new != text:
            print(
                f"{path} is out of date: run python -m truckllm_testing.docs --write {path}", file=sys.stderr
            )
            return 1
        return 0
    if new != text:
        path.write_text(new, encoding="utf-8")
        print(f"{path} updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
