"""Builders for routing use-case tests on any store (`ports.UnitOfWorkFactory`): the in-memory one of
`in_memory_store` or the SQL `Store`."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from routing_service.app.ports import UnitOfWorkFactory
from routing_service.domain.models import Agent, AgentStatus, Complexity, Customer, Destination, Policy
from routing_service.policy.loader import load_policy

__all__ = ["NOW", "TECHCORP_POLICY", "make_agent", "new_decision_id", "seed", "techcorp_policy"]

TECHCORP_POLICY = Path(__file__).resolve().parents[2] / "examples" / "techcorp.yaml"
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
"""A Monday, 14:00 UTC."""

_IDS = itertools.count(1)


def techcorp_policy() -> Policy:
    return load_policy(TECHCORP_POLICY)


def new_decision_id() -> str:
    """Unique decision ids, readable in a failing test's output."""
    return f"d{next(_IDS):06d}"


def make_agent(
    agent_id: str,
    *,
    teams: tuple[str, ...] = ("technical",),
    capacity: int = 1,
    max_complexity: Complexity = Complexity.CRITICAL,
    status: AgentStatus = AgentStatus.AVAILABLE,
    idle_since: datetime | None = None,
    skills: frozenset[str] = frozenset(),
) -> Agent:
    return Agent(
        agent_id=agent_id,
        display_name=agent_id.title(),
        destination=Destination(number="+15550100299"),
        team_ids=teams,
        skills=skills,
        max_complexity=max_complexity,
        capacity=capacity,
        status=status,
        idle_since=idle_since,
    )


async def seed(
    uow: UnitOfWorkFactory,
    *agents: Agent,
    customers: tuple[Customer, ...] = (),
    busy: dict[str, int] | None = None,
    now: datetime = NOW,
) -> None:
    """Specialists and customers on record (an hour before `now`); `busy` takes that many slots of an agent
    with other calls (`other-<agent>-<n>`, reserved half an hour before `now`)."""
    async with uow() as u:
        for agent in agents:
            await u.agents.upsert(agent, now - timedelta(hours=1))
        for customer in customers:
            await u.customers.upsert(customer, now - timedelta(hours=1))
        for agent_id, slots in (busy or {}).items():
            for n in range(slots):
                taken = await u.assignments.reserve(
                    agent_id=agent_id,
                    call_id=f"other-{agent_id}-{n}",
                    purpose="live",
                    now=now - timedelta(minutes=30),
                    expires_at=now + timedelta(hours=1),
                )
                assert taken, f"{agent_id} has no free slot for other-{agent_id}-{n}"
        await u.commit()
