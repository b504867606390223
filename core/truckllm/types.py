"""The kernel's value types: what hooks receive and return.

Every hook in :mod:`truckllm.hookspecs` is typed with these msgspec Structs. They are the plugin
API together with the hookspecs: fields are only ever added (with defaults), never removed or
renamed within one ``HOOKSPEC_VERSION``.
"""

from __future__ import annotations

import builtins
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import ClassVar, Literal, Protocol, runtime_checkable

import msgspec
from msgspec import Raw, Struct

from truckllm._internal.schemas.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from truckllm._internal.schemas.rerank import RerankRequest

__all__ = [
    "AFFINITY_MOVE_REASONS",
    "Affinity",
    "AffinityPins",
    "AffinitySnapshot",
    "Alert",
    "AlertKind",
    "AliasInfo",
    "AttemptRecord",
    "CacheContext",
    "CacheStorage",
    "CachedAnswer",
    "Candidate",
    "CandidateStats",
    "ChatRequest",
    "CredentialSource",
    "Deployment",
    "DialectState",
    "GatewaySnapshot",
    "GuardDecision",
    "GuardSubject",
    "GuardText",
    "Guardrail",
    "GuardrailResult",
    "GuardrailSpec",
    "KeyHealth",
    "KeyRef",
    "KeySnapshot",
    "Logger",
    "LoggerCounters",
    "LoggerFigures",
    "LoggerMetrics",
    "PluginErrorCount",
    "Price",
    "PriceEntry",
    "Provider",
    "ProviderResult",
    "ProviderSpec",
    "RateLimits",
    "RecordBodies",
    "RequestRecord",
    "SelectionContext",
    "ServedBy",
    "StrategySpec",
    "StreamTranslator",
    "Upload",
    "UploadedFile",
    "UpstreamError",
    "UpstreamRequest",
    "UpstreamResponse",
    "Usage",
    "Verdict",
]

Endpoint = str  # "chat" | "completions" | "embeddings"


# --- config as plugins see it -------------------------------------------------------------------


class Price(Struct, frozen=True, omit_defaults=True):
    """USD per one million tokens (``cached_input``, ``cache_write``, ``reasoning``: ``None`` means
    the ``input`` / ``input`` / ``output`` rate), and USD per unit for work not counted in tokens.

    Token rates and unit rates add up: a call reporting both (gpt-image-1's tokens) is charged
    both; a price book lists only the rates that apply to a model. ``None`` for a unit rate means
    "not priced in that unit" (charged 0; a budgeted key may be refused for it, see the README).

    :ivar image: USD per image at the model's default size and quality.
    :ivar images: USD per image by ``"<size>/<quality>"`` (``"1024x1536/high"``), ``"<size>"``
        (``"1024x1024"``) or ``"*/<quality>"``; looked up in that order, then ``image``.
    :ivar audio_second: USD per second of audio read (transcription, translation).
    :ivar character: USD per character of text read (speech).
    :ivar search_unit: USD per search unit (rerank: one query over up to 100 documents).
    :ivar request: USD per call, whatever it holds (moderation: usually 0).
    :ivar batch: the fraction of the normal price charged for batch work (``None``: 0.5).
    """

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    image: float | None = None
    images: Mapping[str, float] | None = None
    audio_second: float | None = None
    character: float | None = None
    search_unit: float | None = None
    request: float | None = None
    batch: float | None = None


class PriceEntry(Struct, frozen=True, kw_only=True):
    """One model's price and limits in a price book (``register_prices``).

    :ivar provider_type: the provider plugin type it is sold through (``openai``, ``bedrock``...).
    :ivar model: the upstream model name, exactly as deployments name it.
    :ivar price: USD per one million tokens of each kind.
    :ivar context_window: tokens the model reads at most (prompt and output), when known.
    :ivar max_output_tokens: tokens it writes at most, when known.
    :ivar source: where the figures come from (a URL or a name).
    :ivar date: the ISO date the figures were read (``2026-11-30``).
    """

    provider_type: str
    model: str
    price: Price
    context_window: int | None = None
    max_output_tokens: int | None = None
    source: str = ""
    date: str


class Provider(Struct, frozen=True, kw_only=True):
    """One ``providers.<name>`` entry, without its keys.

    :ivar name: the config name (``openai``, ``azure-east``...).
    :ivar type: the provider plugin type (``openai``, ``anthropic``, ``gemini``, ``mock``...).
    :ivar base_url: the API root, never ending in ``/``; the plugin's default when omitted.
    :ivar headers: extra headers sent upstream with every request.
    :ivar options: the plugin's own options: an instance of its ``ProviderSpec.options`` struct
        (check with ``isinstance``; absent options decode to the struct's defaults), or the raw
        mapping from the config when the plugin declares no options struct.
    """

    name: str
    type: str
    base_url: str
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    options: object = None


class Deployment(Struct, frozen=True, kw_only=True):
    """One place an alias can be served: a provider and its upstream model name.

    ``price`` is the config's ``price:`` or the price book's; ``context_window`` (tokens, from the
    price book) when known: a prompt estimated far beyond it is not sent there.
    """

    alias: str
    index: int
    provider: str
    model: str
    weight: float = 1.0
    priority: int = 0
    price: Price | None = None
    context_window: int | None = None

    @property
    def label(self) -> str:
        """``alias#index`` (stable within one config)."""
        return f"{self.alias}#{self.index}"


class KeyRef(Struct, frozen=True, kw_only=True):
    """A provider key as strategies see it: its name and limits, never its value."""

    provider: str
    name: str
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_in_flight: int | None = None


class CandidateStats(Protocol):
    """A read-only view of one candidate's live metrics (kept by the kernel).

    Strategies read these fields; they never write them. The key's health (cooldowns, ejections,
    half-open probes) is not part of it: the kernel has removed every candidate whose key may not
    take a request before a strategy sees the candidates; what is left to weigh is here.
    """

    @property
    def in_flight(self) -> int:
        """Requests now in flight on this (deployment, key)."""

    @property
    def key_in_flight(self) -> int:
        """Requests now in flight on this key, whatever the deployment."""

    @property
    def latency_ewma(self) -> float | None:
        """EWMA of whole-request latency in seconds, ``None`` before the first success."""

    @property
    def ttft_ewma(self) -> float | None:
        """EWMA of time to first token (streams) in seconds."""

    @property
    def successes(self) -> int:
        """Successful attempts since start."""

    @property
    def failures(self) -> int:
        """Failed attempts since start."""

    @property
    def requests_last_minute(self) -> int:
        """Requests sent on this key during the last 60 s."""

    @property
    def tokens_last_minute(self) -> int:
        """Tokens used on this key during the last 60 s."""

    @property
    def remaining_requests(self) -> int | None:
        """The provider's last ``remaining requests`` figure for this key; ``None`` once stale."""

    @property
    def remaining_tokens(self) -> int | None:
        """The provider's last ``remaining tokens`` figure for this key; ``None`` once stale."""

    @property
    def limit_requests(self) -> int | None:
        """The provider's requests-per-window limit for this key, when it said."""

    @property
    def limit_tokens(self) -> int | None:
        """The provider's tokens-per-window limit for this key, when it said."""

    @property
    def weight_factor(self) -> float:
        """0..1: below 1 while the key slow-starts after a cooldown or ejection."""


class Candidate(Struct, frozen=True, kw_only=True):
    """One (deployment, key) pair a request may be sent to.

    :ivar id: ``alias#index:provider/key``, stable within one config version.
    :ivar deployment: the deployment (alias, provider, upstream model, weight, priority, price).
    :ivar provider: the provider it is sent to.
    :ivar key: the provider key it is sent with: its name and limits, never its value.
    :ivar stats: the pair's live figures (in flight, latency, remaining rate limits...).
    """

    id: str
    deployment: Deployment
    provider: Provider
    key: KeyRef
    stats: CandidateStats


class SelectionContext(Struct, kw_only=True):
    """What a strategy may use besides the candidates.

    :ivar alias: the alias being served.
    :ivar now: the kernel clock (seconds, monotonic).
    :ivar random: a ``random.Random``; use it, not the ``random`` module, so tests are deterministic.
    :ivar state: scratch space owned by the kernel, one dict per (alias, strategy), kept across
        requests and config reloads of the same alias: rotation counters and the like.
    :ivar headers: the client's request headers (lower-case names), read-only.
    :ivar estimated_tokens: prompt estimate plus ``max_tokens``, for headroom strategies.
    :ivar stream: the client asked for a stream (time to first token matters more than latency).
    """

    alias: str
    now: float
    random: random.Random
    state: dict[str, object]
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    estimated_tokens: int = 0
    stream: bool = False


# --- the request ---------------------------------------------------------------------------------


class ServedBy(Struct, frozen=True, kw_only=True):
    """Who answered a request: set on :attr:`DialectState.served_by` before the dialect reads the
    answer.

    :ivar provider: the ``providers.<name>`` entry.
    :ivar provider_type: its plugin type (``openai``, ``anthropic``...).
    :ivar key: the provider key's name (never its value).
    :ivar model: the deployment's upstream model.
    :ivar dialect: the provider's wire dialect (:attr:`ProviderSpec.dialect`).
    """

    provider: str
    provider_type: str
    key: str
    model: str
    dialect: str


class DialectState(Protocol):
    """One request's access to its dialect's stored state (``ChatRequest.state``), kernel-made.

    Names are scoped by the kernel to the dialect and the gateway key: another key never sees
    them. Values are opaque bytes, kept in the runtime store when it implements
    :class:`truckllm.kit.store.StateStore`, else in this process's memory.

    :ivar key: the gateway key's name (``None`` when the gateway runs without keys).
    :ivar ttl: seconds to keep a value by default (``server.state.ttl``).
    :ivar served_by: who answered; set before ``response()`` / ``stream()`` of the dialect run.
    """

    key: str | None
    ttl: float
    served_by: ServedBy | None

    async def get(self, name: str) -> bytes | None:
        """The value stored under ``name``, or ``None``."""

    def put(self, name: str, value: bytes, ttl: float | None = None) -> None:
        """Queue a write; the kernel makes it before the answer's last bytes are sent."""

    async def delete(self, name: str) -> bool:
        """Remove ``name``; ``True`` when something was removed."""

    async def create(self, name: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` under ``name`` now unless a value is there; ``True`` when this call
        stored it. Atomic across processes when the runtime store implements
        :class:`truckllm.kit.store.StateCreate` (Redis), else within this process only."""

    async def flush(self) -> None:
        """Make the queued writes now (the kernel also makes them before an answer's last bytes):
        for a plugin storing a large value in parts, so that they are not all held at once."""


class Affinity(Struct, frozen=True, kw_only=True):
    """Where a request should go first: the provider account that holds its conversation.

    The kernel tries the candidates of ``provider`` with key ``key`` before the strategy's order;
    any other candidate is sent ``elsewhere`` instead (or skipped when it is ``None``).

    :ivar provider: the ``providers.<name>`` entry.
    :ivar key: the provider key's name.
    :ivar elsewhere: the request for every other candidate (its state made explicit).
    """

    provider: str
    key: str
    elsewhere: ChatRequest | None = None


class UploadedFile(Struct, frozen=True, kw_only=True):
    """One file part of a ``multipart/form-data`` request, spooled to disk by the kernel.

    :ivar field: the form field it came in (``file``, ``image[]``, ``mask``...).
    :ivar filename: the file name the client gave (may be empty).
    :ivar content_type: the part's content type (``application/octet-stream`` when none was given).
    :ivar path: the temporary file holding its bytes (mode 0600, in a private directory the
        kernel removes when the request ends, however it ends: never keep the path).
    :ivar size: its size in bytes.
    """

    field: str
    filename: str
    content_type: str
    path: str
    size: int


class Upload(Struct, frozen=True, kw_only=True):
    """A ``multipart/form-data`` request body as the kernel spooled it (routes with
    ``DialectRoute.upload``): small fields in memory, files on disk.

    :ivar fields: the non-file fields (last value wins).
    :ivar multi: every non-file field's values, in the order sent (a repeated field such as
        ``timestamp_granularities[]`` has several), in the order the fields first came.
    :ivar files: the file parts, in the order sent.
    """

    fields: Mapping[str, str] = msgspec.field(default_factory=dict)
    multi: Mapping[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    files: tuple[UploadedFile, ...] = ()

    def items(self) -> list[tuple[str, str]]:
        """Every non-file field as ``(name, value)`` pairs: each name's values in the order sent,
        the names in the order they first came (``a=1, b=2, a=3`` gives ``a=1, a=3, b=2``)."""
        return [(name, value) for name, values in self.multi.items() for value in values]

    def named(self, *fields: str) -> tuple[UploadedFile, ...]:
        """The files sent in any of the form fields ``fields``, in the order sent."""
        return tuple(file for file in self.files if file.field in fields)

    @property
    def size(self) -> int:
        """The files' bytes, all together."""
        return sum(file.size for file in self.files)


class ChatRequest(Struct, kw_only=True):
    """A client request, decoded once by the kernel.

    :ivar endpoint: ``chat``, ``completions`` or ``embeddings``.
    :ivar dialect: the client's API dialect (``openai``; inbound dialect plugins add others).
    :ivar body: the request body exactly as received.
    :ivar model: the ``model`` the client asked for (an alias).
    :ivar stream: the client asked for a stream.
    :ivar include_usage: the client asked for the final usage chunk.
    :ivar typed: the validated request (a struct of :mod:`truckllm.kit.openai_schemas`; a
        rerank request's: :class:`truckllm.kit.rerank.RerankRequest`).
    :ivar headers: the client's headers (lower-case names), minus credentials.
    :ivar state: the request's stored-state access (:class:`DialectState`), set by the kernel
        after ``parse`` for dialects that keep state.
    :ivar affinity: set by a dialect's ``prepare``: the account to try first (:class:`Affinity`).
    :ivar refusal: why this request has no ``typed`` form (only providers of its own dialect
        can serve it): the kernel refuses it elsewhere with a 400 saying this.
    :ivar refusal_param: the request field ``refusal`` is about.
    :ivar upload: a ``multipart/form-data`` request's fields and spooled files (routes with
        ``DialectRoute.upload``; ``body`` is then ``b""`` and ``model`` the ``model`` field).
    """

    endpoint: Endpoint
    dialect: str = "openai"
    body: bytes
    model: str
    stream: bool = False
    include_usage: bool = False
    typed: ChatCompletionRequest | CompletionRequest | EmbeddingRequest | RerankRequest | None = None
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    state: DialectState | None = None
    affinity: Affinity | None = None
    refusal: str | None = None
    refusal_param: str | None = None
    upload: Upload | None = None
    _fields: dict[str, Raw] | None = None

    def fields(self) -> dict[str, Raw]:
        """The body's top-level members as raw JSON (decoded once, cached)."""
        if self._fields is None:
            self._fields = msgspec.json.decode(self.body, type=dict[str, Raw])
        return self._fields

    def encode(self, **overrides: object) -> bytes:
        """The body with top-level members replaced (``None`` removes one); the rest byte-exact."""
        fields: dict[str, object] = dict(self.fields())
        for name, value in overrides.items():
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        return msgspec.json.encode(fields)

    def with_model(self, model: str) -> bytes:
        """The body with only ``model`` rewritten (the original bytes when it is unchanged)."""
        if model == self.model:
            return self.body
        return self.encode(model=model)


class UpstreamRequest(Struct, kw_only=True):
    """The call a provider plugin builds and the kernel sends.

    :ivar url: absolute URL.
    :ivar headers: request headers, credentials included (never logged).
    :ivar body: request body bytes.
    :ivar stream: the upstream answer is a stream (SSE or chunked JSON).
    :ivar method: HTTP method.
    :ivar local: for providers that answer in-process (``mock``): an async callable the kernel
        awaits instead of sending HTTP; it returns an :class:`UpstreamResponse`.
    :ivar body_stream: instead of ``body``, a factory of the body's chunks (an upload read from
        disk: :func:`truckllm.kit.multipart.encode`); the kernel calls it once per attempt for a
        fresh stream and never holds the whole body. Sent with the ``content-length`` header
        when ``headers`` has one, else chunked.
    """

    url: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    body: bytes = b""
    stream: bool = False
    method: str = "POST"
    local: Callable[[], Awaitable[UpstreamResponse]] | None = None
    body_stream: Callable[[], AsyncIterator[bytes]] | None = None


class UpstreamResponse(Struct, kw_only=True):
    """An upstream answer as the kernel received it.

    :ivar status: HTTP status.
    :ivar headers: response headers; look names up in lower case (``headers.get("retry-after")``):
        lookups are case-insensitive for HTTP answers, and local answers use lower-case names.
    :ivar body: the whole body (non-stream answers and error answers).
    :ivar chunks: for a local stream: the body as it arrives.
    """

    status: int
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None


class Usage(Struct, kw_only=True, omit_defaults=True):
    """Token counts in OpenAI's sense: prompt includes cached, completion includes reasoning; and
    the units of work not counted in tokens.

    :ivar images: images made (images endpoints).
    :ivar audio_seconds: seconds of audio read (transcriptions, translations).
    :ivar characters: characters of text read (speech).
    :ivar search_units: rerank search units.
    :ivar requests: calls charged per request (moderations).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    images: int = 0
    audio_seconds: float = 0.0
    characters: int = 0
    search_units: int = 0
    requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            images=self.images + other.images,
            audio_seconds=self.audio_seconds + other.audio_seconds,
            characters=self.characters + other.characters,
            search_units=self.search_units + other.search_units,
            requests=self.requests + other.requests,
        )


class RateLimits(Struct, kw_only=True, omit_defaults=True):
    """What an upstream said about a key's remaining quota (any field may be unknown)."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None  # seconds from now
    reset_tokens: float | None = None


class UpstreamError(Struct, kw_only=True):
    """A failed attempt, classified.

    :ivar status: the status to give the client if this is the last error.
    :ivar message: the upstream's message, with secrets removed.
    :ivar type: OpenAI error type.
    :ivar code: OpenAI error code.
    :ivar kind: the kernel's class: ``rate_limit``, ``quota``, ``overloaded``, ``server``,
        ``timeout``, ``connect``, ``auth``, ``permission``, ``bad_request``, ``context_length``,
        ``not_found``, ``too_large``, ``stream``, ``plugin``, ``bad_response`` (a 3xx, or a
        2xx that is not a valid answer of the provider's dialect).
    :ivar retry_after: seconds the provider asked to wait, when it said.
    :ivar param: the request field at fault.
    """

    status: int
    message: str
    kind: str
    type: str = "server_error"
    code: str | None = None
    retry_after: float | None = None
    param: str | None = None

    @property
    def retryable(self) -> bool:
        """Another attempt (same key after backoff, or another candidate) may succeed."""
        return self.kind in RETRYABLE_KINDS


RETRYABLE_KINDS = frozenset(
    {"rate_limit", "overloaded", "server", "timeout", "connect", "stream", "plugin", "bad_response"}
)
#: Failures that say nothing about the key (the client's request is at fault).
CLIENT_KINDS = frozenset({"bad_request", "context_length", "too_large", "not_found"})


class ProviderResult(Struct, kw_only=True):
    """A provider plugin's reading of a complete (non-stream) upstream answer.

    :ivar body: on success, the answer in the client's dialect (JSON bytes).
    :ivar error: set when the upstream failed.
    :ivar limits: rate-limit state from the response headers.
    :ivar dialect: the dialect ``body`` is in (``openai``; or the client's own when passed through).
    :ivar content_type: the answer's ``content-type`` when it is not JSON (a transcription as
        ``text/plain``); ``None``: ``application/json``.
    """

    body: bytes = b""
    error: UpstreamError | None = None
    limits: RateLimits | None = None
    dialect: str = "openai"
    content_type: str | None = None


class StreamTranslator(Protocol):
    """Turns one upstream stream into client frames; one object per attempt.

    The kernel calls :meth:`feed` with each chunk of bytes as it arrives (chunks split events at
    arbitrary boundaries) and sends what it returns to the client at once; at the upstream's end it
    calls :meth:`close`. Either may raise :class:`truckllm.errors.UpstreamFailure` for an error
    the upstream reported or a stream cut short: before any byte reached the client the kernel then
    tries another candidate; after, it sends an error event in the client's dialect.

    Optional attributes: ``content_type``, the stream's ``content-type`` when it is not the
    client dialect's event stream (audio bytes relayed as they come); ``error(error:
    GatewayError) -> bytes``, the bytes that end the stream after a failure (``b""`` for raw
    bytes, where an error event would corrupt them), instead of the dialect's error event. A
    stream whose ``content_type`` is not an event stream that fails after its first byte ends
    with its connection closed before the body's end (HTTP/1.1: no terminating chunk), so that
    the client sees a truncated answer, never a shorter complete one.
    """

    usage: Usage | None
    dialect: str
    limits: RateLimits | None

    def feed(self, chunk: bytes) -> bytes:
        """Translate one chunk; return the bytes to send (possibly empty)."""

    def close(self) -> bytes:
        """The upstream ended: return the final frames, or raise if the stream was truncated."""


# --- registration --------------------------------------------------------------------------------


class ProviderSpec(Struct, frozen=True, kw_only=True):
    """What a provider plugin offers, given to ``register_providers``.

    :ivar type: the YAML ``type:`` it answers to.
    :ivar default_base_url: used when config gives no ``base_url``.
    :ivar dialect: the API dialect it speaks upstream (``openai``, ``anthropic``, ``gemini``).
    :ivar endpoints: which client endpoints it can serve.
    :ivar options: a msgspec Struct type for ``providers.<name>.options`` (decoded strictly).
    :ivar needs_keys: ``False`` for providers that take no API key (``mock``, local servers).
    :ivar passes_through: client dialects (besides ``dialect``) whose requests it sends upstream
        as they came: a request with a ``refusal`` (no typed form) is not refused on it
        (the OpenAI provider: ``responses``).
    :ivar credentials: for providers whose credential is fetched and refreshed (cloud tokens,
        signing keys): a factory the kernel calls once per ``(provider, key value)`` (the value
        may be ``""``) for a :class:`truckllm.kit.credentials.CredentialSource`; the kernel
        refreshes it off the request path and hands ``current()`` to ``transform_request`` as
        ``api_key``.
    :ivar resolve: given one entry's decoded options, ``(default_base_url, needs_keys)`` for that
        entry (``None`` in either keeps the spec's own): an OpenAI-compatible preset's root, no
        key for a local server.
    """

    type: str
    default_base_url: str = ""
    dialect: str = "openai"
    endpoints: frozenset[str] = frozenset({"chat"})
    options: builtins.type[Struct] | None = None
    needs_keys: bool = True
    passes_through: frozenset[str] = frozenset()
    credentials: Callable[[Provider, str], CredentialSource] | None = None
    resolve: Callable[[object], tuple[str | None, bool | None]] | None = None


class CredentialSource(Protocol):
    """One provider key's credential, fetched and refreshed off the request path (an AWS
    session, a Google or Entra ID access token); see :attr:`ProviderSpec.credentials`."""

    async def refresh(self) -> float:
        """Fetch a fresh credential (I/O allowed: run blocking libraries in a thread); return
        when it expires, as a unix time (``math.inf``: never). Raise on failure: the kernel
        retries with backoff and keeps using the previous value until it expires."""

    def current(self) -> str:
        """The credential for the next request, as the string ``transform_request`` gets as
        ``api_key`` (a bearer token, or JSON the plugin decodes). Request path: no I/O."""

    async def close(self) -> None:
        """Release what the source holds (shutdown, or its key left the config)."""


class StrategySpec(Struct, frozen=True, kw_only=True):
    """A strategy given to ``register_strategies``.

    :ivar name: the name an alias's ``strategy:`` uses.
    :ivar description: one line saying what it does (``truckllm plugins`` shows it).
    """

    name: str
    description: str = ""


class Logger(Protocol):
    """What a logger class registered with ``register_loggers`` makes: an object whose
    ``@hookimpl`` methods the kernel registers (``emit_log``, and optionally ``render_metrics``,
    ``startup``, ``shutdown``).

    The kernel builds it with ``cls(options)``, ``options`` being the class's nested ``Options``
    struct decoded strictly from the logger's config entry.
    """

    def emit_log(self, record: RequestRecord) -> Awaitable[None] | None:
        """Once per finished request (see the ``emit_log`` hook)."""


@runtime_checkable
class LoggerMetrics(Protocol):
    """A logger that reports figures of its own (queue length, records sent, records dropped...).

    They appear in :attr:`GatewaySnapshot.loggers` (and so, with the Prometheus logger, as
    ``truckllm_logger_<name>_<figure>`` metrics). Non-numeric values are left out.
    """

    @property
    def metrics(self) -> Mapping[str, float]:
        """Figure name → value, read when a snapshot is taken."""


@runtime_checkable
class LoggerCounters(Protocol):
    """Optional, besides :class:`LoggerMetrics`: which figures are counters (they only grow);
    the others are gauges."""

    metrics_counters: ClassVar[frozenset[str]]


# --- records -------------------------------------------------------------------------------------


class AttemptRecord(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One upstream attempt of a request."""

    provider: str
    provider_key: str
    deployment: str
    model: str
    status: int
    latency_ms: float
    error_kind: str | None = None
    alias: str = ""


class RecordBodies(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A request's body and its answer, kept only where the gateway key or the alias opts in
    (``log_bodies: true``): decoded as UTF-8 (invalid bytes replaced), every configured secret
    scrubbed, each cut to ``server.log_bodies_max_bytes``.

    :ivar request: the body the client sent (an upload: its form's fields and each file's name,
        content type and size, as JSON; never the files' bytes).
    :ivar response: the answer as the client received it (a stream: its frames, concatenated);
        empty when the answer is not text (see ``response_type``).
    :ivar request_truncated: ``request`` was cut.
    :ivar response_truncated: ``response`` was cut.
    :ivar response_type: set when the answer was not kept because it is not text (speech audio,
        an image, invalid UTF-8, a NUL byte): its content type.
    :ivar response_bytes: with ``response_type``: the answer's size in bytes.
    """

    request: str = ""
    response: str = ""
    request_truncated: bool = False
    response_truncated: bool = False
    response_type: str = ""
    response_bytes: int = 0


class GuardrailResult(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What one guardrail decided about one request, as its record keeps it.

    :ivar name: the guardrail's name (``guardrails[].name``).
    :ivar stage: ``input`` (before the request went upstream) or ``output`` (the answer; for a
        stream, the last decision over its windows).
    :ivar action: ``allow``, ``block`` or ``modify``.
    :ivar reason: why, in the guardrail's words (never the text it found).
    :ivar ms: how long it took (all of a stream's windows together).
    :ivar error: set when the guardrail raised or timed out (``timeout`` or the exception's type);
        ``action`` is then what its ``on_error`` says.
    :ivar findings: what it found, counted by kind (``{"email": 2}``), never the values.
    """

    name: str
    stage: Literal["input", "output"]
    action: Literal["allow", "block", "modify"]
    reason: str = ""
    ms: float = 0.0
    error: str | None = None
    findings: Mapping[str, int] = msgspec.field(default_factory=dict)


class RequestRecord(Struct, frozen=True, kw_only=True):
    """Everything known about one finished request; key names only, never values or hashes.

    ``bodies`` is set only when the gateway key or the alias opts in (:class:`RecordBodies`).
    ``team`` and ``org`` are the gateway key's; ``user`` the end user the client named (the
    ``user`` field, ``metadata.user_id``...), ``tags`` its tags (``x-truckllm-tags`` and the key's
    own), each bounded; ``guardrails`` what each guardrail decided.

    ``metadata`` is the default metadata of the gateway key's requests: its organisation's
    ``orgs.<name>.metadata``, then its team's ``teams.<name>.metadata`` over it (empty for a key
    without a team). Config labels, never secrets, bounded by the config (at most 32 entries,
    keys of 1-64 characters of letters, digits and ``_.:-``, values of at most 256 characters).
    """

    request_id: str
    started_at: float  # unix time
    endpoint: str
    dialect: str
    alias: str
    gateway_key: str | None
    stream: bool
    status: int
    latency_ms: float
    ttft_ms: float | None = None
    upstream_ms: float | None = None
    provider: str | None = None
    provider_type: str | None = None
    deployment: str | None = None
    model: str | None = None
    provider_key: str | None = None
    attempts: tuple[AttemptRecord, ...] = ()
    fallbacks: tuple[str, ...] = ()
    usage: Usage | None = None
    cost_usd: float = 0.0
    error_kind: str | None = None
    error_message: str | None = None
    client_disconnected: bool = False
    extra: Mapping[str, object] = msgspec.field(default_factory=dict)
    bodies: RecordBodies | None = None
    team: str | None = None
    org: str | None = None
    user: str | None = None
    tags: tuple[str, ...] = ()
    guardrails: tuple[GuardrailResult, ...] = ()
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


# --- guardrails (``register_guardrails``) -----------------------------------------------------------


class GuardText(Struct, frozen=True, kw_only=True):
    """One piece of text a guardrail reads.

    :ivar role: whose it is: ``system``, ``user``, ``assistant``, ``tool`` (a tool's result or a
        tool call's arguments), or ``other``.
    :ivar text: the text.
    """

    role: str
    text: str


class GuardSubject(Struct, frozen=True, kw_only=True):
    """What a guardrail is asked about: one request's text before it goes upstream (``input``),
    or its answer's (``output``: a whole answer, or one window of a stream).

    :ivar stage: ``input`` or ``output``.
    :ivar texts: every piece of text, in order (the messages' and the system prompt's text,
        tool calls' arguments and tool results; for ``output``, the answer's text).
    :ivar tools: the names of the tools the request offers (``input``) or calls (``output``).
    :ivar alias: the alias asked for.
    :ivar gateway_key: the gateway key's name.
    :ivar dialect: the client's API dialect.
    :ivar endpoint: ``chat``, ``completions``, ``embeddings``...
    :ivar estimated_tokens: the prompt's estimated tokens (``input``).
    :ivar final: for a stream's output: this is its last window (always ``True`` otherwise).
    """

    stage: Literal["input", "output"]
    texts: tuple[GuardText, ...] = ()
    tools: tuple[str, ...] = ()
    alias: str = ""
    gateway_key: str | None = None
    dialect: str = "openai"
    endpoint: str = "chat"
    estimated_tokens: int = 0
    final: bool = True


class Verdict(Struct, frozen=True, kw_only=True):
    """A guardrail's decision.

    :ivar action: ``allow``; ``block`` (the client gets an error in its own dialect saying
        ``reason``); ``modify`` (``texts`` replace the subject's texts, index by index: masking).
    :ivar reason: why (shown to the client on a block; recorded); never quote what was found.
    :ivar texts: with ``modify``, one replacement per text of the subject, in order.
    :ivar findings: what was found, counted by kind (recorded; never the values).
    """

    action: Literal["allow", "block", "modify"] = "allow"
    reason: str = ""
    texts: tuple[str, ...] | None = None
    findings: Mapping[str, int] = msgspec.field(default_factory=dict)


class GuardDecision(Struct, frozen=True, kw_only=True):
    """What the configured guardrails decided about a subject a plugin asked about
    (``GatewayView.guard``: a call the plugin serves itself, such as an MCP tool call).

    :ivar action: ``allow``; ``modify`` (``texts`` replace the subject's, index by index);
        ``block`` (``message`` says why, for the caller).
    :ivar texts: the subject's texts after every ``modify`` (as they came when none).
    :ivar message: on ``block``: ``Blocked by guardrail '<name>': <reason>``.
    :ivar results: one per guardrail that ran, in order (for the call's
        :attr:`RequestRecord.guardrails`).
    """

    action: Literal["allow", "block", "modify"] = "allow"
    texts: tuple[str, ...] = ()
    message: str = ""
    results: tuple[GuardrailResult, ...] = ()


class Guardrail(Protocol):
    """What a guardrail plugin's factory makes, once per ``guardrails:`` entry and config version."""

    async def check(self, subject: GuardSubject) -> Verdict:
        """Decide about ``subject``. Runs under the entry's ``timeout``; raising or timing out is
        decided by its ``on_error`` (``block`` by default: fail closed)."""


class GuardrailSpec(Struct, frozen=True, kw_only=True):
    """A guardrail type given to ``register_guardrails``.

    :ivar type: the ``guardrails[].type`` it answers to (``pii``, ``policy``...).
    :ivar make: builds the guardrail from its ``options`` (an instance of ``options``, or
        ``None`` when the spec declares none).
    :ivar options: a msgspec Struct type for ``guardrails[].options`` (decoded strictly).
    :ivar description: one line saying what it does.
    """

    type: str
    make: Callable[[object], Guardrail]
    options: builtins.type[Struct] | None = None
    description: str = ""


# --- alerts (``emit_alert``) ------------------------------------------------------------------------

AlertKind = Literal["budget", "key_ejected", "key_enabled", "key_disabled", "credentials_failing"]
"""What an alert is about: a budget threshold crossed; a provider key ejected, put back in rotation
by an operator, disabled (the provider refused it, or an operator), or its credential failing
to refresh."""


class Alert(Struct, frozen=True, kw_only=True):
    """One alert, sent once (across every process sharing the store) to every ``emit_alert``.

    :ivar id: the dedupe id: the same event gives the same id in every process
        (``budget:team:search:month:2026-12:0.8``); receivers may drop repeats.
    :ivar kind: see :data:`AlertKind`.
    :ivar subject: what it is about: ``key:<name>``, ``team:<name>``, ``org:<name>``,
        ``user:<key>:<user>``, ``tag:<tag>`` (budgets); ``provider:<name>/<key>`` (key health).
    :ivar message: one readable sentence.
    :ivar at: unix time.
    :ivar threshold: a budget alert's threshold (``0.8``: 80%).
    :ivar period: a budget alert's period window (``2026-12``).
    :ivar spent_usd: a budget alert's spend so far (reserved included).
    :ivar limit_usd: the budget.
    """

    id: str
    kind: AlertKind
    subject: str
    message: str
    at: float
    threshold: float | None = None
    period: str | None = None
    spent_usd: float | None = None
    limit_usd: float | None = None


# --- the running gateway, as lifecycle hooks see it ----------------------------------------------


class AliasInfo(Struct, frozen=True, kw_only=True):
    """One alias of the running config, as plugins see it (no key names, no key values).

    :ivar name: the alias.
    :ivar strategy: the strategy ordering its candidates.
    :ivar deployments: where it can be served, in config order.
    :ivar fallbacks: the aliases tried when every deployment failed.
    """

    name: str
    strategy: str
    deployments: tuple[Deployment, ...] = ()
    fallbacks: tuple[str, ...] = ()


KeyHealth = Literal["ok", "cooldown", "ejected", "half_open", "disabled", "credential", "recovering"]
"""A provider key's state: ``ok``; ``cooldown`` (a 429, a quota, or a mark shared by another
process); ``ejected`` (repeated failures); ``half_open`` (back from an ejection, one probe at a
time); ``disabled`` (the provider refused the key, until an enable or a reload); ``credential``
(its fetched credential is not there yet, expired, or was refused and a fresh one is being
fetched); ``recovering`` (slow start after a cooldown or an ejection)."""


class KeySnapshot(Struct, frozen=True, kw_only=True):
    """One provider key's live state.

    :ivar provider: the provider's config name.
    :ivar name: the key's config name (never its value).
    :ivar state: see :data:`KeyHealth`.
    :ivar in_flight: requests in flight on the key.
    """

    provider: str
    name: str
    state: KeyHealth
    in_flight: int = 0


class PluginErrorCount(Struct, frozen=True, kw_only=True):
    """Exceptions one plugin raised in one after-response hook (``emit_log``, ``store_usage``)."""

    plugin: str
    hook: str
    count: int


class LoggerFigures(Struct, frozen=True, kw_only=True):
    """The figures one running logger reports (:class:`LoggerMetrics`).

    :ivar name: the logger's name in ``loggers:``.
    :ivar index: its position among the running loggers of that name, in config order.
    :ivar figures: figure name → value.
    :ivar counters: the figures that are counters (only grow); the others are gauges.
    """

    name: str
    index: int
    figures: Mapping[str, float] = msgspec.field(default_factory=dict)
    counters: frozenset[str] = frozenset()


class AffinityPins(Struct, frozen=True, kw_only=True):
    """The live affinity pins of one alias on one provider key (this process's view).

    :ivar alias: the alias the pinned conversations ask for.
    :ivar provider: the provider's config name.
    :ivar key: the provider key's config name (never its value).
    :ivar pins: conversations pinned to that key whose pin has not expired.
    """

    alias: str
    provider: str
    key: str
    pins: int


AFFINITY_MOVE_REASONS = ("new", "moved", "failover", "refresh", "capped")
"""Why an affinity pin is written: ``new`` (a conversation's first pin, or one whose pin expired);
``moved`` (its key was unusable: cooling down, ejected, over its rpm/tpm); ``failover`` (the
request failed over to another key and the pin followed it); ``refresh`` (half its TTL had gone);
``capped`` (the share cap passed over the strategy's first choice; also counted as ``new`` or
``moved``)."""


class AffinitySnapshot(Struct, frozen=True, kw_only=True):
    """Affinity routing's state (config ``affinity``) in this process.

    :ivar live: the live pins per alias and provider key, by alias, provider and key.
    :ivar moves: pin writes since start by reason, every reason of
        :data:`AFFINITY_MOVE_REASONS` present (0 when none).
    """

    live: tuple[AffinityPins, ...] = ()
    moves: Mapping[str, int] = msgspec.field(default_factory=dict)


class GatewaySnapshot(Struct, frozen=True, kw_only=True):
    """The running gateway's live state at one moment (``GatewayView.snapshot()``).

    :ivar version: the running config's version (1 at start, +1 per applied reload).
    :ivar in_flight: requests being served now.
    :ivar draining: the gateway is stopping for good (not during a reload).
    :ivar keys: every provider key the gateway has state for, by provider then name.
    :ivar background_queue: request records waiting for ``store_usage`` and ``emit_log``.
    :ivar background_dropped: records dropped because that queue was full, since start.
    :ivar plugin_errors: exceptions raised in after-response hooks, by plugin and hook, since start.
    :ivar retry_budget_denied: retries not made because the retry budget was spent, since start.
    :ivar reloads_ok: config reloads applied since start.
    :ivar reloads_failed: config reloads refused since start (the running config stayed).
    :ivar last_reload_ok: whether the last reload was applied.
    :ivar loggers: the figures of every running logger that reports some, in config order.
    :ivar affinity: affinity routing's pins and pin moves; ``None`` while it is off.
    """

    version: int
    in_flight: int
    draining: bool
    keys: tuple[KeySnapshot, ...] = ()
    background_queue: int = 0
    background_dropped: int = 0
    plugin_errors: tuple[PluginErrorCount, ...] = ()
    retry_budget_denied: int = 0
    reloads_ok: int = 0
    reloads_failed: int = 0
    last_reload_ok: bool = True
    loggers: tuple[LoggerFigures, ...] = ()
    affinity: AffinitySnapshot | None = None


# --- response caches (``cache_lookup`` / ``cache_store``) ----------------------------------------


class CachedAnswer(Struct, frozen=True, kw_only=True):
    """A complete successful answer a response cache keeps and the kernel replays.

    Always in the client's dialect, exactly as the client received it: the kernel sends ``body``
    (a whole answer) or ``frames`` one after the other (a stream), unchanged.

    :ivar stream: the answer is a stream (``frames``), else a whole body (``body``).
    :ivar body: the whole answer's bytes.
    :ivar frames: the stream's frames, in order, as sent to the client.
    :ivar content_type: the answer's ``content-type``.
    :ivar usage: the tokens the original answer used (a replay uses none).
    :ivar cost_usd: what the original answer cost: what a replay saves.
    """

    stream: bool = False
    body: bytes = b""
    frames: tuple[bytes, ...] = ()
    content_type: str = "application/json"
    usage: Usage | None = None
    cost_usd: float = 0.0


class CacheStorage(Protocol):
    """Where a response cache keeps its entries: the runtime store's shared state when it
    implements :class:`truckllm.kit.store.StateStore` (every worker and replica sees them), else
    this process's memory. Names are the cache's own; values are opaque bytes."""

    async def get_state(self, name: str) -> bytes | None:
        """The value stored under ``name`` (``None`` when absent or expired)."""

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``name`` for ``ttl`` seconds."""


class CacheContext(Struct, frozen=True, kw_only=True):
    """What a response cache knows of one request besides the request (``cache_lookup``,
    ``cache_store``).

    :ivar alias: the alias the request resolved to (after the key's allow-list).
    :ivar gateway_key: the gateway key's name (``None`` when the gateway runs without keys); a
        cache keeps answers apart per key unless its own config says otherwise.
    :ivar dialect: the client's dialect (the answer's format).
    :ivar endpoint: ``chat``, ``completions``, ``embeddings``...
    :ivar storage: shared storage for entries (:class:`CacheStorage`).
    """

    alias: str
    gateway_key: str | None
    dialect: str
    endpoint: str
    storage: CacheStorage
