#!/usr/bin/env python3
"""Rename this template in place: ``python rename.py NAME`` (e.g. ``python rename.py acme-llm``).

Renames the distribution (``truckllm-provider-NAME``), the module (``truckllm_provider_NAME``
with ``-`` as ``_``), the entry point (``provider-NAME``), the provider type (``NAME``), the
class names (``AcmeLlmStream``) and the test files, in every text file of the folder this script
is in. Run it once, on a fresh copy; then delete it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

OLD = "example"
NAME_RULE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
TEXT_SUFFIXES = {".py", ".toml", ".md", ".txt", ".cfg", ".ini", ".yaml", ".yml", ".typed"}
SKIP_PARTS = {".git", ".venv", "venv", "__pycache__", "build", "dist", ".pytest_cache", ".ruff_cache"}


def replacements(name: str) -> list[tuple[re.Pattern[str], str]]:
    """The substitutions, most specific first, for the new ``name``."""
    snake = name.replace("-", "_")
    camel = "".join(part.capitalize() for part in name.split("-"))
    return [
        (re.compile(r"truckllm_provider_" + OLD), f"truckllm_provider_{snake}"),
        (re.compile(r"truckllm-provider-" + OLD), f"truckllm-provider-{name}"),
        (re.compile(r"provider-" + OLD), f"provider-{name}"),
        (re.compile(OLD.capitalize()), camel),
        (re.compile(OLD.upper()), snake.upper()),
        (re.compile(rf"(?<=_){OLD}|{OLD}(?=_)"), snake),  # inside identifiers: test_NAME_stream
        (re.compile(OLD), name),
    ]


def rename(root: Path, name: str) -> list[Path]:
    """Rewrite every text file under ``root`` and rename paths; return the files changed."""
    rules = replacements(name)
    me = Path(__file__).resolve()
    changed: list[Path] = []
    files = [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.resolve() != me and not SKIP_PARTS & set(p.relative_to(root).parts)
    ]
    for path in files:
        if path.suffix not in TEXT_SUFFIXES:
            continue
        text = path.read_text(encoding="utf-8")
        new = text
        for pattern, replacement in rules:
            new = pattern.sub(replacement, new)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    snake = name.replace("-", "_")
    # deepest paths first, so that renaming a folder does not move a path still to rename
    for path in sorted(root.rglob(f"*{OLD}*"), key=lambda p: len(p.parts), reverse=True):
        if path.resolve() == me or SKIP_PARTS & set(path.relative_to(root).parts):
            continue
        path.rename(path.with_name(path.name.replace(OLD, snake)))
    return changed


def main(argv: list[str]) -> int:
    """Check the name, rename, say what to do next."""
    if len(argv) != 1 or not NAME_RULE.match(argv[0]) or argv[0] == OLD:
        print(
            "usage: python rename.py NAME  (lower case letters, digits and '-', e.g. acme-llm)",
            file=sys.stderr,
        )
        return 2
    name = argv[0]
    root = Path(__file__).resolve().parent
    if not (root / f"truckllm_provider_{OLD}").is_dir():
        print(f"{root} was renamed already", file=sys.stderr)
        return 1
    changed = rename(root, name)
    print(f"renamed to truckllm-provider-{name}: {len(changed)} files rewritten")
    print(f"  module truckllm_provider_{name.replace('-', '_')}, entry point provider-{name}, type: {name}")
    print("next: delete rename.py, then `pip install -e '.[test]'` and `pytest`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
