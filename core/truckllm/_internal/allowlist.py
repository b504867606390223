"""``plugins.allow``: the distributions whose plugins may be imported at all.

An entry is a distribution name, optionally with a version range, as pip writes a requirement:
``truckllm-provider-openai``, ``acme-truckllm-provider>=1.2,<2``. Names compare as PyPI compares
them (case, ``-``, ``_`` and ``.`` alike). An entry with extras, an environment marker or a URL is
refused: the allow-list says which installed code may run, not what to install.

The list is applied to distribution metadata only (``importlib.metadata``): a distribution that is
not allowed is never imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = ["AllowList", "entry_problem", "normalize", "problems"]


def normalize(name: str) -> str:
    """A distribution name as PyPI compares it (``Foo_Bar.baz`` -> ``foo-bar-baz``)."""
    return str(canonicalize_name(name))


def entry_problem(entry: object) -> str | None:
    """Why ``entry`` is not a valid ``plugins.allow`` entry, or None."""
    if not isinstance(entry, str) or not entry.strip():
        return (
            "expected a distribution name, optionally with a version range "
            "(e.g. truckllm-provider-openai>=0.1)"
        )
    try:
        req = Requirement(entry)
    except InvalidRequirement as exc:
        return (
            f"not a distribution name with an optional version range ({exc}); "
            "e.g. truckllm-provider-openai or acme-plugin>=1.2,<2"
        )
    if req.url:
        return "a URL cannot be allowed: name the distribution (and a version range)"
    if req.extras:
        return "extras mean nothing here: name the distribution (and a version range)"
    if req.marker is not None:
        return "an environment marker means nothing here: name the distribution (and a version range)"
    return None


def problems(entries: Iterable[object]) -> list[tuple[int, str]]:
    """(index, why) of each invalid entry of a ``plugins.allow`` list, a name listed twice included."""
    found: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        problem = entry_problem(entry)
        if problem is not None:
            found.append((index, problem))
            continue
        assert isinstance(entry, str)
        name = normalize(Requirement(entry).name)
        if name in seen:
            found.append(
                (index, f"{name} is already allowed by entry {seen[name]}: one entry per distribution")
            )
        else:
            seen[name] = index
    return found


@dataclass(frozen=True)
class AllowList:
    """The parsed ``plugins.allow``: normalized name -> version range (empty: any version)."""

    entries: Mapping[str, SpecifierSet]
    text: tuple[str, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """The allow-list of ``entries``.

        :raises ValueError: an entry is invalid (:func:`entry_problem` says why), or a name is
            listed twice.
        """
        text = tuple(entries)
        for index, problem in problems(text):
            raise ValueError(f"plugins.allow[{index}] {text[index]!r}: {problem}")
        table: dict[str, SpecifierSet] = {}
        for entry in text:
            req = Requirement(entry)
            table[normalize(req.name)] = req.specifier
        return cls(entries=table, text=text)

    def refusal(self, name: str, version: str) -> str | None:
        """Why distribution ``name`` at ``version`` may not be imported, or None when it may."""
        spec = self.entries.get(normalize(name))
        if spec is None:
            return "not in plugins.allow"
        if not str(spec):
            return None
        try:
            parsed = Version(version)
        except InvalidVersion:
            return f"version {version!r} is not a version plugins.allow can compare with {spec}"
        if not spec.contains(parsed, prereleases=True):
            return f"version {version} is outside plugins.allow's {spec}"
        return None

    def unmatched(self, installed: Iterable[str]) -> list[str]:
        """The allowed names that match none of the ``installed`` distribution names."""
        present = {normalize(name) for name in installed}
        return sorted(name for name in self.entries if name not in present)
