"""``POST /admin/v1/keys`` and ``DELETE /admin/v1/keys/{name}`` edit the user's config text:
every line but the key's own stays as the user wrote it (indentation, lists, quotes, comments)."""

from __future__ import annotations

import difflib
import io

import pytest
from ruamel.yaml import YAML

from truckllm._internal.config.edit import add_gateway_key, remove_gateway_key

HASH = "sha256:" + "ab" * 32
ENTRY = {"name": "ci", "hash": HASH, "models": ["demo"], "rpm": 5, "tpm": None, "budget": None}

# two list styles in one file (dashes under their key, and indented by two), flow and block
# items, quotes, comments in and after the keys: section
MIXED = """\
# my gateway
server:
    listen: "127.0.0.1:8080"   # loopback
providers:
  demo:
    type: mock
    keys:
    - {name: k1, value: 'x'}
models:
  demo:
    deployments:
      - provider: demo
        model: echo
    fallbacks: [ other ]
  other:
    deployments:
    -   {provider: demo, model: echo}
keys:   # who may call
  - name: team-a
    hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  # - {name: old, value: gone}

loggers:
  - stdout
"""


def changed(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines removed, lines added)."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def load(text: str) -> object:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


def test_adding_a_key_inserts_one_line_indented_like_the_others() -> None:
    after = add_gateway_key(MIXED, ENTRY)
    assert changed(MIXED, after) == (
        [],
        [f"  - {{name: ci, hash: {HASH}, models: [demo], rpm: 5}}"],
    )
    keys = load(after)["keys"]  # type: ignore[index]
    assert [k["name"] for k in keys] == ["team-a", "ci"]
    assert after.index("name: ci") < after.index("# - {name: old")  # inside the section, before its comments


def test_removing_a_key_deletes_only_its_lines() -> None:
    with_two = add_gateway_key(MIXED, ENTRY)
    after, found = remove_gateway_key(with_two, "team-a")
    assert found
    removed, added = changed(with_two, after)
    assert added == [] and removed == [
        "  - name: team-a",
        '    hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"',
    ]
    assert remove_gateway_key(after, "team-a") == (after, False)


def test_removing_the_last_key_leaves_an_empty_list_never_an_open_gateway() -> None:
    after, found = remove_gateway_key(MIXED, "team-a")
    assert found
    assert load(after)["keys"] == []  # type: ignore[index]
    assert "keys: []  # who may call" in after


def test_the_first_key_of_an_open_quick_start_is_appended_in_a_new_section() -> None:
    text = "server: {listen: '127.0.0.1:8080'}\nmodels:\n  demo:\n    deployments:\n      - {provider: d}\n"
    after = add_gateway_key(text, ENTRY)
    assert after.startswith(text)
    assert after[len(text) :] == f"keys:\n  - {{name: ci, hash: {HASH}, models: [demo], rpm: 5}}\n"


@pytest.mark.parametrize("empty", ["keys:", "keys: []", "keys: null  # none yet"])
def test_an_empty_or_null_section_gets_its_first_item(empty: str) -> None:
    text = f"server: {{listen: '127.0.0.1:8080'}}\n{empty}\nmodels: {{}}\n"
    after = add_gateway_key(text, ENTRY)
    assert [k["name"] for k in load(after)["keys"]] == ["ci"]  # type: ignore[index]
    assert after.startswith("server: {listen: '127.0.0.1:8080'}\nkeys:") and after.endswith("models: {}\n")


def test_a_json_config_or_a_flow_list_is_edited_by_the_round_trip() -> None:
    text = '{"keys": [{"name": "a", "value": "b"}], "models": {}}\n'
    after = add_gateway_key(text, ENTRY)
    assert [k["name"] for k in load(after)["keys"]] == ["a", "ci"]  # type: ignore[index]
    back, found = remove_gateway_key(after, "ci")
    assert found and [k["name"] for k in load(back)["keys"]] == ["a"]  # type: ignore[index]
