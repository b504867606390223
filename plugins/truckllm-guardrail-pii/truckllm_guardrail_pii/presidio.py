"""The optional presidio-analyzer backend, merged with the regex detectors' findings."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from truckllm.types import GuardText

from .detectors import Span

__all__ = ["PresidioBackend"]


class PresidioBackend:
    """An ``AnalyzerEngine`` built once (it loads a spaCy model), asked about each text.

    Findings that overlap one of the regex detectors' are dropped (the regex's kind wins); the
    others count under their entity type in lower case (``person``) and mask as ``<PERSON>``.

    :param entities: presidio entity types to ask for.
    :param language: the analysis language.
    :param score: the lowest score kept.
    :raises ImportError: presidio-analyzer (or its model) is not installed.
    """

    def __init__(self, entities: Sequence[str], language: str, score: float) -> None:
        module = importlib.import_module("presidio_analyzer")
        try:
            self._engine: Any = module.AnalyzerEngine()
        except (OSError, ValueError) as exc:  # spaCy's model missing
            raise ImportError(f"presidio-analyzer could not load its model: {exc}") from exc
        self._entities = list(entities)
        self._language = language
        self._score = score

    def spans(self, text: str) -> list[Span]:
        """Presidio's findings in ``text``, as spans."""
        results = self._engine.analyze(
            text=text, language=self._language, entities=self._entities, score_threshold=self._score
        )
        return [(int(r.start), int(r.end), str(r.entity_type).lower()) for r in results]

    def merge(
        self, texts: Sequence[GuardText], found: dict[int, Sequence[Span]] | None
    ) -> dict[int, Sequence[Span]] | None:
        """``found`` (the regex findings by text index) with presidio's added; runs in a thread."""
        merged = dict(found or {})
        for i, piece in enumerate(texts):
            extra = self.spans(piece.text)
            if not extra:
                continue
            kept = list(merged.get(i, ()))
            for start, end, kind in sorted(extra, key=lambda s: (s[0], -s[1])):
                if not any(s < end and start < e for s, e, _ in kept):
                    kept.append((start, end, kind))
            merged[i] = sorted(kept)
        return merged or None
