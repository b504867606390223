"""Who may use what: the ``access`` rules applied to one caller.

Safe by default: a caller no rule applies to may use nothing. Rules add up (a caller may use
whatever any rule that applies to it allows); there is no deny rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from truckllm.kit.web import GatewayCaller
from truckllm_mcp.options import AccessRule

__all__ = ["Grant", "grant_for"]


@dataclass(frozen=True)
class Grant:
    """What one caller may use.

    :ivar rules: the rules that apply to it (empty: nothing).
    """

    rules: tuple[AccessRule, ...]

    @property
    def anything(self) -> bool:
        """Whether some rule applies at all."""
        return bool(self.rules)

    def server(self, server: str) -> bool:
        """Whether the caller may use ``server`` (its resources and prompts, some of its tools)."""
        return any("*" in r.servers or server in r.servers for r in self.rules)

    def tool(self, server: str, full_name: str) -> bool:
        """Whether the caller may call the tool ``full_name`` (namespaced) of ``server``."""
        return any(
            ("*" in r.servers or server in r.servers) and any(fnmatchcase(full_name, g) for g in r.tools)
            for r in self.rules
        )


def grant_for(rules: tuple[AccessRule, ...], caller: GatewayCaller | None) -> Grant:
    """The rules of ``rules`` that apply to ``caller`` (``None``: nobody was admitted: nothing)."""
    if caller is None:
        return Grant(())
    applying = tuple(
        rule
        for rule in rules
        if "*" in rule.keys
        or (caller.name is not None and caller.name in rule.keys)
        or (caller.team is not None and caller.team in rule.teams)
    )
    return Grant(applying)
