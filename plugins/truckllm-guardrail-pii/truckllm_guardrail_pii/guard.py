"""The ``pii`` guardrail: its options and its ``check``."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from typing import Annotated, Literal

import msgspec

from truckllm.errors import StartupError
from truckllm.types import GuardSubject, Verdict

from .detectors import DEFAULT_ENTITIES, Entity, Scanner, Span, mask
from .presidio import PresidioBackend

__all__ = ["ALLOW", "PiiGuardrail", "PiiOptions"]

ALLOW = Verdict()
"""The verdict of a subject with nothing found (one shared, frozen instance)."""

Score = Annotated[float, msgspec.Meta(ge=0, le=1)]
_PRESIDIO_INSTALL = "pip install 'truckllm-guardrail-pii[presidio]'; python -m spacy download en_core_web_lg"


class PiiOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``guardrails: [{type: pii, options: {...}}]``.

    :ivar mode: ``mask`` (replace each finding with ``<EMAIL>``, ``<CARD>``...; the request goes
        on) or ``block`` (refuse the request, naming the kinds found).
    :ivar entities: the detectors: ``secret``, ``email``, ``iban``, ``card``, ``phone``,
        ``ipv4`` (default: all but ``ipv4``).
    :ivar presidio: also ask presidio-analyzer (must be installed, with its spaCy model).
    :ivar presidio_entities: the presidio entity types asked for.
    :ivar presidio_language: the language presidio analyses in.
    :ivar presidio_score: presidio's findings below this score are ignored.
    """

    mode: Literal["mask", "block"] = "mask"
    entities: tuple[Entity, ...] = DEFAULT_ENTITIES
    presidio: bool = False
    presidio_entities: tuple[str, ...] = ("PERSON", "LOCATION", "NRP", "US_SSN", "US_PASSPORT", "UK_NHS")
    presidio_language: str = "en"
    presidio_score: Score = 0.5

    def __post_init__(self) -> None:
        if not self.entities and not self.presidio:
            raise ValueError("entities is empty and presidio is off: nothing to detect")
        if self.presidio and importlib.util.find_spec("presidio_analyzer") is None:
            raise ValueError(f"presidio: true needs presidio-analyzer: {_PRESIDIO_INSTALL}")


class PiiGuardrail:
    """Finds personal data and secrets in a subject's texts; masks them or blocks.

    :param options: the entry's options.
    :param presidio: a presidio backend (built from the options when ``presidio`` is on).
    """

    def __init__(self, options: PiiOptions, *, presidio: PresidioBackend | None = None) -> None:
        self.options = options
        self._scanner = Scanner(options.entities)
        self._presidio = presidio
        self._block = options.mode == "block"

    @classmethod
    def make(cls, options: object) -> PiiGuardrail:
        """The spec's factory: ``options`` decoded by the kernel (``None``: the defaults)."""
        opts = options if isinstance(options, PiiOptions) else PiiOptions()
        backend = None
        if opts.presidio:
            try:
                backend = PresidioBackend(opts.presidio_entities, opts.presidio_language, opts.presidio_score)
            except ImportError as exc:
                needs = f"presidio: true needs presidio-analyzer and its model ({_PRESIDIO_INSTALL})"
                raise StartupError(f"guardrail pii: {needs}: {exc}") from exc
        return cls(opts, presidio=backend)

    async def check(self, subject: GuardSubject) -> Verdict:
        """Allow a subject with nothing found; otherwise mask every text, or block."""
        found: dict[int, Sequence[Span]] | None = None
        scan = self._scanner.scan
        for i, piece in enumerate(subject.texts):
            spans = scan(piece.text)
            if spans:
                if found is None:
                    found = {}
                found[i] = spans
        if self._presidio is not None:
            found = await asyncio.to_thread(self._presidio.merge, subject.texts, found)
        if not found:
            return ALLOW
        counts: dict[str, int] = {}
        for spans in found.values():
            for _, _, kind in spans:
                counts[kind] = counts.get(kind, 0) + 1
        kinds = ", ".join(sorted(counts))
        if self._block:
            return Verdict(action="block", reason=f"personal data or secrets found: {kinds}", findings=counts)
        texts = tuple(
            mask(piece.text, found[i]) if i in found else piece.text for i, piece in enumerate(subject.texts)
        )
        return Verdict(action="modify", reason=f"masked: {kinds}", texts=texts, findings=counts)
