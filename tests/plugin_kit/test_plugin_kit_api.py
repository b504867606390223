"""The plugin kit (``truckllm.kit``): every name documented, listed in the plugin guide, never lost.

The kit only grows within a ``HOOKSPEC_VERSION``: :data:`KIT_V1` is the kit as published with
version 1, and each of its names must stay importable from its module. A name added to the kit
needs a line in its module's docstring and in the guide's "The plugin kit" table (and may be added
to :data:`KIT_V1`); a name removed fails here.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import truckllm.kit
from truckllm.hookspecs import HOOKSPEC_VERSION

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"

KIT_V1: dict[str, frozenset[str]] = {
    "dialect": frozenset({"ClientDialect", "DialectRoute", "FrameTranslator", "InboundDialect", "bearer"}),
    "linelogger": frozenset({"EXTRA_KEY", "LEVELS", "LineLogger", "check_level"}),
    "localstate": frozenset(
        {
            "EPSILON", "GROUP_FIELDS", "RESERVATION_TTL", "WINDOW_KEEP", "BudgetState", "Clock",
            "GcraResult", "LocalState", "LocalStore", "Outage", "RateState", "StoreUnavailable",
            "UsageBuckets", "check_admission", "check_retention", "gcra", "sane_decision",
            "settled_cost", "window_close", "window_end",
        }
    ),
    "openai_schemas": frozenset(
        {
            "AssistantMessage", "ChatCompletionRequest", "CompletionRequest", "ContentPart",
            "DeveloperMessage", "EmbeddingRequest", "FileContent", "FilePart", "FunctionCall",
            "FunctionDef", "FunctionMessage", "ImagePart", "ImageURL", "InputAudio", "InputAudioPart",
            "JSONSchemaFormat", "Message", "NamedFunction", "NamedToolChoice", "RefusalPart",
            "ResponseFormat", "StreamOptions", "SystemMessage", "TextPart", "Tool", "ToolCall",
            "ToolMessage", "UserMessage", "is_set", "text_of",
        }
    ),
    "openai_wire": frozenset(
        {
            "DONE_FRAME", "ChunkBuilder", "chat_completion", "classify_status", "completion_id",
            "parse_go_duration", "parse_openai_usage", "parse_ratelimit_headers", "parse_retry_after",
            "upstream_error", "usage_object",
        }
    ),
    "options": frozenset({"REDACTED", "Duration", "Secret", "parse_duration"}),
    "records": frozenset(
        {"FIELDS", "attempt_fields", "iso_time", "json_line", "level_for", "record_fields", "text_line"}
    ),
    "safejson": frozenset({"MAX_DEPTH", "JSONBodyError", "check_json", "decode_json"}),
    "selection": frozenset(
        {
            "PRUNE_SLACK", "TIE_RESOLUTION", "RandomSource", "effective_weight", "jitter", "key_id",
            "per_key", "rank_tiers", "shuffle_ties", "slow_start_demote", "sort_by", "state_table",
            "tiers",
        }
    ),
    "sse": frozenset({"SSEEvent", "SSEParser", "data_frame", "event_frame"}),
    "store": frozenset(
        {
            "DEFAULT_USAGE_RETENTION", "USAGE_COUNTERS", "USAGE_FIELDS", "USAGE_TOTALS", "Admission",
            "BudgetCheck", "CooldownClear", "CooldownMark", "CooldownPush", "Decision", "GroupBy",
            "Period", "RateCheck", "Settlement", "Store", "UsageQuery", "UsageReport", "UsageRow",
            "budget_window", "usage_groups", "usage_key", "usage_keys", "is_tag_row", "NO_TAG", "TAGGED", "utc_day",
        }
    ),
    "tasks": frozenset({"stop_task"}),
    "view": frozenset({"GatewayView", "RuntimeView"}),
}  # fmt: skip
"""The kit published with ``HOOKSPEC_VERSION`` 1: module (under ``truckllm.kit``) → names."""

MODULES = sorted(
    path.stem for path in Path(truckllm.kit.__file__).parent.glob("*.py") if path.stem != "__init__"
)


def kit_module(name: str) -> ModuleType:
    """``truckllm.kit.<name>``."""
    return importlib.import_module(f"truckllm.kit.{name}")


def guide_section() -> str:
    """The plugin guide's "The plugin kit" section."""
    text = GUIDE.read_text()
    start = text.index("\n## The plugin kit\n")
    return text[start : text.index("\n## ", start + 1)]


def mentions(text: str, name: str) -> bool:
    """``name`` appears in ``text`` as a whole word."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text) is not None


def test_the_kit_only_grows_within_a_hookspec_version() -> None:
    """Every module and name of the published kit is still there (more may have been added)."""
    assert HOOKSPEC_VERSION == 1, "a new HOOKSPEC_VERSION: record its kit next to KIT_V1"
    assert set(KIT_V1) <= set(MODULES)
    for module, names in KIT_V1.items():
        assert names <= set(kit_module(module).__all__), (
            module,
            sorted(names - set(kit_module(module).__all__)),
        )


@pytest.mark.parametrize("module", MODULES)
def test_every_kit_name_resolves_and_is_documented(module: str) -> None:
    """Each ``__all__`` name exists, is named in its module's docstring, and a class or function
    keeps a docstring of its own; the package docstring lists the module."""
    kit = kit_module(module)
    assert kit.__doc__ and kit.__all__
    assert sorted(kit.__all__) == sorted(set(kit.__all__))
    for name in kit.__all__:
        value = getattr(kit, name)
        assert mentions(kit.__doc__, name), f"truckllm.kit.{module}.{name} is not in the module's docstring"
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"truckllm.kit.{module}.{name} has no docstring"
    assert truckllm.kit.__doc__ and f":mod:`truckllm.kit.{module}`" in truckllm.kit.__doc__


@pytest.mark.parametrize("module", MODULES)
def test_the_plugin_guide_lists_every_kit_name(module: str) -> None:
    """``docs/plugins.md``, "The plugin kit": every module and every one of its names."""
    section = guide_section()
    row = next((line for line in section.splitlines() if line.startswith(f"| `truckllm.kit.{module}`")), None)
    assert row is not None, f"no row for truckllm.kit.{module} in the guide's kit table"
    missing = [name for name in kit_module(module).__all__ if f"`{name}`" not in row]
    assert not missing, f"truckllm.kit.{module}: {missing} not in the guide"
