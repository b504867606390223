"""``options.preset``: what an OpenAI-compatible service needs beyond OpenAI's own wire format.

A :class:`Preset` names the service's documented OpenAI-compatible root, whether it takes no key
(a local server), the request fields it refuses (dropped before sending, logged at debug), the
fields it names otherwise (renamed), the request shapes nothing can save (refused with a 400
naming the field, so another deployment of the alias may serve them), and how its own rate-limit
headers read (:mod:`.ratelimits`). The quirks apply to chat-completions bodies only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from truckllm.types import RateLimits

from .ratelimits import mistral_limits, openai_limits, openrouter_limits, together_limits

__all__ = ["PRESETS", "Preset", "Refusal"]

Refusal = Callable[[dict[str, Any]], "tuple[str, str] | None"]
"""A check of a chat body: ``(param, message)`` when the service cannot serve it, else ``None``."""


@dataclass(frozen=True)
class ModelDrops:
    """Fields dropped only for the models matching ``pattern`` (a reasoning model's refusals)."""

    pattern: str
    """A regular expression matched at the start of the upstream model name."""
    fields: frozenset[str]
    """The top-level fields dropped."""


@dataclass(frozen=True)
class Preset:
    """One OpenAI-compatible service (see the module docstring)."""

    name: str
    """The ``preset:`` value."""
    base_url: str
    """The documented OpenAI-compatible root (used when the config gives no ``base_url``)."""
    local: bool = False
    """A server on the operator's machine: a key is optional and none is sent without one."""
    drop: frozenset[str] = frozenset()
    """Top-level chat fields the service refuses: dropped."""
    drop_in_messages: frozenset[str] = frozenset()
    """Members of ``messages[]`` the service refuses: dropped."""
    tool_name_kept: bool = False
    """A ``tool`` message's ``name`` is accepted (and kept) even when ``name`` is dropped."""
    model_drops: tuple[ModelDrops, ...] = ()
    """Fields dropped for some models only."""
    rename: Mapping[str, str] = field(default_factory=dict)
    """Top-level chat fields the service names otherwise (``max_completion_tokens`` →
    ``max_tokens``); the client's own value of the new name wins."""
    tool_choice: Mapping[str, str] = field(default_factory=dict)
    """``tool_choice`` strings the service spells otherwise (Mistral: ``required`` → ``any``)."""
    refusals: tuple[Refusal, ...] = ()
    """Requests the service cannot serve whatever is dropped."""
    reasoning_models: str | None = None
    """The default ``reasoning_models`` (``None``: no model is renamed to
    ``max_completion_tokens``; the client's field goes as sent, or as ``rename`` says)."""
    limits: Callable[[Any], RateLimits | None] = openai_limits
    """Reads the service's rate-limit headers."""

    def dropped_for(self, model: str) -> frozenset[str]:
        """The top-level fields dropped for the upstream ``model``."""
        extra = [d.fields for d in self.model_drops if re.match(d.pattern, model)]
        return self.drop.union(*extra) if extra else self.drop


def _n_above_one(body: dict[str, Any]) -> tuple[str, str] | None:
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        return "n", "this provider returns one choice per request: n must be 1"
    return None


def _json_schema(body: dict[str, Any]) -> tuple[str, str] | None:
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return "response_format", "this provider has no json_schema response format (json_object only)"
    return None


def _tools(body: dict[str, Any]) -> tuple[str, str] | None:
    if body.get("tools"):
        return "tools", "this provider does not call tools"
    return None


_TO_MAX_TOKENS = {"max_completion_tokens": "max_tokens"}
_LOGPROBS = frozenset({"logprobs", "top_logprobs"})
_PENALTIES = frozenset({"presence_penalty", "frequency_penalty"})
_OPENAI_ONLY = frozenset(
    {"store", "metadata", "service_tier", "prompt_cache_key", "prompt_cache_retention", "safety_identifier",
     "verbosity", "prediction", "web_search_options", "modalities", "audio"}
)  # fmt: skip
"""Fields only OpenAI's own API has."""

PRESETS: Mapping[str, Preset] = {
    p.name: p
    for p in (
        # console.groq.com/docs/openai: logprobs, logit_bias, top_logprobs, messages[].name and
        # n other than 1 are a 400; x-ratelimit-* as OpenAI's (limit-requests is per day)
        Preset(
            name="groq",
            base_url="https://api.groq.com/openai/v1",
            drop=_LOGPROBS | {"logit_bias"},
            drop_in_messages=frozenset({"name"}),
            refusals=(_n_above_one,),
        ),
        # Mistral validates strictly (422 extra_forbidden): no max_completion_tokens (max_tokens),
        # seed is random_seed, no stream_options (usage comes in the last chunk anyway),
        # logprobs/logit_bias/user and OpenAI-only fields refused, user messages' name and
        # replayed reasoning_content refused; tool_choice "any" forces a call
        Preset(
            name="mistral",
            base_url="https://api.mistral.ai/v1",
            drop=_LOGPROBS | _OPENAI_ONLY | {"logit_bias", "user", "stream_options", "reasoning_effort"},
            drop_in_messages=frozenset({"name", "reasoning_content", "refusal", "annotations", "audio"}),
            tool_name_kept=True,
            rename={**_TO_MAX_TOKENS, "seed": "random_seed"},
            tool_choice={"required": "any"},
            limits=mistral_limits,
        ),
        # api-docs.deepseek.com: max_tokens; JSON output is json_object only; thinking mode
        # (deepseek-reasoner, the v4 models) refuses logprobs/top_logprobs; reasoning_content of
        # a tool-call turn must be passed back, so it is never removed from a DeepSeek client's body
        Preset(
            name="deepseek",
            base_url="https://api.deepseek.com/v1",
            model_drops=(ModelDrops(r"deepseek-(reasoner|v4)", _LOGPROBS),),
            rename=_TO_MAX_TOKENS,
            refusals=(_json_schema,),
        ),
        # docs.x.ai: reasoning models refuse presence_penalty, frequency_penalty and stop;
        # grok-4 (before 4.3) and grok-code also refuse reasoning_effort
        Preset(
            name="xai",
            base_url="https://api.x.ai/v1",
            model_drops=(
                ModelDrops(r"grok-(3-mini|4|code)", _PENALTIES | {"stop"}),
                ModelDrops(r"grok-(4(?!\.3)|code)", frozenset({"reasoning_effort"})),
            ),
        ),
        # docs.together.ai: x-ratelimit-limit/-remaining/-reset (requests), x-tokenlimit-*
        Preset(name="together", base_url="https://api.together.xyz/v1", limits=together_limits),
        # docs.fireworks.ai: OpenAI's x-ratelimit-*-requests
        Preset(name="fireworks", base_url="https://api.fireworks.ai/inference/v1"),
        # openrouter.ai: X-RateLimit-Limit/-Remaining/-Reset (epoch milliseconds)
        Preset(name="openrouter", base_url="https://openrouter.ai/api/v1", limits=openrouter_limits),
        # docs.perplexity.ai: no function calling; logit_bias, logprobs, service_tier not taken
        Preset(
            name="perplexity",
            base_url="https://api.perplexity.ai",
            drop=_LOGPROBS | {"logit_bias", "tool_choice", "parallel_tool_calls", "service_tier"},
            refusals=(_tools, _n_above_one),
        ),
        # docs.ollama.com/api/openai-compatibility: no key; max_tokens (max_completion_tokens would
        # be ignored: no limit at all); logit_bias, n, user are not among its fields
        Preset(
            name="ollama",
            base_url="http://localhost:11434/v1",
            local=True,
            drop=frozenset({"logit_bias", "user"}),
            rename=_TO_MAX_TOKENS,
            refusals=(_n_above_one,),
        ),
        # vLLM's OpenAI-compatible server: a key only when started with --api-key
        Preset(name="vllm", base_url="http://localhost:8000/v1", local=True),
        # LM Studio's server: no key
        Preset(name="lmstudio", base_url="http://localhost:1234/v1", local=True),
    )
}
"""Every preset by name."""
