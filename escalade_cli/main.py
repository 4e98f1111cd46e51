"""`escalade`: one typer application; each area of the CLI registers its commands from its own module."""

from __future__ import annotations

import typer

from escalade_cli import (
    agents,
    callbacks,
    customers,
    dev,
    edge,
    policy,
    reviews,
    routing,
    simulate,
    status,
    vapi,
    worker,
)

app = typer.Typer(
    name="escalade",
    help="Escalade: decides who takes an escalated Vapi call, and keeps the callback promise.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Escalade: decides who takes an escalated Vapi call, and keeps the callback promise."""


for module in (
    routing,
    customers,
    agents,
    policy,
    edge,
    vapi,
    simulate,
    dev,
    worker,
    callbacks,
    reviews,
    status,
):
    module.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
