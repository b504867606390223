"""The ``llm`` guardrail against a fake OpenAI upstream: allow, block, malformed answers,
failures, timeouts, the cache and shared calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from truckllm_guardrail_llm import ALLOW, DEFAULT_PROMPT, JudgeError, LlmGuardrail, LlmOptions, render

from truckllm._internal.config.loader import decode_options
from truckllm.types import GuardSubject, GuardText
from truckllm_testing.fakes import FakeOpenAI, Fault, Reply

JUDGE_KEY = "sk-judge-key-0123456789abcdef"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(keys=[JUDGE_KEY]) as server:
        yield server


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _guard(fake: FakeOpenAI, clock: Clock | None = None, **options: Any) -> LlmGuardrail:
    opts = decode_options(
        {"url": fake.base_url, "model": "gpt-4o-mini", "key": JUDGE_KEY, **options}, LlmOptions
    )
    return LlmGuardrail(opts, clock=clock or Clock())


def _subject(*texts: str, stage: str = "input") -> GuardSubject:
    return GuardSubject(stage=stage, texts=tuple(GuardText(role="user", text=t) for t in texts))  # type: ignore[arg-type]


async def test_allow(fake: FakeOpenAI) -> None:
    fake.script(Reply(text='{"allowed": true, "reason": "harmless"}'))
    guard = _guard(fake)
    try:
        assert await guard.check(_subject("What is the capital of France?")) is ALLOW
    finally:
        await guard.aclose()
    (request,) = fake.requests
    assert request.api_key == JUDGE_KEY
    assert request.json["model"] == "gpt-4o-mini"
    assert request.json["temperature"] == 0
    system, user = request.json["messages"]
    assert system == {"role": "system", "content": DEFAULT_PROMPT}
    assert user["content"] == "Stage: input\n<content>\n[user]\nWhat is the capital of France?\n</content>"
    assert fake.violations == []


async def test_block_with_the_judges_reason_on_one_line(fake: FakeOpenAI) -> None:
    fake.script(Reply(text='```json\n{"allowed": false,\n "reason": "asks for\\nmalware"}\n```'))
    guard = _guard(fake)
    try:
        verdict = await guard.check(_subject("write me ransomware", stage="output"))
    finally:
        await guard.aclose()
    assert verdict.action == "block"
    assert verdict.reason == "judge: asks for malware"
    assert dict(verdict.findings) == {"refused": 1}
    assert fake.requests[0].json["messages"][1]["content"].startswith("Stage: output\n")


@pytest.mark.parametrize(
    "answer",
    [
        "Sure, that looks fine to me.",
        '{"allowed": "yes"}',
        '{"reason": "no verdict"}',
        '{"allowed": true',
        "[true]",
    ],
)
async def test_an_answer_that_is_not_the_json_verdict_raises(fake: FakeOpenAI, answer: str) -> None:
    fake.script(Reply(text=answer))
    guard = _guard(fake)
    try:
        with pytest.raises(JudgeError):
            await guard.check(_subject("hello"))
    finally:
        await guard.aclose()


async def test_a_failing_judge_raises_without_the_key_and_is_not_cached(fake: FakeOpenAI) -> None:
    fake.inject(Fault(status=500))
    fake.script(Reply(text='{"allowed": true}'))
    guard = _guard(fake)
    try:
        with pytest.raises(JudgeError, match="HTTP 500") as raised:
            await guard.check(_subject("hello"))
        assert JUDGE_KEY not in str(raised.value)
        assert await guard.check(_subject("hello")) is ALLOW  # asked again: the error was not kept
    finally:
        await guard.aclose()
    assert len(fake.requests) == 2


async def test_a_wrong_key_is_a_judge_error(fake: FakeOpenAI) -> None:
    opts = LlmOptions(url=fake.base_url, model="gpt-4o-mini")
    guard = LlmGuardrail(opts)
    try:
        with pytest.raises(JudgeError, match="HTTP 401"):
            await guard.check(_subject("hello"))
    finally:
        await guard.aclose()


async def test_an_unreachable_judge_raises() -> None:
    guard = LlmGuardrail(LlmOptions(url="http://127.0.0.1:9/v1", model="judge"))
    try:
        with pytest.raises(JudgeError, match="could not be reached"):
            await guard.check(_subject("hello"))
    finally:
        await guard.aclose()


async def test_timeout(fake: FakeOpenAI) -> None:
    fake.inject(Fault(delay=5))
    guard = _guard(fake, timeout="100ms")
    try:
        with pytest.raises(TimeoutError):
            await guard.check(_subject("hello"))
    finally:
        await guard.aclose()


async def test_cache_hits_make_one_upstream_call(fake: FakeOpenAI) -> None:
    fake.script(Reply(text='{"allowed": false, "reason": "no"}', times=-1))
    clock = Clock()
    guard = _guard(fake, clock, cache_ttl="60s")
    try:
        first = await guard.check(_subject("same text"))
        second = await guard.check(_subject("same text"))
        assert first == second and first.action == "block"
        assert len(fake.requests) == 1 and guard.calls == 1
        await guard.check(_subject("same text", stage="output"))  # another stage: another question
        assert len(fake.requests) == 2
        clock.now += 61  # expired
        await guard.check(_subject("same text"))
        assert len(fake.requests) == 3
    finally:
        await guard.aclose()


async def test_the_cache_keeps_the_most_recently_used(fake: FakeOpenAI) -> None:
    fake.script(Reply(text='{"allowed": true}', times=-1))
    guard = _guard(fake, cache_size=2)
    try:
        for text in ("a", "b", "a", "c", "a", "b"):  # b is evicted by c, a never is
            await guard.check(_subject(text))
    finally:
        await guard.aclose()
    asked = [r.json["messages"][1]["content"].split("\n")[3] for r in fake.requests]
    assert asked == ["a", "b", "c", "b"]


async def test_no_cache(fake: FakeOpenAI) -> None:
    fake.script(Reply(text='{"allowed": true}', times=-1))
    guard = _guard(fake, cache_ttl=0)
    try:
        await guard.check(_subject("x"))
        await guard.check(_subject("x"))
    finally:
        await guard.aclose()
    assert len(fake.requests) == 2


async def test_identical_checks_at_once_share_one_call(fake: FakeOpenAI) -> None:
    fake.inject(Fault(delay=0.2))
    fake.script(Reply(text='{"allowed": true}'))
    guard = _guard(fake)
    try:
        verdicts = await asyncio.gather(*(guard.check(_subject("same")) for _ in range(5)))
    finally:
        await guard.aclose()
    assert verdicts == [ALLOW] * 5
    assert len(fake.requests) == 1


async def test_a_check_that_gives_up_lets_the_call_fill_the_cache(fake: FakeOpenAI) -> None:
    fake.inject(Fault(delay=0.3))
    fake.script(Reply(text='{"allowed": true}'))
    guard = _guard(fake)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):  # the kernel's entry timeout
                await guard.check(_subject("slow"))
        assert await guard.check(_subject("slow")) is ALLOW  # joins the call still running
    finally:
        await guard.aclose()
    assert len(fake.requests) == 1


def test_render_cuts_the_middle_and_lists_tools() -> None:
    subject = GuardSubject(
        stage="input",
        texts=(GuardText(role="system", text="S" * 50), GuardText(role="user", text="U" * 50)),
        tools=("search", "shell"),
    )
    full = render(subject, 10_000)
    assert full == "Stage: input\n<content>\n[system]\n" + "S" * 50 + "\n\n[user]\n" + "U" * 50 + (
        "\n\n[tools]\nsearch, shell\n</content>"
    )
    cut = render(subject, 40)
    assert "characters cut" in cut
    assert cut.endswith("search, shell\n</content>") and cut.startswith(
        "Stage: input\n<content>\n[system]\nSSS"
    )


def test_options_validate_and_hide_the_key() -> None:
    opts = decode_options({"url": "https://judge.example/v1", "model": "m", "key": JUDGE_KEY}, LlmOptions)
    assert JUDGE_KEY not in repr(opts) and JUDGE_KEY not in str(opts.key)
    assert opts.key is not None and opts.key.reveal() == JUDGE_KEY
    for bad in ({"url": "judge.example", "model": "m"}, {"url": "http://x/v1", "model": " "}, {"model": "m"}):
        with pytest.raises(msgspec.ValidationError):
            decode_options(bad, LlmOptions)
    with pytest.raises(msgspec.ValidationError):
        decode_options({"url": "http://x/v1", "model": "m", "timeout": 0}, LlmOptions)


async def test_an_idle_guardrail_holds_no_session(fake: FakeOpenAI) -> None:
    fake.script(Reply(text='{"allowed": true}', times=-1))
    guard = _guard(fake, cache_ttl=0)
    await asyncio.gather(*(guard.check(_subject(str(i))) for i in range(3)))
    assert guard._session is None  # closed once the last call ended: nothing leaks at shutdown
    await guard.check(_subject("again"))  # a new call opens a new one
    assert guard._session is None
    await guard.aclose()
