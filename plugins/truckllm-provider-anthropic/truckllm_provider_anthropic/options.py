"""``providers.<name>.options`` for ``type: anthropic``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["DEFAULT_OPTIONS", "Options"]


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Options of an Anthropic provider entry, decoded strictly from its YAML ``options:``.

    :ivar anthropic_version: the ``anthropic-version`` header sent upstream.
    :ivar max_tokens: ``max_tokens`` sent when the client gives none (Anthropic requires it).
    :ivar max_tokens_by_model: per-model defaults overriding ``max_tokens``; keys are model-name
        prefixes, the longest matching prefix wins (``{"claude-3-haiku": 4096, "claude-sonnet-4": 64000}``).
    :ivar beta: features sent in the ``anthropic-beta`` header, comma-joined.
    :ivar temperature_with_top_p: the models accept ``temperature`` and ``top_p`` together; when
        false (the default, as newer models reject both) ``top_p`` is dropped when both are set.
    :ivar json_mode: how ``response_format`` JSON modes are served: ``tool`` (a forced tool whose
        input becomes the answer; works on every model) or ``output_config`` (native structured
        outputs, on models that support them).
    """

    anthropic_version: str = "2023-06-01"
    max_tokens: Annotated[int, Meta(ge=1)] = 4096
    max_tokens_by_model: dict[str, Annotated[int, Meta(ge=1)]] = msgspec.field(default_factory=dict)
    beta: tuple[str, ...] = ()
    temperature_with_top_p: bool = False
    json_mode: Literal["tool", "output_config"] = "tool"

    def default_max_tokens(self, model: str) -> int:
        """The ``max_tokens`` default for ``model`` (longest matching prefix, else ``max_tokens``)."""
        best = -1
        value = self.max_tokens
        for prefix, tokens in self.max_tokens_by_model.items():
            if model.startswith(prefix) and len(prefix) > best:
                best, value = len(prefix), tokens
        return value


DEFAULT_OPTIONS = Options()
"""The options of an entry that gives none."""
