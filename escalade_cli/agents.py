"""`escalade agents import|list|status`: manage specialists in the running routing service."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from escalade_cli.console import console, fail, literal, readable_errors
from escalade_cli.routing import ADDRESS_OPTION, RPC_TIMEOUT, routing_stub

__all__ = ["read_agents_file", "register"]


class StatusChoice(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    OFFLINE = "offline"
    WRAP_UP = "wrap-up"


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
            from routing_service.generated.escalade.routing.v1 import routing_pb2 as pb

            for record in records:
                reply = stub.UpsertAgent(
                    pb.UpsertAgentRequest(agent=mapping.agent_to_pb(record.to_domain())), timeout=RPC_TIMEOUT
                )
                created += int(reply.created)
    console.print(f"imported {len(records)} agents ({created} new, {len(records) - created} updated)")


def list_command(
    team: Annotated[str | None, typer.Option("--team", help="Only this team's specialists.")] = None,
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """List specialists with their status and load."""
    from routing_service.generated.escalade.routing.v1 import routing_pb2 as pb
    from routing_service.grpc import mapping

    agents = []
    with readable_errors("list agents"), routing_stub(address) as stub:
        token = ""
        while True:
            reply = stub.ListAgents(
                pb.ListAgentsRequest(team_id=team or "", page_size=1000, page_token=token),
                timeout=RPC_TIMEOUT,
            )
            agents += [mapping.agent_from_pb(a)[0] for a in reply.agents]
            token = reply.next_page_token
            if not token:
                break
    table = Table(title=f"Specialists{f' of {team}' if team else ''}")
    for column in ("id", "name", "teams", "skills", "max complexity", "status", "load", "contact"):
        table.add_column(column)
    for a in agents:
        contact = a.destination.number or a.destination.sip_uri or ""
        table.add_row(
            *literal(
                a.agent_id,
                a.display_name,
                ", ".join(a.team_ids),
                ", ".join(sorted(a.skills)),
                a.max_complexity.label,
                a.status.value,
                f"{a.active_assignments}/{a.capacity}",
                contact,
            )
        )
    console.print(table)
    console.print(f"{len(agents)} agent(s)")


def status_command(
    agent_id: Annotated[str, typer.Argument(help="The specialist's id.")],
    status: Annotated[StatusChoice, typer.Argument(help="available, busy, offline or wrap-up.")],
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """Set a specialist's status."""
    from routing_service.domain.models import AgentStatus
    from routing_service.generated.escalade.routing.v1 import routing_pb2 as pb
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


def register(app: typer.Typer) -> None:
    """Add `escalade agents ...` to the application."""
    agents = typer.Typer(help="Specialists the routing service can reserve.", no_args_is_help=True)
    agents.command("import")(import_command)
    agents.command("list")(list_command)
    agents.command("status")(status_command)
    app.add_typer(agents, name="agents")
