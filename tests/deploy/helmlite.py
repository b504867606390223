"""A small renderer for the subset of Helm's Go templates the TruckLLM chart uses.

Used where the ``helm`` binary is not installable (no package source offers it): the chart's
templates are rendered with the chart's values (plus overrides) and the manifests are then
checked like ``helm template`` output would be. The subset, and nothing more (anything else is an
:class:`Unsupported` error, so a template that drifts out of it fails loudly instead of
rendering wrongly):

- actions ``{{ pipeline }}`` with ``{{-`` / ``-}}`` whitespace trimming and ``{{/* comments */}}``;
- ``if`` / ``else`` / ``end`` and ``define "name"`` / ``end``;
- values: ``.``, ``$``, ``.Values.a.b``, ``.Release.*``, ``.Chart.*``, ``"strings"``, integers,
  ``true`` / ``false``;
- functions (Helm's and sprig's semantics): ``include``, ``toYaml``, ``nindent``, ``indent``,
  ``quote``, ``default``, ``trunc``, ``trimSuffix``, ``sha256sum``, ``not``, ``and``, ``or``,
  ``eq``; a pipeline passes its value as the last argument of the next function.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s]+')


class Unsupported(Exception):
    """A template uses something outside the supported subset."""


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipeline: str


@dataclass
class _If:
    condition: str
    then: list[Any] = field(default_factory=list)
    otherwise: list[Any] = field(default_factory=list)


@dataclass
class _Define:
    name: str
    body: list[Any] = field(default_factory=list)


def _lex(source: str) -> list[_Text | tuple[str, str]]:
    """Text pieces and ``(kind, body)`` actions, whitespace trimming applied."""
    pieces: list[_Text | tuple[str, str]] = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(source):
        text = source[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        pieces.append(_Text(text))
        body = match.group(2).strip()
        trim_next = bool(match.group(3))
        pos = match.end()
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise Unsupported(f"unterminated comment: {body!r}")
            continue
        word = body.split(None, 1)[0] if body else ""
        if word in ("if", "else", "end", "define"):
            pieces.append((word, body[len(word) :].strip()))
        elif word in ("range", "with", "template", "block") or ":=" in body or body.startswith("("):
            raise Unsupported(f"not in the supported subset: {{{{ {body} }}}}")
        else:
            pieces.append(("action", body))
    tail = source[pos:]
    pieces.append(_Text(tail.lstrip() if trim_next else tail))
    return pieces


def _parse(pieces: list[_Text | tuple[str, str]]) -> list[Any]:
    """A node tree from the lexed pieces."""
    root: list[Any] = []
    stack: list[tuple[Any, list[Any]]] = [(None, root)]
    for piece in pieces:
        current = stack[-1][1]
        if isinstance(piece, _Text):
            if piece.text:
                current.append(piece)
            continue
        kind, body = piece
        if kind == "action":
            current.append(_Action(body))
        elif kind == "if":
            node = _If(body)
            current.append(node)
            stack.append((node, node.then))
        elif kind == "define":
            name = json.loads(body)
            define = _Define(name)
            current.append(define)
            stack.append((define, define.body))
        elif kind == "else":
            owner = stack[-1][0]
            if not isinstance(owner, _If) or body:
                raise Unsupported("else outside an if, or else if")
            stack[-1] = (owner, owner.otherwise)
        elif kind == "end":
            if len(stack) == 1:
                raise Unsupported("end without a block")
            stack.pop()
    if len(stack) != 1:
        raise Unsupported("a block is not closed by end")
    return root


def _truthy(value: Any) -> bool:
    """Go templates' truth: false, 0, nil and empty strings and collections are false."""
    return value not in (None, False, 0, "") and not (isinstance(value, (dict, list)) and not value)


def _to_yaml(value: Any) -> str:
    return str(yaml.safe_dump(value, default_flow_style=False, sort_keys=True)).removesuffix("\n")


def _indent(width: int, text: str) -> str:
    pad = " " * width
    return pad + str(text).replace("\n", "\n" + pad)


def _to_string(value: Any) -> str:
    """How an action prints a value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise Unsupported("printing a map or list without toYaml")
    return str(value)


class Chart:
    """A chart folder: its metadata, default values, templates and named templates."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        meta = yaml.safe_load((folder / "Chart.yaml").read_text())
        self.meta = {key[0].upper() + key[1:]: value for key, value in meta.items()}
        self.values: dict[str, Any] = yaml.safe_load((folder / "values.yaml").read_text()) or {}
        self.templates: dict[str, list[Any]] = {}
        self.defines: dict[str, list[Any]] = {}
        for path in sorted((folder / "templates").iterdir()):
            tree = _parse(_lex(path.read_text()))
            for node in tree:
                if isinstance(node, _Define):
                    self.defines[node.name] = node.body
            self.templates[path.name] = [n for n in tree if not isinstance(n, _Define)]

    def render(self, overrides: Mapping[str, Any] | None = None, release: str = "truckllm") -> dict[str, str]:
        """Every template (but ``_*.tpl``) rendered with the values merged with ``overrides``."""
        values = _merge(self.values, overrides or {})
        root = {
            "Values": values,
            "Chart": self.meta,
            "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
        }
        return {
            name: self._render(nodes, root, root)
            for name, nodes in self.templates.items()
            if not name.startswith("_")
        }

    def _render(self, nodes: list[Any], dot: Any, root: Any) -> str:
        out: list[str] = []
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                out.append(_to_string(self._pipeline(node.pipeline, dot, root)))
            elif isinstance(node, _If):
                branch = node.then if _truthy(self._pipeline(node.condition, dot, root)) else node.otherwise
                out.append(self._render(branch, dot, root))
        return "".join(out)

    def _functions(self, root: Any) -> dict[str, Callable[..., Any]]:
        def include(name: str, dot: Any) -> str:
            if name not in self.defines:
                raise Unsupported(f"no template named {name!r}")
            return self._render(self.defines[name], dot, root)

        return {
            "include": include,
            "toYaml": _to_yaml,
            "nindent": lambda width, text: "\n" + _indent(width, text),
            "indent": _indent,
            "quote": lambda value: json.dumps(_to_string(value)),
            "default": lambda fallback, value=None: value if _truthy(value) else fallback,
            "trunc": lambda width, text: str(text)[:width],
            "trimSuffix": lambda suffix, text: str(text).removesuffix(suffix),
            "sha256sum": lambda text: hashlib.sha256(str(text).encode()).hexdigest(),
            "not": lambda value: not _truthy(value),
            "and": lambda *values: next((v for v in values if not _truthy(v)), values[-1]),
            "or": lambda *values: next((v for v in values if _truthy(v)), values[-1]),
            "eq": lambda a, b: a == b,
        }

    def _pipeline(self, text: str, dot: Any, root: Any) -> Any:
        functions = self._functions(root)
        value: Any = None
        for index, command in enumerate(_split_pipes(text)):
            tokens = _TOKEN.findall(command)
            if not tokens:
                raise Unsupported(f"empty command in {text!r}")
            head, rest = tokens[0], tokens[1:]
            if head in functions:
                args = [self._value(t, dot, root) for t in rest]
                if index > 0:
                    args.append(value)
                value = functions[head](*args)
            elif index == 0 and not rest:
                value = self._value(head, dot, root)
            else:
                raise Unsupported(f"unknown function {head!r} in {text!r}")
        return value

    def _value(self, token: str, dot: Any, root: Any) -> Any:
        if token.startswith('"'):
            return json.loads(token)
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if token in ("true", "false"):
            return token == "true"
        if token in (".", "$"):
            return dot if token == "." else root
        if token.startswith(".") or token.startswith("$."):
            current = root if token.startswith("$") else dot
            for part in token.lstrip("$").strip(".").split("."):
                current = current.get(part) if isinstance(current, dict) else None
            return current
        raise Unsupported(f"unknown value {token!r}")


def _split_pipes(text: str) -> list[str]:
    """The commands of a pipeline (``|`` outside string literals)."""
    parts: list[str] = []
    current = ""
    quoted = False
    for index, char in enumerate(text):
        if char == '"' and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        if char == "|" and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
