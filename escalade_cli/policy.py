"""`escalade policy check FILE [--calls FILE.jsonl | --replay]`, `explain`, `export-decisions`, `confirm`.

`check` validates a policy locally; with `--calls` it also dry-runs each sample call (one JSON object per
line, fields as in ResolveEscalationRequest or the seed's camelCase tool arguments) against the store at
ESCALADE_DATABASE_URL (or --database-url) with the policy from FILE, reserving and storing nothing. With
`--replay` it replays the decisions recorded in a period (or an export of them, `--replay-file`) under FILE
and prints what would change (`escalade_cli.policy_replay`).
`explain` prints the stored decision of a call and its trace, from the running service.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.markup import escape
from rich.table import Table

from escalade_cli.console import console, fail, literal, print_table, readable_errors
from escalade_cli.routing import ADDRESS_OPTION, RPC_TIMEOUT, routing_stub

if TYPE_CHECKING:
    from routing_service.app.ports import UnitOfWorkFactory
    from routing_service.domain.models import Decision, EscalationRequest, Policy, TraceStep

__all__ = ["read_sample_calls", "register", "trace_table"]

_ALIASES = {
    "callid": "call_id",
    "toolcallid": "tool_call_id",
    "callernumber": "caller_number",
    "customernumber": "caller_number",
    "number": "caller_number",
    "issuecategory": "issue_category",
    "category": "issue_category",
    "complexity": "complexity",
    "complexitylevel": "complexity",
    "customercontext": "customer_context",
    "escalationreason": "escalation_reason",
    "transcript": "transcript",
}


@dataclass(frozen=True, slots=True)
class SampleCall:
    line: int
    request: EscalationRequest


def read_sample_calls(path: Path) -> list[SampleCall]:
    """Parse a JSONL file of sample calls; fails with `file:line: reason` on the first bad line."""
    from routing_service.domain.models import Complexity, EscalationRequest

    calls = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            fail(f"{path}:{number}: not JSON ({exc.msg})")
        if not isinstance(data, dict):
            fail(f"{path}:{number}: expected a JSON object")
        fields: dict[str, Any] = {}
        for key, value in data.items():
            name = _ALIASES.get(str(key).replace("_", "").lower())
            if name is None:
                continue
            if not isinstance(value, str):
                fail(f"{path}:{number}: {key}: expected a string")
            fields[name] = value
        claimed = None
        if fields.get("complexity"):
            try:
                claimed = Complexity.parse(fields["complexity"])
            except ValueError:
                fail(f"{path}:{number}: complexity: unknown level {fields['complexity']!r}")
        calls.append(
            SampleCall(
                number,
                EscalationRequest(
                    call_id=fields.get("call_id", f"sample-{number}"),
                    tool_call_id=fields.get("tool_call_id", ""),
                    caller_number=fields.get("caller_number", ""),
                    issue_category=fields.get("issue_category", ""),
                    claimed_complexity=claimed,
                    customer_context=fields.get("customer_context", ""),
                    escalation_reason=fields.get("escalation_reason", ""),
                    transcript=fields.get("transcript", ""),
                    dry_run=True,
                ),
            )
        )
    return calls


async def _dry_run(
    policy: Policy,
    calls: list[SampleCall],
    database_url: str,
    *,
    customers: list[Any] = (),  # type: ignore[assignment]
    agents: list[Any] = (),  # type: ignore[assignment]
) -> list[Decision]:
    from routing_service.app.agents import upsert_agent
    from routing_service.app.customers import upsert_customer
    from routing_service.app.resolve import resolve_escalation
    from routing_service.store.store import Store

    store = await Store.open(database_url)
    uow = cast("UnitOfWorkFactory", store.uow)
    try:
        now = datetime.now(UTC)
        for customer in customers:
            await upsert_customer(customer.to_domain(), uow=uow, now=now)
        for agent in agents:
            await upsert_agent(agent.to_domain(), status_given=True, uow=uow, now=now)
        return [await resolve_escalation(c.request, uow=uow, policy=policy, now=now) for c in calls]
    finally:
        await store.close()


def _destination(decision: Decision) -> str:
    d = decision.destination
    target = d.number or d.sip_uri or ""
    return f"{target} x{d.extension}" if d.extension else target


def check_command(
    file: Annotated[Path, typer.Argument(help="The policy YAML to validate.")],
    calls: Annotated[
        Path | None, typer.Option("--calls", help="JSONL sample calls to dry-run against the policy.")
    ] = None,
    customers: Annotated[
        Path | None,
        typer.Option("--customers", help="Customers CSV to dry-run with (in a scratch store)."),
    ] = None,
    agents: Annotated[
        Path | None, typer.Option("--agents", help="Agents YAML/CSV to dry-run with (in a scratch store).")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="Store for customers/agents or --replay (default ESCALADE_DATABASE_URL)."
        ),
    ] = None,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay", help="Replay the decisions recorded in a period under FILE and show the diff."
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="--replay: start of the period (24h, 30m, 7d ago, or ISO; default 24h)."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="--replay: end of the period (default: now).")
    ] = None,
    team: Annotated[
        str | None, typer.Option("--team", help="--replay: only calls recorded for or moved into this team.")
    ] = None,
    replay_file: Annotated[
        Path | None,
        typer.Option("--replay-file", help="--replay from an `escalade policy export-decisions` file."),
    ] = None,
    examples: Annotated[
        int, typer.Option("--examples", min=0, max=1000, help="--replay: moved calls to show.")
    ] = 10,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="--replay: compare with this policy's decisions instead of the recorded ones (what the "
            "routing service's reload_guard judges when FILE replaces it).",
        ),
    ] = None,
) -> None:
    """Validate a policy file; with --calls, show the decision each sample call would get; with --replay,
    what FILE would change over the decisions recorded in a period.

    The dry run reads customers and agents from ESCALADE_DATABASE_URL (or --database-url), or, when
    --customers/--agents are given, from a scratch store holding just those files. Nothing is reserved.
    The replay only reads the store (or the --replay-file export)."""
    from escalade_platform.masking import mask_number
    from routing_service.domain.errors import EscalationError
    from routing_service.policy.errors import PolicyError
    from routing_service.policy.loader import load_agents, load_customers, load_policy
    from routing_service.settings import RoutingSettings

    with readable_errors(f"check {file}"):
        try:
            policy = load_policy(file)
        except PolicyError as exc:
            fail(f"policy rejected:\n{exc}")
        console.print(
            f"{file}: OK: policy {policy.name!r}, {len(policy.teams)} teams, {len(policy.rules)} rules"
        )
        replaying = replay or replay_file is not None
        if replaying and calls is not None:
            fail(
                "--replay and --calls cannot be combined: replay recorded decisions or dry-run samples",
                code=2,
            )
        if not replaying and (since, until, team, baseline) != (None, None, None, None):
            fail("--since, --until, --team and --baseline need --replay", code=2)
        if replaying:
            from escalade_cli.policy_replay import run_replay

            run_replay(
                policy,
                candidate_file=file,
                since=since,
                until=until,
                team=team,
                replay_file=replay_file,
                database_url=database_url,
                examples=examples,
                baseline=baseline,
            )
            return
        if calls is None:
            return
        samples = read_sample_calls(calls)
        with tempfile.TemporaryDirectory(prefix="escalade-dry-run-") as scratch:
            if customers is not None or agents is not None:
                url = f"sqlite+aiosqlite:///{Path(scratch) / 'dry-run.db'}"
            else:
                url = database_url or RoutingSettings().database_url
            try:
                decisions = asyncio.run(
                    _dry_run(
                        policy,
                        samples,
                        url,
                        customers=load_customers(customers) if customers else [],
                        agents=load_agents(agents) if agents else [],
                    )
                )
            except PolicyError as exc:
                fail(str(exc))
            except EscalationError as exc:
                fail(f"dry run: {exc.message}")
    table = Table(title=f"Dry run of {calls} with {file}")
    for column in ("line", "caller", "tier", "category", "complexity", "rule", "decision", "team", "to"):
        table.add_column(column)
    for sample, decision in zip(samples, decisions, strict=True):
        who = decision.agent_id or ""
        table.add_row(
            *literal(
                sample.line,
                mask_number(decision.caller_number) if decision.caller_number else "-",
                decision.tier,
                decision.issue_category,
                decision.effective_complexity.label,
                decision.rule_id or "-",
                decision.kind.value + (f" ({who})" if who else ""),
                decision.team_id or "-",
                _destination(decision),
            )
        )
    print_table(table)


def explain_command(
    call_id: Annotated[str, typer.Argument(help="The Vapi call id.")],
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """Show the stored decision of a call and why it was taken (the trace)."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from routing_service.grpc import mapping

    with readable_errors(f"explain {call_id}"), routing_stub(address) as stub:
        reply = stub.GetDecision(pb.GetDecisionRequest(call_id=call_id), timeout=RPC_TIMEOUT)
    d = mapping.decision_from_pb(reply.decision)
    for line in explain_lines(d):
        console.print(line, highlight=False)
    print_table(trace_table(d.trace))


def explain_lines(d: Decision) -> list[str]:
    """The lines `escalade policy explain` prints above the trace (rich markup, values escaped). The
    estimated wait is worded by `wait_label`, as the trace's queue step words it, so both say the same."""
    from routing_service.domain.queueing import wait_label

    target = f"{d.team_id or '-'}" + (f" / specialist {d.agent_id}" if d.agent_id else "")
    lines = [
        f"[bold]call {escape(d.call_id)}[/]: {d.kind.value} -> {escape(target)} at {_destination(d)}",
        f"decided {d.decided_at.isoformat(timespec='seconds')}: tier {d.tier}, category {d.issue_category}, "
        f"complexity {d.effective_complexity.label}, rule {d.rule_id or '-'}",
        f"why: {escape(d.reason)}",
    ]
    if d.estimated_wait is not None:
        lines.append(f"estimated wait: {wait_label(d.estimated_wait)}")
    return lines


def trace_table(trace: Sequence[TraceStep]) -> Table:
    """A decision's trace as `escalade policy explain` shows it, one row a step, each cell literal."""
    table = Table(title="trace")
    for column in ("#", "stage", "subject", "outcome", "detail"):
        table.add_column(column)
    for index, step in enumerate(trace, start=1):
        table.add_row(*literal(index, step.stage, step.subject, step.outcome.value, step.detail))
    return table


def register(app: typer.Typer) -> None:
    """Add `escalade policy ...` to the application."""
    from escalade_cli.policy_replay import confirm_command, export_command

    policy = typer.Typer(
        help="Routing policy: validate, dry-run, replay recorded decisions, explain.", no_args_is_help=True
    )
    policy.command("check")(check_command)
    policy.command("explain")(explain_command)
    policy.command("export-decisions")(export_command)
    policy.command("confirm")(confirm_command)
    app.add_typer(policy, name="policy")
