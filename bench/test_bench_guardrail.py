"""Micro-benchmarks of the reference guardrails' ``check`` on a 2 KB prompt (pytest-benchmark).

What the regex ``pii`` guardrail adds to a request (the issue's target: under 50 µs on a 2 KB
prompt), and the ``policy`` guardrail for comparison:

- ``clean``: a 2 KB system + user prompt with no personal data (numbers, times, punctuation);
- ``few``: the same prompt with an e-mail address, a phone number and a card number (masked);
- ``dates``: a digit-heavy 2 KB prompt (a date in every sentence), the detectors' worst
  ordinary case: every date is a run of digits and separators worth a closer look.

Each ``check`` is driven without an event loop (it never awaits unless presidio is on), so the
figures are the guardrail's own CPU time. ``test_pii_input_stage`` measures what a request pays
in all with the ``pii`` guardrail configured: the kernel's whole input stage
(``guard_stages.check_request``: the 2 KB chat body decoded, its texts found, the check run under
the entry's timeout, and for ``few`` the masked texts written back and the body encoded again),
100 requests per round inside one running task (as a request's own task runs it), per request.
A summary table prints at the end.

Run with ``.venv/bin/python -m pytest bench/test_bench_guardrail.py --benchmark-only`` (or
``make bench``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from truckllm._internal.config.schema import GuardrailConfig
from truckllm._internal.guard_stages import check_request
from truckllm._internal.guardrails import Entry, Guards
from truckllm.types import ChatRequest, GuardSubject, GuardText, Verdict

pii = pytest.importorskip("truckllm_guardrail_pii")
policy = pytest.importorskip("truckllm_guardrail_policy")

SYSTEM = "You are a helpful assistant. Answer briefly, and say so when you do not know."
NOTES = "Summarise the following notes in two sentences. " + " ".join(
    f"Item {i}: the shipment left the depot at {8 + i % 10}:{i % 60:02d} and arrived on time."
    for i in range(40)
)
USER = NOTES[: 2048 - len(SYSTEM)]
FEW = (
    USER[: 2048 - len(SYSTEM) - 110]
    + " Reach me at jane.doe@example.com or +44 20 7946 0958; charge card 4111 1111 1111 1111."
)
DATES = " ".join(
    f"Item {i}: left on 2026-{1 + i % 12:02d}-{1 + i % 28:02d} at {8 + i % 10}:{i % 60:02d}, on time."
    for i in range(60)
)[: 2048 - len(SYSTEM)]
PROMPTS = {"clean": USER, "few": FEW, "dates": DATES}
RESULTS: dict[str, float] = {}


def _subject(user: str) -> GuardSubject:
    return GuardSubject(
        stage="input",
        texts=(GuardText(role="system", text=SYSTEM), GuardText(role="user", text=user)),
        estimated_tokens=512,
    )


def _run(coro: Coroutine[Any, Any, Verdict]) -> Verdict:
    """Run a coroutine that never suspends, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("the check suspended")


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    if RESULTS:
        print("\n\nguardrail check on a 2 KB prompt (mean, µs)")
        for name, us in RESULTS.items():
            print(f"  {name:<28} {us:8.1f}")


def _record(benchmark: Any, name: str) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        RESULTS[name] = stats.stats.mean * 1e6


@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_pii_mask(benchmark: Any, prompt: str) -> None:
    guard = pii.PiiGuardrail.make(pii.PiiOptions())
    subject = _subject(PROMPTS[prompt])
    verdict = benchmark(lambda: _run(guard.check(subject)))
    if prompt == "few":
        assert verdict.action == "modify"
        assert dict(verdict.findings) == {"email": 1, "phone": 1, "card": 1}
    else:
        assert verdict is pii.ALLOW
    assert len(SYSTEM) + len(PROMPTS[prompt]) <= 2048
    _record(benchmark, f"pii mask, {prompt}")


def test_pii_every_detector_clean(benchmark: Any) -> None:
    guard = pii.PiiGuardrail.make(pii.PiiOptions(entities=pii.ENTITIES))
    subject = _subject(USER)
    assert benchmark(lambda: _run(guard.check(subject))) is pii.ALLOW
    _record(benchmark, "pii all detectors, clean")


def test_policy(benchmark: Any) -> None:
    options = policy.PolicyOptions(
        max_input_tokens=4096,
        blocked_words=("password", "project falcon", "confidential"),
        blocked_patterns=(r"(?i)internal[-_ ]only",),
        allowed_tools=frozenset({"search"}),
    )
    guard = policy.PolicyGuardrail.make(options)
    subject = _subject(USER)
    assert benchmark(lambda: _run(guard.check(subject))) is policy.ALLOW
    _record(benchmark, "policy, clean")


STAGE_ROUNDS = 100
"""Requests per benchmark round of ``test_pii_input_stage`` (one event-loop entry per round)."""


@pytest.mark.parametrize("prompt", ["clean", "few"])
def test_pii_input_stage(benchmark: Any, prompt: str) -> None:
    guard = pii.PiiGuardrail.make(pii.PiiOptions())
    rt = SimpleNamespace(extra={"guardrails": Guards((Entry("pii", GuardrailConfig(type="pii"), guard),))})
    body = msgspec.json.encode(
        {
            "model": "chat",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPTS[prompt]}],
        }
    )
    request = ChatRequest(endpoint="chat", body=body, model="chat")
    loop = asyncio.new_event_loop()

    async def rounds() -> bytes | None:
        out = None
        for _ in range(STAGE_ROUNDS):
            ctx = SimpleNamespace(gateway_key="k", guardrails=[])
            out = await check_request(rt, ctx, request)  # type: ignore[arg-type]
        return out

    try:
        out = benchmark(lambda: loop.run_until_complete(rounds()))
    finally:
        loop.close()
    if prompt == "few":
        assert out is not None and b"<EMAIL>" in out and b"jane.doe" not in out
    else:
        assert out is None
    assert len(SYSTEM) + len(PROMPTS[prompt]) <= 2048
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        RESULTS[f"pii input stage, {prompt} (per request)"] = stats.stats.mean * 1e6 / STAGE_ROUNDS
        RESULTS[f"pii input stage, {prompt} (median)"] = stats.stats.median * 1e6 / STAGE_ROUNDS
