"""`escalade callbacks list|show|cancel|reschedule`: the callback promises kept by Temporal.

Also holds the Temporal plumbing the `reviews` commands share (`run_temporal`): connect, run one helper
from `workflows.client`, and turn every failure into one readable line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from escalade_cli.console import console, fail, literal, print_table, settings_or_fail
from workflows.inputs import CallbackPhase

__all__ = ["TEMPORAL_OPTION", "call_id_of", "print_rows", "register", "run_temporal"]

T = TypeVar("T")

CALLBACK_ID_HELP = "The Vapi call id the callback was promised on, or its workflow id (callback-<call id>)."
TEMPORAL_OPTION = typer.Option(
    "--temporal-address", help="Temporal frontend (default: ESCALADE_TEMPORAL_ADDRESS or 127.0.0.1:7233)."
)


def run_temporal(action: str, address: str | None, call: Callable[[Any], Awaitable[T]]) -> T:
    """Connect to Temporal (the `ESCALADE_TEMPORAL_*` settings every Temporal client reads; `address`
    overrides the frontend; payload keys as `temporal_data_converter_or_fail` finds them), run
    `call(client)`, and fail readably."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from escalade_cli.temporal import temporal_data_converter_or_fail
    from escalade_platform.payload_encryption import PayloadDecryptionError
    from escalade_platform.settings import TemporalConnectionSettings
    from escalade_platform.temporal_client import TemporalSettingsError, connect_temporal

    settings = settings_or_fail(
        TemporalConnectionSettings, **({"temporal_address": address} if address else {})
    )
    target = settings.temporal_address
    converter = temporal_data_converter_or_fail(settings)

    async def go() -> T:
        client = await connect_temporal(settings, data_converter=converter)
        return await call(client)

    try:
        return asyncio.run(go())
    except TemporalSettingsError as exc:
        fail(f"{action}: {exc}", code=2)
    except PayloadDecryptionError as exc:
        fail(f"{action}: {exc}")
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        fail(f"{action}: {message}")
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            fail(f"{action}: not found ({exc.message})")
        fail(f"{action}: {exc.status.name if exc.status else 'error'}: {exc.message}")
    except RuntimeError as exc:
        fail(f"{action}: Temporal is not reachable at {target} ({exc})")


def call_id_of(given: str, workflow_id: Callable[[str], str]) -> str:
    """The Vapi call id in `given`, which may be the bare call id or the workflow id `list` prints
    (`workflow_id(call_id)`, e.g. `callback-<call id>`): both name the same workflow."""
    return given.removeprefix(workflow_id(""))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value else "-"


def print_rows(title: str, rows: list[Any], *, with_state: bool) -> None:
    """A table of `workflows.client.WorkflowRow`s."""
    table = Table(title=title)
    for column in (
        "workflow id",
        "status",
        *(("state",) if with_state else ()),
        "tier",
        "category",
        "complexity",
    ):
        table.add_column(column)
    table.add_column("started")
    for row in rows:
        state = (row.callback_state,) if with_state else ()
        table.add_row(
            *literal(
                row.workflow_id,
                row.status,
                *state,
                row.tier,
                row.category,
                row.complexity,
                _when(row.started_at),
            )
        )
    print_table(table)


def _promise(status: Any) -> str:
    """ "at-risk, start by 14:05 UTC": the promise's state and deadline as routing last reported them."""
    if status.promised_by is None:
        return "-"
    return f"{status.promise_state or 'unknown'}, start by {_when(status.promised_by)}"


def _print_status(status: Any) -> None:
    lines = [
        ("call", status.call_id),
        ("state", status.state),
        ("team", status.team_id),
        ("customer", status.masked_number),
        ("position", str(status.position or "-")),
        ("attempts", f"{status.attempts}/{status.max_attempts}"),
        ("next attempt", _when(status.next_attempt_at)),
        ("widening", status.widening or "not widened"),
        ("promise", _promise(status)),
        ("specialist", status.agent_name or status.agent_id or "-"),
        ("last outcome", status.last_outcome or "-"),
        ("note", status.note or "-"),
    ]
    for name, value in lines:
        console.print(f"[bold]{name:>13}[/]  {escape(str(value))}", highlight=False)


_STATES = ", ".join(phase for phase in CallbackPhase if phase)


def list_command(
    state: Annotated[str | None, typer.Option("--state", help=f"One of: {_STATES}.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only running callbacks.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    address: Annotated[str | None, TEMPORAL_OPTION] = None,
) -> None:
    """List callback workflows with their search attributes."""
    from workflows.client import list_callbacks

    phase = None
    if state is not None:
        try:
            phase = CallbackPhase(state)
        except ValueError:
            fail(f"list callbacks: unknown state {state!r} (one of: {_STATES})", code=2)
    rows = run_temporal(
        "list callbacks", address, lambda c: list_callbacks(c, state=phase, open_only=open_only, limit=limit)
    )
    print_rows("Callbacks", rows, with_state=True)


def show_command(
    call_id: Annotated[str, typer.Argument(help=CALLBACK_ID_HELP)],
    address: Annotated[str | None, TEMPORAL_OPTION] = None,
) -> None:
    """Show a callback's state, queue position, attempts and next attempt time."""
    from workflows.client import callback_status
    from workflows.inputs import callback_workflow_id

    call_id = call_id_of(call_id, callback_workflow_id)
    _print_status(run_temporal(f"show callback {call_id}", address, lambda c: callback_status(c, call_id)))


def cancel_command(
    call_id: Annotated[str, typer.Argument(help=CALLBACK_ID_HELP)],
    note: Annotated[str, typer.Option("--note", help="Why (kept in the routing store).")] = "",
    address: Annotated[str | None, TEMPORAL_OPTION] = None,
) -> None:
    """Cancel a callback (waits until it has ended)."""
    from workflows.client import cancel_callback
    from workflows.inputs import callback_workflow_id

    call_id = call_id_of(call_id, callback_workflow_id)
    _print_status(
        run_temporal(f"cancel callback {call_id}", address, lambda c: cancel_callback(c, call_id, note))
    )


def reschedule_command(
    call_id: Annotated[str, typer.Argument(help=CALLBACK_ID_HELP)],
    at: Annotated[
        str, typer.Argument(help="Not before this time, ISO-8601 with a zone: 2026-11-24T09:30:00+01:00.")
    ],
    address: Annotated[str | None, TEMPORAL_OPTION] = None,
) -> None:
    """Do not dial before AT (business hours still apply)."""
    from workflows.client import reschedule_callback
    from workflows.inputs import callback_workflow_id

    call_id = call_id_of(call_id, callback_workflow_id)
    try:
        when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        fail(f"reschedule callback {call_id}: {at!r} is not an ISO-8601 time", code=2)
    if when.tzinfo is None:
        fail(f"reschedule callback {call_id}: {at!r} needs a time zone (e.g. +00:00 or Z)", code=2)
    _print_status(
        run_temporal(
            f"reschedule callback {call_id}", address, lambda c: reschedule_callback(c, call_id, when)
        )
    )


def register(app: typer.Typer) -> None:
    """Add `escalade callbacks ...` to the application."""
    callbacks = typer.Typer(help="Callback promises kept by Temporal.", no_args_is_help=True)
    callbacks.command("list")(list_command)
    callbacks.command("show")(show_command)
    callbacks.command("cancel")(cancel_command)
    callbacks.command("reschedule")(reschedule_command)
    app.add_typer(callbacks, name="callbacks")
