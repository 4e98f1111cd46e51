"""`escalade agents import|list|status|complete`: manage specialists in the running routing service.

`complete` is the people's side of CompleteAssignment: a specialist's conversation is over (Vapi never sees
it end), so they go to wrap-up and then take calls again."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from escalade_cli.console import console, fail, literal, print_table, readable_errors
from escalade_cli.routing import ADDRESS_OPTION, RPC_TIMEOUT, routing_stub

__all__ = ["activity_fields", "activity_label", "read_agents_file", "register"]


class StatusChoice(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    OFFLINE = "offline"
    WRAP_UP = "wrap-up"
    AWAY = "away"


def activity_fields(agent: Any) -> dict[str, Any]:
    """What a `pb.Agent` is doing, for JSON: activity (an `AgentActivity` value, or `unknown`), since (ISO,
    or None) and missed offers in a row."""
    from routing_service.grpc import mapping

    since = agent.activity_since.ToDatetime(UTC).isoformat() if agent.HasField("activity_since") else None
    activity = mapping.agent_activity_from_pb(agent.activity)
    return {
        "activity": str(activity) if activity is not None else "unknown",
        "activity_since": since,
        "missed_in_row": agent.missed_in_row,
    }


def activity_label(fields: dict[str, Any], status: str, now: datetime) -> str:
    """One readable phrase: "talking since 14:07 (12 min)", "away after 3 misses", "wrap-up", ..."""
    from routing_service.domain.lifecycle import AgentActivity

    activity = fields["activity"]
    since = datetime.fromisoformat(fields["activity_since"]) if fields["activity_since"] else None
    span = ""
    if since is not None:
        minutes = max(0, int((now - since).total_seconds() // 60))
        span = f" since {since:%H:%M} UTC ({minutes} min)"
    if activity in (AgentActivity.TALKING, AgentActivity.WRAP_UP, AgentActivity.RESERVED):
        return f"{activity}{span}"
    if activity == AgentActivity.AWAY:
        misses = fields["missed_in_row"]
        return f"away after {misses} missed offer{'s' if misses != 1 else ''}" if misses else "away"
    if activity == AgentActivity.UNAVAILABLE:
        return f"unavailable ({status})"
    return str(activity)


def read_agents_file(path: Path) -> list[Any]:
    """Validated `AgentRecord`s from YAML or CSV (the policy loader's parser); fails with one line per
    problem."""
    from routing_service.policy.errors import PolicyError
    from routing_service.policy.loader import load_agents

    try:
        return list(load_agents(path))
    except PolicyError as exc:
        fail(str(exc))


def import_command(
    file: Annotated[
        Path, typer.Argument(help="YAML (agents: [...]) or CSV: id,name,number,teams,skills,...")
    ],
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """Import (create or update) specialists."""
    from routing_service.grpc import mapping

    with readable_errors(f"import {file}"):
        records = read_agents_file(file)
        created = 0
        with routing_stub(address) as stub:
            from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

            for record in records:
                reply = stub.UpsertAgent(
                    pb.UpsertAgentRequest(agent=mapping.agent_to_pb(record.to_domain())), timeout=RPC_TIMEOUT
                )
                created += int(reply.created)
    console.print(f"imported {len(records)} agents ({created} new, {len(records) - created} updated)")


def list_command(
    team: Annotated[str | None, typer.Option("--team", help="Only this team's specialists.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of a table.")
    ] = False,
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """List specialists with their status, what they are doing now, and load."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from routing_service.grpc import mapping

    agents = []
    with readable_errors("list agents"), routing_stub(address) as stub:
        token = ""
        while True:
            reply = stub.ListAgents(
                pb.ListAgentsRequest(team_id=team or "", page_size=1000, page_token=token),
                timeout=RPC_TIMEOUT,
            )
            agents += [(mapping.agent_from_pb(a)[0], activity_fields(a)) for a in reply.agents]
            token = reply.next_page_token
            if not token:
                break
    if as_json:
        rows = [
            {
                "agent_id": a.agent_id,
                "display_name": a.display_name,
                "teams": list(a.team_ids),
                "status": a.status.value,
                "active_assignments": a.active_assignments,
                "capacity": a.capacity,
                **fields,
            }
            for a, fields in agents
        ]
        typer.echo(json.dumps({"agents": rows}, indent=2))
        return
    now = datetime.now(UTC)
    table = Table(title=f"Specialists{f' of {team}' if team else ''}")
    for column in (
        "id",
        "name",
        "teams",
        "skills",
        "max complexity",
        "status",
        "activity",
        "load",
        "contact",
    ):
        table.add_column(column)
    for a, fields in agents:
        contact = a.destination.number or a.destination.sip_uri or ""
        table.add_row(
            *literal(
                a.agent_id,
                a.display_name,
                ", ".join(a.team_ids),
                ", ".join(sorted(a.skills)),
                a.max_complexity.label,
                a.status.value,
                activity_label(fields, a.status.value, now),
                f"{a.active_assignments}/{a.capacity}",
                contact,
            )
        )
    print_table(table)
    console.print(f"{len(agents)} agent(s)")


def status_command(
    agent_id: Annotated[str, typer.Argument(help="The specialist's id.")],
    status: Annotated[
        StatusChoice,
        typer.Argument(help="available, busy, offline, wrap-up or away (available also clears misses)."),
    ],
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """Set a specialist's status."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from routing_service.domain.models import AgentStatus
    from routing_service.grpc import mapping

    with readable_errors(f"set status of {agent_id}"), routing_stub(address) as stub:
        reply = stub.SetAgentStatus(
            pb.SetAgentStatusRequest(
                agent_id=agent_id, status=mapping.agent_status_to_pb(AgentStatus(status.value))
            ),
            timeout=RPC_TIMEOUT,
        )
    agent = reply.agent
    console.print(f"{agent.agent_id}: {status.value} ({agent.active_assignments}/{agent.capacity} in use)")


def complete_command(
    call_or_agent: Annotated[
        str,
        typer.Argument(
            metavar="CALL_OR_AGENT", help="The Vapi call id (or, with --agent, the specialist's id)."
        ),
    ],
    agent: Annotated[
        bool,
        typer.Option(
            "--agent", help="CALL_OR_AGENT is a specialist with exactly one conversation in progress."
        ),
    ] = False,
    note: Annotated[str, typer.Option("--note", help="Free text for the audit log.")] = "",
    skip_wrap_up: Annotated[
        bool,
        typer.Option("--skip-wrap-up", help="Free the specialist now instead of after the team's wrap-up."),
    ] = False,
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """A specialist's conversation is over: wrap-up, then free for the next call."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from routing_service.domain.lifecycle import AssignmentStage
    from routing_service.grpc import mapping

    request = pb.CompleteAssignmentRequest(note=note, skip_wrap_up=skip_wrap_up)
    if agent:
        request.agent_id = call_or_agent
    else:
        request.call_id = call_or_agent
    with (
        readable_errors(f"complete {'agent ' if agent else 'call '}{call_or_agent}"),
        routing_stub(address) as stub,
    ):
        reply = stub.CompleteAssignment(request, timeout=RPC_TIMEOUT)
    assignment = reply.assignment
    stage = mapping.stage_from_pb(assignment.stage)
    who = f"{assignment.agent_id} on call {assignment.call_id}"
    if not reply.completed:
        console.print(f"{who}: already completed ({stage or 'unknown'}); nothing changed")
        return
    if stage is AssignmentStage.WRAP_UP and assignment.HasField("expires_at"):
        until = assignment.expires_at.ToDatetime(UTC)
        console.print(f"{who}: conversation completed; wrap-up until {until:%H:%M:%S} UTC, then free")
    else:
        console.print(f"{who}: conversation completed; free for the next call")


def register(app: typer.Typer) -> None:
    """Add `escalade agents ...` to the application."""
    agents = typer.Typer(help="Specialists the routing service can reserve.", no_args_is_help=True)
    agents.command("import")(import_command)
    agents.command("list")(list_command)
    agents.command("status")(status_command)
    agents.command("complete")(complete_command)
    app.add_typer(agents, name="agents")
