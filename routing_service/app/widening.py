"""Who may take a waiting callback at claim time, with the team's widening step in force
(routing_service.domain.widening): the callback's own team first, relaxed as the step says, then each
overflow team the step allows, in order."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from routing_service.app.availability import AvailabilityEvent
from routing_service.app.ports import UnitOfWork, UnitOfWorkFactory
from routing_service.domain.errors import Unavailable
from routing_service.domain.models import (
    Agent,
    CallbackState,
    CallbackTicket,
    Policy,
    TraceOutcome,
    TraceStep,
)
from routing_service.domain.selection import rank_specialists
from routing_service.domain.widening import (
    STAGE,
    WideningScope,
    step_label,
    teams_widening_to,
    widening_scope,
)

__all__ = [
    "CANDIDATE_LIMIT",
    "ClaimCandidates",
    "StepCount",
    "WideningObserver",
    "claim_candidates",
    "notify_claimed",
    "observe_widening",
    "waiting_by_step",
    "woken_by",
]

CANDIDATE_LIMIT = 20

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ClaimCandidates:
    """Qualified specialists in the order to try them, with the team each would serve the callback for."""

    ranked: tuple[tuple[Agent, str], ...]
    scope: WideningScope
    steps: tuple[TraceStep, ...]


async def claim_candidates(
    u: UnitOfWork, policy: Policy, ticket: CallbackTicket, *, preferred_agent_id: str | None, now: datetime
) -> ClaimCandidates:
    """The own team's qualified specialists (skills and complexity ceiling relaxed by the step in force),
    then each allowed overflow team's (by that team's own required skills), skipping an overflow team whose
    own waiting callbacks come before this one in service order."""
    scope = widening_scope(policy, ticket, now)
    team = policy.teams[ticket.team_id]
    if scope.relax_skills:
        team = dataclasses.replace(team, required_skills=frozenset())
    candidates = await u.agents.candidates(ticket.team_id, scope.complexity, CANDIDATE_LIMIT)
    selection = rank_specialists(
        candidates,
        (),
        team=team,
        complexity=scope.complexity,
        preferred_agent_id=preferred_agent_id,
        fair_load=policy.fair_load,
        now=now,
    )
    ranked = [(agent, ticket.team_id) for agent in selection.ranked]
    steps = [*scope.steps, *selection.steps]
    for overflow_id in scope.overflow_teams:
        overflow = policy.teams[overflow_id]
        found = await u.agents.candidates(overflow_id, scope.complexity, CANDIDATE_LIMIT)
        chosen = rank_specialists(
            found,
            (),
            team=overflow,
            complexity=scope.complexity,
            preferred_agent_id=None,
            fair_load=policy.fair_load,
            now=now,
        )
        # Asked only when someone there could take it: most claims at an overflow step find nobody free.
        ahead = await u.callbacks.ahead_of(overflow_id, ticket.service_key) if chosen.ranked else 0
        if ahead:
            detail = f"{ahead} of team {overflow_id}'s own callbacks come first"
            steps.append(TraceStep(STAGE, overflow_id, TraceOutcome.SKIPPED, detail))
            continue
        steps.append(
            TraceStep(
                STAGE,
                overflow_id,
                TraceOutcome.MATCHED if chosen.ranked else TraceOutcome.INFO,
                f"overflow team {overflow_id}: {len(chosen.ranked)} qualified free specialist(s)",
            )
        )
        steps += chosen.steps
        seen = {agent.agent_id for agent, _ in ranked}
        ranked += [(agent, overflow_id) for agent in chosen.ranked if agent.agent_id not in seen]
    return ClaimCandidates(tuple(ranked), scope, tuple(steps))


@dataclass(frozen=True, slots=True)
class StepCount:
    """How many of a team's waiting callbacks are at widening step `step` (0: not widened)."""

    step: int
    label: str
    waiting: int


async def waiting_by_step(
    uow: UnitOfWorkFactory, policy: Policy, team_ids: Iterable[str], now: datetime
) -> dict[str, list[StepCount]]:
    """Per team that widens, its waiting callbacks by step, step 0 first (one count query per step)."""
    result: dict[str, list[StepCount]] = {}
    wanted = [team_id for team_id in team_ids if policy.widening.steps.get(team_id)]
    if not wanted:
        return result
    async with uow() as u:
        for team_id in wanted:
            steps = policy.widening.steps[team_id]
            reached = [await u.callbacks.waiting_since(team_id, now - step.after) for step in steps]
            total = await u.callbacks.waiting_since(team_id, now)
            counts = [total, *reached, 0]
            result[team_id] = [
                StepCount(
                    index,
                    step_label(index, steps[index - 1]) if index else "not widened",
                    max(counts[index] - counts[index + 1], 0),
                )
                for index in range(len(steps) + 1)
            ]
    return result


class WideningObserver(Protocol):
    """What the metrics hear: a claim reserved a specialist for a callback of `team_id` at `step`."""

    def widened_claim(self, team_id: str, step: int) -> None: ...


_observers: list[WideningObserver] = []


def observe_widening(observer: WideningObserver) -> Callable[[], None]:
    """Register `observer` (the routing metrics); returns the function that unregisters it."""
    _observers.append(observer)
    return lambda: _observers.remove(observer) if observer in _observers else None


def notify_claimed(ticket: CallbackTicket, scope: WideningScope, *, agent_id: str, served_team: str) -> None:
    """A claim reserved a specialist (once per reservation, not for a repeated claim): logged with the
    widening step it was made at, and counted by the observers."""
    log.info(
        "callback_claimed",
        call_id=ticket.call_id,
        team=ticket.team_id,
        served_team=served_team,
        agent=agent_id,
        widening_step=scope.step,
        widening=scope.label or "not widened",
    )
    for observer in tuple(_observers):
        observer.widened_claim(ticket.team_id, scope.step)


async def woken_by(
    uow: UnitOfWorkFactory,
    policy: Policy,
    event: AvailabilityEvent,
    now: datetime,
    *,
    teams: Collection[str] = (),
) -> list[AvailabilityEvent]:
    """The queues a freed slot wakes: its own team's (the event itself), then each other team whose head
    waiting callback has widened, at `now`, to the event's team (one event per such team, for the same
    specialist and free slots). Without this a widened callback of another team heard of an overflow
    specialist only at its next widening step or its safety recheck.

    Only the head is checked: only the head of a queue may claim (`app.promises.claim_order`), and its claim
    decides the rest. Teams that never widen to the event's team cost nothing; the others one read of
    their queue's head each. `teams`, when not empty, limits the answer to those teams (a watcher's filter:
    no read for a queue nobody watches). A store that cannot be reached right now leaves just the event
    itself."""
    woken = [event] if not teams or event.team_id in teams else []
    others = [t for t in teams_widening_to(policy.widening, event.team_id) if not teams or t in teams]
    if not others:
        return woken
    try:
        async with uow() as u:
            for team_id in others:
                heads = await u.callbacks.find(team_id=team_id, states={CallbackState.WAITING}, limit=1)
                if heads and event.team_id in widening_scope(policy, heads[0], now).overflow_teams:
                    woken.append(dataclasses.replace(event, team_id=team_id))
    except Unavailable as exc:
        log.warning("widened_wake_skipped_store_unavailable", team=event.team_id, error=str(exc))
    return woken
