"""The ``pii`` guardrail's detectors, masks, verdicts and options, called directly."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

import msgspec
import pytest
from truckllm_guardrail_pii import ALLOW, PiiGuardrail, PiiOptions, Scanner, iban_ok, luhn_ok, mask

from truckllm.errors import StartupError
from truckllm.types import GuardSubject, GuardText


def _subject(*texts: str, stage: str = "input") -> GuardSubject:
    return GuardSubject(stage=stage, texts=tuple(GuardText(role="user", text=t) for t in texts))  # type: ignore[arg-type]


def _masked(text: str, **options: Any) -> str:
    scanner = Scanner(options.get("entities", ("secret", "email", "iban", "card", "phone", "ipv4")))
    return mask(text, scanner.scan(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+news@mail.example.co.uk today", "write to <EMAIL> today"),
        ("(JANE@EXAMPLE.ORG)", "(<EMAIL>)"),
        ("call +1 415 555 2671 now", "call <PHONE> now"),
        ("call +33 6 12 34 56 78.", "call <PHONE>."),
        ("call +14155552671", "call <PHONE>"),
        ("call (415) 555-2671 or 415.555.2671", "call <PHONE> or <PHONE>"),
        ("ring 020 7946 0958 or 06 12 34 56 78", "ring <PHONE> or <PHONE>"),
        ("pay with 4111 1111 1111 1111 please", "pay with <CARD> please"),
        ("pay with 4111-1111-1111-1111", "pay with <CARD>"),
        ("amex 378282246310005", "amex <CARD>"),
        ("to DE89 3704 0044 0532 0130 00 now", "to <IBAN> now"),
        ("to GB82WEST12345698765432", "to <IBAN>"),
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz0123", "key <SECRET>"),
        ("AKIAIOSFODNN7EXAMPLE", "<SECRET>"),
        ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "<SECRET>"),
        ("ghp_" + "a" * 36, "<SECRET>"),
        ("xoxb-123456789012-abcdef", "<SECRET>"),
        ("Bearer tllm_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5", "Bearer <SECRET>"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt <SECRET>",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----", "<SECRET>"),
        ("server 192.168.10.1 is down", "server <IPV4> is down"),
    ],
)
def test_each_detector_masks_its_kind(text: str, expected: str) -> None:
    assert _masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-12-07 at 10:30, in 2025",
        "dated 01.02.2024 and 12/05/2024",
        "order number 1234567890 and 98765",
        "the total was 1,234,567.89 USD",
        "pay with 4111 1111 1111 1112 (Luhn fails)",
        "to DE89 3704 0044 0532 0130 02 (mod-97 fails)",
        "version 1.2.3 and 10.0",
        "e-mail me @ home, not at @handle",
        "sk-short and AKIA-nope and ghp_short",
        "a well-known fact about snake_case_names_and_more_words",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert _masked(text) == text


def test_ipv4_is_off_by_default() -> None:
    scanner = Scanner(PiiOptions().entities)
    assert scanner.scan("server 192.168.10.1") == ()


def test_luhn_and_mod97() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and iban_ok("GB82WEST12345698765432")
    assert not iban_ok("DE89370400440532013002")
    assert not iban_ok("DE8937040044053201300")  # one short for Germany
    assert not iban_ok("ZZ89370400440532013000")  # no such country


def test_a_card_next_to_other_digits_is_found_by_its_groups() -> None:
    assert _masked("ref 12 4111 1111 1111 1111 end") == "ref 12 <CARD> end"


def test_an_iban_glued_to_more_text_is_not_cut_out_of_it() -> None:
    text = "DE893704004405320130004111111111111111"
    assert _masked(text) == text


def test_non_ascii_text_keeps_its_indices() -> None:
    assert _masked("é è ü — écrire à jean@exemple.fr ou 06 12 34 56 78 ✓") == (
        "é è ü — écrire à <EMAIL> ou <PHONE> ✓"
    )


async def test_nothing_found_allows_with_the_shared_verdict() -> None:
    guard = PiiGuardrail.make(PiiOptions())
    verdict = await guard.check(_subject("hello", "nothing to see here, 42 times"))
    assert verdict is ALLOW


async def test_mask_mode_replaces_every_text_and_counts_by_kind() -> None:
    guard = PiiGuardrail.make(PiiOptions())
    verdict = await guard.check(
        _subject("mail a@example.com and b@example.com", "clean", "card 4111111111111111")
    )
    assert verdict.action == "modify"
    assert verdict.texts == ("mail <EMAIL> and <EMAIL>", "clean", "card <CARD>")
    assert dict(verdict.findings) == {"email": 2, "card": 1}
    assert verdict.reason == "masked: card, email"


async def test_block_mode_names_kinds_never_values() -> None:
    guard = PiiGuardrail.make(PiiOptions(mode="block"))
    verdict = await guard.check(_subject("card 4111111111111111, mail a@example.com", stage="output"))
    assert verdict.action == "block"
    assert verdict.texts is None
    assert verdict.reason == "personal data or secrets found: card, email"
    assert "4111" not in verdict.reason and "example" not in verdict.reason
    assert dict(verdict.findings) == {"card": 1, "email": 1}


async def test_entities_choose_the_detectors() -> None:
    guard = PiiGuardrail.make(PiiOptions(entities=("email",)))
    verdict = await guard.check(_subject("a@example.com 4111111111111111"))
    assert verdict.texts == ("<EMAIL> 4111111111111111",)


def test_options_decode_strictly() -> None:
    opts = msgspec.convert({"mode": "block", "entities": ["card", "ipv4"]}, PiiOptions)
    assert opts.entities == ("card", "ipv4")
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"entities": ["ssn"]}, PiiOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"mode": "redact"}, PiiOptions)
    with pytest.raises(msgspec.ValidationError, match="nothing to detect"):
        msgspec.convert({"entities": []}, PiiOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"colour": "blue"}, PiiOptions)


def test_presidio_asked_for_but_missing_is_a_config_error() -> None:
    assert importlib.util.find_spec("presidio_analyzer") is None  # not installed here
    with pytest.raises(msgspec.ValidationError, match=r"presidio: true needs presidio-analyzer: pip install"):
        msgspec.convert({"presidio": True}, PiiOptions)


def test_presidio_failing_to_load_stops_make(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("presidio_analyzer")
    module.__spec__ = importlib.machinery.ModuleSpec("presidio_analyzer", None)
    monkeypatch.setitem(sys.modules, "presidio_analyzer", module)  # found, but no AnalyzerEngine
    options = PiiOptions(presidio=True)
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # the import now fails
    with pytest.raises(StartupError, match="presidio-analyzer and its model"):
        PiiGuardrail.make(options)


class _Result:
    def __init__(self, entity_type: str, start: int, end: int) -> None:
        self.entity_type, self.start, self.end, self.score = entity_type, start, end, 0.9


class _Engine:
    """Stands in for presidio's AnalyzerEngine: finds the name "Jane Doe"."""

    calls: list[dict[str, Any]] = []

    def analyze(self, **kwargs: Any) -> list[_Result]:
        self.calls.append(kwargs)
        text: str = kwargs["text"]
        at = text.find("Jane Doe")
        found = [_Result("PERSON", at, at + 8)] if at >= 0 else []
        at = text.find("jane@example.com")  # overlaps the regex e-mail finding: dropped
        return found + ([_Result("EMAIL_ADDRESS", at, at + 16)] if at >= 0 else [])


async def test_presidio_findings_merge_with_the_regex_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("presidio_analyzer")
    module.__spec__ = importlib.machinery.ModuleSpec("presidio_analyzer", None)
    module.AnalyzerEngine = _Engine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "presidio_analyzer", module)
    guard = PiiGuardrail.make(PiiOptions(presidio=True, presidio_entities=("PERSON",), presidio_score=0.7))
    verdict = await guard.check(_subject("Jane Doe <jane@example.com>", "no one"))
    assert verdict.texts == ("<PERSON> <<EMAIL>>", "no one")
    assert dict(verdict.findings) == {"person": 1, "email": 1}
    assert _Engine.calls[0] == {
        "text": "Jane Doe <jane@example.com>",
        "language": "en",
        "entities": ["PERSON"],
        "score_threshold": 0.7,
    }
