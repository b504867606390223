"""The failover loop: which candidate each attempt goes to, and when a request gives up.

``serve`` turns one decoded client request into an :class:`~truckllm._internal.request.Outcome` (a whole
response, or the head of a stream whose first bytes are already in hand). The alias's usable
candidates are ordered by its strategy and tried in turn (:mod:`truckllm._internal.attempt`); a failure
before anything reached the client moves on to another key — a free failover after a
key-specific refusal, a retry within the retry budget otherwise (see :class:`Move`) — then to
the alias's fallbacks, within the request's deadline. Once a stream's first byte is sent,
nothing is retried.
"""

from __future__ import annotations

import asyncio
import enum
import operator

from loguru import logger

from truckllm._internal.affinity import affinity_key, ttl_of
from truckllm._internal.attempt import attempt, build
from truckllm._internal.availability import exhausted, ready_at, unusable
from truckllm._internal.gateway import Gateway
from truckllm._internal.request import Outcome, RequestContext
from truckllm._internal.run import AttemptFailed, RequestRun, error_to_gateway
from truckllm._internal.runtime import AliasPlan, Runtime
from truckllm._internal.scrub import MAX_MESSAGE, cut
from truckllm.errors import GatewayError, UnsupportedRequest
from truckllm.types import CLIENT_KINDS, Candidate, ChatRequest, SelectionContext, UpstreamError

_RETRIES = operator.attrgetter("retries")

__all__ = ["CONTEXT_SLACK", "FREE_FAILOVER_KINDS", "Move", "serve"]

CONTEXT_SLACK = 1.25
"""A prompt is kept from a deployment only when its estimate exceeds the context window by this
factor (the estimate counts JSON bytes / 4, which overstates the tokens of most prompts)."""

FREE_FAILOVER_KINDS = frozenset({"rate_limit", "quota", "auth", "permission", "plugin"})
"""After a failure of these kinds, moving to a key not tried yet is a free failover: the failure
is about that key (or a plugin), not a sign that the upstream is overloaded."""


class Move(enum.Enum):
    """What the next attempt of a request is, and what of the retry budget it needs."""

    FIRST = "first"  # the request's first attempt: nothing
    FAILOVER = "failover"  # to an untried key after a key-specific failure: nothing
    GATED = "gated"  # to an untried key after a server-side failure: the token bucket above half
    RETRY = "retry"  # to a key already tried: the bucket and the ratio of retries in flight


class _Failover:
    """One request's way through its alias's candidates, then its fallbacks."""

    def __init__(self, run: RequestRun) -> None:
        self.run = run
        self._pin: tuple[AliasPlan, str, Candidate] | None = None  # affinity: (alias, pin name, pinned)

    def _served(self, cand: Candidate) -> None:
        """An attempt on ``cand`` answered: when it is not the pinned candidate (that one failed
        over to it), the conversation's pin follows it. The write runs on its own: nothing may be
        awaited between an answer and its return (a cancellation there would strand a stream)."""
        if self._pin is None or self._pin[2] is cand:
            return
        plan, name, _ = self._pin
        if cand not in plan.candidates:
            return  # a fallback alias's candidate: the pin is the first alias's
        ttl = ttl_of(self.run.rt.config.affinity, cand)
        self.run.gw.affinity.follow(self.run.gw.store, plan.alias, name, cand, ttl)

    # --- selection ------------------------------------------------------------------------------

    def _why_not(self, cand: Candidate, now: float) -> str | None:
        if self.run.request.endpoint not in self.run.rt.specs[cand.deployment.provider].endpoints:
            return f"does not serve the {self.run.request.endpoint} endpoint"
        if self._too_long(cand):
            return f"the prompt (about {self.run.prompt_estimate} tokens) is longer than its context window"
        return unusable(
            cand,
            now,
            self.run.gw.health,
            priced_only=self.run.ctx.priced_only,
            endpoint=self.run.request.endpoint,
        )

    def _all_too_long(self, plan: AliasPlan) -> bool:
        """Every candidate of ``plan`` is too short for the prompt (see :meth:`_too_long`)."""
        for cand in plan.candidates:  # noqa: SIM110 (a loop: no generator object per request)
            if not self._too_long(cand):
                return False
        return True

    def _too_long(self, cand: Candidate) -> bool:
        """The prompt is well beyond the deployment's context window (the price book's): sending it
        would only earn a context-length error. The estimate is rough (bytes / 4), so only a
        prompt over :data:`CONTEXT_SLACK` times the window counts."""
        window = cand.deployment.context_window
        return window is not None and self.run.prompt_estimate > window * CONTEXT_SLACK

    def _usable(self, plan: AliasPlan, excluded: set[str], now: float, pass_no: int) -> list[Candidate]:
        routing = plan.candidate_routing
        return [
            cand
            for cand in plan.candidates
            if cand.id not in excluded
            and routing[cand.id].retries >= pass_no
            and self._why_not(cand, now) is None
        ]

    async def _order(self, plan: AliasPlan, ordered: list[Candidate]) -> list[Candidate]:
        """The strategy's ``ordered`` candidates with affinity applied: the conversation's pinned
        account first (read, or pinned now)."""
        affinity = self.run.original.affinity
        if affinity is None:
            settings = self.run.rt.config.affinity
            seen = self.run.ctx.conversation  # worked out at admission for this very request
            key = (
                seen[1]
                if seen is not None and seen[0] is self.run.request
                else affinity_key(self.run.request)
            )
            if key is None:
                return ordered
            book = self.run.gw.affinity
            name = book.name(self.run.ctx.gateway_key, plan.alias, key)
            prefetched = None
            begun = self.run.ctx.pin_read
            if begun is not None and begun[0] == name:  # read while the request was admitted
                prefetched = begun[1]
                self.run.ctx.pin_read = None
            ordered = await book.order(self.run.gw.store, plan.alias, name, ordered, settings, prefetched)
            self._pin = (plan, name, ordered[0])
            return ordered
        # the account holding the conversation first; the others after it, in the strategy's order
        pinned = [c for c in ordered if c.provider.name == affinity.provider and c.key.name == affinity.key]
        if affinity.elsewhere is None:
            return pinned
        return pinned + [c for c in ordered if c not in pinned]

    def _strategy_order(self, plan: AliasPlan, usable: list[Candidate], now: float) -> list[Candidate]:
        if len(usable) == 1:
            return usable  # one way to order one candidate: no strategy call
        state = self.run.gw.strategy_state.setdefault((plan.alias, plan.strategy), {})
        context = SelectionContext(
            alias=plan.alias,
            now=now,
            random=self.run.gw.random,
            state=state,
            headers=self.run.request.headers,
            stream=self.run.request.stream,
            estimated_tokens=self.run.estimated_tokens,
        )
        try:
            ordered = self.run.dispatch.call(
                "select_provider", plan.strategy, strategy=plan.strategy, candidates=usable, context=context
            )
        except Exception as exc:
            logger.opt(exception=exc).error("strategy {} failed; using config order", plan.strategy)
            ordered = None
        if not ordered:
            return usable
        return list(ordered)

    def _move(self, cand: Candidate) -> Move:
        """What an attempt on ``cand`` now is (see :class:`Move` and the README's failover table).

        Moving to a key not tried yet after the last one answered 429/quota or 401/403 (or a
        plugin failed) is a free failover. After a server-side failure (5xx, timeout, refused
        connection, a cut stream, a bad answer) it needs the token bucket above half: in an
        outage the bucket empties and attempts fall back to about one per request. A second
        attempt on a key already tried is a retry: the bucket and the ratio of retries in flight.
        """
        if self.run.attempt_count == 0:
            return Move.FIRST
        if (cand.provider.name, cand.key.name) in self.run.tried_keys:
            return Move.RETRY
        return Move.FAILOVER if self.run.last_kind in FREE_FAILOVER_KINDS else Move.GATED

    # --- the loop -------------------------------------------------------------------------------

    async def go(self) -> Outcome:
        plan = self.run.ctx.plan or self.run.rt.plan(self.run.request.model)
        if plan is None:
            raise GatewayError(
                404, f"The model '{cut(self.run.request.model, 100)}' does not exist.", code="model_not_found"
            )
        self.run.ctx.alias = plan.alias
        error = await self._serve_alias(plan)
        if isinstance(error, Outcome):
            return error
        chain = list(plan.context_window_fallbacks if error.kind == "context_length" else plan.fallbacks)
        if error.kind not in CLIENT_KINDS or error.kind == "context_length":
            for alias in chain:
                if self.run.remaining() <= 0:
                    break
                fallback = self.run.rt.plan(alias)
                if fallback is None:
                    continue
                self.run.ctx.fallbacks.append(alias)
                result = await self._serve_alias(fallback)
                if isinstance(result, Outcome):
                    return result
                error = result
                if error.kind in CLIENT_KINDS and error.kind != "context_length":
                    break
        self.run.ctx.error = error
        raise error_to_gateway(error)

    async def _serve_alias(self, plan: AliasPlan) -> Outcome | UpstreamError:
        if plan.candidates and self._all_too_long(plan):
            return UpstreamError(  # so that the alias's context_window_fallbacks are tried
                status=400,
                kind="context_length",
                type="invalid_request_error",
                code="context_length_exceeded",
                param="messages",
                message=f"The prompt (about {self.run.prompt_estimate} tokens) is longer than the context "
                f"window of every deployment of '{plan.alias}'.",
            )
        excluded: set[str] = set()
        routing_of = plan.candidate_routing
        passes = 1 + max(map(_RETRIES, routing_of.values()), default=0)
        last: UpstreamError | None = None
        unsupported: UnsupportedRequest | None = None
        tried_before = self.run.attempt_count
        for pass_no in range(passes):
            now = self.run.gw.clock()
            usable = self._usable(plan, excluded, now, pass_no)
            if not usable:
                if pass_no == 0 and last is None:
                    waited = await self._wait_for_candidate(plan, now)
                    if waited is not None:
                        return waited
                    usable = self._usable(plan, excluded, self.run.gw.clock(), pass_no)
                if not usable:
                    break
            if pass_no > 0:
                backoff = routing_of[usable[0].id].backoff
                delay = self.run.gw.random.uniform(0, min(backoff.max, backoff.base * 2 ** (pass_no - 1)))
                if delay >= self.run.remaining():
                    break
                await self.run.gw.sleep(delay)
                usable = self._usable(plan, excluded, self.run.gw.clock(), pass_no)  # after the wait
                if not usable:
                    break
            ordered_after = self.run.attempt_count  # a candidate is checked again only after an await
            ordered = self._strategy_order(plan, usable, self.run.gw.clock())
            if self.run.original.affinity is not None or (
                len(ordered) > 1 and self.run.rt.config.affinity.enabled
            ):  # affinity: a store read, so only when it applies
                ordered = await self._order(plan, ordered)
            for cand in ordered:
                if self.run.remaining() <= 0:
                    return last or self._exhausted(plan, tried_before)
                if self.run.attempt_count > ordered_after and self._why_not(cand, self.run.gw.clock()):
                    continue  # cooled down (or filled up) while an attempt ran: re-select
                routing = routing_of[cand.id]
                move = self._move(cand)
                spends = move in (Move.GATED, Move.RETRY)
                if spends and self.run.counted >= routing.max_attempts:
                    continue  # this candidate's max_attempts is spent; another's may not be
                budget = self.run.gw.budget
                if (move is Move.RETRY and not budget.allow(routing.retry_budget)) or (
                    move is Move.GATED and not budget.bucket_allows(routing.retry_budget)
                ):
                    logger.warning("retry budget exhausted; not retrying request {}", self.run.ctx.request_id)
                    return last or self._exhausted(plan, tried_before)
                try:  # built after the budget said yes, before it is taken: a skip costs nothing
                    upstream = build(self.run, cand, routing)
                except UnsupportedRequest as exc:
                    unsupported = exc
                    excluded.add(cand.id)
                    continue
                except AttemptFailed as failed:  # the plugin raised: skip the candidate, not the key's fault
                    last = failed.error
                    excluded.add(cand.id)
                    continue
                if spends:
                    self.run.gw.budget.active_retries += 1
                try:
                    outcome = await attempt(
                        self.run, cand, routing, upstream, counted=spends or not self.run.counted
                    )
                    self._served(cand)
                    return outcome
                except AttemptFailed as failed:
                    last = failed.error
                    if failed.fatal:
                        return last
                    if not last.retryable:
                        excluded.add(cand.id)
                finally:
                    if spends:
                        self.run.gw.budget.active_retries -= 1
        if last is not None and last.kind == "rate_limit":
            return self._exhausted(plan, tried_before)  # say why each key is out, and when one returns
        if last is not None and last.kind in ("quota", "auth", "permission"):
            # the provider's own answer (its status and code), and why no other key could serve
            why = self._exhausted(plan, tried_before).message
            last.message = cut(f"{why}; the last answer: {last.message}", MAX_MESSAGE)
            return last
        if last is not None:
            return last
        if unsupported is not None:
            return UpstreamError(
                status=400,
                message=unsupported.message,
                kind="bad_request",
                type="invalid_request_error",
                param=unsupported.param,
            )
        return self._exhausted(plan, tried_before)

    def _exhausted(self, plan: AliasPlan, tried_before: int = 0) -> UpstreamError:
        return exhausted(
            plan.alias,
            plan.candidates,
            self.run.gw.clock(),
            self.run.gw.health,
            tried=self.run.attempt_count - tried_before,
            max_retry_after=plan.routing.cooldown.max_retry_after,
            priced_only=self.run.ctx.priced_only,
            endpoint=self.run.request.endpoint,
        )

    async def _wait_for_candidate(self, plan: AliasPlan, now: float) -> UpstreamError | None:
        """Nothing is usable: wait for the soonest candidate when that is within its ``max_wait``."""
        soonest: tuple[float, Candidate] | None = None
        for cand in plan.candidates:
            at = ready_at(cand, now)
            if now < at < float("inf") and (soonest is None or at < soonest[0]):
                soonest = (at, cand)
        if soonest is None:
            return self._exhausted(plan)
        wait = soonest[0] - now
        if wait <= plan.candidate_routing[soonest[1].id].max_wait and wait < self.run.remaining():
            await self.run.gw.sleep(wait)
            return None
        return self._exhausted(plan)


async def serve(gw: Gateway, rt: Runtime, request: ChatRequest, ctx: RequestContext) -> Outcome:
    """Serve one request; raise :class:`GatewayError` for an answer in the client's error format.

    ``ctx`` is filled in as the request goes (its status, attempts, usage, error); the caller ends
    the request (:func:`truckllm._internal.request.end_request`) once the answer is sent or abandoned.
    """
    run = RequestRun(gw, rt, request, ctx)
    gw.budget.active_requests += 1
    try:
        outcome = await _Failover(run).go()
    except GatewayError as exc:
        ctx.status = exc.status
        exc.headers.setdefault("x-truckllm-attempts", str(run.attempt_count))
        raise
    except asyncio.CancelledError:
        ctx.client_disconnected = True
        ctx.status = 499
        raise
    finally:
        gw.budget.active_requests -= 1
    if outcome.stream is None:
        ctx.status = outcome.status
    return outcome
