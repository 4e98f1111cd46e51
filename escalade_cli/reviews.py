"""`escalade reviews list|show|complete`: post-call reviews of escalations, and supervisors' verdicts."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from escalade_cli.callbacks import TEMPORAL_OPTION, call_id_of, print_rows, run_temporal
from escalade_cli.console import console
from workflows.inputs import Verdict

__all__ = ["register"]

REVIEW_ID_HELP = "The escalated call's Vapi call id, or its review's workflow id (review-<call id>)."


def _print_review(status: Any) -> None:
    console.print(f"[bold]review of {escape(status.call_id)}[/]: {status.state}", highlight=False)
    for name, value in (
        ("team", status.team_id or "-"),
        ("specialist", status.agent_id or "-"),
        ("deadline", status.deadline.isoformat() if status.deadline else "-"),
        ("overdue", "yes" if status.overdue else "no"),
        ("verdict", status.verdict or "-"),
        ("note", status.note or "-"),
    ):
        console.print(f"[bold]{name:>10}[/]  {escape(str(value))}", highlight=False)
    if not status.findings:
        console.print("no findings")
    for finding in status.findings:
        mark = "needs review" if finding.needs_human else "info"
        console.print(f"  - {finding.rule} ({mark}): {finding.detail}", highlight=False)
    for notice in status.notices:
        outcome = "delivered" if notice.delivered else "not delivered"
        when = notice.at.isoformat(timespec="seconds") if notice.at else "-"
        who = f"{escape(notice.contact)} (step {notice.step}, {when})"
        console.print(f"  notified {who}: {outcome}, {escape(notice.detail)}", highlight=False)
    verdict_outcome = getattr(status, "outcome", "")
    if verdict_outcome:
        console.print(f"  the verdict {verdict_outcome} the decision (routing counts it per team and rule)")
    for line in getattr(status, "learned", None) or []:
        console.print(f"  learned: {escape(line)}", highlight=False)


def list_command(
    open_only: Annotated[
        bool, typer.Option("--open", help="Only reviews still running (awaiting a verdict).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    address: Annotated[str | None, TEMPORAL_OPTION] = None,
) -> None:
    """List review workflows."""
    from workflows.client import list_reviews

    rows = run_temporal("list reviews", address, lambda c: list_reviews(c, open_only=open_only, limit=limit))
    print_rows("Reviews", rows, with_state=False)


def show_command(
    call_id: Annotated[str, typer.Argument(help=REVIEW_ID_HELP)],
    address: Annotated[str | None, TEMPORAL_OPTION] = None,
) -> None:
    """Show a review's findings, deadline, verdict and the notifications it sent."""
    from workflows.client import review_findings
    from workflows.inputs import review_workflow_id

    call_id = call_id_of(call_id, review_workflow_id)
    _print_review(run_temporal(f"show review {call_id}", address, lambda c: review_findings(c, call_id)))


def complete_command(
    call_id: Annotated[str, typer.Argument(help=REVIEW_ID_HELP)],
    verdict: Annotated[Verdict, typer.Option("--verdict", help="The supervisor's verdict on the findings.")],
    note: Annotated[str, typer.Option("--note", help="What was found or changed.")] = "",
    address: Annotated[str | None, TEMPORAL_OPTION] = None,
) -> None:
    """Record a supervisor's verdict and close the review (wrong-category and should-not-have-escalated
    overturn the decision and may teach routing about the customer: policy review_learning)."""
    from workflows.client import complete_review
    from workflows.inputs import review_workflow_id

    call_id = call_id_of(call_id, review_workflow_id)
    _print_review(
        run_temporal(
            f"complete review {call_id}", address, lambda c: complete_review(c, call_id, verdict, note)
        )
    )


def register(app: typer.Typer) -> None:
    """Add `escalade reviews ...` to the application."""
    reviews = typer.Typer(help="Post-call reviews of escalations.", no_args_is_help=True)
    reviews.command("list")(list_command)
    reviews.command("show")(show_command)
    reviews.command("complete")(complete_command)
    app.add_typer(reviews, name="reviews")
