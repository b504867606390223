"""``providers.<name>.options`` for ``type: gemini``."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["DEFAULT_OPTIONS", "DEFAULT_THINKING", "Options", "options_of"]

DEFAULT_THINKING: dict[str, int | str] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}
"""``reasoning_effort`` → ``thinkingConfig``: an int is a ``thinkingBudget``, a string a ``thinkingLevel``."""


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``providers.<name>.options`` for ``type: gemini`` (decoded strictly by the kernel).

    :ivar safety_settings: sent as ``safetySettings`` with every generate request, unchanged
        (``[{category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_NONE}, ...]``).
    :ivar schema_mode: ``sanitize`` rewrites tool and response JSON Schemas into Gemini's OpenAPI
        subset (``parameters`` / ``responseSchema``); ``json_schema`` sends them unchanged as
        ``parametersJsonSchema`` / ``responseJsonSchema`` (models that accept full JSON Schema).
    :ivar thinking_budget_by_effort: ``reasoning_effort`` value → ``thinkingBudget`` (int) or
        ``thinkingLevel`` (string, Gemini 3); merged over :data:`DEFAULT_THINKING`.
    :ivar system_instruction: send system/developer text as ``systemInstruction``; ``false`` for
        old models without it: the text is then prepended to the first user turn.
    :ivar file_uri_prefixes: extra ``image_url`` prefixes the backend can fetch itself, sent as
        ``fileData`` (``gs://``, Files API and YouTube URLs always are).
    :ivar embedding_task_type: ``taskType`` for embeddings (``RETRIEVAL_DOCUMENT``...), if any.
    """

    safety_settings: tuple[dict[str, Any], ...] = ()
    schema_mode: Literal["sanitize", "json_schema"] = "sanitize"
    thinking_budget_by_effort: dict[str, int | str] = msgspec.field(default_factory=dict)
    system_instruction: bool = True
    file_uri_prefixes: tuple[str, ...] = ()
    embedding_task_type: str | None = None

    def thinking(self, effort: str) -> int | str | None:
        """The budget or level for one ``reasoning_effort`` value, ``None`` when unknown."""
        if effort in self.thinking_budget_by_effort:
            return self.thinking_budget_by_effort[effort]
        return DEFAULT_THINKING.get(effort)


DEFAULT_OPTIONS = Options()


def options_of(provider_options: object) -> Options:
    """The provider's decoded options, or the defaults."""
    return provider_options if isinstance(provider_options, Options) else DEFAULT_OPTIONS
