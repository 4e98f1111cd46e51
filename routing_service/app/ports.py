"""What the use cases need from storage. `routing_service.store` implements it with SQLAlchemy;
unit tests may implement it in memory. All times are timezone-aware UTC datetimes.

A `UnitOfWork` is an async context manager: work inside it is one transaction; `commit()` is explicit and
leaving the block without it rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from routing_service.domain.lifecycle import AssignmentRecord, AssignmentStage
from routing_service.domain.models import (
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
from routing_service.domain.promises import AtRisk, PromiseOutcome

HANDLE_TIME_SAMPLE = 100
"""Conversations a wait estimate averages at most (the team's latest)."""


class DuplicateDecision(Exception):
    """A decision for the same (call_id, tool_call_id) is already stored (a concurrent retry won)."""


@dataclass(frozen=True, slots=True)
class TeamStats:
    team_id: str
    total_agents: int
    available_agents: int
    """Status available with at least one free slot."""
    active_assignments: int
    waiting_callbacks: int
    oldest_waiting_since: datetime | None


@dataclass(frozen=True, slots=True)
class Released:
    call_id: str
    agent_id: str
    team_ids: tuple[str, ...]
    free_slots: int
    """The agent's free slots after the release."""


@dataclass(frozen=True, slots=True)
class StageChange:
    """An assignment moved to a new stage (`AssignmentRepository.transition`)."""

    assignment: AssignmentRecord
    """The record after the move."""
    released: Released | None
    """Set when the move freed the slot: pass it to `availability.announce_release`."""


@dataclass(frozen=True, slots=True)
class MissedOffer:
    """A specialist's missed offer counted (`AgentRepository.note_missed_offer`)."""

    agent: Agent
    set_away: bool
    """True when this miss reached the limit and set the specialist away."""


@dataclass(frozen=True, slots=True)
class CallOffers:
    """A call's live offers so far (`AssignmentRepository.offers_for_call`)."""

    live: AssignmentRecord | None
    """The call's live assignment that holds a slot, with its stage (None when none does)."""
    missed: frozenset[str]
    """Specialists whose live assignment for this call ended missed."""
    customer: Customer | None = None
    """The customer on record for the caller key `offers_for_call` was given (None: unknown, or none
    given)."""


@dataclass(frozen=True, slots=True)
class AgentFreed:
    """A specialist has `free_slots` free slots since `at` (one notice for all of its teams)."""

    agent_id: str
    team_ids: tuple[str, ...]
    free_slots: int
    at: datetime


class CustomerRepository(Protocol):
    async def get(self, number: str) -> Customer | None: ...
    async def upsert(self, customer: Customer, now: datetime) -> tuple[Customer, bool]:
        """Create or replace tier/account/history/last agent; returns (stored, created)."""
        ...

    async def record_outcome(
        self,
        call_id: str,
        number: str,
        agent_id: str | None,
        now: datetime,
        *,
        default_tier: str = "standard",
    ) -> tuple[Customer, bool]:
        """+1 previous_escalations once per call_id (idempotent) and set last_agent_id when given.
        An unknown customer is created with `default_tier` (the use case may also `upsert` first).
        Returns (customer, counted)."""
        ...

    async def save_learnings(self, number: str, learned: CustomerLearnings, now: datetime) -> bool:
        """Store what reviews' verdicts taught about the customer (replacing both kinds); False when the
        customer is unknown."""
        ...


@dataclass(frozen=True, slots=True)
class ReviewOutcomeRow:
    """One reviewed call (`ReviewOutcomeRepository`)."""

    call_id: str
    team_id: str
    rule_id: str
    uncertain: bool
    category_wrong: bool
    verdict: str
    outcome: str
    judged_at: datetime
    verdict_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    """Verdicts on the decisions of one (team, rule) pair, and the calls of the team whose uncertain
    decision a review said had the wrong category."""

    team_id: str
    rule_id: str
    confirmed: int = 0
    overturned: int = 0
    uncertain_category_wrong: int = 0


class ReviewOutcomeRepository(Protocol):
    async def open(self, row: ReviewOutcomeRow) -> bool:
        """Insert the call's row unless it is there; True when inserted."""
        ...

    async def mark_category_wrong(self, call_id: str) -> bool:
        """Set the call's `category_wrong`; True only the first time (so it is counted once)."""
        ...

    async def set_verdict(self, call_id: str, verdict: str, outcome: str, at: datetime) -> bool:
        """Record the call's verdict; True only the first time (a repeat changes nothing)."""
        ...

    async def counts(self, since: datetime) -> list[OutcomeCount]:
        """Per (team, rule): verdicts given at or after `since`, and per team (rule "") uncertain decisions
        judged at or after `since` whose category a review said was wrong."""
        ...


class AgentRepository(Protocol):
    async def get(self, agent_id: str) -> Agent | None: ...
    async def upsert(self, agent: Agent, now: datetime) -> tuple[Agent, bool]:
        """Create or replace; keeps active_assignments/idle_since of an existing agent."""
        ...

    async def set_status(self, agent_id: str, status: AgentStatus, now: datetime) -> Agent | None:
        """None when the agent does not exist. Becoming available sets idle_since when it was unset."""
        ...

    async def page(
        self, *, team_id: str | None, status: AgentStatus | None, limit: int, after_id: str | None
    ) -> list[Agent]:
        """Ordered by agent_id; `after_id` is the keyset cursor."""
        ...

    async def count_in_team(self, team_id: str) -> int: ...
    async def candidates(
        self, team_id: str, min_complexity: Complexity, limit: int, *, skip_locked: bool = False
    ) -> list[Agent]:
        """Members of the team that are AVAILABLE, have a free slot and max_complexity >= min_complexity,
        least busy first (active_assignments), then longest idle (idle_since, nulls first), then agent_id.
        Must stay cheap with 10,000 agents (indexed, LIMITed).

        `skip_locked`: where the database has row locks, lock the returned agents for this transaction and
        pass over agents another transaction has locked (they are being reserved right now), so concurrent
        decisions spread over the free specialists instead of queueing on the same one. A store without
        row locks ignores it."""
        ...

    async def queue_and_candidates(
        self,
        team_id: str,
        min_complexity: Complexity,
        limit: int,
        *,
        service_key: float,
        skip_locked: bool = False,
    ) -> tuple[int, list[Agent]]:
        """How a caller with `service_key` stands in the team: the WAITING callbacks served before them
        (`CallbackRepository.ahead_of`) and, only when there are none, `candidates(...)` (empty otherwise:
        nobody is read, let alone locked). One statement on PostgreSQL."""
        ...

    async def others(self, team_id: str, exclude: set[str], limit: int) -> list[Agent]:
        """Up to `limit` other team members (not qualified or not free), for the decision trace."""
        ...

    async def team_stats(self, team_ids: list[str], now: datetime) -> dict[str, TeamStats]: ...
    async def recent_escalations(self, team_ids: list[str]) -> dict[str, dict[str, EscalationTimes]]:
        """Per team, each member's latest reservation times (`Agent.recent_escalations`), in one read."""
        ...

    async def note_missed_offer(self, agent_id: str, now: datetime, away_after: int) -> MissedOffer | None:
        """+1 missed_in_row; an AVAILABLE specialist reaching `away_after` (> 0) is set AWAY. None when the
        agent does not exist. Call it once per missed assignment (after a `transition` that changed it)."""
        ...

    async def reset_misses(self, agent_id: str, now: datetime) -> None:
        """missed_in_row back to 0 (the specialist took a call). Setting AVAILABLE also resets it."""
        ...


class AssignmentRepository(Protocol):
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
        """Atomically take one slot of the agent: a conditional UPDATE (status available and
        active_assignments < capacity) plus an assignment row (stage reserved, `team_id` the team the call
        was routed to), in the current transaction. False when the slot was gone (another request won).
        `purpose` is "live" or "callback". The same UPDATE keeps the fair-load figures (the reservation's
        time, a `critical` call's time and the critical run, the load version); with `load_version` (the
        version the caps were judged on) it succeeds only while the agent's version is still that one.

        With `decision` (the decision that sends the call to this agent, built before the reservation), the
        decision row is stored in the same transaction exactly when the result is True (on PostgreSQL in
        the reservation's own statement), and nothing is stored when it is False: the caller builds the
        next candidate's decision and tries again. `DuplicateDecision` when its (call_id, tool_call_id) is
        stored already, as `DecisionRepository.add` (the caller then rolls back)."""
        ...

    async def release(self, call_id: str, purpose: str, now: datetime, reason: str) -> Released | None:
        """Release the active assignment of that call and purpose whatever its stage (an administrative
        release: stage released). None when there is none."""
        ...

    async def transition(
        self,
        call_id: str,
        purpose: str,
        to_stage: AssignmentStage,
        now: datetime,
        reason: str,
        expires_at: datetime | None = None,
    ) -> StageChange | None:
        """Move the call's slot-holding assignment of `purpose` to `to_stage` when its current stage allows
        it (`lifecycle.ALLOWED_FROM`), atomically; None when nothing moved (nothing held, a repeat, a move
        that no longer applies). `expires_at` replaces the stage's time-out (None keeps it). A stage that
        frees the slot gives it back like `release`; `StageChange.released` is then set."""
        ...

    async def live_for_call(self, call_id: str, purpose: str = "live") -> AssignmentRecord | None:
        """The call's assignment of `purpose` holding a slot (with its stage), if any."""
        ...

    async def lock_call(self, call_id: str) -> None:
        """Serialise, until the transaction ends, the units of work that change this call's assignments
        (concurrent deliveries of one call's escalations would otherwise lock rows in opposite orders)."""
        ...

    async def latest_for_call(self, call_id: str, purpose: str = "live") -> AssignmentRecord | None:
        """The call's newest assignment of `purpose`, whatever its stage."""
        ...

    async def live_for_agents(self, agent_ids: list[str]) -> list[AssignmentRecord]:
        """The slot-holding assignments (any purpose) of these agents, oldest first."""
        ...

    async def missed_agents(self, call_id: str) -> set[str]:
        """Agents whose live assignment for this call ended missed."""
        ...

    async def offers_for_call(self, call_id: str, caller: str | None = None) -> CallOffers:
        """`live_for_call(call_id)` and `missed_agents(call_id)` in one read (one statement), and with
        `caller` (a caller key) the customer on record for it, as `CustomerRepository.get` (on PostgreSQL
        in the same statement: a decision's first read after the call's lock)."""
        ...

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
        """Move a held assignment (e.g. a callback's) onto another call as a live `reserved` one without
        freeing the slot; the specialist's id, None when nothing was held."""
        ...

    async def active_for_call(self, call_id: str, purpose: str) -> str | None:
        """The agent id holding an active assignment for the call, if any."""
        ...

    async def expired(self, now: datetime, limit: int) -> list[AssignmentRecord]:
        """Slot-holding assignments whose stage timed out (expires_at at or before `now`), oldest first."""
        ...

    async def recent_handle_time(
        self, team_id: str, since: datetime, *, limit: int = HANDLE_TIME_SAMPLE
    ) -> timedelta | None:
        """Mean handle time (connected -> end of conversation) of the team's latest `limit` live
        conversations ended since `since` (newest first: the cost must not grow with the traffic of the
        window)."""
        ...

    async def recent_handle_sample(
        self, team_id: str, since: datetime, *, limit: int = HANDLE_TIME_SAMPLE
    ) -> tuple[timedelta, int] | None:
        """`recent_handle_time` and the number of conversations it averaged; None when there were none."""
        ...


class DecisionRepository(Protocol):
    async def add(self, decision: Decision) -> None:
        """Raises DuplicateDecision when (call_id, tool_call_id) exists (on flush/commit)."""
        ...

    async def get(self, call_id: str, tool_call_id: str) -> Decision | None: ...
    async def latest_for_call(self, call_id: str) -> Decision | None: ...
    async def by_id(self, decision_id: str) -> Decision | None:
        """The decision with this id, or None."""
        ...

    async def page(
        self, *, team_id: str | None, kind: DecisionKind | None, limit: int, before: str | None
    ) -> list[Decision]:
        """Newest first; `before` is a decision_id cursor (exclusive)."""
        ...


class CallbackRepository(Protocol):
    async def place(self, team_id: str, service_key: float) -> int:
        """The position a new WAITING ticket with this key would take in the team's queue (RESERVED tickets
        and WAITING ones with a key at or below it come first), read before it is inserted."""
        ...

    async def enqueue(self, ticket: CallbackTicket) -> CallbackTicket:
        """Insert a WAITING ticket as given (its promise and position included; no read back); if one
        exists for the call_id, return the existing one unchanged, with its position."""
        ...

    async def get(self, call_id: str) -> CallbackTicket | None:
        """With `position` filled in when open."""
        ...

    async def open_in_team(self, team_id: str, limit: int) -> list[CallbackTicket]:
        """WAITING and RESERVED tickets in service order (service_key, then enqueued_at), positions set."""
        ...

    async def waiting_before(self, ticket: CallbackTicket) -> bool:
        """True when a WAITING ticket of the same team is served before `ticket` (cheap at any length)."""
        ...

    async def ahead_of(self, team_id: str, service_key: float) -> int:
        """How many WAITING tickets of the team would be served before a ticket with this key."""
        ...

    async def waiting_since(self, team_id: str, before: datetime) -> int:
        """How many WAITING tickets of the team were enqueued at or before `before` (by widening step)."""
        ...

    async def find(
        self,
        *,
        team_id: str | None,
        states: set[CallbackState],
        limit: int,
        after: CallbackTicket | None = None,
    ) -> list[CallbackTicket]:
        """In (team, service order); `after`: only tickets that come after that one in this order."""
        ...

    async def mark_reserved(
        self, call_id: str, agent_id: str, until: datetime, *, now: datetime | None = None
    ) -> CallbackTicket:
        """RESERVED for `agent_id` until `until`; with `now`, the callback's start when it is the first."""
        ...

    async def mark_breached(self, call_id: str, now: datetime) -> bool:
        """Record the call's promise as broken at `now`; True only the first time."""
        ...

    async def at_risk_waiting(self, team_id: str, now: datetime, limit: int) -> list[AtRisk]:
        """WAITING tickets of the team whose promise is at risk at `now`, in service order."""
        ...

    async def claim_view(
        self, ticket: CallbackTicket, now: datetime, limit: int
    ) -> tuple[bool, list[AtRisk]]:
        """`waiting_before(ticket)` and `at_risk_waiting(ticket.team_id, now, limit)`, in one read."""
        ...

    async def overdue_waiting(self, team_id: str, now: datetime, limit: int) -> list[CallbackTicket]:
        """The team's WAITING tickets whose promise deadline passed before `now` and whose breach is not
        stored yet, at most `limit`."""
        ...

    async def recent_wait_ratios(self, team_id: str, since: datetime, limit: int) -> list[float]:
        """Actual over quoted wait of the team's latest `limit` callbacks started since `since`; a store
        may reuse a team's answer for a short while (the SQL store: `store.callbacks.WAIT_RATIO_TTL`)."""
        ...

    async def tiers_waiting_before(self, ticket: CallbackTicket) -> set[str]:
        """The tiers of the team's WAITING tickets served before `ticket`."""
        ...

    async def promise_outcomes(self, team_id: str, since: datetime, limit: int) -> list[PromiseOutcome]:
        """The team's promises due at or after `since`, newest deadline first, at most `limit`."""
        ...

    async def finish(
        self, call_id: str, state: CallbackState, now: datetime, note: str
    ) -> CallbackTicket: ...


class UnitOfWork(Protocol):
    customers: CustomerRepository
    agents: AgentRepository
    assignments: AssignmentRepository
    decisions: DecisionRepository
    callbacks: CallbackRepository
    review_outcomes: ReviewOutcomeRepository

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    async def announce(self, freed: AgentFreed) -> None:
        """Tell the other routing processes on this database about `freed` if, and only if, this
        transaction commits (PostgreSQL: NOTIFY). A store no other process shares does nothing. This
        process's own watchers hear it from the use case, after the commit."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
