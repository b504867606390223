"""Teams, organisations, end users and tags: the levels a request is limited at, and the config
checks that keep them consistent.

A gateway key belongs to at most one team (``keys[].team``), a team to at most one organisation
(``teams.<name>.org``). A request is limited at each level that applies: its key (rpm, tpm,
budget), its team and org (rpm, tpm, one budget per period), its end user under its key
(``keys[].user_budget``) and each of its tags that has a budget (``tags.budgets``). Every level's
checks go to the store in one admission (:func:`truckllm._internal.admission.admit`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Literal

import msgspec

from truckllm._internal.auth import GatewayKey, narrow
from truckllm._internal.config.schema import BudgetConfig, Config

__all__ = [
    "MAX_METRIC_TAGS",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "TAG",
    "Level",
    "config_problems",
    "key_level",
    "levels",
    "narrow",
    "user_digest",
]

TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
"""A tag: letters, digits and ``._:/-``, starting with a letter or digit."""

MAX_TAGS = 64
"""``tags.max_tags`` at most."""

MAX_TAG_LENGTH = 256
"""``tags.max_length`` at most."""

MAX_METRIC_TAGS = 100
"""``tags.metrics`` entries at most (each is a metric label value)."""

LevelKind = Literal["key", "team", "org", "user", "tag"]


class Level(msgspec.Struct, frozen=True):
    """One level a request is limited at.

    :ivar kind: ``key``, ``team``, ``org``, ``user`` or ``tag``.
    :ivar name: its name (a user's is ``<key>:<user>``).
    :ivar prefix: the store keys' prefix (``gk:<key>``, ``team:<team>``, ``user:<key>:<digest>``...).
    :ivar label: how messages name it (``team 'search'``).
    :ivar subject: how alerts name it (``team:search``).
    """

    kind: LevelKind
    name: str
    prefix: str
    label: str
    subject: str
    rpm: int | None = None
    tpm: int | None = None
    budgets: tuple[BudgetConfig, ...] = ()

    @property
    def limited(self) -> bool:
        """Whether anything is checked at this level."""
        return self.rpm is not None or self.tpm is not None or bool(self.budgets)

    @property
    def title(self) -> str:
        """The label at the start of a sentence (``The team 'search'``)."""
        return f"The {self.label}"

    def budget_keys(self) -> list[tuple[BudgetConfig, str]]:
        """Each budget with its store key (a key's one budget keeps ``gk:<key>:budget``; the other
        levels' are ``<prefix>:budget:<period>``, one per period)."""
        if self.kind in ("key", "user", "tag"):
            return [(budget, f"{self.prefix}:budget") for budget in self.budgets]
        return [(budget, f"{self.prefix}:budget:{budget.period}") for budget in self.budgets]


def user_digest(user: str) -> str:
    """A short, stable digest of an end user's name (store keys never hold the name itself)."""
    return hashlib.sha256(user.encode()).hexdigest()[:24]


def key_level(key: GatewayKey) -> Level:
    """The gateway key's own level (its rpm, tpm and budget)."""
    config = key.config
    return Level(
        kind="key",
        name=key.name,
        prefix=f"gk:{key.name}",
        label=f"API key '{key.name}'",
        subject=f"key:{key.name}",
        rpm=config.rpm,
        tpm=config.tpm,
        budgets=(config.budget,) if config.budget is not None else (),
    )


def levels(config: Config, key: GatewayKey | None, user: str | None, tags: Sequence[str]) -> list[Level]:
    """Every level a request is limited at, key first (a level with nothing to check included)."""
    out: list[Level] = []
    if key is not None:
        out.append(key_level(key))
        team = config.teams.get(key.config.team) if key.config.team is not None else None
        if team is not None and key.config.team is not None:
            name = key.config.team
            out.append(
                Level(
                    "team",
                    name,
                    f"team:{name}",
                    f"team '{name}'",
                    f"team:{name}",
                    team.rpm,
                    team.tpm,
                    team.budgets,
                )
            )
            org = config.orgs.get(team.org) if team.org is not None else None
            if org is not None and team.org is not None:
                oname = team.org
                out.append(
                    Level(
                        "org", oname, f"org:{oname}", f"organisation '{oname}'", f"org:{oname}",
                        org.rpm, org.tpm, org.budgets,
                    )
                )  # fmt: skip
        if user is not None and key.config.user_budget is not None:
            out.append(
                Level(
                    kind="user",
                    name=f"{key.name}:{user}",
                    prefix=f"user:{key.name}:{user_digest(user)}",
                    label=f"end user '{user}' of API key '{key.name}'",
                    subject=f"user:{key.name}:{user}",
                    budgets=(key.config.user_budget,),
                )
            )
    budgets = config.tags.budgets
    if budgets:
        for tag in tags:
            budget = budgets.get(tag)
            if budget is not None:
                out.append(Level("tag", tag, f"tag:{tag}", f"tag '{tag}'", f"tag:{tag}", budgets=(budget,)))
    return out


def _budget_periods(
    budgets: Sequence[BudgetConfig], path: list[str | int]
) -> list[tuple[list[str | int], str]]:
    seen: set[str] = set()
    problems: list[tuple[list[str | int], str]] = []
    for i, budget in enumerate(budgets):
        if budget.period in seen:
            problems.append(
                ([*path, i, "period"], f"a second {budget.period} budget: one per period at most")
            )
        seen.add(budget.period)
    return problems


def _tag_problem(tag: str, max_length: int) -> str | None:
    if len(tag) > max_length:
        return f"a tag has {max_length} characters at most (tags.max_length)"
    if not TAG.fullmatch(tag):
        return "a tag is letters, digits and ._:/- (starting with a letter or digit)"
    return None


def _model_problems(
    config: Config, models: Sequence[str] | None, path: list[str | int]
) -> list[tuple[list[str | int], str]]:
    problems: list[tuple[list[str | int], str]] = []
    for j, alias in enumerate(models or ()):
        prefix, sep, _ = alias.partition("/")
        if not (sep and prefix in config.providers) and alias not in config.models:
            problems.append(([*path, j], f"no model alias named {alias!r}"))
    return problems


def config_problems(config: Config) -> list[tuple[list[str | int], str]]:
    """What is wrong with the config's teams, orgs and tags: ``(path, message)`` for each problem.

    A key's team must exist, a team's org too; one budget per period per level; ``models`` name
    aliases; tags (the keys', the budgeted, the metric labels) are valid and within bounds.
    """
    problems: list[tuple[list[str | int], str]] = []
    tags = config.tags
    if tags.max_tags > MAX_TAGS:
        problems.append((["tags", "max_tags"], f"at most {MAX_TAGS}"))
    if tags.max_length > MAX_TAG_LENGTH:
        problems.append((["tags", "max_length"], f"at most {MAX_TAG_LENGTH}"))
    if len(tags.metrics) > MAX_METRIC_TAGS:
        problems.append((["tags", "metrics"], f"at most {MAX_METRIC_TAGS} tags become metric labels"))
    for i, tag in enumerate(tags.metrics):
        bad = _tag_problem(tag, tags.max_length)
        if bad:
            problems.append((["tags", "metrics", i], bad))
    for tag in tags.budgets:
        bad = _tag_problem(tag, tags.max_length)
        if bad:
            problems.append((["tags", "budgets", tag], bad))
    for name, org in config.orgs.items():
        problems += _budget_periods(org.budgets, ["orgs", name, "budgets"])
        problems += _model_problems(config, org.models, ["orgs", name, "models"])
    for name, team in config.teams.items():
        if team.org is not None and team.org not in config.orgs:
            problems.append((["teams", name, "org"], f"no organisation named {team.org!r} (orgs:)"))
        problems += _budget_periods(team.budgets, ["teams", name, "budgets"])
        problems += _model_problems(config, team.models, ["teams", name, "models"])
    for i, key in enumerate(config.keys or ()):
        if key.team is not None and key.team not in config.teams:
            problems.append((["keys", i, "team"], f"no team named {key.team!r} (teams:)"))
        if len(key.tags) > tags.max_tags:
            problems.append((["keys", i, "tags"], f"at most {tags.max_tags} tags (tags.max_tags)"))
        for j, tag in enumerate(key.tags):
            bad = _tag_problem(tag, tags.max_length)
            if bad:
                problems.append((["keys", i, "tags", j], bad))
    return problems
