"""Edits of the config text that keep the user's comments, layout and indentation.

A gateway key is added or removed by a minimal textual edit: one line inserted after the last
item of ``keys:`` (indented like it), or an item's lines deleted; every other line is left as the
user wrote it. The edit is checked by parsing the result: it must hold exactly what the edited
document holds. When it does not, or ``keys:`` is in a form the textual edit does not handle (a
flow list, JSON), the document is dumped again by ruamel.yaml's round trip, with the indentation
it guesses from the text.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

__all__ = ["add_gateway_key", "remove_gateway_key"]

_KEYS_LINE = re.compile(r"^(keys[ \t]*:)[ \t]*(?:\[[ \t]*\]|null|Null|NULL|~)?[ \t]*(#.*)?$")
"""The ``keys:`` line of an empty or null section: ``keys:``, ``keys: []``, ``keys: null`` (and a
comment)."""
_ITEM_PREFIX = re.compile(r"^[ \t]*-[ \t]+$")
"""What precedes a list item's value on its line: indentation and a dash."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _load(text: str) -> tuple[YAML, Any]:
    yaml = _yaml()
    root = yaml.load(io.StringIO(text))
    if root is None:
        root = CommentedMap()
    return yaml, root


def _dump(text: str, root: Any) -> str:
    """``root`` dumped by the round trip, indented as ``text`` is (as far as ruamel can guess)."""
    yaml = _yaml()
    try:
        _, indent, block_seq_indent = load_yaml_guess_indent(text)
    except Exception:  # an unguessable text: ruamel's defaults
        indent, block_seq_indent = None, None
    if indent is not None:
        yaml.indent(mapping=indent, sequence=indent, offset=block_seq_indent or 0)
    out = io.StringIO()
    yaml.dump(root, out)
    return out.getvalue()


def _flow_item(entry: dict[str, Any]) -> str:
    """``entry`` (``None`` values left out) as one list item in flow style: ``- {name: a, ...}``."""
    item = CommentedMap()
    for name, value in entry.items():
        if value is not None:
            item[name] = value
    item.fa.set_flow_style()
    seq = CommentedSeq([item])
    out = io.StringIO()
    _yaml().dump(seq, out)
    return out.getvalue().rstrip("\n")


def _block_keys(root: Any) -> CommentedSeq | None:
    """The ``keys:`` list when the textual edit can handle it: a non-empty block sequence of a
    top-level mapping that starts the document's lines at column 0."""
    keys = root.get("keys") if isinstance(root, CommentedMap) else None
    if isinstance(keys, CommentedSeq) and keys and not keys.fa.flow_style() and root.lc.key("keys")[1] == 0:
        return keys
    return None


def _section_end(lines: list[str], root: CommentedMap, start: int) -> int:
    """The index of the last line of ``keys:``'s items that is neither blank nor a comment, looking
    back from the next top-level key (or the end of the text) to ``start``."""
    names = list(root)
    after = names[names.index("keys") + 1 :]
    end = root.lc.key(after[0])[0] if after else len(lines)
    last = end - 1
    while last > start and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
        last -= 1
    return last


def _item_prefix(lines: list[str], keys: CommentedSeq, index: int) -> str | None:
    line, col = keys.lc.item(index)
    prefix = lines[line][:col]
    return prefix if _ITEM_PREFIX.match(prefix) else None


def _new_list_indent(text: str) -> str:
    """How far the text indents a list's dashes under their key (two spaces when it has none)."""
    try:
        _, _, block_seq_indent = load_yaml_guess_indent(text)
    except Exception:  # an unguessable text
        block_seq_indent = None
    return " " * (2 if block_seq_indent is None else block_seq_indent)


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _textual_add(text: str, root: Any, item: str) -> str | None:
    """``text`` with the ``- {...}`` line ``item`` added to ``keys:``, or ``None`` when ``keys:``
    is in a form this edit does not handle."""
    lines = _lines(text)
    if not isinstance(root, CommentedMap):
        return None
    indent = _new_list_indent(text)
    if "keys" not in root:
        return "".join(lines) + f"keys:\n{indent}{item}\n"
    keys = _block_keys(root)
    if keys is None:
        line, col = root.lc.key("keys")
        found = _KEYS_LINE.match(lines[line].rstrip("\r\n")) if col == 0 and not root["keys"] else None
        if found is None:
            return None
        comment = f"  {found.group(2)}" if found.group(2) else ""
        lines[line] = f"{found.group(1)}{comment}\n{indent}{item}\n"
        return "".join(lines)
    prefix = _item_prefix(lines, keys, len(keys) - 1)
    if prefix is None:
        return None
    last = _section_end(lines, root, keys.lc.item(len(keys) - 1)[0])
    lines.insert(last + 1, f"{prefix}{item[2:]}\n")
    return "".join(lines)


def _textual_remove(text: str, root: Any, index: int) -> str | None:
    """``text`` without item ``index`` of ``keys:`` (``keys: []`` once the last is gone: an empty
    list still refuses every key, an empty section would open the gateway), or ``None``."""
    keys = _block_keys(root)
    if keys is None:
        return None
    lines = _lines(text)
    start = keys.lc.item(index)[0]
    if _item_prefix(lines, keys, index) is None:
        return None
    if index + 1 < len(keys):
        last = keys.lc.item(index + 1)[0] - 1
        while last > start and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
            last -= 1
    else:
        last = _section_end(lines, root, start)
    del lines[start : last + 1]
    if len(keys) == 1:
        line = root.lc.key("keys")[0]
        found = _KEYS_LINE.match(lines[line].rstrip("\r\n"))
        if found is None:
            return None
        comment = f"  {found.group(2)}" if found.group(2) else ""
        lines[line] = f"{found.group(1)} []{comment}\n"
    return "".join(lines)


def _checked(edited: str | None, root: Any) -> bool:
    """Whether ``edited`` parses to exactly ``root`` (order and values)."""
    if edited is None:
        return False
    try:
        return bool(_load(edited)[1] == root)
    except Exception:  # the edit broke the YAML: not taken
        return False


def add_gateway_key(text: str, entry: dict[str, Any]) -> str:
    """``text`` with ``entry`` appended to ``keys:`` (the section is created when missing)."""
    _, root = _load(text)
    edited = _textual_add(text, root, _flow_item(entry))
    keys = root.get("keys")
    if keys is None:
        keys = CommentedSeq()
        root["keys"] = keys
    item = CommentedMap((k, v) for k, v in entry.items() if v is not None)
    item.fa.set_flow_style()
    keys.append(item)
    return edited if edited is not None and _checked(edited, root) else _dump(text, root)


def remove_gateway_key(text: str, name: str) -> tuple[str, bool]:
    """``text`` without the gateway key named ``name``; and whether there was one."""
    _, root = _load(text)
    keys = root.get("keys")
    if not keys:
        return text, False
    for i, item in enumerate(keys):
        if isinstance(item, dict) and item.get("name") == name:
            edited = _textual_remove(text, root, i)
            del keys[i]
            return (edited if edited is not None and _checked(edited, root) else _dump(text, root)), True
    return text, False
