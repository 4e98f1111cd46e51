"""`escalade customers import FILE.csv`: load customers (number,tier,account,previous_escalations) into the
running routing service through UpsertCustomer. Every row is validated first; nothing is sent when a row is
bad, and each problem is one line naming the file, row and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

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


def register(app: typer.Typer) -> None:
    """Add `escalade customers ...` to the application."""
    customers = typer.Typer(help="Customers known to the routing service.", no_args_is_help=True)
    customers.command("import")(import_command)
    app.add_typer(customers, name="customers")
