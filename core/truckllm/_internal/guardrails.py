"""The configured guardrails of one config version, and running them.

Each ``guardrails:`` entry is built once per config version (its type's ``make`` with its
options, decoded strictly when the config was loaded) and kept in the runtime. A check runs under
the entry's ``timeout``; an exception or a timeout is decided by its ``on_error`` (``block``, the
default, fails closed). Entries run in config order; a ``modify`` hands the replaced texts to the
next entry; the first ``block`` stops. Every decision is appended to the request's
``ctx.guardrails``. Guardrails see texts, never headers or credentials.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec
from loguru import logger

from truckllm._internal.config.loader import decode_options
from truckllm._internal.config.schema import GuardrailConfig
from truckllm._internal.runtime import Runtime
from truckllm._internal.scrub import Scrubber, config_secrets
from truckllm.errors import GatewayError
from truckllm.types import Guardrail, GuardrailResult, GuardrailSpec, GuardSubject, Verdict

__all__ = ["BLOCKED_CODE", "Check", "Entry", "Guards", "blocked", "guards_of", "merge", "run_checks"]

BLOCKED_CODE = "guardrail_blocked"
"""The error ``code`` a client sees when a guardrail blocks its request or answer."""
_RANK = {"allow": 0, "modify": 1, "block": 2}
_EXTRA = "guardrails"  # where a runtime keeps its built guardrails (``Runtime.extra``)
Stage = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One configured guardrail, built.

    :ivar name: its name (``name``, else ``type``).
    :ivar config: its ``guardrails[]`` entry.
    :ivar guard: the built guardrail; ``None`` when building it failed (``error`` says why: every
        check of it is then decided by ``on_error``).
    """

    name: str
    config: GuardrailConfig
    guard: Guardrail | None
    error: str | None = None

    def applies(self, stage: Stage, alias: str, key: str | None, endpoint: str | None = None) -> bool:
        """Whether this entry checks ``stage`` of a request for ``alias`` with gateway key ``key``
        to ``endpoint`` (``None``: whatever its endpoint)."""
        config = self.config
        if stage not in config.stages:
            return False
        if config.aliases and alias not in config.aliases:
            return False
        if config.keys and key not in config.keys:
            return False
        if endpoint is not None and (
            (config.endpoints and endpoint not in config.endpoints) or endpoint in config.exclude_endpoints
        ):
            return False
        return not (key is not None and key in config.exclude_keys)


@dataclass(frozen=True, slots=True)
class Guards:
    """The built guardrails of one config version, in config order."""

    entries: tuple[Entry, ...] = ()

    def applying(
        self, stage: Stage, alias: str, key: str | None, endpoint: str | None = None
    ) -> tuple[Entry, ...]:
        """The entries that check ``stage`` of a request for ``alias`` with ``key`` to
        ``endpoint``, in order."""
        return tuple(e for e in self.entries if e.applies(stage, alias, key, endpoint))


def build(configs: Iterable[GuardrailConfig], specs: dict[str, GuardrailSpec]) -> Guards:
    """Build every entry (a type that is not registered, or a ``make`` that raises, gives an entry
    whose every check fails, decided by its ``on_error``: the config loader refuses unknown types,
    so this happens only for a plugin that fails while building)."""
    entries = []
    for config in configs:
        name = config.name or config.type
        spec = specs.get(config.type)
        if spec is None:
            entries.append(Entry(name, config, None, "unknown_type"))
            continue
        try:
            options = decode_options(config.options, spec.options) if spec.options is not None else None
            entries.append(Entry(name, config, spec.make(options)))
        except Exception as exc:
            # the factory's own words (about its options, never a request's text): what to fix
            why = Scrubber(config_secrets(config.options)).text(f"{type(exc).__name__}: {exc}")[:300]
            logger.bind(guardrail=name).error(
                "guardrail {} could not be built, every check of it is decided by on_error ({}): {}",
                name,
                config.on_error,
                why,
            )
            entries.append(Entry(name, config, None, type(exc).__name__))
    return Guards(tuple(entries))


def guards_of(rt: Runtime) -> Guards:
    """The runtime's built guardrails (built on first use, then kept for this config version)."""
    guards = rt.extra.get(_EXTRA)
    if not isinstance(guards, Guards):
        specs: dict[str, GuardrailSpec] = getattr(rt.host, "guardrails", {})
        guards = build(rt.config.guardrails, specs)
        rt.extra[_EXTRA] = guards
    return guards


def blocked(name: str, reason: str) -> GatewayError:
    """The 400 a client gets (in its dialect's error format) when guardrail ``name`` blocks."""
    return GatewayError(
        400,
        f"Blocked by guardrail '{name}': {reason or 'refused'}",
        type="invalid_request_error",
        code=BLOCKED_CODE,
    )


@dataclass
class Check:
    """What the guardrails decided about one subject.

    :ivar action: ``allow``, ``modify`` (``texts`` replace the subject's) or ``block``.
    :ivar texts: the texts after every ``modify``, index by index with the subject's.
    :ivar error: on ``block``, the error for the client.
    :ivar results: one result per entry that ran, in order.
    """

    action: Literal["allow", "block", "modify"] = "allow"
    texts: tuple[str, ...] = ()
    error: GatewayError | None = None
    results: list[GuardrailResult] = field(default_factory=list)


async def _verdict(entry: Entry, subject: GuardSubject) -> tuple[Verdict, str | None]:
    """The entry's verdict, or its ``on_error`` decision and the error's name."""
    if entry.guard is None:
        return _failed(entry), entry.error or "unavailable"
    try:
        async with asyncio.timeout(float(entry.config.timeout)):
            verdict = await entry.guard.check(subject)
    except TimeoutError:
        error = "timeout"
    except Exception as exc:  # a guardrail's bug decides by its failure mode, never takes the gateway
        error = type(exc).__name__
        logger.bind(guardrail=entry.name).warning("guardrail {} raised {}", entry.name, error)
    else:
        if not isinstance(verdict, Verdict):
            error = "bad_verdict"
        elif verdict.action == "modify" and (
            verdict.texts is None
            or len(verdict.texts) != len(subject.texts)
            or not all(isinstance(t, str) for t in verdict.texts)
        ):
            error = "bad_verdict"  # a modify that does not say what replaces each text
        else:
            return verdict, None
    return _failed(entry), error


def _failed(entry: Entry) -> Verdict:
    if entry.config.on_error == "allow":
        return Verdict(action="allow", reason="guardrail failed; allowed by on_error")
    return Verdict(action="block", reason="the guardrail could not check this request")


async def run_checks(entries: Sequence[Entry], subject: GuardSubject) -> Check:
    """Run ``entries`` over ``subject`` in order: a ``modify`` passes its texts on, the first
    ``block`` stops."""
    check = Check(texts=tuple(t.text for t in subject.texts))
    for entry in entries:
        started = time.perf_counter()
        verdict, error = await _verdict(entry, subject)
        ms = (time.perf_counter() - started) * 1000
        check.results.append(
            GuardrailResult(
                name=entry.name,
                stage=subject.stage,
                action=verdict.action,
                reason=verdict.reason,
                ms=ms,
                error=error,
                findings=dict(verdict.findings),
            )
        )
        if verdict.action == "block":
            check.action = "block"
            check.error = blocked(entry.name, verdict.reason)
            return check
        if verdict.action == "modify" and verdict.texts is not None and tuple(verdict.texts) != check.texts:
            check.action = "modify"
            check.texts = tuple(verdict.texts)
            subject = msgspec.structs.replace(
                subject,
                texts=tuple(
                    msgspec.structs.replace(t, text=x)
                    for t, x in zip(subject.texts, check.texts, strict=True)
                ),
            )
    return check


def merge(into: dict[str, GuardrailResult], result: GuardrailResult) -> None:
    """Fold ``result`` into ``into`` (one result per guardrail name, for a request checked in
    several parts: a stream's windows, a batch file's lines): its strongest decision, the total
    time, the findings summed, the first error kept."""
    known = into.get(result.name)
    if known is None:
        into[result.name] = result
        return
    strongest = result if _RANK[result.action] >= _RANK[known.action] else known
    findings = dict(known.findings)
    for kind, count in result.findings.items():
        findings[kind] = findings.get(kind, 0) + count
    into[result.name] = msgspec.structs.replace(
        strongest,
        ms=known.ms + result.ms,
        error=result.error or known.error,
        findings=findings,
    )
