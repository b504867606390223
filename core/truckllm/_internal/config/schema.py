"""The config file's shape (DESIGN.md section 4) as strict msgspec structs.

Unknown fields are errors. Optional fields have defaults here, so that a decoded config is
complete. Routing settings exist at four levels (top-level ``routing``, a provider, a model alias,
a deployment, a provider key); every level but the top one leaves a field unset to inherit it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType, field

from truckllm._internal.config.durations import Duration
from truckllm._internal.config.typed import SECRET
from truckllm._internal.secrets import Secret

__all__ = [
    "AdminConfig",
    "AffinityConfig",
    "BackoffConfig",
    "BackoffOverride",
    "BudgetConfig",
    "Config",
    "CooldownConfig",
    "CooldownOverride",
    "DeploymentConfig",
    "GatewayKeyConfig",
    "LimitsConfig",
    "ModelConfig",
    "PluginsConfig",
    "PriceConfig",
    "ProviderConfig",
    "ProviderKeyConfig",
    "RetryBudgetConfig",
    "RetryBudgetOverride",
    "RoutingConfig",
    "RoutingOverride",
    "ServerConfig",
    "StateConfig",
]

PosInt = Annotated[int, Meta(ge=1)]
NonNegInt = Annotated[int, Meta(ge=0)]
NonNeg = Annotated[float, Meta(ge=0)]
Name = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/+-]+$")]
MetadataKey = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Metadata = Annotated[dict[MetadataKey, Annotated[str, Meta(max_length=256)]], Meta(max_length=32)]
"""A team's or organisation's ``metadata``: at most 32 labels, each key 1-64 characters of letters,
digits and ``_.:-``, each value at most 256 characters (copied onto every request record)."""


class LimitsConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Abuse limits on client requests (each answered with a 4xx in the caller's format)."""

    max_messages: PosInt = 2048
    max_tools: PosInt = 256
    max_content_bytes: PosInt = 8 * 1024 * 1024
    max_header_bytes: PosInt = 16 * 1024
    max_streams_per_key: NonNegInt = 0  # 0: unlimited
    max_upload_bytes: PosInt = 512 * 1024 * 1024  # a multipart upload's whole body (files spooled to disk)


class UpstreamNetConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Which upstream addresses may be dialled (link-local/metadata addresses never may)."""

    allow_loopback: bool = True
    allow_private: bool = True


class StateConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``server.state:``: what stateful dialects keep (the Responses API's stored responses).

    :ivar ttl: how long a stored value lives (30 days, like OpenAI's stored responses).
    :ivar max_bytes: a larger value is not stored (a warning is logged).
    :ivar memory_items: with no runtime store that keeps state, at most this many values are kept
        in process memory (the least recently used go first).
    :ivar memory_bytes: ... and at most this many bytes of them.
    """

    ttl: Duration = Duration(30 * 86400)
    max_bytes: PosInt = 16 * 1024 * 1024
    memory_items: PosInt = 10_000
    memory_bytes: PosInt = 256 * 1024 * 1024


class ServerConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``server:``: the listener and request-wide limits."""

    listen: str = "127.0.0.1:8080"
    max_body_bytes: PosInt = 10 * 1024 * 1024
    max_response_bytes: PosInt = 64 * 1024 * 1024
    request_timeout: Duration = Duration(600)
    graceful_timeout: Duration = Duration(30)
    keep_alive_timeout: Duration = Duration(75)
    read_timeout: Duration = Duration(60)
    workers: PosInt = 1
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    upstream: UpstreamNetConfig = field(default_factory=UpstreamNetConfig)
    state: StateConfig = field(default_factory=StateConfig)
    log_bodies_max_bytes: PosInt = 32 * 1024
    upload_dir: str | None = None  # where uploads are spooled (the system's temporary directory)


class AdminConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``admin:``: the token guarding ``/admin/v1/*``, ``/metrics`` and mounted pages.

    :ivar token: the admin token.
    :ivar session_ttl: how long a browser's admin session lasts after signing in with the token.
    :ivar secure_cookie: mark the session cookie ``Secure`` even when the request reached the
        gateway over plain HTTP: set it behind a TLS-terminating proxy (over TLS it is always
        ``Secure``; the gateway trusts no ``X-Forwarded-Proto``).
    """

    token: Secret | None = None
    session_ttl: Duration = Duration(8 * 3600)
    secure_cookie: bool = False

    def __post_init__(self) -> None:
        if not 60 <= self.session_ttl <= 30 * 86400:
            raise ValueError("session_ttl must be between 1 minute and 30 days")


class PluginsConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``plugins:``: which installed plugins may load (``allow``: distributions, optionally with a
    version range; unset: every one) and which not (``disable``: entry-point names). Read before
    any plugin is imported."""

    allow: tuple[str, ...] | None = None
    disable: tuple[str, ...] = ()


class BackoffConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Jittered exponential backoff between tries on the same key."""

    base: Duration = Duration(0.1)
    max: Duration = Duration(5)


class CooldownConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """When a key is taken out of rotation (ejected), and for how long.

    A key is ejected after ``failures`` consecutive failures, or when more than ``error_ratio``
    of its last ``window`` attempts failed (at least ``min_requests`` of them); for
    ``duration`` times the number of its ejections, capped at ``max_duration``. At most
    ``max_ejection_percent`` of a provider's keys (at least one) are ejected at once.
    """

    failures: PosInt = 3
    duration: Duration = Duration(30)
    max_duration: Duration = Duration(300)
    error_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.5
    window: PosInt = 20
    min_requests: PosInt = 10
    max_ejection_percent: Annotated[float, Meta(ge=0, le=100)] = 10.0
    max_retry_after: Duration = Duration(3600)
    """The longest cooldown a provider's ``Retry-After`` may impose (and the longest
    ``Retry-After`` a client is told): larger values from upstream are cut to this."""


class RetryBudgetConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Retries may not exceed ``ratio`` of requests in flight, with a floor of ``min`` concurrent;
    and (gRPC-style throttling) a bucket of ``tokens`` loses one per failed attempt and gains
    ``token_ratio`` per success: retries stop while it is at or below half."""

    ratio: NonNeg = 0.2
    min: NonNegInt = 3
    tokens: PosInt = 100
    token_ratio: NonNeg = 0.1


class RoutingConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``routing:``: the defaults every alias, deployment and key inherits."""

    retries: NonNegInt = 2
    max_attempts: PosInt = 10
    try_timeout: Duration = Duration(60)
    connect_timeout: Duration = Duration(5)
    stream_idle_timeout: Duration = Duration(120)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    cooldown: CooldownConfig = field(default_factory=CooldownConfig)
    retry_budget: RetryBudgetConfig = field(default_factory=RetryBudgetConfig)
    max_wait: Duration = Duration(0)  # wait this long for a cooling key instead of failing fast


class BackoffOverride(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A partial ``backoff`` block: unset fields inherit from the level above."""

    base: Duration | UnsetType = UNSET
    max: Duration | UnsetType = UNSET


class CooldownOverride(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A partial ``cooldown`` block: unset fields inherit from the level above."""

    failures: PosInt | UnsetType = UNSET
    duration: Duration | UnsetType = UNSET
    max_duration: Duration | UnsetType = UNSET
    error_ratio: Annotated[float, Meta(gt=0, le=1)] | UnsetType = UNSET
    window: PosInt | UnsetType = UNSET
    min_requests: PosInt | UnsetType = UNSET
    max_ejection_percent: Annotated[float, Meta(ge=0, le=100)] | UnsetType = UNSET
    max_retry_after: Duration | UnsetType = UNSET


class RetryBudgetOverride(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A partial ``retry_budget`` block: unset fields inherit from the level above."""

    ratio: NonNeg | UnsetType = UNSET
    min: NonNegInt | UnsetType = UNSET
    tokens: PosInt | UnsetType = UNSET
    token_ratio: NonNeg | UnsetType = UNSET


class RoutingOverride(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A partial ``routing`` block: unset fields inherit from the level above, field by field
    (nested blocks too: ``cooldown: {duration: 5s}`` keeps the inherited ``failures``)."""

    retries: NonNegInt | UnsetType = UNSET
    max_attempts: PosInt | UnsetType = UNSET
    try_timeout: Duration | UnsetType = UNSET
    connect_timeout: Duration | UnsetType = UNSET
    stream_idle_timeout: Duration | UnsetType = UNSET
    backoff: BackoffOverride | UnsetType = UNSET
    cooldown: CooldownOverride | UnsetType = UNSET
    retry_budget: RetryBudgetOverride | UnsetType = UNSET
    max_wait: Duration | UnsetType = UNSET


class ProviderKeyConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One API key of a provider account."""

    name: Name
    value: Secret | None = None
    weight: NonNeg = 1.0
    rpm: PosInt | None = None
    tpm: PosInt | None = None
    max_in_flight: PosInt | None = None
    models: tuple[str, ...] | None = None
    routing: RoutingOverride | None = None


class ProviderConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``providers.<name>``: how to reach one provider account."""

    type: Name
    base_url: str | None = None
    keys: tuple[ProviderKeyConfig, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    routing: RoutingOverride | None = None
    direct: bool = False
    """May clients address this provider as ``<provider>/<model>`` (any model) without an alias?
    Off by default: only aliases reach it, unless a gateway key's ``models`` names
    ``<provider>/*`` or ``<provider>/<model>`` explicitly."""


class PriceConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """USD per one million tokens (``cached_input``, ``cache_write``: the ``input`` rate when unset;
    ``reasoning``, the reasoning part of the completion: the ``output`` rate when unset), and USD
    per unit of work not counted in tokens (:class:`truckllm.types.Price`): ``image`` (per image),
    ``images`` (per image by ``"<size>/<quality>"``, ``"<size>"`` or ``"*/<quality>"``),
    ``audio_second``, ``character``, ``search_unit``, ``request`` (per call), and ``batch`` (the
    fraction of the price charged for batch work, 0.5 when unset)."""

    input: NonNeg = 0.0
    output: NonNeg = 0.0
    cached_input: NonNeg | None = None
    cache_write: NonNeg | None = None
    reasoning: NonNeg | None = None
    image: NonNeg | None = None
    images: dict[Annotated[str, Meta(min_length=1, max_length=64)], NonNeg] | None = None
    audio_second: NonNeg | None = None
    character: NonNeg | None = None
    search_unit: NonNeg | None = None
    request: NonNeg | None = None
    batch: Annotated[float, Meta(ge=0, le=1)] | None = None


class DeploymentConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One place an alias can be served."""

    provider: Name
    model: Annotated[str, Meta(min_length=1)]
    weight: NonNeg = 1.0
    priority: int = 0
    price: PriceConfig | None = None
    routing: RoutingOverride | None = None


class ModelConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``models.<alias>``: an alias clients send, and where it can be served."""

    deployments: Annotated[tuple[DeploymentConfig, ...], Meta(min_length=1)]
    strategy: Name | None = None
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()
    routing: RoutingOverride | None = None
    description: str = ""
    log_bodies: bool = False


class BudgetConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A spend cap in USD per period."""

    usd: NonNeg
    period: Literal["day", "week", "month", "total"] = "month"


class OrgConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``orgs.<name>``: an organisation above teams; its limits bind every team in it.

    :ivar rpm: requests per minute of all its teams' keys together.
    :ivar tpm: tokens per minute, likewise.
    :ivar budgets: spend caps, one per period at most.
    :ivar models: the aliases its keys may use (``None``: all).
    :ivar metadata: free labels, never secrets (bounded: :data:`Metadata`): shown by
        ``/admin/v1/teams`` and the console, and the default metadata of its keys' requests
        (``RequestRecord.metadata``; a team's own entries win).
    """

    rpm: PosInt | None = None
    tpm: PosInt | None = None
    budgets: tuple[BudgetConfig, ...] = ()
    models: tuple[str, ...] | None = None
    metadata: Metadata = field(default_factory=dict)


class TeamConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``teams.<name>``: a team; each gateway key belongs to at most one (``keys[].team``).

    :ivar org: the organisation it belongs to (``orgs.<name>``).
    :ivar rpm: requests per minute of all its keys together.
    :ivar tpm: tokens per minute, likewise.
    :ivar budgets: spend caps, one per period at most.
    :ivar models: the aliases its keys may use (``None``: all); a key's own list narrows it.
    :ivar metadata: free labels, never secrets (bounded: :data:`Metadata`): shown by
        ``/admin/v1/teams`` and the console, and the default metadata of its keys' requests
        (``RequestRecord.metadata``: its organisation's entries, then its own over them).
    """

    org: Name | None = None
    rpm: PosInt | None = None
    tpm: PosInt | None = None
    budgets: tuple[BudgetConfig, ...] = ()
    models: tuple[str, ...] | None = None
    metadata: Metadata = field(default_factory=dict)


class TagsConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``tags:``: request tags (``x-truckllm-tags`` and ``keys[].tags``).

    :ivar budgets: a spend cap per tag.
    :ivar metrics: the tags that become metric labels (any other is ``other``): bounded
        cardinality.
    :ivar max_tags: tags per request at most (more: 400).
    :ivar max_length: characters per tag at most (more: 400).
    """

    budgets: dict[str, BudgetConfig] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    max_tags: PosInt = 10
    max_length: PosInt = 64


class AlertsConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``alerts:``: what is sent to the ``emit_alert`` hook (the webhook logger...).

    :ivar thresholds: budget fractions that alert once per period each.
    :ivar key_health: alert when a provider key is ejected, enabled, disabled, or its credential
        fails to refresh.
    :ivar key_health_interval: one alert per key and kind of event in this long at most.
    """

    thresholds: tuple[Annotated[float, Meta(gt=0, le=1)], ...] = (0.5, 0.8, 1.0)
    key_health: bool = True
    key_health_interval: Duration = Duration(300)


class GuardrailConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``guardrails[]``: one guardrail, applied in list order.

    :ivar type: the guardrail type (a plugin's ``register_guardrails``).
    :ivar name: its name in records and errors (default: ``type``); unique.
    :ivar stages: ``input`` (before the request goes upstream), ``output`` (the answer).
    :ivar aliases: only requests for these aliases (empty: all).
    :ivar keys: only requests with these gateway keys (empty: all).
    :ivar exclude_keys: never requests with these gateway keys (a judge model's own key).
    :ivar endpoints: only requests to these kernel endpoints (``chat``, ``rerank``,
        ``moderations``, ``audio.transcriptions``, ``mcp.tools/call``...; empty: all).
    :ivar exclude_endpoints: never requests to these endpoints (``moderations``: a check itself).
    :ivar timeout: each check's deadline.
    :ivar on_error: what a check that raises or times out decides: ``block`` (fail closed) or
        ``allow``.
    :ivar window: a stream's answer is checked in windows of this many characters (held back
        until checked: the delay a client sees); the rest at the end.
    :ivar options: the guardrail type's own options.
    """

    type: Name
    name: Name | None = None
    stages: tuple[Literal["input", "output"], ...] = ("input",)
    aliases: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    exclude_keys: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    exclude_endpoints: tuple[str, ...] = ()
    timeout: Duration = Duration(1)
    on_error: Literal["block", "allow"] = "block"
    window: PosInt = 256
    options: dict[str, Any] = field(default_factory=dict)


class GatewayKeyConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``keys[]``: a key clients present as ``Authorization: Bearer``."""

    name: Name
    value: Secret | None = None
    hash: Annotated[str, Meta(pattern=r"^sha256:[0-9a-f]{64}$", extra=SECRET)] | None = None
    models: tuple[str, ...] | None = None
    rpm: PosInt | None = None
    tpm: PosInt | None = None
    budget: BudgetConfig | None = None
    expires: str | None = None  # ISO 8601 date or datetime
    log_bodies: bool = False
    team: Name | None = None
    tags: tuple[str, ...] = ()
    user_budget: BudgetConfig | None = None


class AffinityConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``affinity``: keep a conversation on the provider account that holds its prompt cache.

    :ivar enabled: pin conversations to a (deployment, provider key) candidate (off by default:
        a pinned conversation no longer follows the strategy's order request by request).
    :ivar ttl: how long a pin lives after its conversation's last request (sliding); about as
        long as a provider keeps a prompt cache (5 minutes for OpenAI and Anthropic).
    :ivar provider_ttl: ``ttl`` per ``providers.<name>`` entry (a provider whose cache lives
        longer, or shorter). A TTL under one second counts as one second.
    :ivar max_skew: each key's share of its deployment's live pins stays within ``max_skew``
        of even (``N`` usable keys): a new pin goes first to a key holding fewer than
        ``(1 - max_skew) / N`` of them, and never to one holding more than ``(1 + max_skew) / N``
        (the strategy still chooses the deployment), so that pins cannot starve keys.
    """

    enabled: bool = False
    ttl: Duration = Duration(300)
    provider_ttl: dict[str, Duration] = field(default_factory=dict)
    max_skew: NonNeg = 0.15


class Config(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The whole config file."""

    server: ServerConfig = field(default_factory=ServerConfig)
    store: dict[str, Any] = field(default_factory=lambda: {"type": "memory"})
    loggers: tuple[str | dict[str, Any], ...] = ()
    admin: AdminConfig = field(default_factory=AdminConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    affinity: AffinityConfig = field(default_factory=AffinityConfig)
    cache: dict[str, Any] | None = None  # {type: <cache plugin> (default "cache"), ...its options}
    keys: tuple[GatewayKeyConfig, ...] | None = None
    orgs: dict[str, OrgConfig] = field(default_factory=dict)
    teams: dict[str, TeamConfig] = field(default_factory=dict)
    tags: TagsConfig = field(default_factory=TagsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    guardrails: tuple[GuardrailConfig, ...] = ()
