"""``docs/plugins.md`` cannot drift: its reference is regenerated from the hookspecs and compared.

When this fails after a hookspec or a value type changed, regenerate the block:

    .venv/bin/python -m truckllm_testing.docs --write docs/plugins.md
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from truckllm import hookspecs
from truckllm_testing import docs

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
FIX = "run: .venv/bin/python -m truckllm_testing.docs --write docs/plugins.md"

HAND_WRITTEN = [
    "## Start from the template",
    "## Packaging",
    "## How the kernel loads plugins",
    "## Provider plugins",
    "## Strategy plugins",
    "## Stores and loggers",
    "## What a plugin may and may not do",
    "## Compatibility policy",
    "## Testing a plugin with the kit",
]


def generated_block(text: str) -> str:
    start, end = text.index(docs.BEGIN) + len(docs.BEGIN), text.index(docs.END)
    return text[start:end].strip("\n") + "\n"


def test_the_reference_in_docs_plugins_md_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert generated_block(text) == docs.render_reference(), f"docs/plugins.md is out of date: {FIX}"
    assert docs.replace_block(text, docs.render_reference()) == text, FIX


def test_every_hook_is_in_the_reference_with_its_kind_and_version() -> None:
    text = DOC.read_text(encoding="utf-8")
    specs = {name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "truckllm_spec")}
    documented = set(re.findall(r"^#### `(\w+)`$", generated_block(text), re.MULTILINE))
    assert specs <= documented, f"hooks missing from docs/plugins.md: {sorted(specs - documented)}; {FIX}"
    assert f"Plugin API version: **{hookspecs.HOOKSPEC_VERSION}**" in text
    for doc in docs.hook_docs():
        assert doc.section, f"{doc.name} is under no '# --- section ---' comment in hookspecs.py"
        assert any(name == "versionadded" for name, _ in doc.directives), doc.name
        for param, annotation, meaning in doc.params:
            assert meaning and annotation, f"{doc.name}: argument {param} is undocumented"


def test_the_hand_written_sections_are_there() -> None:
    text = DOC.read_text(encoding="utf-8")
    before_block = text[: text.index(docs.BEGIN)]
    for heading in HAND_WRITTEN:
        assert f"\n{heading}\n" in before_block, f"docs/plugins.md lost its section {heading!r}"
    for must in (
        "UnsupportedRequest",
        "UpstreamFailure",
        "api_key",
        "TRUCKLLM_API",
        "warn_on_impl",
        "ProviderConformance",
    ):
        assert must in before_block, must


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_internal_links_point_at_headings() -> None:
    text = DOC.read_text(encoding="utf-8")
    anchors = {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= anchors, f"broken links: {sorted(links - anchors)}"


def test_the_generator_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docs.main([]) == 0
    assert capsys.readouterr().out == docs.render_reference()
    stale = tmp_path / "plugins.md"
    stale.write_text(f"# Title\n\nprose\n\n{docs.BEGIN}\nold\n{docs.END}\n\nmore prose\n")
    assert docs.main(["--check", str(stale)]) == 1
    assert docs.main(["--write", str(stale)]) == 0
    assert docs.main(["--check", str(stale)]) == 0
    written = stale.read_text()
    assert written.startswith("# Title\n\nprose\n\n") and written.endswith(f"{docs.END}\n\nmore prose\n")
    with pytest.raises(ValueError, match="no"):
        docs.replace_block("no markers here", "x")


def test_the_output_is_deterministic() -> None:
    assert docs.render_reference() == docs.render_reference()
    assert "frozenset({" in docs.render_reference()  # set defaults are rendered sorted, not in hash order
