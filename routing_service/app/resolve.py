"""`resolve_escalation`: who takes an escalated call.

A decision is a short sequence of steps over one unit of work, each a function of its own that reads the
`DecisionContext`, adds what it found and traces why (so each can be tested alone, on any store):

    validate_request      every field present and within its limit (else InvalidRequest)
    settle_earlier_offer  a repeat escalation of the call: the specialist offered it earlier missed it
    identify_caller       caller key -> customer on record -> tier (or the policy's default tier)
    assess_call           category and effective complexity (and, with a policy `uncertainty` section,
                            the decision's confidence: the assistant's and the call's own agreement);
                            a complexity ceiling a review's verdict taught lowers what keywords raised
    take_held_callback    a callback call whose specialist is still held -> TRANSFER_AGENT (that specialist)
    weigh_uncertainty     below the policy's confidence threshold: CONFIRM_CATEGORY (the assistant asks the
                            caller first), or widen: the generalist team, or the union of candidate teams
    choose_team           first matching rule -> team (or the customer's preferred team a review's
                            verdict taught for this category)
                            no specialists on record -> TRANSFER_TEAM (the team line; outside its
                            business hours the next matching rule is tried instead); no rule -> FALLBACK
    reserve_or_queue      waiting callbacks that outrank this caller -> CALLBACK (never jump the queue;
                            an uncertain decision widened to a union first tries the other teams)
                          a qualified specialist whose slot we win -> TRANSFER_AGENT (reserved atomically;
                            never one who already missed this call)
                          nobody -> CALLBACK (enqueued, position and estimated wait)
    record_decision       store the decision and commit
    internal failure      -> FALLBACK

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
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from escalade_platform.masking import mask_number
from routing_service.app.assignments import CALLBACK, LIVE
from routing_service.app.availability import AvailabilityBroadcaster
from routing_service.app.failures import looks_unavailable
from routing_service.app.lifecycle import record_missed_offer
from routing_service.app.ports import AgentFreed, DuplicateDecision, UnitOfWork, UnitOfWorkFactory
from routing_service.app.promises import keep_promise, team_wait
from routing_service.app.uncertainty import notify_second_transfer, notify_uncertain
from routing_service.domain import decision as build
from routing_service.domain.complexity import Assessment, assess_complexity
from routing_service.domain.errors import Conflict, InvalidRequest, Unavailable
from routing_service.domain.fair_load import STAGE as FAIR_LOAD
from routing_service.domain.handoff import (
    HandoffPacket,
    build_packet,
    carry_over,
    packet_for_log,
    with_packet,
)
from routing_service.domain.learning import capped_complexity, preferred_team
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
    DecisionKind,
    EscalationRequest,
    Policy,
    Rule,
    Team,
    TraceOutcome,
    TraceStep,
    UncertaintyAction,
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
from routing_service.domain.selection import Selection, rank_specialists
from routing_service.domain.uncertainty import (
    ASKED_BEFORE,
    Confidence,
    candidate_teams,
    response_to,
    second_transfer_step,
    weigh_confidence,
)
from routing_service.domain.uncertainty import (
    STAGE as UNCERTAINTY,
)

__all__ = [
    "LIMITS",
    "DecisionContext",
    "TeamChoice",
    "assess_call",
    "choose_team",
    "identify_caller",
    "new_decision_id",
    "record_decision",
    "reserve_or_queue",
    "resolve_escalation",
    "settle_earlier_offer",
    "take_held_callback",
    "validate_request",
    "weigh_uncertainty",
]

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
    "assistant_summary": 4 * 1024,
}
MAX_STEPS_TRIED = 20
MAX_STEP_TRIED = 512
MAX_STATED_ENTITIES = 20
MAX_ENTITY_KIND = 32
MAX_ENTITY_VALUE = 128
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
    violations += _handoff_violations(request)
    confidence = request.stated_confidence
    if confidence is not None and not 0.0 <= confidence <= 1.0:  # NaN fails both comparisons
        violations.append(("confidence", f"must be between 0 and 1, got {confidence}"))
    if violations:
        raise InvalidRequest("invalid escalation request", violations)


def _handoff_violations(request: EscalationRequest) -> list[tuple[str, str]]:
    """The handoff packet's optional fields: counts and lengths within their limits."""
    violations: list[tuple[str, str]] = []
    if len(request.steps_tried) > MAX_STEPS_TRIED:
        violations.append(
            ("steps_tried", f"at most {MAX_STEPS_TRIED} entries, got {len(request.steps_tried)}")
        )
    for index, step in enumerate(request.steps_tried[:MAX_STEPS_TRIED]):
        if len(step) > MAX_STEP_TRIED:
            violations.append(
                (f"steps_tried[{index}]", f"at most {MAX_STEP_TRIED} characters, got {len(step)}")
            )
    if len(request.stated_entities) > MAX_STATED_ENTITIES:
        violations.append(
            ("entities", f"at most {MAX_STATED_ENTITIES} entries, got {len(request.stated_entities)}")
        )
    for index, (kind, value) in enumerate(request.stated_entities[:MAX_STATED_ENTITIES]):
        if not kind or len(kind) > MAX_ENTITY_KIND:
            violations.append((f"entities[{index}].kind", f"required, at most {MAX_ENTITY_KIND} characters"))
        if len(value) > MAX_ENTITY_VALUE:
            violations.append((f"entities[{index}].value", f"at most {MAX_ENTITY_VALUE} characters"))
    return violations


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
class DecisionContext:
    """What one decision has learned so far. Each step reads it, adds what it found and traces why."""

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
    offered_before: bool = False
    """A specialist still holds a slot for this call (an earlier decision reserved them)."""
    confidence: Confidence | None = None
    """How sure the decision is of its category and complexity (only with a policy `uncertainty`)."""
    widening: UncertaintyAction | None = None
    """What an uncertain decision does instead of the narrow specialist pool (WIDEN / UNION)."""
    union: tuple[tuple[str, Team], ...] = ()
    """UNION: (rule id, team) of every candidate team, the stated category's first."""
    second_transfer_of: str | None = None
    """The team of the call's earlier, uncertain decision when this decision is a second transfer."""
    widened_from: str = ""
    """WIDEN: the team the rule chose, which the generalist team replaced (empty until then)."""
    assessment: Assessment | None = None
    """How the effective complexity came about (`assess_call`), for the handoff packet."""
    category_stated: bool = False
    """The assistant named one of the policy's categories (else the policy's default is used)."""
    earlier_packet: HandoffPacket | None = None
    """A callback call: the packet of the call it calls back (carried over to the specialist)."""
    learned_from: str = ""
    """The team the rule chose, which the customer's learned preferred team replaced (empty until then)."""
    customer_read_for: str | None = None
    """The caller key whose customer `settle_earlier_offer` read with the call's offers (one statement on
    PostgreSQL), so that `identify_caller` does not read it again."""
    recorded: Decision | None = None
    """The decision stored with its reservation (`_reserve_first`): built for the candidate before the
    reservation and stored by the reservation's own statement on PostgreSQL; only the commit is left."""


@dataclass(frozen=True, slots=True)
class TeamChoice:
    """The team a call goes to (`choose_team`), with what choosing it already read from the store, so that
    `reserve_or_queue` does not read it again."""

    team: Team
    rule_id: str
    priority: int
    """The caller's callback priority (tier and complexity weights)."""
    service_key: float
    """Where the caller would stand in the team's callback queue (lower is served first)."""
    waiting_ahead: int
    """WAITING callbacks of the team served before this caller; when > 0 the caller joins the queue."""
    candidates: tuple[Agent, ...]
    """The first batch of qualified free specialists, best first (empty when callbacks wait ahead)."""
    members: int | None
    """The team's head count when it was read (None: not read, the team has qualified free specialists)."""


async def _decide_and_store(
    request: EscalationRequest,
    *,
    uow: UnitOfWorkFactory,
    policy: Policy,
    now: datetime,
    new_id: Callable[[], str],
    events: AvailabilityBroadcaster | None,
) -> Decision:
    ctx = DecisionContext(request=request, policy=policy, now=now, decision_id=new_id(), trace=[])
    async with uow() as u:
        # No replay lookup up front: a repeat decides again inside this transaction, finds its
        # (call_id, tool_call_id) stored when it inserts the decision (DuplicateDecision), and rolls back
        # whatever it reserved or enqueued, then returns the stored decision. A first request, by far the
        # common one, saves a statement (a round trip on PostgreSQL); a repeat costs a whole decision.
        decision = await _decided(u, ctx)
        if decision is not None and request.dry_run:
            return replace(decision, dry_run=True)
        if decision is not None and await record_decision(u, decision, stored=ctx.recorded is not None):
            if events is not None:
                for freed in ctx.freed:
                    events.publish_freed(freed)
            _count_uncertainty(ctx, decision)
            _log_packet(ctx, decision)
            return decision
    return await _stored_twin(uow, request)


async def _decided(u: UnitOfWork, ctx: DecisionContext) -> Decision | None:
    """The decision, complete; None when its reservation met this request's stored decision (a repeat or
    a twin: everything is rolled back, and the stored one is the answer)."""
    try:
        decision = await _decide(u, ctx)
    except DuplicateDecision:
        await u.rollback()
        return None
    return decision if ctx.recorded is not None else _completed(ctx, decision)


def _completed(ctx: DecisionContext, decision: Decision) -> Decision:
    """The decision as stored: its reason says what widening or learning changed, it lists the specialists
    who missed the call, and it carries its handoff packet."""
    if ctx.widened_from and decision.team_id != ctx.widened_from:
        decision = replace(decision, reason=f"{decision.reason} (uncertain: instead of {ctx.widened_from})")
    if ctx.learned_from and decision.team_id != ctx.learned_from:
        decision = replace(
            decision, reason=f"{decision.reason} (learned from a review: instead of {ctx.learned_from})"
        )
    if ctx.missed:
        decision = replace(decision, missed_agent_ids=ctx.missed)
    return with_packet(decision, handoff_packet(ctx, decision))


def handoff_packet(ctx: DecisionContext, decision: Decision) -> HandoffPacket:
    """The decision's handoff packet, from what the steps learned (a callback carries its call's packet)."""
    confidence = ctx.confidence.confidence if ctx.confidence is not None else None
    packet = build_packet(
        ctx.request,
        decision_id=decision.decision_id,
        category=decision.issue_category,
        category_stated=ctx.category_stated,
        complexity=decision.effective_complexity,
        assessment=ctx.assessment,
        complexity_policy=ctx.policy.complexity,
        tier=decision.tier,
        customer=ctx.customer,
        decision_confidence=confidence,
        caller_number=decision.caller_number,
        policy=ctx.policy.handoff,
    )
    return carry_over(packet, ctx.earlier_packet)


def _log_packet(ctx: DecisionContext, decision: Decision) -> None:
    """The packet at debug level, masked (phone numbers, the policy's sensitive fields and patterns)."""
    if decision.handoff is not None and log.is_enabled_for(logging.DEBUG):
        log.debug(
            "handoff_packet",
            call_id=decision.call_id,
            decision_id=decision.decision_id,
            packet=packet_for_log(decision.handoff, ctx.policy.handoff),
        )


async def _decide(u: UnitOfWork, ctx: DecisionContext) -> Decision:
    """The steps of a decision, in order (see the module docstring); each traces what it found."""
    _note_arguments_problem(ctx)
    await settle_earlier_offer(u, ctx)
    await identify_caller(u, ctx)
    assess_call(ctx)
    if ctx.request.callback_of_call_id:
        held = await take_held_callback(u, ctx)
        if held is not None:
            return held
    if ctx.confidence is not None:
        confirm = await weigh_uncertainty(u, ctx)
        if confirm is not None:
            return confirm
    choice = await choose_team(u, ctx)
    if isinstance(choice, Decision):
        return choice
    return await reserve_or_queue(u, ctx, choice)


async def record_decision(u: UnitOfWork, decision: Decision, *, stored: bool = False) -> bool:
    """Store the decision (unless its reservation `stored` it already) and commit everything the decision
    did in `u` (reservation, queue entry, missed offer). False when the same (call_id, tool_call_id) is
    already stored (a retry, or a concurrent twin that stored first): then everything is rolled back and
    the stored decision is the answer."""
    try:
        if not stored:
            await u.decisions.add(decision)
        await u.commit()
    except DuplicateDecision:
        await u.rollback()
        return False
    _log_decision(decision)
    return True


async def _stored_twin(uow: UnitOfWorkFactory, request: EscalationRequest) -> Decision:
    """The decision stored for this request by a twin (or an earlier delivery), marked replayed."""
    async with uow() as u:
        stored = await u.decisions.get(request.call_id, request.tool_call_id)
    if stored is None:  # pragma: no cover - the duplicate vanished: nothing sensible but to report it
        raise Unavailable("a concurrent decision for this call could not be read back")
    return replace(stored, replayed=True)


def _log_decision(decision: Decision) -> None:
    """The decision's log line at info level. Its fields (the masked caller among them) are built only when
    info is enabled: servers run at warning under load, where the line would be dropped anyway."""
    logger = log.bind()  # one bound logger for the check and the line (the module's logger is a proxy)
    if not logger.is_enabled_for(logging.INFO):
        return
    logger.info(
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


def _note_arguments_problem(ctx: DecisionContext) -> None:
    """Trace why the tool arguments could not be used (the call is still decided on what is known)."""
    problem = ctx.request.arguments_problem
    if problem:
        ctx.trace.append(
            TraceStep("request", "arguments", TraceOutcome.INFO, f"tool arguments unusable: {problem}")
        )


async def settle_earlier_offer(u: UnitOfWork, ctx: DecisionContext) -> None:
    """A call that escalates again (a new tool call of the same call) tells us its earlier offer was not
    taken: Vapi came back to the assistant because the specialist did not answer (the transfer's
    fallbackPlan keeps the assistant on the line). That offer is a miss, counted against the specialist and
    its slot freed; everyone who missed this call is skipped from here on (`ctx.missed`).

    A first request finds nothing to settle, at the cost of the call's lock (PostgreSQL) and one statement
    (two indexed reads). A retried delivery of a
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
    # The caller's customer comes with the offers: the decision's first read after the lock is one
    # statement (`identify_caller` uses it).
    caller = normalize_caller(request.caller_number).key
    offers = await u.assignments.offers_for_call(request.call_id, caller=caller)
    if caller:
        ctx.customer, ctx.customer_read_for = offers.customer, caller
    earlier = offers.live
    missed = set(offers.missed)
    ctx.offered_before = earlier is not None
    if earlier is not None and earlier.stage in _BEFORE_HAND_OVER:
        missed.add(earlier.agent_id)  # counted as missed just below (a dry run only says it would be)
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


async def identify_caller(u: UnitOfWork, ctx: DecisionContext) -> None:
    """Caller number -> caller key (E.164, or an opaque key for a plausible but invalid number) -> the
    customer on record and their tier; an unknown or anonymous caller gets the policy's default tier."""
    key = normalize_caller(ctx.request.caller_number)
    ctx.caller_key = key.key
    ctx.trace.append(
        TraceStep("caller", mask_number(key.key) if key.key else "anonymous", TraceOutcome.INFO, key.note)
    )
    if key.key and key.key == ctx.customer_read_for:
        customer = ctx.customer  # read with the call's offers (`settle_earlier_offer`)
    else:
        customer = await u.customers.get(key.key) if key.key else None
    ctx.customer = customer
    if customer is not None:
        ctx.tier = customer.tier
        detail = f"known customer: tier {customer.tier}, {customer.previous_escalations} previous escalations"
        ctx.trace.append(
            TraceStep("customer", customer.account_name or customer.tier, TraceOutcome.INFO, detail)
        )
        return
    default_tier = ctx.policy.default_tier
    ctx.tier = default_tier
    why = "unknown caller" if key.key else "no usable caller number"
    ctx.trace.append(
        TraceStep("customer", default_tier, TraceOutcome.INFO, f"{why}: default tier {default_tier}")
    )


def assess_call(ctx: DecisionContext) -> None:
    """The issue category (as the policy names it) and the effective complexity: the claimed one, raised
    by the policy's keywords in what was said, the caller's tier and their escalation history."""
    request = ctx.request
    ctx.category, category_step = normalize_category(ctx.policy, request.issue_category)
    ctx.category_stated = category_step is None
    if category_step is not None:
        ctx.trace.append(category_step)
    texts = {
        "customer_context": request.customer_context,
        "escalation_reason": request.escalation_reason,
        "transcript": request.transcript,
    }
    assessment = assess_complexity(
        claimed=request.claimed_complexity,
        texts=texts,
        tier=ctx.tier,
        previous_escalations=ctx.customer.previous_escalations if ctx.customer else 0,
        policy=ctx.policy.complexity,
    )
    ctx.complexity = assessment.effective
    ctx.assessment = assessment
    ctx.trace.extend(assessment.steps)
    learned = ctx.customer.learned if ctx.customer is not None else None
    if learned is not None:
        ctx.complexity, ceiling_step = capped_complexity(
            learned,
            effective=assessment.effective,
            claimed=request.claimed_complexity or ctx.policy.complexity.default,
            floor=ctx.policy.complexity.tier_floors.get(ctx.tier),
            now=ctx.now,
        )
        if ceiling_step is not None:
            ctx.trace.append(ceiling_step)
    uncertainty = ctx.policy.uncertainty
    if uncertainty is not None:
        ctx.confidence = weigh_confidence(
            uncertainty,
            stated=request.stated_confidence,
            category=ctx.category,
            category_stated=category_step is None,
            claimed=request.claimed_complexity,
            assessment=assessment,
            categories=ctx.policy.categories,
        )
        ctx.trace.extend(ctx.confidence.steps)


async def weigh_uncertainty(u: UnitOfWork, ctx: DecisionContext) -> Decision | None:
    """Act on the decision's confidence (`assess_call` weighed it). Below the policy's threshold: a
    CONFIRM_CATEGORY decision (returned: nothing is reserved), or the widening `choose_team` and
    `reserve_or_queue` apply (WIDEN: the generalist team; UNION: the candidate categories' teams).

    The call's earlier decision is read when this one is uncertain, or when an earlier decision of the call
    reserved a specialist (the usual second transfer, which costs a first decision nothing): after an
    uncertain transfer this decision is a second transfer (traced, counted); after a confirm the assistant
    is not asked again."""
    confidence, policy, request = ctx.confidence, ctx.policy.uncertainty, ctx.request
    if confidence is None or policy is None:
        return None
    earlier = None
    if request.call_id and (confidence.low or ctx.offered_before or ctx.missed):
        earlier = await u.decisions.latest_for_call(request.call_id)
        if earlier is not None and earlier.tool_call_id == request.tool_call_id:
            earlier = None  # this very request, stored by an earlier delivery: it is replayed, not decided
    step = second_transfer_step(earlier)
    if step is not None and earlier is not None:
        ctx.trace.append(step)
        ctx.second_transfer_of = earlier.team_id
    asked = earlier is not None and (
        earlier.kind is DecisionKind.CONFIRM_CATEGORY
        or any(s.stage == UNCERTAINTY and s.subject == ASKED_BEFORE for s in earlier.trace)
    )
    if asked:
        ctx.trace.append(
            TraceStep(
                UNCERTAINTY,
                ASKED_BEFORE,
                TraceOutcome.INFO,
                "the assistant was asked to confirm the category earlier in this call: not asked again",
            )
        )
    action = response_to(confidence, policy, can_confirm=request.can_confirm, asked_before=asked)
    if action is None:
        return None
    ctx.widening = action
    if action is UncertaintyAction.CONFIRM:
        return _confirm_category(ctx, policy.confirm_message, confidence)
    if action is UncertaintyAction.WIDEN:
        ctx.trace.append(
            TraceStep(
                UNCERTAINTY,
                "widen",
                TraceOutcome.INFO,
                f"widening to the generalist team {policy.generalist_team}",
            )
        )
        return None
    ctx.union = candidate_teams(
        ctx.policy, tier=ctx.tier, categories=confidence.candidate_categories, complexity=ctx.complexity
    )
    names = ", ".join(team.team_id for _, team in ctx.union) or "(none)"
    detail = (
        f"widening to the union of the candidate teams {names}"
        if len(ctx.union) > 1
        else f"one candidate team ({names}): nothing to widen to"
    )
    ctx.trace.append(TraceStep(UNCERTAINTY, "union", TraceOutcome.INFO, detail))
    return None


def _confirm_category(ctx: DecisionContext, template: str, confidence: Confidence) -> Decision:
    ctx.trace.append(
        TraceStep(
            "decision",
            "confirm",
            TraceOutcome.CHOSEN,
            "uncertain category: the assistant confirms it with the caller before any transfer",
        )
    )
    return build.confirm_category_decision(
        ctx.policy,
        ctx.request,
        template=template,
        other_categories=confidence.candidate_categories[1:],
        tier=ctx.tier,
        category=ctx.category,
        complexity=ctx.complexity,
        decision_id=ctx.decision_id,
        now=ctx.now,
        confidence=confidence.confidence,
        account_name=ctx.customer.account_name if ctx.customer else "",
        caller_number=ctx.caller_key or "",
        trace=tuple(ctx.trace),
    )


def _count_uncertainty(ctx: DecisionContext, decision: Decision) -> None:
    """Tell the observers (metrics) about a stored uncertain decision and a second transfer after one."""
    if ctx.confidence is not None and ctx.confidence.low:
        action = ctx.widening.value if ctx.widening is not None else "none"
        notify_uncertain(decision.team_id, action)
    if ctx.second_transfer_of is not None:
        notify_second_transfer(ctx.second_transfer_of)


async def take_held_callback(u: UnitOfWork, ctx: DecisionContext) -> Decision | None:
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
    if ticket is not None and ticket.decision_id:
        earlier = await u.decisions.by_id(ticket.decision_id)
        ctx.earlier_packet = earlier.handoff if earlier is not None else None
    decision = _specialist(ctx, team, "", agent)
    return replace(
        decision,
        reason=f"callback of {original}: team {team.team_id}, specialist {agent.agent_id} held for it",
        callback_of_call_id=original,
    )


async def choose_team(u: UnitOfWork, ctx: DecisionContext) -> TeamChoice | Decision:
    """The first matching rule's team that can take the call, with how it stands for this caller.

    A team with no specialists on record gets the call on its team line (a TRANSFER_TEAM decision,
    returned as is) while it is open; while it is closed the next matching rule is tried. No (more)
    matching rule: a FALLBACK decision."""
    policy = ctx.policy
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
        team, rule = _widened(ctx, _learned(ctx, match.team)), match.rule
        choice = await _team_standing(u, ctx, team, rule.rule_id, priority, key_value)
        if choice.members != 0:
            return choice
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


def _learned(ctx: DecisionContext, team: Team) -> Team:
    """The customer's learned preferred team instead of `team` when a review taught that their calls stated
    as this category belong there (once: a closed line passes the call on to the next rule's team)."""
    learned = ctx.customer.learned if ctx.customer is not None else None
    if learned is None or ctx.learned_from:
        return team
    preferred, step = preferred_team(
        learned, category=ctx.category, rule_team=team.team_id, teams=ctx.policy.teams, now=ctx.now
    )
    if step is not None:
        ctx.trace.append(step)
    if preferred is None:
        return team
    ctx.learned_from = team.team_id
    return ctx.policy.teams[preferred]


def _widened(ctx: DecisionContext, team: Team) -> Team:
    """The policy's generalist team instead of `team` when the uncertain decision widens to it (once: a
    closed generalist line passes the call on to the next rule's team)."""
    policy = ctx.policy.uncertainty
    if ctx.widening is not UncertaintyAction.WIDEN or policy is None or ctx.widened_from:
        return team
    ctx.widened_from = team.team_id
    generalist = ctx.policy.teams.get(policy.generalist_team)
    if generalist is None or generalist.team_id == team.team_id:
        return team
    ctx.trace.append(
        TraceStep(
            UNCERTAINTY,
            generalist.team_id,
            TraceOutcome.MATCHED,
            f"uncertain: the generalist team {generalist.team_id} instead of {team.team_id}",
        )
    )
    return generalist


async def _team_standing(
    u: UnitOfWork, ctx: DecisionContext, team: Team, rule_id: str, priority: int, key_value: float
) -> TeamChoice:
    """How `team` stands for this caller: the waiting callbacks served first; when there are none, the
    first batch of qualified free specialists; when that is empty too, the team's head count."""
    ahead, candidates = await _first_candidates(u, team.team_id, key_value, ctx)
    members = None if candidates else await u.agents.count_in_team(team.team_id)
    return TeamChoice(
        team=team,
        rule_id=rule_id,
        priority=priority,
        service_key=key_value,
        waiting_ahead=ahead,
        candidates=tuple(candidates),
        members=members,
    )


async def _first_candidates(
    u: UnitOfWork, team_id: str, key_value: float, ctx: DecisionContext
) -> tuple[int, list[Agent]]:
    """The WAITING callbacks of the team that come before a caller with this key (callbacks already holding
    a reservation are being served and do not hold this caller back) and, when there are none, the best
    qualified free specialists: one statement on PostgreSQL. A reserving decision first passes over
    specialists that concurrent decisions are reserving right now (row-locked; PostgreSQL), so 32 calls in
    flight spread over 32 specialists instead of all waiting on the best one and losing its last slot; when
    that finds nobody, it looks again without skipping, so a caller is never queued while a specialist is
    free."""
    reserving = not ctx.request.dry_run
    ahead, found = await u.agents.queue_and_candidates(
        team_id, ctx.complexity, CANDIDATE_LIMIT, service_key=key_value, skip_locked=reserving
    )
    if ahead or found or not reserving:
        return ahead, found
    return 0, await u.agents.candidates(team_id, ctx.complexity, CANDIDATE_LIMIT)


async def reserve_or_queue(u: UnitOfWork, ctx: DecisionContext, choice: TeamChoice) -> Decision:
    """TRANSFER_AGENT to the best qualified specialist of the team whose slot this decision wins (reserved
    atomically), else CALLBACK: the caller joins the team's queue. Callbacks waiting ahead of this caller
    are never jumped."""
    team, ahead = choice.team, choice.waiting_ahead
    if ahead > 0:
        ctx.trace.append(
            TraceStep(
                "queue",
                team.team_id,
                TraceOutcome.INFO,
                f"{ahead} waiting callback(s) are served before this caller"
                + ("" if len(ctx.union) > 1 else ": joining the queue"),
            )
        )
        chosen = None
    else:
        chosen = await _reserve_specialist(u, ctx, choice, _RESERVED if not ctx.request.dry_run else _DRY_RUN)
        if chosen is None:
            ctx.trace.append(
                TraceStep("queue", team.team_id, TraceOutcome.INFO, "no qualified specialist is free")
            )
    if chosen is None and len(ctx.union) > 1:
        widened = await _reserve_in_union(u, ctx, choice)
        if widened is not None:
            return widened
    if chosen is None:
        return await _queue_callback(u, ctx, choice)
    if ctx.recorded is not None:
        return ctx.recorded
    detail = _RESERVED if not ctx.request.dry_run else _DRY_RUN
    return _specialist_chosen(ctx, team, choice.rule_id, chosen, detail)


_RESERVED = "specialist reserved"
_DRY_RUN = "specialist would be reserved (dry run)"


def _specialist_chosen(ctx: DecisionContext, team: Team, rule_id: str, agent: Agent, detail: str) -> Decision:
    """The TRANSFER_AGENT decision for `agent`, its choice traced with `detail`."""
    ctx.trace.append(TraceStep("decision", agent.agent_id, TraceOutcome.CHOSEN, detail))
    return _specialist(ctx, team, rule_id, agent)


async def _reserve_in_union(u: UnitOfWork, ctx: DecisionContext, choice: TeamChoice) -> Decision | None:
    """UNION: the other candidate teams in order, each as it stands for this caller (never jumping its
    callbacks); the first whose qualified free specialist this decision wins takes the call. None when
    nobody is free in any of them (the caller then queues on the stated category's team)."""
    for rule_id, team in ctx.union:
        if team.team_id == choice.team.team_id:
            continue
        other = await _team_standing(u, ctx, team, rule_id, choice.priority, choice.service_key)
        if other.waiting_ahead or not other.candidates:
            if other.waiting_ahead:
                why = f"{other.waiting_ahead} waiting callback(s) are served before this caller"
            elif other.members == 0:
                why = "no specialists on record (a team line is not widened to)"
            else:
                why = "no qualified specialist is free"
            ctx.trace.append(TraceStep(UNCERTAINTY, team.team_id, TraceOutcome.SKIPPED, f"union: {why}"))
            continue
        detail = f"union: specialist of team {team.team_id} " + (
            "reserved" if not ctx.request.dry_run else "would be reserved (dry run)"
        )
        chosen = await _reserve_specialist(u, ctx, other, detail)
        if chosen is None:
            continue
        if ctx.recorded is not None:
            return ctx.recorded
        return _specialist_chosen(ctx, team, rule_id, chosen, detail)
    ctx.trace.append(
        TraceStep(
            "queue",
            choice.team.team_id,
            TraceOutcome.INFO,
            "nobody free in the candidate teams: joining the stated category's queue",
        )
    )
    return None


async def _reserve_specialist(
    u: UnitOfWork, ctx: DecisionContext, choice: TeamChoice, detail: str
) -> Agent | None:
    """Rank the first batch (with a sticky team's customer's last specialist put forward) and reserve the
    best one whose slot is still free; when a full batch yields nobody, look further. The decision for the
    specialist reserved (its choice traced with `detail`) is stored with the reservation (`ctx.recorded`),
    unless the call already held a specialist, who is kept."""
    team = choice.team
    reserving = _Reserving(team, choice.rule_id, detail)
    full = len(choice.candidates) >= CANDIDATE_LIMIT
    preferred = _preferred_specialist(ctx, team)
    candidates = await _with_preferred(u, team, _not_missed(ctx, choice.candidates), preferred)
    # The other team members only explain a decision that found nobody (kept off the hot path).
    others = [] if candidates else _not_missed(ctx, await u.agents.others(team.team_id, set(), OTHERS_LIMIT))
    selection = _rank(ctx, team, candidates, others, preferred)
    if selection.ranked and all(a.agent_id in selection.over_cap for a in selection.ranked):
        selection = await _past_capped(u, ctx, team, selection, preferred)
    ctx.trace.extend(selection.steps)
    chosen = await _reserve_first(u, ctx, reserving, selection.ranked, selection)
    if chosen is None and full:
        tried = {a.agent_id for a in candidates}
        chosen = await _reserve_from_larger_batches(u, ctx, reserving, tried, preferred)
    return chosen


@dataclass(frozen=True, slots=True)
class _Reserving:
    """What the decision for a reserved specialist of `team` says: its rule and how its choice is traced."""

    team: Team
    rule_id: str
    detail: str


def _rank(
    ctx: DecisionContext,
    team: Team,
    candidates: Sequence[Agent],
    others: Sequence[Agent],
    preferred: str | None,
) -> Selection:
    """`rank_specialists` with the policy's fair-load caps as of the decision's time."""
    return rank_specialists(
        candidates,
        others,
        team=team,
        complexity=ctx.complexity,
        preferred_agent_id=preferred,
        fair_load=ctx.policy.fair_load,
        now=ctx.now,
    )


async def _past_capped(
    u: UnitOfWork, ctx: DecisionContext, team: Team, selection: Selection, preferred: str | None
) -> Selection:
    """Every qualified specialist found is at a fair-load cap: before taking one over, look at a larger batch
    for someone under their caps (one more read, only then). It does not skip the specialists concurrent
    decisions are reserving: one of them may be left under their caps, and the reservation's load guard
    (`load_version`) keeps whoever is judged on stale figures from being taken."""
    limit = CANDIDATE_LIMIT * CANDIDATE_GROWTH
    found = await u.agents.candidates(team.team_id, ctx.complexity, limit)
    wider = _rank(
        ctx, team, await _with_preferred(u, team, _not_missed(ctx, found), preferred), (), preferred
    )
    if not wider.ranked or all(a.agent_id in wider.over_cap for a in wider.ranked):
        return selection
    return replace(
        wider,
        steps=(
            TraceStep(
                FAIR_LOAD,
                team.team_id,
                TraceOutcome.INFO,
                f"the {len(selection.ranked)} qualified specialist(s) found are at a cap:"
                f" looking at up to {limit}, those being reserved by concurrent calls included",
            ),
            *wider.steps,
        ),
    )


def _preferred_specialist(ctx: DecisionContext, team: Team) -> str | None:
    """The customer's last specialist when the team is sticky (and they have not missed this call)."""
    customer = ctx.customer
    preferred = customer.last_agent_id if customer and team.sticky else None
    return None if preferred in ctx.missed else preferred


async def _with_preferred(
    u: UnitOfWork, team: Team, candidates: list[Agent], preferred: str | None
) -> list[Agent]:
    """`candidates` with the preferred specialist in front when they are a member of the team and not in
    the batch already (ranking decides whether they can take the call)."""
    if not preferred or any(a.agent_id == preferred for a in candidates):
        return candidates
    sticky = await u.agents.get(preferred)
    if sticky is not None and team.team_id in sticky.team_ids:
        return [sticky, *candidates]
    return candidates


async def _reserve_from_larger_batches(
    u: UnitOfWork, ctx: DecisionContext, reserving: _Reserving, tried: set[str], preferred: str | None
) -> Agent | None:
    """A full batch gave nobody (its specialists went to concurrent calls, or lacked a required skill):
    there may be more qualified specialists, so look again with fresh data, in batches `CANDIDATE_GROWTH`
    times larger, for up to `RESERVE_ROUNDS` rounds in all, rather than queue a caller while one is free."""
    team = reserving.team
    batch = CANDIDATE_LIMIT
    for round_no in range(2, RESERVE_ROUNDS + 1):
        batch *= CANDIDATE_GROWTH
        limit = batch + len(tried)
        fetched_agents = await u.agents.candidates(team.team_id, ctx.complexity, limit)
        fresh = _not_missed(ctx, [a for a in fetched_agents if a.agent_id not in tried])
        batch_selection = _rank(ctx, team, fresh, (), preferred)
        ranked = batch_selection.ranked
        tried |= {a.agent_id for a in fresh}
        if ranked:
            ctx.trace.append(
                TraceStep(
                    "candidate",
                    team.team_id,
                    TraceOutcome.INFO,
                    f"round {round_no}: {len(ranked)} more qualified specialist(s) after lost races "
                    "or missing skills",
                )
            )
            chosen = await _reserve_first(u, ctx, reserving, ranked, batch_selection)
            if chosen is not None:
                return chosen
        if len(fetched_agents) < limit:  # that was everyone
            return None
    return None


async def _reserve_first(
    u: UnitOfWork, ctx: DecisionContext, reserving: _Reserving, ranked: Sequence[Agent], selection: Selection
) -> Agent | None:
    """Reserve the first of `ranked` whose slot is still free. Each candidate's decision is built (and its
    choice traced) before its reservation, which stores it in the same statement when it wins
    (`ctx.recorded`); a lost race takes those trace steps back and traces the loss instead."""
    if ctx.request.dry_run:
        if ranked:
            _trace_over_cap(ctx, ranked[0], selection)
        return ranked[0] if ranked else None
    team = reserving.team
    expires = ctx.now + ctx.policy.assignment_ttl
    critical = ctx.complexity is Complexity.CRITICAL
    fair_load = ctx.policy.fair_load
    for agent in ranked:
        # Judged on caps: the reservation holds only while the figures read are still the agent's.
        judged = fair_load is not None and fair_load.caps_for(team.team_id, agent.agent_id).any
        mark = len(ctx.trace)
        _trace_over_cap(ctx, agent, selection)
        decision = _completed(ctx, _specialist_chosen(ctx, team, reserving.rule_id, agent, reserving.detail))
        try:
            won = await u.assignments.reserve(
                agent_id=agent.agent_id,
                call_id=ctx.request.call_id,
                purpose=LIVE,
                now=ctx.now,
                expires_at=expires,
                team_id=team.team_id,
                critical=critical,
                load_version=agent.load_version if judged else None,
                decision=decision,
            )
        except Conflict:
            del ctx.trace[mark:]
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
            ctx.recorded = decision
            return agent
        del ctx.trace[mark:]
        ctx.trace.append(
            TraceStep(
                "candidate",
                agent.agent_id,
                TraceOutcome.REJECTED,
                "last free slot (or its load figures) taken by a concurrent call",
            )
        )
    return None


def _trace_over_cap(ctx: DecisionContext, agent: Agent, selection: Selection) -> None:
    """The specialist taken is at a fair-load cap (nobody under their caps qualified): say which."""
    caps = selection.caps_of(agent.agent_id)
    if caps:
        ctx.trace.append(
            TraceStep(
                FAIR_LOAD,
                agent.agent_id,
                TraceOutcome.CHOSEN,
                f"taken over cap ({caps}): nobody under their caps qualifies",
            )
        )


def _not_missed(ctx: DecisionContext, agents: Sequence[Agent]) -> list[Agent]:
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


async def _queue_callback(u: UnitOfWork, ctx: DecisionContext, choice: TeamChoice) -> Decision:
    """Queue the caller in the team's callback queue, with their position and estimated wait (the queue
    divided among the team's members)."""
    request, team = ctx.request, choice.team
    ticket = CallbackTicket(
        call_id=request.call_id,
        team_id=team.team_id,
        state=CallbackState.WAITING,
        caller_number=ctx.caller_key or "",
        tier=ctx.tier,
        issue_category=ctx.category,
        effective_complexity=ctx.complexity,
        priority=choice.priority,
        service_key=choice.service_key,
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
        position = await u.callbacks.ahead_of(team.team_id, choice.service_key) + 1
    else:
        # The place is read before the insert so the promise goes into the INSERT itself: one statement
        # for the ticket, none after it (only a repeat of the call reads its stored ticket back).
        position = await u.callbacks.place(team.team_id, choice.service_key)
    members = choice.members
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
    ticket = keep_promise(ctx.policy, replace(ticket, position=position), wait, now=ctx.now, trace=ctx.trace)
    if not request.dry_run:
        ticket = await u.callbacks.enqueue(ticket)
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
        rule_id=choice.rule_id,
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


def _specialist(ctx: DecisionContext, team: Team, rule_id: str, agent: Agent) -> Decision:
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


def _team_line(ctx: DecisionContext, team: Team, rule_id: str) -> Decision:
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


def _fallback(ctx: DecisionContext, reason: str) -> Decision:
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
