"""The ``policy`` guardrail: its options and its ``check``."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

from truckllm.types import GuardSubject, Verdict

__all__ = ["ALLOW", "PolicyGuardrail", "PolicyOptions"]

ALLOW = Verdict()
"""The verdict of a subject every rule lets through (one shared, frozen instance)."""

PosInt = Annotated[int, msgspec.Meta(ge=1)]


def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for i, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ValueError(
                f"blocked_patterns[{i}] {pattern!r} is not a valid regular expression: {exc}"
            ) from None
    return tuple(compiled)


class PolicyOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``guardrails: [{type: policy, options: {...}}]``; every rule is optional, at least one is set.

    :ivar max_input_tokens: block a request whose prompt is estimated above this many tokens
        (``input`` stage).
    :ivar blocked_words: block text holding any of these words or phrases (whole words,
        case-insensitive).
    :ivar blocked_patterns: block text any of these regular expressions (Python syntax) finds.
    :ivar allowed_tools: only these tool names may be offered (``input``) or called (``output``);
        absent: any tool; ``[]``: none.
    :ivar max_output_chars: block an answer longer than this many characters (``output`` stage;
        a stream's each window on its own, see the README).
    """

    max_input_tokens: PosInt | None = None
    blocked_words: tuple[str, ...] = ()
    blocked_patterns: tuple[str, ...] = ()
    allowed_tools: frozenset[str] | None = None
    max_output_chars: PosInt | None = None

    def __post_init__(self) -> None:
        _compile(self.blocked_patterns)
        for i, word in enumerate(self.blocked_words):
            if not word.strip():
                raise ValueError(f"blocked_words[{i}] is empty")
        if (
            self.max_input_tokens is None
            and not self.blocked_words
            and not self.blocked_patterns
            and self.allowed_tools is None
            and self.max_output_chars is None
        ):
            raise ValueError(
                "no rule set: give max_input_tokens, blocked_words, blocked_patterns, allowed_tools "
                "or max_output_chars"
            )


class PolicyGuardrail:
    """Blocks what breaks a rule; the reason names the rule (and its index), never the text.

    :param options: the entry's options.
    """

    def __init__(self, options: PolicyOptions) -> None:
        self.options = options
        self._patterns = _compile(options.blocked_patterns)
        self._words = tuple(w.strip().casefold() for w in options.blocked_words)

    @classmethod
    def make(cls, options: object) -> PolicyGuardrail:
        """The spec's factory: ``options`` decoded by the kernel."""
        if not isinstance(options, PolicyOptions):
            raise TypeError("the policy guardrail needs its options")
        return cls(options)

    async def check(self, subject: GuardSubject) -> Verdict:
        """The first rule broken blocks, in the order of :class:`PolicyOptions`' fields."""
        opts = self.options
        limit = opts.max_input_tokens
        if subject.stage == "input" and limit is not None and subject.estimated_tokens > limit:
            return _block(
                "max_input_tokens",
                f"the prompt is about {subject.estimated_tokens} tokens, over max_input_tokens {limit}",
            )
        if self._words:
            for piece in subject.texts:
                index = _blocked_word(piece.text.casefold(), self._words)
                if index is not None:
                    return _block("blocked_words", f"the text holds blocked_words[{index}]")
        for index, pattern in enumerate(self._patterns):
            if any(pattern.search(piece.text) for piece in subject.texts):
                return _block("blocked_patterns", f"the text matches blocked_patterns[{index}]")
        if opts.allowed_tools is not None:
            refused = sum(1 for tool in subject.tools if tool not in opts.allowed_tools)
            if refused:
                what = "offers" if subject.stage == "input" else "calls"
                return _block("allowed_tools", f"the request {what} {refused} tool(s) not in allowed_tools")
        if subject.stage == "output" and opts.max_output_chars is not None:
            size = sum(len(piece.text) for piece in subject.texts)
            if size > opts.max_output_chars:
                return _block(
                    "max_output_chars",
                    f"the answer is {size} characters, over max_output_chars {opts.max_output_chars}",
                )
        return ALLOW


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _blocked_word(text: str, words: tuple[str, ...]) -> int | None:
    """The index of the first of ``words`` found in ``text`` as a whole word (both case-folded).

    ``str.find`` per word (C speed) and a look at the characters around each hit: cheaper than
    one case-insensitive regex over the text for the few words a policy lists.
    """
    for index, word in enumerate(words):
        at = text.find(word)
        while at >= 0:
            end = at + len(word)
            before_ok = at == 0 or not (_is_word_char(word[0]) and _is_word_char(text[at - 1]))
            after_ok = end == len(text) or not (_is_word_char(word[-1]) and _is_word_char(text[end]))
            if before_ok and after_ok:
                return index
            at = text.find(word, at + 1)
    return None


def _block(rule: str, reason: str) -> Verdict:
    return Verdict(action="block", reason=reason, findings={rule: 1})
