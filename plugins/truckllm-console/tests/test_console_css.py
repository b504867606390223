"""The stylesheet: WCAG AA contrast (4.5:1) for every text colour on the background it is used
on, a visible focus ring, a phone layout, and nothing fetched from elsewhere."""

from __future__ import annotations

import re
from importlib import resources

import pytest

CSS = (resources.files("truckllm_console") / "static" / "console.css").read_text()
VARS = dict(re.findall(r"--([a-z0-9-]+):\s*(#[0-9a-fA-F]{6})", CSS))


def luminance(colour: str) -> float:
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(
    ("text", "background"),
    [
        ("text", "bg"),
        ("text", "panel"),
        ("muted", "bg"),
        ("muted", "panel"),
        ("link", "bg"),
        ("link", "panel"),
        ("head-text", "head"),
        ("ok", "ok-bg"),
        ("bad", "bad-bg"),
        ("warn", "warn-bg"),
        ("bad", "bg"),
        ("ok", "bg"),
        ("text", "warn-bg"),
    ],
)
def test_text_colours_meet_wcag_aa(text: str, background: str) -> None:
    assert contrast(VARS[text], VARS[background]) >= 4.5


def test_white_on_the_primary_buttons_and_current_range() -> None:
    assert contrast("#ffffff", VARS["link"]) >= 4.5


def test_focus_rings_are_visible() -> None:
    assert contrast(VARS["focus"], VARS["bg"]) >= 3  # non-text contrast
    assert contrast(VARS["focus-dark"], VARS["head"]) >= 3
    assert re.search(r"a:focus-visible, button:focus-visible[^{]*\{\s*outline: 3px solid var\(--focus\)", CSS)


def test_a_phone_layout_and_no_external_resource() -> None:
    assert "@media (max-width: 720px)" in CSS
    assert "url(" not in CSS and "@import" not in CSS and "@font-face" not in CSS
