"""The plugin is found through its entry point and registers the ``gemini`` dialect."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import truckllm_dialect_gemini as gemini
from starlette.routing import Match, Route

from truckllm._internal.dialect import InboundDialect
from truckllm._internal.plugins import make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION


def test_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="truckllm") if ep.name == "dialect-gemini"]
    assert ep.value == "truckllm_dialect_gemini"
    assert ep.load() is gemini
    assert gemini.TRUCKLLM_API == HOOKSPEC_VERSION


def test_loaded_by_the_kernel() -> None:
    host = make_plugin_manager(autoload=True)
    dialect = host.dialects["gemini"]
    assert isinstance(dialect, gemini.GeminiDialect)
    assert isinstance(dialect, InboundDialect)


def test_register_dialects() -> None:
    registered: list[Any] = []
    gemini.register_dialects(register=registered.append)
    assert [d.name for d in registered] == ["gemini"]


def _match(path: str) -> tuple[str, dict[str, str]] | None:
    """The route (and path parameters) starlette picks for ``POST path``, in the kernel's order."""
    for route in gemini.GeminiDialect.routes:
        match, scope = Route(route.path, lambda _: None, methods=["POST"]).matches(
            {"type": "http", "path": path, "method": "POST"}
        )
        if match is Match.FULL:
            return route.name, scope["path_params"]
    return None


def test_routes_match_model_names_with_colons_in_the_path() -> None:
    assert _match("/v1beta/models/gemini-2.5-flash:generateContent") == (
        "generateContent",
        {"model": "gemini-2.5-flash"},
    )
    assert _match("/v1beta/models/gemini-2.5-flash:streamGenerateContent") == (
        "streamGenerateContent",
        {"model": "gemini-2.5-flash"},
    )
    assert _match("/v1beta/models/text-embedding-004:embedContent") == (
        "embedContent",
        {"model": "text-embedding-004"},
    )
    assert _match("/v1beta/models/e:batchEmbedContents") == ("batchEmbedContents", {"model": "e"})
    assert _match("/v1beta/models/m:countTokens") == ("countTokens", {"model": "m"})
    assert _match("/v1/models/gemini-2.0-flash-001:generateContent") == (
        "generateContent",
        {"model": "gemini-2.0-flash-001"},
    )
    assert _match("/v1beta/models/m:predict") == ("unknown", {"model": "m", "method": "predict"})
    assert _match("/v1beta/models/a/b:generateContent") is None
    assert _match("/v1beta/models/m") is None


def test_endpoints_of_the_routes() -> None:
    kinds = {(r.path, r.endpoint) for r in gemini.GeminiDialect.routes}
    assert ("/v1beta/models/{model}:generateContent", "chat") in kinds
    assert ("/v1beta/models/{model}:streamGenerateContent", "chat") in kinds
    assert ("/v1beta/models/{model}:embedContent", "embeddings") in kinds
    assert ("/v1beta/models/{model}:batchEmbedContents", "embeddings") in kinds
    assert ("/v1beta/models/{model}:countTokens", "count_tokens") in kinds
    assert all(r.methods == ("POST",) for r in gemini.GeminiDialect.routes)
