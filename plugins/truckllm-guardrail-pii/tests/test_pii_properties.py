"""Property tests of the detectors (hypothesis): what must be masked is, what must not be is not."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truckllm_guardrail_pii import ENTITIES, IBAN_LENGTHS, Scanner, luhn_ok, mask

SCANNER = Scanner(ENTITIES)
DEFAULT = Scanner(("secret", "email", "iban", "card", "phone"))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# any text: letters, digits, the separators the detectors know, punctuation, non-ASCII
noise = st.text(alphabet=st.sampled_from("abcXYZ0123456789     --..()+@_/:,;é✓\n"), max_size=80)


def _masked(text: str, scanner: Scanner = SCANNER) -> str:
    return mask(text, scanner.scan(text))


@st.composite
def cards(draw: st.DrawFn) -> str:
    """A Luhn-valid card number of 13 to 19 digits, plain or in groups of four."""
    length = draw(st.integers(13, 19))
    body = draw(st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1))
    number = next(body + d for d in "0123456789" if luhn_ok(body + d))
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(number[i : i + 4] for i in range(0, length, 4)) if sep else number


@st.composite
def ibans(draw: st.DrawFn) -> str:
    """A valid IBAN (numeric account part), compact or in groups of four."""
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    bban = draw(
        st.text(alphabet="0123456789", min_size=IBAN_LENGTHS[country] - 4, max_size=IBAN_LENGTHS[country] - 4)
    )
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    iban = f"{country}{98 - int(digits) % 97:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if draw(st.booleans()) else iban


@SETTINGS
@given(before=noise, card=cards(), after=noise)
def test_any_valid_card_in_random_text_is_masked(before: str, card: str, after: str) -> None:
    assert card not in _masked(f"{before} {card} {after}")
    assert card not in _masked(f"{before} {card} {after}", DEFAULT)


@SETTINGS
@given(before=noise, iban=ibans(), after=noise)
def test_any_valid_iban_in_random_text_is_masked(before: str, iban: str, after: str) -> None:
    assert iban not in _masked(f"{before} {iban} {after}")


@SETTINGS
@given(before=noise, email=st.emails(), after=noise)
def test_any_email_in_random_text_is_masked(before: str, email: str, after: str) -> None:
    assert email not in _masked(f"{before} {email} {after}")


@SETTINGS
@given(text=st.lists(st.one_of(noise, cards()), max_size=6).map(" ".join))
def test_masking_never_leaves_a_luhn_valid_13_to_19_digit_run(text: str) -> None:
    for masked in (_masked(text), _masked(text, DEFAULT)):
        for run in re.findall(r"\d+", masked, re.ASCII):
            assert not (13 <= len(run) <= 19 and luhn_ok(run)), (text, masked)


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéü", min_size=1, max_size=12)
numbers = st.text(alphabet="0123456789", min_size=1, max_size=4)
punctuation = st.sampled_from([" ", ", ", ". ", "; ", ": ", " - ", " (", ") ", "! ", "? ", "\n"])


@SETTINGS
@given(parts=st.lists(st.tuples(words, punctuation, st.one_of(st.none(), numbers), punctuation), max_size=40))
def test_random_text_without_them_is_unchanged(parts: list[tuple[str, str, str | None, str]]) -> None:
    text = "".join(w + p1 + (n + p2 if n is not None else "") for w, p1, n, p2 in parts)
    assert DEFAULT.scan(text) == ()
    assert _masked(text, DEFAULT) == text
