"""Use cases for specialists: upsert (validated), status changes, listing. Publishes availability events."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from routing_service.app.availability import AvailabilityBroadcaster, announce_freed
from routing_service.app.ports import UnitOfWorkFactory
from routing_service.domain.errors import InvalidRequest, NotFound
from routing_service.domain.lifecycle import AgentActivityView, AssignmentRecord, agent_activity
from routing_service.domain.models import Agent, AgentStatus, Destination
from routing_service.domain.phone import parse_destination_number

__all__ = ["activity_of", "list_agents", "set_agent_status", "upsert_agent", "validate_agent"]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
MAX_CAPACITY = 1000
MAX_LIST = 100


def validate_agent(agent: Agent, *, field: str = "agent") -> Agent:
    """The agent with its number checked (strict E.164) and lists tidied; InvalidRequest listing every
    problem otherwise."""
    violations: list[tuple[str, str]] = []
    if not agent.agent_id:
        violations.append((f"{field}.agent_id", "required"))
    elif not _ID.fullmatch(agent.agent_id):
        violations.append((f"{field}.agent_id", "1-64 letters, digits or . _ : @ - (no spaces)"))
    if len(agent.display_name) > 200:
        violations.append((f"{field}.display_name", "at most 200 characters"))
    destination = agent.destination
    if destination.number is not None:
        try:
            parse_destination_number(destination.number)
        except ValueError as exc:
            violations.append((f"{field}.number", str(exc)))
    elif destination.sip_uri is not None and not destination.sip_uri.lower().startswith(("sip:", "sips:")):
        violations.append((f"{field}.sip_uri", "must start with sip: or sips:"))
    if destination.extension is not None and not re.fullmatch(r"[0-9*#wW,]{1,20}", destination.extension):
        violations.append((f"{field}.extension", "1-20 DTMF characters (0-9 * # w ,)"))
    if not 1 <= agent.capacity <= MAX_CAPACITY:
        violations.append(
            (f"{field}.capacity", f"must be between 1 and {MAX_CAPACITY}, got {agent.capacity}")
        )
    teams = tuple(dict.fromkeys(t.strip() for t in agent.team_ids if t.strip()))
    if not teams:
        violations.append((f"{field}.team_ids", "at least one team is required"))
    elif len(teams) > MAX_LIST or any(not _ID.fullmatch(t) for t in teams):
        violations.append(
            (f"{field}.team_ids", f"at most {MAX_LIST} ids of 1-64 letters, digits or . _ : @ -")
        )
    if len(agent.skills) > MAX_LIST or any(len(s) > 64 for s in agent.skills):
        violations.append((f"{field}.skills", f"at most {MAX_LIST} skills of at most 64 characters"))
    if violations:
        raise InvalidRequest("invalid agent", violations)
    skills = frozenset(s.strip().lower() for s in agent.skills if s.strip())
    return replace(
        agent,
        display_name=agent.display_name or agent.agent_id,
        team_ids=teams,
        skills=skills,
        destination=Destination(
            number=destination.number, sip_uri=destination.sip_uri, extension=destination.extension
        ),
    )


async def upsert_agent(
    agent: Agent,
    *,
    status_given: bool,
    uow: UnitOfWorkFactory,
    now: datetime,
    events: AvailabilityBroadcaster | None = None,
) -> tuple[Agent, bool]:
    """Create or replace a specialist; without `status_given` an existing agent keeps its status."""
    agent = validate_agent(agent)
    async with uow() as u:
        if not status_given:
            existing = await u.agents.get(agent.agent_id)
            agent = replace(agent, status=existing.status if existing else AgentStatus.AVAILABLE)
        stored, created = await u.agents.upsert(agent, now)
        freed = None
        if stored.status is AgentStatus.AVAILABLE:
            freed = await announce_freed(
                u, agent_id=stored.agent_id, team_ids=stored.team_ids, free_slots=stored.free_slots, at=now
            )
        await u.commit()
    if events is not None and freed is not None:
        events.publish_freed(freed)
    return stored, created


async def set_agent_status(
    agent_id: str,
    status: AgentStatus | None,
    *,
    uow: UnitOfWorkFactory,
    now: datetime,
    events: AvailabilityBroadcaster | None = None,
) -> Agent:
    """Change a specialist's status; NotFound for an unknown id. Becoming available announces free slots
    and starts the specialist's missed offers in a row over (back from away)."""
    violations = []
    if not agent_id:
        violations.append(("agent_id", "required"))
    if status is None:
        violations.append(("status", "required (available, busy, offline, wrap-up or away)"))
    if violations or status is None:
        raise InvalidRequest("invalid status change", violations)
    async with uow() as u:
        agent = await u.agents.set_status(agent_id, status, now)
        if agent is None:
            raise NotFound(f"no agent {agent_id!r}")
        freed = None
        if agent.status is AgentStatus.AVAILABLE:
            freed = await announce_freed(
                u, agent_id=agent.agent_id, team_ids=agent.team_ids, free_slots=agent.free_slots, at=now
            )
        await u.commit()
    if events is not None and freed is not None:
        events.publish_freed(freed)
    return agent


def activity_of(agent: Agent, held: Iterable[AssignmentRecord]) -> AgentActivityView:
    """What the specialist is doing now, from their status and their slot-holding assignments."""
    mine = [a for a in held if a.agent_id == agent.agent_id]
    return agent_activity(agent.status, mine, idle_since=agent.idle_since, status_since=agent.updated_at)


async def list_agents(
    *,
    team_id: str | None,
    status: AgentStatus | None,
    page_size: int,
    page_token: str,
    uow: UnitOfWorkFactory,
) -> tuple[list[tuple[Agent, AgentActivityView]], str]:
    """A page of agents ordered by id, each with what they are doing now, and the token of the next page
    ("" at the end)."""
    if not 0 <= page_size <= 1000:
        raise InvalidRequest("invalid page size", [("page_size", "must be between 1 and 1000 (0: 100)")])
    if page_token and not _ID.fullmatch(page_token):  # tokens are agent ids this service issued
        raise InvalidRequest("invalid page token", [("page_token", "not a token this service issued")])
    limit = page_size or 100
    async with uow() as u:
        agents = await u.agents.page(
            team_id=team_id or None, status=status, limit=limit + 1, after_id=page_token or None
        )
        more = len(agents) > limit
        agents = agents[:limit]
        held = await u.assignments.live_for_agents([a.agent_id for a in agents if a.active_assignments])
    token = agents[-1].agent_id if more and agents else ""
    return [(a, activity_of(a, held)) for a in agents], token
