"""One scrubber for every string from upstream (issue 13, finding 2).

The class: nothing that came from upstream reaches a client, a log, a record or a metric without
passing one scrubber, applied to every string field, before any truncation; and the scrubber
catches every fragment of at least 8 characters of a configured secret.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm._internal.scrub import (
    MAX_FIELD,
    MAX_MESSAGE,
    MIN_FRAGMENT,
    Scrubber,
    config_secrets,
    scrub_error,
)
from truckllm._internal.secrets import REDACTED, Secret
from truckllm.types import UpstreamError

EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300"))
SECRET_CHARS = st.characters(codec="ascii", categories=("L", "N"), include_characters="-_")
TEXT = st.text(max_size=400)


def leaked(text: str, secret: str) -> str | None:
    """A fragment of ``secret`` of ``MIN_FRAGMENT`` characters found in ``text``, if any."""
    for i in range(len(secret) - MIN_FRAGMENT + 1):
        if secret[i : i + MIN_FRAGMENT] in text:
            return secret[i : i + MIN_FRAGMENT]
    return None


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    secret=st.text(SECRET_CHARS, min_size=MIN_FRAGMENT, max_size=80),
    before=TEXT,
    after=TEXT,
    start=st.integers(0, 80),
    length=st.integers(MIN_FRAGMENT, 80),
)
def test_no_fragment_of_a_secret_survives(secret: str, before: str, after: str, start: int, length: int) -> None:
    fragment = secret[start : start + length] or secret
    text = before + fragment + after + secret
    out = Scrubber([Secret(secret)]).text(text)
    assert leaked(out, secret) is None


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    secret=st.text(SECRET_CHARS, min_size=MIN_FRAGMENT + 4, max_size=60),
    padding=st.integers(0, 1200),
    field=st.sampled_from(["message", "type", "code", "param"]),
)
def test_every_field_is_scrubbed_before_it_is_cut(secret: str, padding: int, field: str) -> None:
    """A secret straddling the cut point (of any field) leaks nothing: scrub first, then cut."""
    value = "x" * padding + secret + " tail"
    error = UpstreamError(status=400, message="m", kind="bad_request", type="t", code="c", param="p")
    setattr(error, field, value)
    scrub_error(error, Scrubber([secret]))
    for name in ("message", "type", "code", "param"):
        text = getattr(error, name)
        assert leaked(text, secret) is None, name
        assert len(text) <= (MAX_MESSAGE if name == "message" else MAX_FIELD)


def test_the_old_300_byte_cut_case() -> None:
    key = "sk-proj-" + "Q" * 40
    body = "e" * (300 - 20) + key
    error = UpstreamError(status=401, message=body[:300], kind="auth", param=key, code=key)
    scrub_error(error, Scrubber([key]))
    assert "QQQQQQQQ" not in error.message + str(error.param) + str(error.code)
    assert error.message.endswith(REDACTED)


def test_non_string_fields_from_a_plugin_become_strings() -> None:
    error = UpstreamError(status=500, message="m", kind="server", code=12345, param=None)  # type: ignore[arg-type]
    scrub_error(error, Scrubber(()))
    assert error.code == "12345"


def test_short_secrets_are_replaced_whole_and_key_patterns_always() -> None:
    scrubber = Scrubber(["abcde"])
    assert scrubber.text("x abcde y") == f"x {REDACTED} y"
    assert scrubber.text("key sk-ant-REALLOOKINGKEY1234 here") == f"key {REDACTED} here"


def test_config_secrets_finds_typed_secrets_and_sensitive_options() -> None:
    config = {
        "admin": {"token": Secret("admin-token-value")},
        "store": {"type": "redis", "password": "redis-password-value", "tokens": 100},
        "nested": [{"api_key": "nested-key-value"}],
    }
    found = {s.reveal() if isinstance(s, Secret) else s for s in config_secrets(config)}
    assert found == {"admin-token-value", "redis-password-value", "nested-key-value"}


def test_a_huge_error_body_is_trimmed_before_it_is_scrubbed() -> None:
    """A 5 MB error body: a secret straddling the cut still leaves nothing; the rest is cut away
    before the character-by-character scan (plugins pass error text whole)."""
    secret = "sk-proj-" + "Z" * 40
    error = UpstreamError(status=500, message="x" * (MAX_MESSAGE - 5) + secret + "y" * 5_000_000, kind="server")
    scrub_error(error, Scrubber([secret]))
    assert leaked(error.message, secret) is None
    assert len(error.message) <= MAX_MESSAGE
