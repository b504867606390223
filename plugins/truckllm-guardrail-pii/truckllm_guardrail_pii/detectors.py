"""The regex and checksum detectors: where personal data and secrets are in one text.

Each finder takes the text and the spans already taken by detectors of a higher priority and
yields ``(start, end)`` candidates; :class:`Scanner` keeps those that overlap nothing taken.
Every pattern is compiled once, at import. A text with nothing to find costs one pass of each
enabled pattern (a few of them behind a cheaper substring test) and allocates nothing else.

Priority (the first to claim a character keeps it): ``secret``, ``email``, ``iban``, ``card``,
``phone``, ``ipv4``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal

__all__ = [
    "DEFAULT_ENTITIES",
    "ENTITIES",
    "IBAN_LENGTHS",
    "MASKS",
    "Entity",
    "Scanner",
    "Span",
    "Text",
    "iban_ok",
    "luhn_ok",
    "mask",
]

Entity = Literal["secret", "email", "iban", "card", "phone", "ipv4"]
"""A detector's name, as ``entities`` lists it and findings count it."""

ENTITIES: tuple[Entity, ...] = ("secret", "email", "iban", "card", "phone", "ipv4")
"""Every detector, in priority order."""

DEFAULT_ENTITIES: tuple[Entity, ...] = ("secret", "email", "iban", "card", "phone")
"""The detectors on by default (``ipv4`` is off: version numbers look like addresses)."""

MASKS: dict[str, str] = {
    "secret": "<SECRET>",
    "email": "<EMAIL>",
    "iban": "<IBAN>",
    "card": "<CARD>",
    "phone": "<PHONE>",
    "ipv4": "<IPV4>",
}
"""What each kind of finding is replaced with (other kinds: ``<KIND>`` upper-cased)."""

Span = tuple[int, int, str]
"""``(start, end, kind)`` of one finding in a text."""

Finder = Callable[["Text", Sequence[Span]], Iterable[tuple[int, int]]]

_NO_SPANS: tuple[Span, ...] = ()


def _table(classes: dict[bytes, bytes], default: bytes) -> bytes:
    table = bytearray(default * 256)
    for chars, to in classes.items():
        for ch in chars:
            table[ch] = to[0]
    return bytes(table)


_DIGITS = b"0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_T_SHAPE = _table({_DIGITS + b" -.()": b"9", _UPPER: b"A"}, b"_")
_SEPARATORS = b" -.()"
_T_DIGIT = _table({_DIGITS: b"1"}, b"0")  # digits as 1: a run's digits counted without a copy
_NUMBER_RUN = 10  # the shortest card or national phone number, separators included
_NUMBER_RUN_IPV4 = 7  # 1.1.1.1


class Text:
    """One text being scanned, with its ASCII shape made on first use (same length, same indices).

    The shape lets C-speed ``bytes.find`` locate the few places worth a regex: runs of digits
    and separators (cards, phones, IPv4) and an upper-case pair before two digits (IBANs). A
    non-ASCII character is one ``?`` before it is shaped.

    :param text: the text.
    """

    __slots__ = ("_ascii", "_runs", "_shape", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._shape: bytes | None = None
        self._ascii = b""
        self._runs: dict[int, list[tuple[int, int, int]]] | None = None

    def shape(self) -> bytes:
        """The shape: digits, spaces, ``-``, ``.``, ``(``, ``)`` as ``9``; capitals ``A``; the rest ``_``."""
        if self._shape is None:
            self._ascii = self.text.encode("ascii", "replace")
            self._shape = self._ascii.translate(_T_SHAPE)
        return self._shape

    def number_runs(self, shortest: int, digits: int) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each run of digits, spaces, ``-``, ``.``, ``(``, ``)`` at least
        ``shortest`` long holding at least ``digits`` digits."""
        if self._runs is None:
            self._runs = {}
        runs = self._runs.get(shortest)
        if runs is None:
            runs = self._runs[shortest] = []
            shape = self.shape()
            ones = self._ascii.translate(_T_DIGIT)
            for start, end in _runs(shape, b"9" * shortest):
                runs.append((start, end, ones.count(b"1", start, end)))
        return ((start, end) for start, end, count in runs if count >= digits)

    def iban_starts(self) -> Iterator[int]:
        """Where two upper-case letters are followed by two digits (or separators)."""
        shape = self.shape()
        at = shape.find(b"AA99")
        while at >= 0:
            yield at
            at = shape.find(b"AA99", at + 1)


_NINES = re.compile(rb"9+")


def _runs(shape: bytes, needle: bytes) -> Iterator[tuple[int, int]]:
    """The maximal runs of ``9`` that hold ``needle`` (``find`` gives each run's start)."""
    at = shape.find(needle)
    while at >= 0:
        run = _NINES.match(shape, at)
        end = run.end() if run is not None else at + len(needle)
        yield at, end
        at = shape.find(needle, end)


# --- secrets: API-key shapes ----------------------------------------------------------------------

_BEFORE = r"(?<![A-Za-z0-9_\-])"


def _secret(prefix: str, rest: str) -> re.Pattern[str]:
    # the look-behind after the literal prefix keeps the regex engine's fast literal search
    return re.compile(rf"{re.escape(prefix)}(?<!{_BEFORE[4:-1]}{re.escape(prefix)}){rest}", re.ASCII)


_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("-", _secret("sk-", r"[A-Za-z0-9_\-]{20,}")),  # OpenAI (sk-proj-...), Anthropic (sk-ant-...)
    ("-", _secret("xox", r"[abposr]-[A-Za-z0-9\-]{10,}")),  # Slack tokens
    (
        "-",
        re.compile(r"-----BEGIN ([A-Z ]{0,20})PRIVATE KEY-----[\s\S]{0,16384}?-----END \1PRIVATE KEY-----"),
    ),
    ("_", _secret("gh", r"[pousr]_[A-Za-z0-9]{36,}")),  # GitHub tokens
    ("_", _secret("github_pat_", r"[A-Za-z0-9_]{22,}")),
    ("_", _secret("tllm_", r"[A-Za-z0-9_\-]{16,}")),  # TruckLLM gateway keys
    ("A", _secret("A", r"(?:KIA|SIA)[0-9A-Z]{16}(?![A-Za-z0-9_\-])")),  # AWS access key ids
    ("z", _secret("AIza", r"[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-])")),  # Google API keys
    ("J", _secret("eyJ", r"[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")),  # JWTs
)
"""Each API-key shape's regex, behind a character it must contain (a C-speed test first)."""


def _find_secrets(text: Text, taken: Sequence[Span]) -> Iterable[tuple[int, int]]:
    raw = text.text
    found: list[tuple[int, int]] | None = None
    for gate, pattern in _SECRETS:
        if gate in raw:
            for m in pattern.finditer(raw):
                if found is None:
                    found = []
                found.append(m.span())
    return found or ()


# --- e-mail ---------------------------------------------------------------------------------------

_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~.")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?![A-Za-z0-9])",
    re.ASCII,
)


def _find_emails(text: Text, taken: Sequence[Span]) -> Iterable[tuple[int, int]]:
    raw = text.text
    at = raw.find("@")
    if at < 0:
        return ()
    found: list[tuple[int, int]] = []
    while at >= 0:
        start = at
        floor = max(0, at - 64)
        while start > floor and raw[start - 1] in _LOCAL_CHARS:
            start -= 1
        if start == floor and floor > 0 and raw[floor - 1] in _LOCAL_CHARS:
            start = at  # a local part longer than 64 characters: not an address
        while start < at and raw[start] == ".":  # a local part never starts with a dot
            start += 1
        domain = _DOMAIN.match(raw, at + 1) if start < at else None
        if domain is not None:
            found.append((start, domain.end()))
            at = raw.find("@", domain.end())
        else:
            at = raw.find("@", at + 1)
    return found


# --- IBAN (ISO 13616, mod-97) ---------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
"""An IBAN's length (without spaces) by country code."""

_IBAN = re.compile(r"([A-Z]{2})(?<![A-Za-z0-9][A-Z]{2})\d\d(?: ?[A-Z0-9]){11,30}", re.ASCII)


def iban_ok(iban: str) -> bool:
    """Is ``iban`` (no spaces, upper case) of its country's length, with valid check digits?"""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not (iban.isascii() and iban.isalnum()):
        return False
    moved = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in moved)
    return int(digits) % 97 == 1


def _find_ibans(text: Text, taken: Sequence[Span]) -> Iterable[tuple[int, int]]:
    raw = text.text
    found: list[tuple[int, int]] | None = None
    for at in text.iban_starts():
        m = _IBAN.match(raw, at)
        if m is None:
            continue
        length = IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        chars: list[str] = []
        end = at
        stop = m.end()
        while end < stop and len(chars) < length:
            if raw[end] != " ":
                chars.append(raw[end])
            end += 1
        if len(chars) < length or (end < len(raw) and raw[end].isalnum()):
            continue
        if iban_ok("".join(chars)):
            if found is None:
                found = []
            found.append((at, end))
    return found or ()


# --- payment cards (Luhn) -------------------------------------------------------------------------

_CARD_RUN = re.compile(r"(?<!\d)\d(?:[ \-]?\d){12,}", re.ASCII)
_GROUP = re.compile(r"\d+", re.ASCII)
_DOUBLED = bytes(48) + bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)) + bytes(198)  # by ASCII code: 2d, digits summed


def luhn_ok(digits: str) -> bool:
    """Does the ASCII digit string ``digits`` pass the Luhn check?"""
    raw = digits.encode("ascii")
    kept, doubled = raw[-1::-2], raw[-2::-2]
    total = sum(kept) - 48 * len(kept) + sum(map(_DOUBLED.__getitem__, doubled))
    return total % 10 == 0


def _overlaps(start: int, end: int, taken: Sequence[Span]) -> bool:
    return any(s < end and start < e for s, e, _ in taken)


def _cards_in(raw: str, groups: list[tuple[int, int]], taken: Sequence[Span]) -> Iterator[tuple[int, int]]:
    """The longest Luhn-valid runs of 13 to 19 digits made of whole consecutive groups."""
    i = 0
    while i < len(groups):
        count = 0
        ends: list[int] = []
        for j in range(i, len(groups)):
            count += groups[j][1] - groups[j][0]
            if count > 19:
                break
            if count >= 13:
                ends.append(j)
        for j in reversed(ends):  # the longest first
            start, end = groups[i][0], groups[j][1]
            if luhn_ok("".join(raw[s:e] for s, e in groups[i : j + 1])) and not _overlaps(start, end, taken):
                yield start, end
                i = j
                break
        i += 1


def _find_cards(text: Text, taken: Sequence[Span]) -> Iterable[tuple[int, int]]:
    raw = text.text
    found: list[tuple[int, int]] | None = None
    for start, end in text.number_runs(_NUMBER_RUN, 13):
        for run in _CARD_RUN.finditer(raw, start, end):
            if run.end() - run.start() <= 19 and run.group().isdigit():  # plain digits: one group
                if luhn_ok(run.group()) and not _overlaps(run.start(), run.end(), taken):
                    found = found or []
                    found.append(run.span())
                continue
            digits = run.group().replace(" ", "").replace("-", "")
            if len(digits) <= 19 and luhn_ok(digits) and not _overlaps(run.start(), run.end(), taken):
                found = found or []  # the whole run: the longest candidate, what _cards_in would pick
                found.append(run.span())
                continue
            groups = [g.span() for g in _GROUP.finditer(raw, run.start(), run.end())]
            for span in _cards_in(raw, groups, taken):
                if found is None:
                    found = []
                found.append(span)
    return found or ()


# --- phone numbers --------------------------------------------------------------------------------

_PHONE_INTL = re.compile(r"\+(?<![\w+]\+)[1-9](?:[ .\-]?\(?\d+\)?)++(?!\w)", re.ASCII)
_PHONE_NANP = re.compile(r"(?<![\w+.\-])(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?![\w\-]|\.\d)", re.ASCII)
_PHONE_TRUNK = re.compile(r"(?<![\w+.\-/])0\d{1,4}([ .\-])\d{2,8}(?:\1\d{2,8})*+(?![\w/]|[.\-]\d)", re.ASCII)


_NOT_DIGITS = bytes(c for c in range(256) if not 48 <= c <= 57)


def _digit_count(text: str, start: int, end: int) -> int:
    return len(text[start:end].encode("ascii", "replace").translate(None, _NOT_DIGITS))


def _find_phones(text: Text, taken: Sequence[Span]) -> Iterable[tuple[int, int]]:
    raw = text.text
    found: list[tuple[int, int]] | None = None
    if "+" in raw:
        found = [m.span() for m in _PHONE_INTL.finditer(raw) if 8 <= _digit_count(raw, *m.span()) <= 15]
    for start, end in text.number_runs(_NUMBER_RUN, 9):
        stop = min(len(raw), end + 2)  # the patterns' look-aheads see two characters on
        for m in _PHONE_NANP.finditer(raw, start, stop):
            found = found or []
            found.append(m.span())
        for m in _PHONE_TRUNK.finditer(raw, start, stop):
            if 9 <= _digit_count(raw, *m.span()) <= 13:
                found = found or []
                found.append(m.span())
    return found or ()


# --- IPv4 -----------------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\.?\d)", re.ASCII)


def _find_ipv4(text: Text, taken: Sequence[Span]) -> Iterable[tuple[int, int]]:
    raw = text.text
    found: list[tuple[int, int]] | None = None
    for start, end in text.number_runs(_NUMBER_RUN_IPV4, 4):
        for m in _IPV4.finditer(raw, start, min(len(raw), end + 2)):
            found = found or []
            found.append(m.span())
    return found or ()


_FINDERS: dict[str, Finder] = {
    "secret": _find_secrets,
    "email": _find_emails,
    "iban": _find_ibans,
    "card": _find_cards,
    "phone": _find_phones,
    "ipv4": _find_ipv4,
}


class Scanner:
    """The enabled detectors, run in priority order over one text.

    :param entities: which detectors (any order; they run in :data:`ENTITIES` order).
    """

    def __init__(self, entities: Iterable[str]) -> None:
        wanted = set(entities)
        unknown = wanted - set(ENTITIES)
        if unknown:
            raise ValueError(f"unknown entities {sorted(unknown)}; known: {', '.join(ENTITIES)}")
        self._finders = tuple((kind, _FINDERS[kind]) for kind in ENTITIES if kind in wanted)

    def scan(self, text: str) -> Sequence[Span]:
        """Every finding in ``text``, by start, none overlapping (empty, and allocated once, if none)."""
        spans: list[Span] | None = None
        shaped = Text(text)
        for kind, finder in self._finders:
            for start, end in finder(shaped, spans or _NO_SPANS):
                if spans is None:
                    spans = []
                elif _overlaps(start, end, spans):
                    continue
                spans.append((start, end, kind))
        if spans is None:
            return _NO_SPANS
        spans.sort()
        return spans


def mask(text: str, spans: Sequence[Span]) -> str:
    """``text`` with each span replaced by its kind's mask (:data:`MASKS`); spans sorted, disjoint."""
    parts: list[str] = []
    pos = 0
    for start, end, kind in spans:
        parts.append(text[pos:start])
        parts.append(MASKS.get(kind) or f"<{kind.upper()}>")
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
