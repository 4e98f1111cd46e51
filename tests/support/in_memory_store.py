"""An in-memory implementation of `routing_service.app.ports`, for testing the use cases without a database.

    database = InMemoryDatabase()         # a `ports.UnitOfWorkFactory`: resolve_escalation(uow=database, ...)
    async with database() as u:
        await u.agents.upsert(agent, now)
        await u.commit()

It keeps the SQL store's rules, repository by repository (`routing_service.store.*`): atomic slot taking
(status available and a free slot), at most one active assignment per (call, purpose), the stage moves of
`domain.lifecycle.ALLOWED_FROM`, the callback queue's service order and positions computed on read, the
decision log unique per (call_id, tool_call_id) and per decision id, idempotent outcome counting. The same
scenarios run on this store and on SQLite and PostgreSQL in `tests/service/test_in_memory_store.py`, which
is what keeps it honest.

Transactions: a unit of work works on its own copy of the data, taken when its block starts (and again after
each commit or rollback); `commit()` makes the copy the database's, leaving the block without it discards
it. Units of work run one at a time (a unit of work waits at `async with` while another one is open), like
SQLite's writers under BEGIN IMMEDIATE: there are no row locks to skip (`skip_locked` is ignored, as on
SQLite) and `lock_call` has nothing to do. Two units of work open at once in one task would wait forever:
the use cases never do that.

Set `database.unavailable` to make every repository call raise `Unavailable` (a store that cannot be
reached). `database.announced` lists what committed units of work `announce`d.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from routing_service.app.ports import (
    HANDLE_TIME_SAMPLE,
    AgentFreed,
    AgentRepository,
    AssignmentRepository,
    CallbackRepository,
    CallOffers,
    CustomerRepository,
    DecisionRepository,
    DuplicateDecision,
    MissedOffer,
    OutcomeCount,
    Released,
    ReviewOutcomeRepository,
    ReviewOutcomeRow,
    StageChange,
    TeamStats,
)
from routing_service.domain.errors import Conflict, InvalidRequest, NotFound, Unavailable
from routing_service.domain.lifecycle import ALLOWED_FROM, AssignmentRecord, AssignmentStage
from routing_service.domain.models import (
    RECENT_ESCALATIONS_KEPT,
    Agent,
    AgentStatus,
    CallbackState,
    CallbackTicket,
    Complexity,
    Customer,
    CustomerLearnings,
    Decision,
    DecisionKind,
    EscalationTimes,
)
from routing_service.domain.promises import AtRisk, PromiseOutcome, wait_ratios

__all__ = ["InMemoryDatabase", "InMemoryUnitOfWork"]

_REASON_LENGTH = 256
"""`assignments.release_reason` is a String(256): reasons are cut there."""


@dataclass(frozen=True, slots=True)
class _Assignment:
    """One row of the SQL store's `assignments` table."""

    assignment_id: int
    call_id: str
    purpose: str
    agent_id: str
    active: bool
    """The row's `state`: 'active' exactly while the stage holds a slot."""
    stage: AssignmentStage
    reserved_at: datetime
    expires_at: datetime
    team_id: str | None
    reason: str = ""
    offered_at: datetime | None = None
    connected_at: datetime | None = None
    completed_at: datetime | None = None
    released_at: datetime | None = None

    def record(self) -> AssignmentRecord:
        return AssignmentRecord(
            call_id=self.call_id,
            purpose=self.purpose,
            agent_id=self.agent_id,
            stage=self.stage,
            reserved_at=self.reserved_at,
            expires_at=self.expires_at,
            team_id=self.team_id,
            offered_at=self.offered_at,
            connected_at=self.connected_at,
            completed_at=self.completed_at,
            released_at=self.released_at,
            reason=self.reason,
        )


@dataclass(slots=True)
class _Data:
    """The tables. Values are immutable (frozen dataclasses), so a copy of the dicts is a snapshot."""

    customers: dict[str, Customer] = field(default_factory=dict)
    outcomes: set[str] = field(default_factory=set)
    """Call ids already counted in a customer's `previous_escalations`."""
    agents: dict[str, Agent] = field(default_factory=dict)
    """Team membership is `Agent.team_ids` (deduplicated, in order)."""
    assignments: dict[int, _Assignment] = field(default_factory=dict)
    next_assignment_id: int = 1
    decisions: dict[tuple[str, str], Decision] = field(default_factory=dict)
    callbacks: dict[str, CallbackTicket] = field(default_factory=dict)
    """Tickets as stored (position 0; positions are computed when read)."""
    review_outcomes: dict[str, ReviewOutcomeRow] = field(default_factory=dict)

    def snapshot(self) -> _Data:
        return _Data(
            customers=dict(self.customers),
            outcomes=set(self.outcomes),
            agents=dict(self.agents),
            assignments=dict(self.assignments),
            next_assignment_id=self.next_assignment_id,
            decisions=dict(self.decisions),
            callbacks=dict(self.callbacks),
            review_outcomes=dict(self.review_outcomes),
        )


class InMemoryDatabase:
    """The shared state behind any number of `InMemoryUnitOfWork`s."""

    def __init__(self) -> None:
        self.data = _Data()
        self.unavailable = False
        """When True, every repository call raises `Unavailable`."""
        self.announced: list[AgentFreed] = []
        """What committed units of work announced, in order."""
        self.commits = 0
        self._lock = asyncio.Lock()

    def uow(self) -> InMemoryUnitOfWork:
        """A new unit of work (use with `async with`); calling the database does the same."""
        return InMemoryUnitOfWork(self)

    __call__ = uow


class _Repository:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    @property
    def _data(self) -> _Data:
        return self._uow.data()


def _utc_key(value: datetime | None) -> tuple[int, datetime | None]:
    """Sort key putting None first (SQLite's order, and `NULLS FIRST` on PostgreSQL)."""
    return (0, None) if value is None else (1, value)


class InMemoryCustomerRepository(_Repository):
    async def get(self, number: str) -> Customer | None:
        return self._data.customers.get(number)

    async def upsert(self, customer: Customer, now: datetime) -> tuple[Customer, bool]:
        stored = replace(customer, previous_escalations=max(0, customer.previous_escalations), updated_at=now)
        created = customer.number not in self._data.customers
        self._data.customers[customer.number] = stored
        return stored, created

    async def record_outcome(
        self,
        call_id: str,
        number: str,
        agent_id: str | None,
        now: datetime,
        *,
        default_tier: str = "standard",
    ) -> tuple[Customer, bool]:
        data = self._data
        if number not in data.customers:
            data.customers[number] = Customer(number=number, tier=default_tier, updated_at=now)
        counted = call_id not in data.outcomes
        if counted:
            data.outcomes.add(call_id)
            current = data.customers[number]
            data.customers[number] = replace(
                current,
                previous_escalations=current.previous_escalations + 1,
                updated_at=now,
                last_agent_id=agent_id if agent_id is not None else current.last_agent_id,
            )
        return data.customers[number], counted

    async def save_learnings(self, number: str, learned: CustomerLearnings, now: datetime) -> bool:
        current = self._data.customers.get(number)
        if current is None:
            return False
        self._data.customers[number] = replace(current, learned=learned, updated_at=now)
        return True


class InMemoryReviewOutcomeRepository(_Repository):
    async def open(self, row: ReviewOutcomeRow) -> bool:
        if row.call_id in self._data.review_outcomes:
            return False
        self._data.review_outcomes[row.call_id] = replace(row, category_wrong=False, verdict="", outcome="")
        return True

    async def mark_category_wrong(self, call_id: str) -> bool:
        row = self._data.review_outcomes.get(call_id)
        if row is None or row.category_wrong:
            return False
        self._data.review_outcomes[call_id] = replace(row, category_wrong=True)
        return True

    async def set_verdict(self, call_id: str, verdict: str, outcome: str, at: datetime) -> bool:
        row = self._data.review_outcomes.get(call_id)
        if row is None or row.verdict:
            return False
        self._data.review_outcomes[call_id] = replace(row, verdict=verdict, outcome=outcome, verdict_at=at)
        return True

    async def counts(self, since: datetime) -> list[OutcomeCount]:
        pairs: dict[tuple[str, str], OutcomeCount] = {}
        for row in self._data.review_outcomes.values():
            key = (row.team_id, row.rule_id)
            count = pairs.get(key, OutcomeCount(row.team_id, row.rule_id))
            if row.verdict_at is not None and row.verdict_at >= since and row.outcome:
                field_name = "confirmed" if row.outcome == "confirmed" else "overturned"
                count = replace(count, **{field_name: getattr(count, field_name) + 1})
            if row.uncertain and row.category_wrong and row.judged_at >= since:
                count = replace(count, uncertain_category_wrong=count.uncertain_category_wrong + 1)
            if count != OutcomeCount(row.team_id, row.rule_id):
                pairs[key] = count
        return [pairs[key] for key in sorted(pairs)]


class InMemoryAgentRepository(_Repository):
    async def get(self, agent_id: str) -> Agent | None:
        return self._data.agents.get(agent_id)

    async def upsert(self, agent: Agent, now: datetime) -> tuple[Agent, bool]:
        team_ids = tuple(dict.fromkeys(agent.team_ids))
        current = self._data.agents.get(agent.agent_id)
        if current is None:
            active, idle_since, missed = 0, agent.idle_since, 0
        else:
            active, idle_since, missed = current.active_assignments, current.idle_since, current.missed_in_row
        kept = (
            current
            if current is not None
            else Agent("", "", agent.destination, (), frozenset(), agent.max_complexity, 0)
        )
        self._data.agents[agent.agent_id] = replace(
            agent,
            team_ids=team_ids,
            active_assignments=active,
            idle_since=idle_since,
            updated_at=now,
            missed_in_row=missed,
            recent_escalations=kept.recent_escalations,  # the fair-load figures stay, as in the SQL store
            last_critical_at=kept.last_critical_at,
            critical_in_row=kept.critical_in_row,
            load_version=kept.load_version,
        )
        # As the SQL store: the returned agent carries the given `missed_in_row`, not the stored one.
        stored = replace(
            agent, team_ids=team_ids, active_assignments=active, idle_since=idle_since, updated_at=now
        )
        return stored, current is None

    async def set_status(self, agent_id: str, status: AgentStatus, now: datetime) -> Agent | None:
        current = self._data.agents.get(agent_id)
        if current is None:
            return None
        changed = replace(current, status=status, updated_at=now)
        if status is AgentStatus.AVAILABLE:
            changed = replace(changed, idle_since=current.idle_since or now, missed_in_row=0)
        self._data.agents[agent_id] = changed
        return changed

    async def page(
        self, *, team_id: str | None, status: AgentStatus | None, limit: int, after_id: str | None
    ) -> list[Agent]:
        found = [
            agent
            for agent_id, agent in sorted(self._data.agents.items())
            if (team_id is None or team_id in agent.team_ids)
            and (status is None or agent.status is status)
            and (after_id is None or agent_id > after_id)
        ]
        return found[: max(0, limit)]

    async def count_in_team(self, team_id: str) -> int:
        return sum(1 for agent in self._data.agents.values() if team_id in agent.team_ids)

    async def queue_and_candidates(
        self,
        team_id: str,
        min_complexity: Complexity,
        limit: int,
        *,
        service_key: float,
        skip_locked: bool = False,
    ) -> tuple[int, list[Agent]]:
        ahead = await InMemoryCallbackRepository(self._uow).ahead_of(team_id, service_key)
        return ahead, [] if ahead else await self.candidates(team_id, min_complexity, limit)

    async def candidates(
        self, team_id: str, min_complexity: Complexity, limit: int, *, skip_locked: bool = False
    ) -> list[Agent]:
        qualified = [
            agent
            for agent in self._data.agents.values()
            if team_id in agent.team_ids
            and agent.status is AgentStatus.AVAILABLE
            and agent.active_assignments < agent.capacity
            and agent.max_complexity >= min_complexity
        ]
        qualified.sort(key=lambda a: (a.active_assignments, _utc_key(a.idle_since), a.agent_id))
        return qualified[: max(0, limit)]

    async def others(self, team_id: str, exclude: set[str], limit: int) -> list[Agent]:
        members = [
            agent
            for agent_id, agent in sorted(self._data.agents.items())
            if team_id in agent.team_ids and agent_id not in exclude
        ]
        return members[: max(0, limit)]

    async def recent_escalations(self, team_ids: list[str]) -> dict[str, dict[str, EscalationTimes]]:
        found: dict[str, dict[str, EscalationTimes]] = {team: {} for team in dict.fromkeys(team_ids)}
        for agent in self._data.agents.values():
            for team in agent.team_ids:
                if team in found:
                    found[team][agent.agent_id] = agent.recent_escalations
        return found

    async def team_stats(self, team_ids: list[str], now: datetime) -> dict[str, TeamStats]:
        stats: dict[str, TeamStats] = {}
        for team in dict.fromkeys(team_ids):
            members = [agent for agent in self._data.agents.values() if team in agent.team_ids]
            waiting = [
                ticket
                for ticket in self._data.callbacks.values()
                if ticket.team_id == team and ticket.state is CallbackState.WAITING
            ]
            stats[team] = TeamStats(
                team_id=team,
                total_agents=len(members),
                available_agents=sum(
                    1
                    for agent in members
                    if agent.status is AgentStatus.AVAILABLE and agent.active_assignments < agent.capacity
                ),
                active_assignments=sum(agent.active_assignments for agent in members),
                waiting_callbacks=len(waiting),
                oldest_waiting_since=min((t.enqueued_at for t in waiting), default=None),
            )
        return stats

    async def note_missed_offer(self, agent_id: str, now: datetime, away_after: int) -> MissedOffer | None:
        current = self._data.agents.get(agent_id)
        if current is None:
            return None
        counted = replace(current, missed_in_row=current.missed_in_row + 1)
        set_away = (
            away_after > 0 and counted.missed_in_row >= away_after and counted.status is AgentStatus.AVAILABLE
        )
        if set_away:
            counted = replace(counted, status=AgentStatus.AWAY, updated_at=now)
        self._data.agents[agent_id] = counted
        return MissedOffer(counted, set_away=set_away)

    async def reset_misses(self, agent_id: str, now: datetime) -> None:
        current = self._data.agents.get(agent_id)
        if current is not None and current.missed_in_row != 0:
            self._data.agents[agent_id] = replace(current, missed_in_row=0)


class InMemoryAssignmentRepository(_Repository):
    def _active(self, call_id: str, purpose: str) -> _Assignment | None:
        for row in self._data.assignments.values():
            if row.active and row.call_id == call_id and row.purpose == purpose:
                return row
        return None

    def _insert_if_free(
        self,
        *,
        call_id: str,
        purpose: str,
        agent_id: str,
        now: datetime,
        expires_at: datetime,
        team_id: str | None,
        reason: str,
    ) -> bool:
        """Insert an active `reserved` row unless the call already holds one of this purpose (the SQL
        store's partial unique index and INSERT ... ON CONFLICT DO NOTHING)."""
        if self._active(call_id, purpose) is not None:
            return False
        data = self._data
        data.assignments[data.next_assignment_id] = _Assignment(
            assignment_id=data.next_assignment_id,
            call_id=call_id,
            purpose=purpose,
            agent_id=agent_id,
            active=True,
            stage=AssignmentStage.RESERVED,
            reserved_at=now,
            expires_at=expires_at,
            team_id=team_id,
            reason=reason[:_REASON_LENGTH],
        )
        data.next_assignment_id += 1
        return True

    def _free_slot(self, call_id: str, agent_id: str, now: datetime) -> Released:
        """Give the agent's slot back (never below zero); idle since `now` when none is left."""
        agent = self._data.agents.get(agent_id)
        if agent is None:
            return Released(call_id=call_id, agent_id=agent_id, team_ids=(), free_slots=0)
        freed = replace(
            agent,
            active_assignments=max(0, agent.active_assignments - 1),
            idle_since=now if agent.active_assignments <= 1 else agent.idle_since,
            updated_at=now,
        )
        self._data.agents[agent_id] = freed
        return Released(
            call_id=call_id,
            agent_id=agent_id,
            team_ids=freed.team_ids,
            free_slots=max(0, freed.capacity - freed.active_assignments),
        )

    async def reserve(
        self,
        *,
        agent_id: str,
        call_id: str,
        purpose: str,
        now: datetime,
        expires_at: datetime,
        team_id: str | None = None,
        critical: bool = False,
        load_version: int | None = None,
        decision: Decision | None = None,
    ) -> bool:
        won = await self._reserve(
            agent_id=agent_id,
            call_id=call_id,
            purpose=purpose,
            now=now,
            expires_at=expires_at,
            team_id=team_id,
            critical=critical,
            load_version=load_version,
        )
        if won and decision is not None:
            await InMemoryDecisionRepository(self._uow).add(decision)
        return won

    async def _reserve(
        self,
        *,
        agent_id: str,
        call_id: str,
        purpose: str,
        now: datetime,
        expires_at: datetime,
        team_id: str | None,
        critical: bool,
        load_version: int | None,
    ) -> bool:
        agent = self._data.agents.get(agent_id)
        if (
            agent is None
            or agent.status is not AgentStatus.AVAILABLE
            or agent.active_assignments >= agent.capacity
            or (load_version is not None and agent.load_version != load_version)
        ):
            return await self.active_for_call(call_id, purpose) == agent_id
        self._data.agents[agent_id] = replace(
            agent,
            active_assignments=agent.active_assignments + 1,
            updated_at=now,
            recent_escalations=agent.recent_escalations.appended(
                int(now.timestamp()), RECENT_ESCALATIONS_KEPT
            ),
            last_critical_at=now if critical else agent.last_critical_at,
            critical_in_row=agent.critical_in_row + 1 if critical else 0,
            load_version=agent.load_version + 1,
        )
        inserted = self._insert_if_free(
            call_id=call_id,
            purpose=purpose,
            agent_id=agent_id,
            now=now,
            expires_at=expires_at,
            team_id=team_id,
            reason="",
        )
        if inserted:
            return True
        taken = self._data.agents[agent_id]  # give the slot just taken back (the call holds one already)
        self._data.agents[agent_id] = replace(taken, active_assignments=taken.active_assignments - 1)
        holder = await self.active_for_call(call_id, purpose)
        if holder != agent_id:
            raise Conflict(f"call {call_id} already holds an active {purpose} assignment with {holder}")
        return True

    async def release(self, call_id: str, purpose: str, now: datetime, reason: str) -> Released | None:
        row = self._active(call_id, purpose)
        if row is None:
            return None
        self._data.assignments[row.assignment_id] = replace(
            row,
            active=False,
            stage=AssignmentStage.RELEASED,
            released_at=now,
            reason=reason[:_REASON_LENGTH],
        )
        return self._free_slot(call_id, row.agent_id, now)

    async def transition(
        self,
        call_id: str,
        purpose: str,
        to_stage: AssignmentStage,
        now: datetime,
        reason: str,
        expires_at: datetime | None = None,
    ) -> StageChange | None:
        if not ALLOWED_FROM[to_stage]:
            raise ValueError(f"no move leads to {to_stage}")
        row = self._active(call_id, purpose)
        if row is None or row.stage not in ALLOWED_FROM[to_stage]:
            return None
        moved = replace(
            row,
            stage=to_stage,
            reason=reason[:_REASON_LENGTH],
            expires_at=expires_at if expires_at is not None else row.expires_at,
        )
        if to_stage is AssignmentStage.OFFERED:
            moved = replace(moved, offered_at=now)
        elif to_stage is AssignmentStage.CONNECTED:
            moved = replace(moved, offered_at=row.offered_at or now, connected_at=now)
        elif to_stage in (AssignmentStage.WRAP_UP, AssignmentStage.COMPLETED):
            moved = replace(moved, completed_at=row.completed_at or now)
        if not to_stage.holds_slot:
            moved = replace(moved, active=False, released_at=now)
        self._data.assignments[row.assignment_id] = moved
        released = None if to_stage.holds_slot else self._free_slot(call_id, row.agent_id, now)
        return StageChange(moved.record(), released)

    async def live_for_call(self, call_id: str, purpose: str = "live") -> AssignmentRecord | None:
        row = self._active(call_id, purpose)
        return None if row is None else row.record()

    async def lock_call(self, call_id: str) -> None:
        """Nothing to do: units of work run one at a time."""

    async def latest_for_call(self, call_id: str, purpose: str = "live") -> AssignmentRecord | None:
        live = self._active(call_id, purpose)
        if live is not None:
            return live.record()
        ended = [
            row
            for row in self._data.assignments.values()
            if not row.active and row.call_id == call_id and row.purpose == purpose
        ]
        return max(ended, key=lambda row: row.assignment_id).record() if ended else None

    async def live_for_agents(self, agent_ids: list[str]) -> list[AssignmentRecord]:
        wanted = set(agent_ids)
        rows = [row for row in self._data.assignments.values() if row.active and row.agent_id in wanted]
        rows.sort(key=lambda row: (row.reserved_at, row.assignment_id))
        return [row.record() for row in rows]

    async def offers_for_call(self, call_id: str, caller: str | None = None) -> CallOffers:
        customer = await InMemoryCustomerRepository(self._uow).get(caller) if caller else None
        return CallOffers(
            live=await self.live_for_call(call_id),
            missed=frozenset(await self.missed_agents(call_id)),
            customer=customer,
        )

    async def missed_agents(self, call_id: str) -> set[str]:
        return {
            row.agent_id
            for row in self._data.assignments.values()
            if not row.active
            and row.call_id == call_id
            and row.purpose == "live"
            and row.stage is AssignmentStage.MISSED
        }

    async def hand_over(
        self,
        *,
        from_call_id: str,
        from_purpose: str,
        to_call_id: str,
        to_purpose: str,
        team_id: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> str | None:
        held = self._active(from_call_id, from_purpose)
        if held is None:
            return None
        self._data.assignments[held.assignment_id] = replace(
            held,
            active=False,
            stage=AssignmentStage.RELEASED,
            released_at=now,
            reason=f"handed over to call {to_call_id}"[:_REASON_LENGTH],
        )
        agent_id = held.agent_id
        inserted = self._insert_if_free(
            call_id=to_call_id,
            purpose=to_purpose,
            agent_id=agent_id,
            now=now,
            expires_at=expires_at,
            team_id=team_id,
            reason=f"handed over from {from_purpose} of call {from_call_id}",
        )
        if not inserted:
            self._free_slot(to_call_id, agent_id, now)
            holder = await self.active_for_call(to_call_id, to_purpose)
            if holder != agent_id:
                raise Conflict(
                    f"call {to_call_id} already holds an active {to_purpose} assignment with {holder}"
                )
        return agent_id

    async def active_for_call(self, call_id: str, purpose: str) -> str | None:
        row = self._active(call_id, purpose)
        return None if row is None else row.agent_id

    async def expired(self, now: datetime, limit: int) -> list[AssignmentRecord]:
        rows = [row for row in self._data.assignments.values() if row.active and row.expires_at <= now]
        rows.sort(key=lambda row: (row.expires_at, row.assignment_id))
        return [row.record() for row in rows[: max(0, limit)]]

    async def recent_handle_time(
        self, team_id: str, since: datetime, *, limit: int = HANDLE_TIME_SAMPLE
    ) -> timedelta | None:
        sample = await self.recent_handle_sample(team_id, since, limit=limit)
        return sample[0] if sample is not None else None

    async def recent_handle_sample(
        self, team_id: str, since: datetime, *, limit: int = HANDLE_TIME_SAMPLE
    ) -> tuple[timedelta, int] | None:
        ended = [
            row
            for row in self._data.assignments.values()
            if row.team_id == team_id
            and row.purpose == "live"
            and row.completed_at is not None
            and row.completed_at >= since
            and row.connected_at is not None
        ]
        ended.sort(key=lambda row: row.completed_at or since, reverse=True)
        sample = [
            (row.completed_at - row.connected_at).total_seconds()
            for row in ended[: max(1, limit)]
            if row.completed_at is not None and row.connected_at is not None
        ]
        if not sample:
            return None
        return timedelta(seconds=max(0.0, sum(sample) / len(sample))), len(sample)


class InMemoryDecisionRepository(_Repository):
    async def add(self, decision: Decision) -> None:
        key = (decision.call_id, decision.tool_call_id)
        taken_ids = {stored.decision_id for stored in self._data.decisions.values()}
        if key in self._data.decisions or decision.decision_id in taken_ids:
            raise DuplicateDecision(
                f"decision for call {decision.call_id} tool call {decision.tool_call_id!r} already stored"
                f" (or decision id {decision.decision_id} reused)"
            )
        self._data.decisions[key] = replace(decision, replayed=False)

    async def get(self, call_id: str, tool_call_id: str) -> Decision | None:
        return self._data.decisions.get((call_id, tool_call_id))

    async def by_id(self, decision_id: str) -> Decision | None:
        return next((d for d in self._data.decisions.values() if d.decision_id == decision_id), None)

    def _newest_first(self, decisions: Iterable[Decision]) -> list[Decision]:
        return sorted(decisions, key=lambda d: (d.decided_at, d.decision_id), reverse=True)

    async def latest_for_call(self, call_id: str) -> Decision | None:
        found = self._newest_first(d for d in self._data.decisions.values() if d.call_id == call_id)
        return found[0] if found else None

    async def page(
        self, *, team_id: str | None, kind: DecisionKind | None, limit: int, before: str | None
    ) -> list[Decision]:
        found = [
            d
            for d in self._data.decisions.values()
            if (team_id is None or d.team_id == team_id) and (kind is None or d.kind is kind)
        ]
        if before is not None:
            cursor = next((d for d in self._data.decisions.values() if d.decision_id == before), None)
            if cursor is None:
                found = [d for d in found if d.decision_id < before]
            else:
                found = [d for d in found if (d.decided_at, d.decision_id) < (cursor.decided_at, before)]
        return self._newest_first(found)[: max(0, limit)]


def _service_order(ticket: CallbackTicket) -> tuple[int, float, datetime, str]:
    """RESERVED tickets first (they are being served), then by service key, enqueue time and call id."""
    reserved_first = 0 if ticket.state is CallbackState.RESERVED else 1
    return (reserved_first, ticket.service_key, ticket.enqueued_at, ticket.call_id)


class InMemoryCallbackRepository(_Repository):
    def _team(self, team_id: str) -> list[CallbackTicket]:
        return [ticket for ticket in self._data.callbacks.values() if ticket.team_id == team_id]

    def _with_position(self, ticket: CallbackTicket) -> CallbackTicket:
        """The ticket with its 1-based place among the team's open tickets (0 when not open)."""
        if not ticket.state.is_open:
            return replace(ticket, position=0)
        ahead = sum(
            1
            for other in self._team(ticket.team_id)
            if other.state.is_open and _service_order(other) < _service_order(ticket)
        )
        return replace(ticket, position=ahead + 1)

    async def place(self, team_id: str, service_key: float) -> int:
        reserved = sum(1 for t in self._team(team_id) if t.state is CallbackState.RESERVED)
        return reserved + await self.ahead_of(team_id, service_key) + 1

    async def enqueue(self, ticket: CallbackTicket) -> CallbackTicket:
        existing = self._data.callbacks.get(ticket.call_id)
        if existing is not None:
            return self._with_position(existing)
        stored = replace(
            ticket,
            state=CallbackState.WAITING,
            agent_id=None,
            reserved_until=None,
            finished_at=None,
            started_at=None,
            breached_at=None,
        )
        self._data.callbacks[ticket.call_id] = replace(stored, position=0)
        return stored  # as the SQL store: the position is the caller's (`place`), nothing is read back

    async def get(self, call_id: str) -> CallbackTicket | None:
        ticket = self._data.callbacks.get(call_id)
        return None if ticket is None else self._with_position(ticket)

    async def open_in_team(self, team_id: str, limit: int) -> list[CallbackTicket]:
        queue = sorted((t for t in self._team(team_id) if t.state.is_open), key=_service_order)
        return [replace(t, position=place) for place, t in enumerate(queue[: max(0, limit)], start=1)]

    async def waiting_before(self, ticket: CallbackTicket) -> bool:
        if ticket.state is CallbackState.RESERVED:
            return False
        return any(
            other.state is CallbackState.WAITING
            and other.call_id != ticket.call_id
            and other.service_key <= ticket.service_key
            and (
                other.service_key < ticket.service_key
                or other.enqueued_at < ticket.enqueued_at
                or (other.enqueued_at == ticket.enqueued_at and other.call_id < ticket.call_id)
            )
            for other in self._team(ticket.team_id)
        )

    async def ahead_of(self, team_id: str, service_key: float) -> int:
        return sum(
            1
            for ticket in self._team(team_id)
            if ticket.state is CallbackState.WAITING and ticket.service_key <= service_key
        )

    async def waiting_since(self, team_id: str, before: datetime) -> int:
        return sum(
            1
            for ticket in self._team(team_id)
            if ticket.state is CallbackState.WAITING and ticket.enqueued_at <= before
        )

    async def find(
        self,
        *,
        team_id: str | None,
        states: set[CallbackState],
        limit: int,
        after: CallbackTicket | None = None,
    ) -> list[CallbackTicket]:
        def order(ticket: CallbackTicket) -> tuple[str, int, float, datetime, str]:
            return (ticket.team_id, *_service_order(ticket))

        found = [
            self._with_position(ticket)
            for ticket in self._data.callbacks.values()
            if (team_id is None or ticket.team_id == team_id) and (not states or ticket.state in states)
        ]
        if after is not None:
            found = [ticket for ticket in found if order(ticket) > order(after)]
        return sorted(found, key=order)[: max(0, limit)]

    async def mark_reserved(
        self, call_id: str, agent_id: str, until: datetime, *, now: datetime | None = None
    ) -> CallbackTicket:
        ticket = self._data.callbacks.get(call_id)
        if ticket is None:
            raise NotFound(f"no callback for call {call_id}")
        if not ticket.state.is_open:
            raise Conflict(f"callback for call {call_id} is already {ticket.state}")
        reserved = replace(
            ticket,
            state=CallbackState.RESERVED,
            agent_id=agent_id,
            reserved_until=until,
            started_at=ticket.started_at or now,
        )
        self._data.callbacks[call_id] = reserved
        return self._with_position(reserved)

    async def mark_breached(self, call_id: str, now: datetime) -> bool:
        ticket = self._data.callbacks.get(call_id)
        if ticket is None or ticket.breached_at is not None:
            return False
        self._data.callbacks[call_id] = replace(ticket, breached_at=now)
        return True

    async def recent_wait_ratios(self, team_id: str, since: datetime, limit: int) -> list[float]:
        started = [
            t
            for t in self._team(team_id)
            if t.started_at is not None and t.started_at >= since and t.promise_from is not None
        ]
        started.sort(key=lambda t: t.started_at or since, reverse=True)
        outcomes = [
            PromiseOutcome(starts_at=t.promise_from, due_by=t.promised_by, started_at=t.started_at)
            for t in started
            if t.promise_from is not None and t.promised_by is not None
        ]
        return wait_ratios(outcomes)[: max(1, limit)]

    async def claim_view(
        self, ticket: CallbackTicket, now: datetime, limit: int
    ) -> tuple[bool, list[AtRisk]]:
        return await self.waiting_before(ticket), await self.at_risk_waiting(ticket.team_id, now, limit)

    async def overdue_waiting(self, team_id: str, now: datetime, limit: int) -> list[CallbackTicket]:
        found = [
            t
            for t in self._team(team_id)
            if t.state is CallbackState.WAITING
            and t.promised_by is not None
            and t.promised_by < now
            and t.breached_at is None
        ]
        return sorted(found, key=lambda t: t.at_risk_at or now)[: max(1, limit)]

    async def at_risk_waiting(self, team_id: str, now: datetime, limit: int) -> list[AtRisk]:
        found = [
            t
            for t in self._team(team_id)
            if t.state is CallbackState.WAITING
            and t.at_risk_at is not None
            and t.promised_by is not None
            and t.at_risk_at <= now <= t.promised_by
        ]
        return [
            AtRisk(t.call_id, t.tier, t.service_key, t.enqueued_at, t.at_risk_at, t.promised_by)
            for t in sorted(found, key=_service_order)[: max(1, limit)]
        ]

    async def tiers_waiting_before(self, ticket: CallbackTicket) -> set[str]:
        return {
            other.tier
            for other in self._team(ticket.team_id)
            if other.state is CallbackState.WAITING
            and other.call_id != ticket.call_id
            and (other.service_key, other.enqueued_at, other.call_id)
            < (ticket.service_key, ticket.enqueued_at, ticket.call_id)
        }

    async def promise_outcomes(self, team_id: str, since: datetime, limit: int) -> list[PromiseOutcome]:
        found = [
            t
            for t in self._team(team_id)
            if t.promise_from is not None and t.promised_by is not None and t.promised_by >= since
        ]
        found.sort(key=lambda t: t.promised_by or since, reverse=True)
        return [
            PromiseOutcome(
                starts_at=t.promise_from,
                due_by=t.promised_by,
                started_at=t.started_at,
                ended_at=t.finished_at,
            )
            for t in found[: max(1, limit)]
            if t.promise_from is not None and t.promised_by is not None
        ]

    async def finish(self, call_id: str, state: CallbackState, now: datetime, note: str) -> CallbackTicket:
        if state.is_open:
            raise InvalidRequest(
                f"{state} is not a terminal callback state", [("state", "must be a terminal state")]
            )
        ticket = self._data.callbacks.get(call_id)
        if ticket is None:
            raise NotFound(f"no callback for call {call_id}")
        if not ticket.state.is_open:
            if ticket.state is not state:
                raise Conflict(f"callback for call {call_id} is already {ticket.state}")
            return replace(ticket, position=0)
        finished = replace(ticket, state=state, finished_at=now, note=note)
        self._data.callbacks[call_id] = finished
        return replace(finished, position=0)


class InMemoryUnitOfWork:
    """`ports.UnitOfWork` over an `InMemoryDatabase` (see the module docstring for its transactions)."""

    # Typed as the ports (protocol attributes are invariant), so mypy checks each fake against its port.
    customers: CustomerRepository
    agents: AgentRepository
    assignments: AssignmentRepository
    decisions: DecisionRepository
    callbacks: CallbackRepository
    review_outcomes: ReviewOutcomeRepository

    def __init__(self, database: InMemoryDatabase) -> None:
        self._database = database
        self._data: _Data | None = None
        self._announcements: list[AgentFreed] = []
        self.customers = InMemoryCustomerRepository(self)
        self.agents = InMemoryAgentRepository(self)
        self.assignments = InMemoryAssignmentRepository(self)
        self.decisions = InMemoryDecisionRepository(self)
        self.callbacks = InMemoryCallbackRepository(self)
        self.review_outcomes = InMemoryReviewOutcomeRepository(self)

    def data(self) -> _Data:
        """The unit of work's copy of the tables (for its repositories)."""
        if self._data is None:
            raise RuntimeError("use the unit of work inside `async with`")
        if self._database.unavailable:
            raise Unavailable("the routing store is unavailable (in-memory store set unavailable)")
        return self._data

    async def __aenter__(self) -> Self:
        await self._database._lock.acquire()
        self._data = self._database.data.snapshot()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._data = None
        self._announcements = []
        self._database._lock.release()

    async def commit(self) -> None:
        self._database.data = self.data()
        self._database.announced.extend(self._announcements)
        self._database.commits += 1
        self._announcements = []
        self._data = self._database.data.snapshot()

    async def rollback(self) -> None:
        self.data()
        self._announcements = []
        self._data = self._database.data.snapshot()

    async def announce(self, freed: AgentFreed) -> None:
        self.data()
        if freed.free_slots > 0:
            self._announcements.append(freed)
