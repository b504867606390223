"""Edits of the config text that keep its comments and layout (ruamel.yaml round trip)."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

__all__ = ["add_gateway_key", "remove_gateway_key"]


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


def _dump(yaml: YAML, root: Any) -> str:
    out = io.StringIO()
    yaml.dump(root, out)
    return out.getvalue()


def add_gateway_key(text: str, entry: dict[str, Any]) -> str:
    """``text`` with ``entry`` appended to ``keys:`` (the section is created when missing)."""
    yaml, root = _load(text)
    keys = root.get("keys")
    if keys is None:
        keys = CommentedSeq()
        root["keys"] = keys
    item = CommentedMap()
    for name, value in entry.items():
        if value is not None:
            item[name] = value
    item.fa.set_flow_style()
    keys.append(item)
    return _dump(yaml, root)


def remove_gateway_key(text: str, name: str) -> tuple[str, bool]:
    """``text`` without the gateway key named ``name``; and whether there was one."""
    yaml, root = _load(text)
    keys = root.get("keys")
    if not keys:
        return text, False
    for i, item in enumerate(keys):
        if isinstance(item, dict) and item.get("name") == name:
            del keys[i]
            return _dump(yaml, root), True
    return text, False
