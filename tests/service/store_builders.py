"""Builders and fixtures shared by the store tests (tests/service/test_store_*.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, String, bindparam, insert, select

from routing_service.domain.models import (
    Agent,
    AgentStatus,
    CallbackState,
    CallbackTicket,
    Complexity,
    Decision,
    DecisionKind,
    Destination,
    SummaryMessage,
    TraceOutcome,
    TraceStep,
    TransferMode,
)
from routing_service.store import Store
from routing_service.store.statements import shared
from routing_service.store.tables import agents, customers

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

INSERT_CUSTOMER = shared(insert(customers))
"""A customer row from a dict of its columns (the driver-path tests of each database)."""
AGENTS_IN = shared(
    select(agents.c.agent_id)
    .where(
        agents.c.capacity >= bindparam("min_capacity", type_=Integer()),
        agents.c.agent_id.in_(bindparam("ids", expanding=True)),
        agents.c.display_name != bindparam("not_named", type_=String()),
    )
    .order_by(agents.c.agent_id)
)
"""Agent ids in a list (an expanding parameter between two plain ones), for the IN-list tests."""
HOLD = timedelta(hours=2)


@asynccontextmanager
async def opened_store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store, closed afterwards (the `store` fixture of conftest.py wraps it)."""
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


def make_agent(
    agent_id: str,
    *,
    teams: tuple[str, ...] = ("technical",),
    capacity: int = 1,
    max_complexity: Complexity = Complexity.CRITICAL,
    status: AgentStatus = AgentStatus.AVAILABLE,
    skills: frozenset[str] = frozenset(),
    idle_since: datetime | None = None,
    number: str = "+15550100201",
) -> Agent:
    return Agent(
        agent_id=agent_id,
        display_name=agent_id.title(),
        destination=Destination(number=number),
        team_ids=teams,
        skills=skills,
        max_complexity=max_complexity,
        capacity=capacity,
        status=status,
        idle_since=idle_since,
    )


async def add_agents(store: Store, *agents: Agent, now: datetime = NOW) -> None:
    async with store.uow() as uow:
        for agent in agents:
            await uow.agents.upsert(agent, now)
        await uow.commit()


async def reserve(
    store: Store,
    agent_id: str,
    call_id: str,
    *,
    now: datetime = NOW,
    hold: timedelta = HOLD,
    team_id: str | None = None,
    purpose: str = "live",
) -> bool:
    async with store.uow() as uow:
        won = await uow.assignments.reserve(
            agent_id=agent_id,
            call_id=call_id,
            purpose=purpose,
            now=now,
            expires_at=now + hold,
            team_id=team_id,
        )
        await uow.commit()
        return won


def make_ticket(
    call_id: str,
    *,
    team_id: str = "technical",
    service_key: float,
    enqueued_at: datetime = NOW,
    tier: str = "standard",
    priority: int = 0,
) -> CallbackTicket:
    return CallbackTicket(
        call_id=call_id,
        team_id=team_id,
        state=CallbackState.WAITING,
        caller_number="+15551230000",
        tier=tier,
        issue_category="technical",
        effective_complexity=Complexity.ADVANCED,
        priority=priority,
        service_key=service_key,
        enqueued_at=enqueued_at,
        decision_id=f"d-{call_id}",
        customer_context="API returns 500",
        escalation_reason="needs a specialist",
    )


async def enqueue(store: Store, *tickets: CallbackTicket) -> None:
    """Queue `tickets` in one committed unit of work."""
    async with store.uow() as uow:
        for ticket in tickets:
            await uow.callbacks.enqueue(ticket)
        await uow.commit()


def make_decision(
    decision_id: str,
    call_id: str,
    tool_call_id: str = "tool-1",
    *,
    kind: DecisionKind = DecisionKind.TRANSFER_AGENT,
    team_id: str = "technical",
    agent_id: str | None = "alice",
    decided_at: datetime = NOW,
    callback: CallbackTicket | None = None,
) -> Decision:
    return Decision(
        decision_id=decision_id,
        call_id=call_id,
        tool_call_id=tool_call_id,
        kind=kind,
        destination=Destination(number="+15550100201", extension="12"),
        caller_message="Connecting you to Alice.",
        transfer_mode=TransferMode.WARM_TRANSFER_SAY_SUMMARY,
        effective_complexity=Complexity.ADVANCED,
        claimed_complexity=Complexity.INTERMEDIATE,
        tier="enterprise",
        issue_category="technical",
        decided_at=decided_at,
        trace=(
            TraceStep("complexity", "keyword 'api'", TraceOutcome.MATCHED, "raised to advanced"),
            TraceStep("rule", "technical-advanced", TraceOutcome.MATCHED, "first match"),
            TraceStep("agent", "bob", TraceOutcome.REJECTED, "no free slot"),
            TraceStep("agent", "alice", TraceOutcome.CHOSEN, "least busy"),
        ),
        reason="specialist available",
        team_id=team_id,
        team_display_name="Technical",
        agent_id=agent_id,
        agent_display_name="Alice",
        handoff_message="Customer {{customer}} needs help",
        summary_messages=(SummaryMessage("system", "Summarise {{transcript}}"),),
        estimated_wait=timedelta(minutes=7, seconds=30),
        rule_id="technical-advanced",
        caller_number="+15551230000",
        callback=callback,
        dry_run=False,
    )
