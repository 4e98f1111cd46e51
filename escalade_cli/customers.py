"""`escalade customers import FILE.csv`: load customers (number,tier,account,previous_escalations) into the
running routing service through UpsertCustomer. Every row is validated first; nothing is sent when a row is
bad, and each problem is one line naming the file, row and field.

`escalade customers show NUMBER`: one customer as routing knows them (GetCustomer): tier, account, history,
last specialist, and what reviews' verdicts taught routing about them (policy `review_learning`), each with
its expiry; the number is shown masked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from escalade_cli.console import console, fail, readable_errors
from escalade_cli.routing import ADDRESS_OPTION, RPC_TIMEOUT, routing_stub

__all__ = ["read_customers_csv", "register"]


def read_customers_csv(path: Path) -> list[Any]:
    """Validated `CustomerRecord`s (the policy loader's parser); fails with one line per problem."""
    from routing_service.policy.errors import PolicyError
    from routing_service.policy.loader import load_customers

    try:
        return list(load_customers(path))
    except PolicyError as exc:
        fail(str(exc))


def import_command(
    file: Annotated[Path, typer.Argument(help="CSV with columns number,tier,account,previous_escalations.")],
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """Import (create or update) customers from a CSV file."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

    with readable_errors(f"import {file}"):
        records = read_customers_csv(file)
        created = 0
        with routing_stub(address) as stub:
            for record in records:
                reply = stub.UpsertCustomer(
                    pb.UpsertCustomerRequest(
                        customer=pb.Customer(
                            number=record.number,
                            tier=record.tier,
                            account_name=record.account,
                            previous_escalations=record.previous_escalations,
                        )
                    ),
                    timeout=RPC_TIMEOUT,
                )
                created += int(reply.created)
    console.print(f"imported {len(records)} customers ({created} new, {len(records) - created} updated)")


def learning_rows(customer: Any, now: datetime) -> list[dict[str, Any]]:
    """The customer's learnings (a `routing_pb2.Customer`), each with whether it still applies."""
    rows = []
    for item in customer.learnings:
        expires = item.expires_at.ToDatetime(UTC) if item.HasField("expires_at") else None
        rows.append(
            {
                "kind": item.kind,
                "value": item.value,
                "category": item.category,
                "expires_at": expires.isoformat() if expires else None,
                "active": expires is not None and expires > now,
                "source_call_id": item.source_call_id,
            }
        )
    return rows


def _learning_line(row: dict[str, Any]) -> str:
    until = (
        datetime.fromisoformat(row["expires_at"]).strftime("%Y-%m-%d %H:%M UTC") if row["expires_at"] else "-"
    )
    state = f"until {until}" if row["active"] else f"expired {until}, ignored"
    source = f"review of call {row['source_call_id']}"
    if row["kind"] == "preferred-team":
        return f"preferred team {row['value']} for calls stated as {row['category']} ({source}; {state})"
    if row["kind"] == "complexity-ceiling":
        return f"complexity ceiling {row['value']} ({source}; {state})"
    return f"{row['kind']} {row['value']} ({source}; {state})"


def show_command(
    number: Annotated[str, typer.Argument(help="The customer's phone number (E.164).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """Show one customer, with what reviews taught routing about them."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.masking import mask_number

    with readable_errors("show customer"), routing_stub(address) as stub:
        customer = stub.GetCustomer(pb.GetCustomerRequest(number=number), timeout=RPC_TIMEOUT).customer
    rows = learning_rows(customer, datetime.now(UTC))
    document = {
        "number": mask_number(customer.number),
        "tier": customer.tier,
        "account": customer.account_name,
        "previous_escalations": customer.previous_escalations,
        "last_agent_id": customer.last_agent_id,
        "learned": rows,
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    for name, value in (
        ("customer", document["number"]),
        ("tier", customer.tier),
        ("account", customer.account_name or "-"),
        ("escalations", customer.previous_escalations),
        ("last specialist", customer.last_agent_id or "-"),
    ):
        console.print(f"[bold]{name:>15}[/]  {escape(str(value))}", highlight=False)
    if not rows:
        console.print(f"[bold]{'learned':>15}[/]  nothing (no review verdict taught routing about them)")
    for index, row in enumerate(rows):
        label = "learned" if index == 0 else ""
        console.print(f"[bold]{label:>15}[/]  {escape(_learning_line(row))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `escalade customers ...` to the application."""
    customers = typer.Typer(help="Customers known to the routing service.", no_args_is_help=True)
    customers.command("import")(import_command)
    customers.command("show")(show_command)
    app.add_typer(customers, name="customers")
