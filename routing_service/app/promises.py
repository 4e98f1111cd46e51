"""Callback promises in the use cases: the wait estimate a promise is made from, the promise stored when a
caller is queued, the claim's turn once at-risk promises move ahead, the breach as an event, and each team's
kept rate and accuracy (the rules are `routing_service.domain.promises`).

A breach is seen by routing when a claim comes after the deadline (the callback workflow claims again at the
deadline) or reserves a specialist after it: it is stored once on the ticket (`breached_at`), logged as
`callback_promise_breached`, and told to the observers (the metrics count breaches and kept promises by team).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from routing_service.app.ports import UnitOfWork
from routing_service.domain.models import CallbackState, CallbackTicket, Policy, TraceOutcome, TraceStep
from routing_service.domain.promises import (
    PromiseAccuracy,
    PromiseState,
    accuracy,
    blend_handle_time,
    claim_turn,
    estimate_callback_wait,
    is_at_risk,
    kept_rate,
    learned_ratio,
    make_promise,
    promise_state,
)
from routing_service.domain.queueing import closed_until, wait_with_hours

__all__ = [
    "HANDLE_TIME_WINDOW",
    "LEARNING_SAMPLE",
    "PromiseObserver",
    "PromiseStats",
    "claim_order",
    "keep_promise",
    "note_started",
    "observe_promises",
    "promise_stats",
    "record_breach",
    "team_wait",
    "ticket_promise_state",
]

log = structlog.get_logger(__name__)

HANDLE_TIME_WINDOW = timedelta(hours=1)
LEARNING_SAMPLE = 20
"""The team's latest promises the estimate learns from (on every callback decision: kept small)."""
STATS_SAMPLE = 5000
"""Promises of the last 24 hours a team's kept rate and accuracy read at most."""
AT_RISK_SAMPLE = 10
"""At-risk callbacks a claim reads (in service order: the first ones are the ones that matter)."""


class PromiseObserver(Protocol):
    """What the metrics hear: a promise broken, a promise kept (by team), and a kept callback's error."""

    def promise_breached(self, team_id: str) -> None: ...
    def promise_kept(self, team_id: str, quoted_minus_actual: timedelta) -> None: ...


_observers: list[PromiseObserver] = []


def observe_promises(observer: PromiseObserver) -> Callable[[], None]:
    """Register `observer` (the routing metrics); returns the function that unregisters it."""
    _observers.append(observer)
    return lambda: _observers.remove(observer) if observer in _observers else None


async def team_wait(
    u: UnitOfWork, policy: Policy, team_id: str, *, position: int, serving_agents: int, now: datetime
) -> timedelta:
    """Estimated wait for `position` in the team's queue (`domain.promises.estimate_callback_wait`): real
    handle times blended with the policy's, corrected by the team's recent promise errors, never below the
    callbacks ahead's own time; plus the time until the team opens when it is outside its business hours."""
    sample = await u.assignments.recent_handle_sample(team_id, now - HANDLE_TIME_WINDOW)
    mean, count = sample if sample is not None else (None, 0)
    ratios = await u.callbacks.recent_wait_ratios(team_id, now - timedelta(hours=24), LEARNING_SAMPLE)
    queue = policy.queue
    queued = estimate_callback_wait(
        position=position,
        serving_agents=serving_agents,
        handle_time=blend_handle_time(mean, count, queue.default_handle_time),
        ratio=learned_ratio(ratios),
        min_callback_time=queue.promises.min_callback_time,
    )
    team = policy.teams.get(team_id)
    return wait_with_hours(queued, team.business_hours if team is not None else None, now)


def keep_promise(
    policy: Policy, ticket: CallbackTicket, wait: timedelta, *, now: datetime, trace: list[TraceStep]
) -> CallbackTicket:
    """Make the promise a caller queued at `now` hears (`wait` from now, its clock from the team's opening
    when it is closed), trace it, and return the ticket with it, ready to be enqueued (the promise is
    stored by the enqueue INSERT itself; a repeat of the call keeps the promise it already has)."""
    team = policy.teams.get(ticket.team_id)
    opens = closed_until(team.business_hours if team is not None else None, now)
    promise = make_promise(now, wait, opens_at=opens, at_risk_fraction=policy.queue.promises.at_risk_fraction)
    trace.append(
        TraceStep(
            "promise",
            ticket.team_id,
            TraceOutcome.INFO,
            # isoformat, not strftime: this is on every callback decision's path
            f"callback promised to start by {promise.due_by.isoformat(timespec='seconds')}"
            f" (at risk from {promise.at_risk_at.isoformat(timespec='seconds')})",
        )
    )
    return replace(
        ticket, promise_from=promise.starts_at, promised_by=promise.due_by, at_risk_at=promise.at_risk_at
    )


def ticket_promise_state(ticket: CallbackTicket, now: datetime) -> PromiseState | None:
    """The ticket's promise state at `now` (None without a promise). A ticket that ended without ever
    starting is breached only if its deadline passed before it ended."""
    at = now if ticket.state.is_open or ticket.finished_at is None else min(now, ticket.finished_at)
    return promise_state(
        at_risk_at=ticket.at_risk_at, due_by=ticket.promised_by, started_at=ticket.started_at, now=at
    )


async def claim_order(
    u: UnitOfWork, ticket: CallbackTicket, policy: Policy, now: datetime, trace: list[TraceStep]
) -> bool:
    """Whether the callback may take a free specialist now: RESERVED tickets always, WAITING ones when they
    are the head of the queue once at-risk promises move ahead (`domain.promises.claim_turn`); the reasons
    are traced."""
    if ticket.state is CallbackState.RESERVED:
        return True
    if ticket.state is not CallbackState.WAITING:
        return False
    # One read answers both: is a WAITING callback before this one, and whose promises are at risk.
    before, at_risk = await u.callbacks.claim_view(ticket, now, AT_RISK_SAMPLE)
    mine = is_at_risk(ticket.at_risk_at, ticket.promised_by, now)
    if before and not mine:
        return False  # not the head, and nothing lets it go first
    tiers = await u.callbacks.tiers_waiting_before(ticket) if mine and before else set()
    turn = claim_turn(
        ticket,
        now=now,
        waiting_before=before,
        at_risk=at_risk,
        tiers_before=tiers,
        tier_priority=policy.queue.tier_priority,
        policy=policy.queue.promises,
    )
    outcome = TraceOutcome.CHOSEN if turn.is_head else TraceOutcome.SKIPPED
    trace.extend(TraceStep("promise", ticket.call_id, outcome, reason) for reason in turn.reasons)
    return turn.is_head


async def record_breach(
    u: UnitOfWork, ticket: CallbackTicket, now: datetime, trace: list[TraceStep]
) -> CallbackTicket:
    """When the ticket's promise is broken at `now` (not started by its deadline), store the breach once,
    log it and tell the observers; returns the ticket as it now stands. The caller commits."""
    if ticket.promised_by is None or ticket.breached_at is not None:
        return ticket
    late = (
        ticket.started_at > ticket.promised_by if ticket.started_at is not None else now > ticket.promised_by
    )
    if not late or not await u.callbacks.mark_breached(ticket.call_id, now):
        return ticket
    overdue = (ticket.started_at or now) - ticket.promised_by
    log.warning(
        "callback_promise_breached",
        call_id=ticket.call_id,
        team_id=ticket.team_id,
        tier=ticket.tier,
        promised_by=ticket.promised_by.isoformat(),
        overdue_seconds=round(overdue.total_seconds(), 1),
        started=ticket.started_at is not None,
    )
    trace.append(
        TraceStep(
            "promise",
            ticket.call_id,
            TraceOutcome.INFO,
            f"promise broken: due {ticket.promised_by:%H:%M:%S} UTC, {overdue.total_seconds():.0f} s late",
        )
    )
    for observer in tuple(_observers):
        observer.promise_breached(ticket.team_id)
    return replace(ticket, breached_at=now)


def note_started(ticket: CallbackTicket, now: datetime) -> None:
    """A specialist was reserved for the callback at `now`: a promise kept the first time is counted."""
    if ticket.promised_by is None or ticket.started_at is not None or now > ticket.promised_by:
        return
    for observer in tuple(_observers):
        observer.promise_kept(ticket.team_id, ticket.promised_by - now)


@dataclass(frozen=True, slots=True)
class PromiseStats:
    """A team's promises: the share kept in the last hour and 24 hours, and the estimate's accuracy."""

    kept_rate_1h: float | None
    kept_rate_24h: float | None
    accuracy: PromiseAccuracy | None


async def promise_stats(u: UnitOfWork, team_id: str, now: datetime) -> PromiseStats:
    """Kept rates and accuracy of the team's promises resolved in the last 24 hours (one read)."""
    outcomes = await u.callbacks.promise_outcomes(team_id, now - timedelta(hours=24), STATS_SAMPLE)
    day = [o for o in outcomes if o.started_at is None or o.started_at >= now - timedelta(hours=24)]
    return PromiseStats(
        kept_rate_1h=kept_rate(outcomes, now=now, window=timedelta(hours=1)),
        kept_rate_24h=kept_rate(outcomes, now=now, window=timedelta(hours=24)),
        accuracy=accuracy(day),
    )
