"""What a config problem message may quote: never a value from the environment or a secret field.

The loader tells a :class:`Quoting` every value substituted from ``${VAR}`` (and the scalar it
became part of) and every value the schema types as a secret; :meth:`Quoting.scrub` then rewrites
each problem message, whoever wrote it (the loader, msgspec, a plugin's ``Options``), so that such
a value shows as where it came from: ``unknown store type (from ${TRUCKLLM_MASTER_KEY})``.
"""

from __future__ import annotations

import json
import re

__all__ = ["MIN_FRAGMENT", "Quoting"]

MIN_FRAGMENT = 8
"""A run of this many characters of a hidden value is treated as the value."""
_MIN_WORD = 4


class Quoting:
    """Values problem messages must not show, each with the label shown instead."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}

    def hide(self, value: str, label: str) -> None:
        """Show ``label`` wherever ``value`` (or, when long enough, a piece of it) would appear."""
        if value:
            self._labels[value] = label

    def __len__(self) -> int:
        return len(self._labels)

    def scrub(self, message: str) -> str:
        """``message`` with every hidden value replaced by its label.

        Quoted forms of a value (``'v'``, ``"v"``, `` `v` ``) are replaced whatever its length; a
        value of 8 characters or more is also replaced wherever any 8-character piece of it shows
        (cut, or inside a URL); a shorter one of 4 or more wherever it stands as a whole word.
        """
        for value, label in sorted(self._labels.items(), key=lambda item: -len(item[0])):
            for quoted in (repr(value), json.dumps(value), f"'{value}'", f'"{value}"', f"`{value}`"):
                if quoted in message:
                    message = message.replace(quoted, label)
            if len(value) >= MIN_FRAGMENT:
                message = _fragments(message, value, label)
            elif len(value) >= _MIN_WORD and value in message:
                word = re.compile(rf"(?<![\w-]){re.escape(value)}(?![\w-])")
                message = word.sub(label.replace("\\", "\\\\"), message)
        return message


def _fragments(text: str, value: str, label: str) -> str:
    """``text`` with every run that shares 8 or more consecutive characters with ``value`` replaced."""
    if len(text) < MIN_FRAGMENT:
        return text
    grams = {value[i : i + MIN_FRAGMENT] for i in range(len(value) - MIN_FRAGMENT + 1)}
    spans: list[tuple[int, int]] = []
    for i in range(len(text) - MIN_FRAGMENT + 1):
        if text[i : i + MIN_FRAGMENT] in grams:
            if spans and i <= spans[-1][1]:
                spans[-1] = (spans[-1][0], i + MIN_FRAGMENT)
            else:
                spans.append((i, i + MIN_FRAGMENT))
    if not spans:
        return text
    out: list[str] = []
    covered = 0
    for start, end in spans:
        out.append(text[covered:start])
        out.append(label)
        covered = end
    out.append(text[covered:])
    return "".join(out)
