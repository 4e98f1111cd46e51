"""`resolve_escalation`: who takes an escalated call.

    validate -> the call's earlier offer (a repeat escalation: that specialist missed it) -> caller key ->
    customer (or the default tier) -> category -> effective complexity ->
      a callback call whose specialist is held     -> TRANSFER_AGENT (that specialist, moved onto this call)
    -> first matching rule -> team
      team without specialists on record           -> TRANSFER_TEAM (the team line; when outside its business
                                                      hours, the next matching rule is tried instead)
      waiting callbacks that outrank this caller    -> CALLBACK (never jump the queue)
      a qualified specialist whose slot we win      -> TRANSFER_AGENT (reserved atomically; never one who
                                                      already missed this call)
      nobody                                        -> CALLBACK (enqueued, position and estimated wait)
    no rule / internal failure                      -> FALLBACK

The decision, its trace and the reservation or queue entry commit in one unit of work. A repeat of a
stored request (same call_id + tool_call_id), or a concurrent twin that stored first, meets the stored
decision when it inserts its own (DuplicateDecision): its unit of work rolls back, so it never reserves
twice, and the stored decision is returned with `replayed=True` (so a retried delivery of a repeat
escalation gets the identical answer, and the earlier offer's miss is counted once). `dry_run`
takes the same path but reserves, enqueues and stores nothing. A store that cannot be reached raises
`Unavailable` (the edge then uses its own fallback); any other unexpected failure yields a FALLBACK
decision, logged with its cause.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from escalade_platform.masking import mask_number
from routing_service.app.assignments import CALLBACK, LIVE
from routing_service.app.availability import AvailabilityBroadcaster
from routing_service.app.callbacks import team_wait
from routing_service.app.failures import looks_unavailable
from routing_service.app.lifecycle import record_missed_offer
from routing_service.app.ports import AgentFreed, DuplicateDecision, UnitOfWork, UnitOfWorkFactory
from routing_service.domain import decision as build
from routing_service.domain.complexity import assess_complexity
from routing_service.domain.errors import Conflict, InvalidRequest, Unavailable
from routing_service.domain.lifecycle import AssignmentStage
from routing_service.domain.matching import match_rule, normalize_category
from routing_service.domain.models import (
    Agent,
    BusinessHours,
    CallbackState,
    CallbackTicket,
    Complexity,
    Customer,
    Decision,
    EscalationRequest,
    Policy,
    Rule,
    Team,
    TraceOutcome,
    TraceStep,
)
from routing_service.domain.phone import normalize_caller
from routing_service.domain.queueing import (
    callback_priority,
    closed_until,
    opening_label,
    opening_phrase,
    service_key,
    wait_label,
)
from routing_service.domain.selection import rank_specialists

__all__ = ["LIMITS", "new_decision_id", "resolve_escalation", "validate_request"]

log = structlog.get_logger(__name__)

LIMITS: dict[str, int] = {
    "call_id": 128,
    "tool_call_id": 128,
    "caller_number": 64,
    "caller_sip_uri": 512,
    "issue_category": 64,
    "customer_context": 4 * 1024,
    "escalation_reason": 4 * 1024,
    "transcript": 64 * 1024,
    "arguments_problem": 1024,
    "callback_of_call_id": 128,
}
CANDIDATE_LIMIT = 3
"""Qualified specialists fetched per round. The store returns them in ranking order, so the first usually
wins; the rest cover a lost race. A full batch that yields nobody (lost races, missing skills) is followed by
a larger one, `CANDIDATE_GROWTH` times the last, for up to `RESERVE_ROUNDS` rounds."""
CANDIDATE_GROWTH = 4
OTHERS_LIMIT = 10
RESERVE_ROUNDS = 3

_BEFORE_HAND_OVER = (AssignmentStage.RESERVED, AssignmentStage.OFFERED)

_counter = itertools.count()
_node = os.urandom(3).hex()


def new_decision_id() -> str:
    """Time-ordered and unique: microseconds since the epoch, a per-process counter, a process tag."""
    return f"{time.time_ns() // 1000:015x}{next(_counter) % 0xFFFF:04x}{_node}"


def validate_request(request: EscalationRequest) -> None:
    """InvalidRequest naming every field that is missing or too long."""
    violations: list[tuple[str, str]] = []
    if not request.call_id and not request.dry_run:
        violations.append(("call_id", "required (only a dry run may omit it)"))
    for name, limit in LIMITS.items():
        value = getattr(request, name)
        if len(value) > limit:
            violations.append((name, f"at most {limit} characters, got {len(value)}"))
    if violations:
        raise InvalidRequest("invalid escalation request", violations)


async def resolve_escalation(
    request: EscalationRequest,
    *,
    uow: UnitOfWorkFactory,
    policy: Policy,
    now: datetime,
    new_id: Callable[[], str] = new_decision_id,
    events: AvailabilityBroadcaster | None = None,
) -> Decision:
    """Decide (and unless dry_run, reserve and store); see the module docstring. `events` hears of the
    slots a repeat escalation freed (the specialist who missed it may serve a waiting callback)."""
    validate_request(request)
    try:
        return await _decide_and_store(request, uow=uow, policy=policy, now=now, new_id=new_id, events=events)
    except Unavailable:
        raise
    except Exception as exc:
        if looks_unavailable(exc):
            log.warning("routing_store_unavailable", call_id=request.call_id, error=str(exc))
            raise Unavailable("the routing store is unavailable") from exc
        log.exception("routing_failed_fallback", call_id=request.call_id)
        decision = build.fallback_decision(
            policy,
            request,
            reason=f"internal failure: {type(exc).__name__}",
            decision_id=new_id(),
            now=now,
            trace=(
                TraceStep("decision", "fallback", TraceOutcome.CHOSEN, "internal failure while deciding"),
            ),
        )
        return await _store_best_effort(decision, request, uow=uow)


async def _store_best_effort(
    decision: Decision, request: EscalationRequest, *, uow: UnitOfWorkFactory
) -> Decision:
    """Store a fallback decision when the store works; a failure to store it is only logged."""
    if request.dry_run:
        return replace(decision, dry_run=True)
    try:
        async with uow() as u:
            await u.decisions.add(decision)
            await u.commit()
    except DuplicateDecision:
        async with uow() as u:
            stored = await u.decisions.get(request.call_id, request.tool_call_id)
        if stored is not None:
            return replace(stored, replayed=True)
    except Exception:
        log.warning("fallback_not_stored", call_id=request.call_id, exc_info=True)
    return decision


@dataclass(slots=True)
class _Context:
    request: EscalationRequest
    policy: Policy
    now: datetime
    decision_id: str
    trace: list[TraceStep]
    caller_key: str | None = None
    customer: Customer | None = None
    tier: str = ""
    category: str = ""
    complexity: Complexity = Complexity.BASIC
    missed: tuple[str, ...] = ()
    """Specialists offered this call before who did not take it (sorted)."""
    freed: list[AgentFreed] = field(default_factory=list)
    """Slots this decision freed (an earlier offer the specialist missed), announced after the commit."""


async def _decide_and_store(
    request: EscalationRequest,
    *,
    uow: UnitOfWorkFactory,
    policy: Policy,
    now: datetime,
    new_id: Callable[[], str],
    events: AvailabilityBroadcaster | None,
) -> Decision:
    ctx = _Context(request=request, policy=policy, now=now, decision_id=new_id(), trace=[])
    async with uow() as u:
        # No replay lookup up front: a repeat decides again inside this transaction, finds its
        # (call_id, tool_call_id) stored when it inserts the decision (DuplicateDecision), and rolls back
        # whatever it reserved or enqueued, then returns the stored decision. A first request, by far the
        # common one, saves a statement (a round trip on PostgreSQL); a repeat costs a whole decision.
        decision = await _decide(u, ctx)
        if ctx.missed:
            decision = replace(decision, missed_agent_ids=ctx.missed)
        if request.dry_run:
            return replace(decision, dry_run=True)
        try:
            await u.decisions.add(decision)
            await u.commit()
        except DuplicateDecision:
            await u.rollback()
            stored = None
        else:
            _log_decision(decision)
            if events is not None:
                for freed in ctx.freed:
                    events.publish_freed(freed)
            return decision
    async with uow() as u:
        stored = await u.decisions.get(request.call_id, request.tool_call_id)
    if stored is None:  # pragma: no cover - the duplicate vanished: nothing sensible but to report it
        raise Unavailable("a concurrent decision for this call could not be read back")
    return replace(stored, replayed=True)


def _log_decision(decision: Decision) -> None:
    log.info(
        "decision",
        call_id=decision.call_id,
        decision_id=decision.decision_id,
        kind=decision.kind.value,
        team=decision.team_id,
        agent=decision.agent_id,
        tier=decision.tier,
        complexity=decision.effective_complexity.label,
        caller=mask_number(decision.caller_number) if decision.caller_number else "",
        reason=decision.reason,
    )


async def _decide(u: UnitOfWork, ctx: _Context) -> Decision:
    request, policy = ctx.request, ctx.policy
    if request.arguments_problem:
        ctx.trace.append(
            TraceStep(
                "request",
                "arguments",
                TraceOutcome.INFO,
                f"tool arguments unusable: {request.arguments_problem}",
            )
        )
    await _settle_earlier_offer(u, ctx)
    key = normalize_caller(request.caller_number)
    ctx.caller_key = key.key
    ctx.trace.append(
        TraceStep("caller", mask_number(key.key) if key.key else "anonymous", TraceOutcome.INFO, key.note)
    )

    customer = await u.customers.get(key.key) if key.key else None
    ctx.customer = customer
    if customer is not None:
        ctx.tier = customer.tier
        ctx.trace.append(
            TraceStep(
                "customer",
                customer.account_name or customer.tier,
                TraceOutcome.INFO,
                f"known customer: tier {customer.tier}, {customer.previous_escalations} previous escalations",
            )
        )
    else:
        ctx.tier = policy.default_tier
        why = "unknown caller" if key.key else "no usable caller number"
        ctx.trace.append(
            TraceStep(
                "customer",
                policy.default_tier,
                TraceOutcome.INFO,
                f"{why}: default tier {policy.default_tier}",
            )
        )

    ctx.category, category_step = normalize_category(policy, request.issue_category)
    if category_step is not None:
        ctx.trace.append(category_step)

    assessment = assess_complexity(
        claimed=request.claimed_complexity,
        texts={
            "customer_context": request.customer_context,
            "escalation_reason": request.escalation_reason,
            "transcript": request.transcript,
        },
        tier=ctx.tier,
        previous_escalations=customer.previous_escalations if customer else 0,
        policy=policy.complexity,
    )
    ctx.complexity = assessment.effective
    ctx.trace.extend(assessment.steps)

    if request.callback_of_call_id:
        held = await _held_for_callback(u, ctx)
        if held is not None:
            return held

    priority = callback_priority(policy.queue, tier=ctx.tier, complexity=ctx.complexity)
    key_value = service_key(ctx.now, priority, policy.queue.aging_points_per_minute)
    rule: Rule | None = None
    while True:
        match = match_rule(
            policy, tier=ctx.tier, category=ctx.category, complexity=ctx.complexity, after=rule
        )
        ctx.trace.extend(match.steps)
        if match.rule is None or match.team is None:
            return _fallback(ctx, "no policy rule matched" if rule is None else "no open team matched")
        team, rule = match.team, match.rule
        ahead = await _waiting_ahead(u, team.team_id, key_value)
        candidates = [] if ahead else await _first_candidates(u, team.team_id, ctx)
        members = None if candidates else await u.agents.count_in_team(team.team_id)
        if members != 0:
            break
        closed = _closed(team, ctx.now)
        if closed is None:
            ctx.trace.append(
                TraceStep(
                    "team",
                    team.team_id,
                    TraceOutcome.CHOSEN,
                    "no specialists on record: transfer to the team line",
                )
            )
            return _team_line(ctx, team, rule.rule_id)
        # Nobody would answer a closed line, and with no specialists on record there is nobody whose
        # freeing could trigger a callback: the call goes to the next rule's team (or the fallback).
        ctx.trace.append(
            TraceStep(
                "team",
                team.team_id,
                TraceOutcome.REJECTED,
                f"team line closed until {opening_label(*closed)}: trying the next rule",
            )
        )
    rule_id = rule.rule_id
    if ahead > 0:
        ctx.trace.append(
            TraceStep(
                "queue",
                team.team_id,
                TraceOutcome.INFO,
                f"{ahead} waiting callback(s) are served before this caller: joining the queue",
            )
        )
        return await _callback(u, ctx, team, rule_id, priority, key_value, members)

    full = len(candidates) >= CANDIDATE_LIMIT
    candidates = _not_missed(ctx, candidates)
    preferred = customer.last_agent_id if customer and team.sticky else None
    if preferred in ctx.missed:
        preferred = None
    if preferred and all(a.agent_id != preferred for a in candidates):
        sticky = await u.agents.get(preferred)
        if sticky is not None and team.team_id in sticky.team_ids:
            candidates = [sticky, *candidates]
    # The other team members only explain a decision that found nobody (kept off the hot path).
    others = (
        []
        if candidates
        else _not_missed(
            ctx, await u.agents.others(team.team_id, {a.agent_id for a in candidates}, OTHERS_LIMIT)
        )
    )
    selection = rank_specialists(
        candidates, others, team=team, complexity=ctx.complexity, preferred_agent_id=preferred
    )
    ctx.trace.extend(selection.steps)
    chosen = await _reserve_first(u, ctx, team, selection.ranked)
    tried = {a.agent_id for a in candidates}
    batch = CANDIDATE_LIMIT
    for round_no in range(2, RESERVE_ROUNDS + 1):
        # A full batch gave nobody (its specialists went to concurrent calls, or lacked a required skill):
        # there may be more qualified specialists, so look again with fresh data rather than queue a caller
        # while one is free.
        if chosen is not None or not full:
            break
        batch *= CANDIDATE_GROWTH
        limit = batch + len(tried)
        fetched_agents = await u.agents.candidates(team.team_id, ctx.complexity, limit)
        full = len(fetched_agents) >= limit
        fresh = _not_missed(ctx, [a for a in fetched_agents if a.agent_id not in tried])
        ranked = rank_specialists(
            fresh, (), team=team, complexity=ctx.complexity, preferred_agent_id=preferred
        ).ranked
        tried |= {a.agent_id for a in fresh}
        if not ranked:
            continue
        ctx.trace.append(
            TraceStep(
                "candidate",
                team.team_id,
                TraceOutcome.INFO,
                f"round {round_no}: {len(ranked)} more qualified specialist(s) after lost races "
                "or missing skills",
            )
        )
        chosen = await _reserve_first(u, ctx, team, ranked)
    if chosen is not None:
        ctx.trace.append(
            TraceStep(
                "decision",
                chosen.agent_id,
                TraceOutcome.CHOSEN,
                "specialist reserved"
                if not ctx.request.dry_run
                else "specialist would be reserved (dry run)",
            )
        )
        return _specialist(ctx, team, rule_id, chosen)
    ctx.trace.append(TraceStep("queue", team.team_id, TraceOutcome.INFO, "no qualified specialist is free"))
    return await _callback(u, ctx, team, rule_id, priority, key_value, members)


async def _settle_earlier_offer(u: UnitOfWork, ctx: _Context) -> None:
    """A call that escalates again (a new tool call of the same call) tells us its earlier offer was not
    taken: Vapi came back to the assistant because the specialist did not answer (the transfer's
    fallbackPlan keeps the assistant on the line). That offer is a miss, counted against the specialist and
    its slot freed; everyone who missed this call is skipped from here on (`ctx.missed`).

    A first request finds nothing to settle, at the cost of the call's lock (PostgreSQL) and two indexed
    reads. A retried delivery of a
    request settles again inside its own transaction, which rolls back when it meets the stored decision,
    so a miss is counted once.
    """
    request = ctx.request
    if not request.call_id:
        return
    if not request.dry_run:
        # Concurrent deliveries of one call's escalations (Vapi retries, repeats) would settle the same
        # offer while reserving others, locking rows in opposite orders (PostgreSQL deadlocks): one decision
        # per call at a time. One statement on PostgreSQL, nothing on SQLite.
        await u.assignments.lock_call(request.call_id)
    earlier = await u.assignments.live_for_call(request.call_id)
    if earlier is not None and earlier.stage in _BEFORE_HAND_OVER:
        if not request.dry_run:
            freed = await record_missed_offer(
                u,
                ctx.policy,
                earlier,
                now=ctx.now,
                reason="the call escalated again: the specialist did not take the transfer",
            )
            if freed is not None:
                ctx.freed.append(freed)
        ctx.trace.append(
            TraceStep(
                "offer",
                earlier.agent_id,
                TraceOutcome.REJECTED,
                f"offered this call earlier ({earlier.stage}) and did not take it: counted as missed",
            )
        )
    elif earlier is not None:
        ctx.trace.append(
            TraceStep(
                "offer",
                earlier.agent_id,
                TraceOutcome.INFO,
                f"this call is already with this specialist ({earlier.stage})",
            )
        )
    missed = await u.assignments.missed_agents(request.call_id)
    if request.dry_run and earlier is not None and earlier.stage in _BEFORE_HAND_OVER:
        missed.add(earlier.agent_id)
    ctx.missed = tuple(sorted(missed))
    if ctx.missed:
        ctx.trace.append(
            TraceStep(
                "offer",
                request.call_id,
                TraceOutcome.INFO,
                f"skipping {len(ctx.missed)} specialist(s) who did not take this call: "
                + ", ".join(ctx.missed),
            )
        )


def _not_missed(ctx: _Context, agents: Sequence[Agent]) -> list[Agent]:
    """`agents` without those who already missed this call (each skipped one is traced)."""
    if not ctx.missed:
        return list(agents)
    kept = []
    for agent in agents:
        if agent.agent_id in ctx.missed:
            ctx.trace.append(
                TraceStep(
                    "candidate", agent.agent_id, TraceOutcome.REJECTED, "did not take this call earlier"
                )
            )
        else:
            kept.append(agent)
    return kept


async def _held_for_callback(u: UnitOfWork, ctx: _Context) -> Decision | None:
    """This call is Escalade's callback of an earlier call: while the specialist claimed for that callback
    is still held, the caller goes to them (their hold moves onto this call as a live reservation) instead
    of a fresh decision. None, with the reason traced, when the hold is gone: then routing decides afresh."""
    request, policy = ctx.request, ctx.policy
    original = request.callback_of_call_id
    ticket = await u.callbacks.get(original)
    team = policy.teams.get(ticket.team_id) if ticket is not None else None
    agent_id = ticket.agent_id if ticket is not None else None
    why = ""
    if ticket is None:
        why = "no callback is on record for it"
    elif ticket.state is not CallbackState.RESERVED or agent_id is None:
        why = f"its callback is {ticket.state}, with no specialist held"
    elif team is None:
        why = f"its team {ticket.team_id} is no longer in the policy"
    elif agent_id in ctx.missed:
        why = f"its specialist {agent_id} did not take this call"
    agent = None if why or agent_id is None else await u.agents.get(agent_id)
    if not why and agent is None:
        why = f"its specialist {agent_id} is no longer on record"
    if not why and not request.dry_run:
        moved = await u.assignments.hand_over(
            from_call_id=original,
            from_purpose=CALLBACK,
            to_call_id=request.call_id,
            to_purpose=LIVE,
            team_id=ticket.team_id if ticket is not None else "",
            now=ctx.now,
            expires_at=ctx.now + policy.assignment_ttl,
        )
        if moved is None:
            why = f"the hold on {agent_id} has lapsed"
    if why or agent is None or team is None:
        ctx.trace.append(
            TraceStep(
                "callback", original, TraceOutcome.INFO, f"callback of {original}: {why}; deciding afresh"
            )
        )
        return None
    ctx.trace.append(
        TraceStep(
            "callback",
            agent.agent_id,
            TraceOutcome.CHOSEN,
            f"callback of {original}: the specialist held for it takes the call",
        )
    )
    decision = _specialist(ctx, team, "", agent)
    return replace(
        decision,
        reason=f"callback of {original}: team {team.team_id}, specialist {agent.agent_id} held for it",
        callback_of_call_id=original,
    )


async def _first_candidates(u: UnitOfWork, team_id: str, ctx: _Context) -> list[Agent]:
    """The best qualified free specialists. A reserving decision first passes over specialists that
    concurrent decisions are reserving right now (row-locked; PostgreSQL), so 32 calls in flight spread over
    32 specialists instead of all waiting on the best one and losing its last slot; when that finds nobody,
    it looks again without skipping, so a caller is never queued while a specialist is free."""
    if not ctx.request.dry_run:
        found = await u.agents.candidates(team_id, ctx.complexity, CANDIDATE_LIMIT, skip_locked=True)
        if found:
            return found
    return await u.agents.candidates(team_id, ctx.complexity, CANDIDATE_LIMIT)


async def _waiting_ahead(u: UnitOfWork, team_id: str, key_value: float) -> int:
    """WAITING callbacks of the team that come before a caller with this key (one indexed COUNT; callbacks
    already holding a reservation are being served and do not hold this caller back)."""
    return await u.callbacks.ahead_of(team_id, key_value)


async def _reserve_first(u: UnitOfWork, ctx: _Context, team: Team, ranked: Sequence[Agent]) -> Agent | None:
    if ctx.request.dry_run:
        return ranked[0] if ranked else None
    expires = ctx.now + ctx.policy.assignment_ttl
    for agent in ranked:
        try:
            won = await u.assignments.reserve(
                agent_id=agent.agent_id,
                call_id=ctx.request.call_id,
                purpose=LIVE,
                now=ctx.now,
                expires_at=expires,
                team_id=team.team_id,
            )
        except Conflict:
            # This call already holds a specialist (an earlier tool call of the same call): keep them.
            holder_id = await u.assignments.active_for_call(ctx.request.call_id, LIVE)
            holder = await u.agents.get(holder_id) if holder_id else None
            if holder is None:
                raise
            ctx.trace.append(
                TraceStep(
                    "candidate",
                    holder.agent_id,
                    TraceOutcome.MATCHED,
                    "this call already holds this specialist: kept",
                )
            )
            return holder
        if won:
            return agent
        ctx.trace.append(
            TraceStep(
                "candidate",
                agent.agent_id,
                TraceOutcome.REJECTED,
                "last free slot taken by a concurrent call",
            )
        )
    return None


async def _callback(
    u: UnitOfWork,
    ctx: _Context,
    team: Team,
    rule_id: str,
    priority: int,
    key_value: float,
    members: int | None,
) -> Decision:
    """Queue the caller. `members` is the team's head count when already read (the wait estimate divides
    the queue among them)."""
    request = ctx.request
    ticket = CallbackTicket(
        call_id=request.call_id,
        team_id=team.team_id,
        state=CallbackState.WAITING,
        caller_number=ctx.caller_key or "",
        tier=ctx.tier,
        issue_category=ctx.category,
        effective_complexity=ctx.complexity,
        priority=priority,
        service_key=key_value,
        enqueued_at=ctx.now,
        decision_id=ctx.decision_id,
        customer_context=request.customer_context,
        escalation_reason=request.escalation_reason,
        first_message=build.callback_first_message(
            ctx.policy,
            request,
            team=team,
            tier=ctx.tier,
            category=ctx.category,
            complexity=ctx.complexity,
            account_name=ctx.customer.account_name if ctx.customer else "",
        ),
    )
    if request.dry_run:
        position = await u.callbacks.ahead_of(team.team_id, key_value) + 1
        ticket = replace(ticket, position=position)
    else:
        ticket = await u.callbacks.enqueue(ticket)
        position = ticket.position or (await u.callbacks.ahead_of(team.team_id, key_value) + 1)
        ticket = replace(ticket, position=position)
    if members is None:
        members = await u.agents.count_in_team(team.team_id)
    serving = max(members, 1)
    wait = await team_wait(
        u, ctx.policy, team.team_id, position=position, serving_agents=serving, now=ctx.now
    )
    closed = _closed(team, ctx.now)
    if closed is not None:
        ctx.trace.append(
            TraceStep(
                "queue",
                team.team_id,
                TraceOutcome.INFO,
                f"outside business hours: opens {opening_label(*closed)}; the wait counts until then",
            )
        )
    ctx.trace.append(
        TraceStep(
            "queue",
            team.team_id,
            TraceOutcome.CHOSEN,
            f"callback queued at position {position}, estimated wait {wait_label(wait)}",
        )
    )
    return build.callback_decision(
        ctx.policy,
        request,
        team=team,
        ticket=ticket,
        estimated_wait=wait,
        tier=ctx.tier,
        category=ctx.category,
        complexity=ctx.complexity,
        account_name=ctx.customer.account_name if ctx.customer else "",
        caller_number=ctx.caller_key or "",
        rule_id=rule_id,
        decision_id=ctx.decision_id,
        now=ctx.now,
        trace=tuple(ctx.trace),
        opens_at=opening_phrase(*closed) if closed is not None else "",
        after_missed=bool(ctx.missed),
    )


def _closed(team: Team, now: datetime) -> tuple[BusinessHours, datetime] | None:
    """The team's hours and its next opening while it is outside them; None while open or without hours."""
    hours = team.business_hours
    opens = closed_until(hours, now) if hours is not None else None
    return None if hours is None or opens is None else (hours, opens)


def _specialist(ctx: _Context, team: Team, rule_id: str, agent: Agent) -> Decision:
    return build.specialist_decision(
        ctx.policy,
        ctx.request,
        team=team,
        agent=agent,
        tier=ctx.tier,
        category=ctx.category,
        complexity=ctx.complexity,
        account_name=ctx.customer.account_name if ctx.customer else "",
        caller_number=ctx.caller_key or "",
        rule_id=rule_id,
        decision_id=ctx.decision_id,
        now=ctx.now,
        trace=tuple(ctx.trace),
    )


def _team_line(ctx: _Context, team: Team, rule_id: str) -> Decision:
    return build.team_line_decision(
        ctx.policy,
        ctx.request,
        team=team,
        tier=ctx.tier,
        category=ctx.category,
        complexity=ctx.complexity,
        account_name=ctx.customer.account_name if ctx.customer else "",
        caller_number=ctx.caller_key or "",
        rule_id=rule_id,
        decision_id=ctx.decision_id,
        now=ctx.now,
        trace=tuple(ctx.trace),
    )


def _fallback(ctx: _Context, reason: str) -> Decision:
    ctx.trace.append(TraceStep("decision", "fallback", TraceOutcome.CHOSEN, reason))
    return build.fallback_decision(
        ctx.policy,
        ctx.request,
        reason=reason,
        decision_id=ctx.decision_id,
        now=ctx.now,
        trace=tuple(ctx.trace),
        tier=ctx.tier,
        complexity=ctx.complexity,
        category=ctx.category,
    )
