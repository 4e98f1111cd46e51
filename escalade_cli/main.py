"""`escalade`: one typer application; each area of the CLI registers its commands from its own module."""

from __future__ import annotations

import logging
import os
import sys

import typer

from escalade_cli import (
    agents,
    callbacks,
    customers,
    decisions,
    dev,
    edge,
    policy,
    reviews,
    routing,
    simulate,
    status,
    temporal,
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
    decisions,
    agents,
    policy,
    edge,
    vapi,
    simulate,
    dev,
    worker,
    callbacks,
    reviews,
    temporal,
    status,
):
    module.register(app)


def run() -> None:
    """The `escalade` console script: the app, then, in a process that loaded Temporal's client, an exit
    that skips the interpreter's teardown. The client's Rust runtime keeps native threads that can call
    into Python while the interpreter finalises, which aborts the process ("Fatal Python error:
    PyGILState_Release", SIGABRT) after the command has done its work and printed its result; seen here in
    2 of 39 runs of the dev-server CLI tests under load (temporalio/sdk-python#300, open)."""
    try:
        app()
    except SystemExit as done:
        if not _temporal_loaded():
            raise
        code = _exit_code(done.code)
    else:  # typer exits through SystemExit; a plain return is success all the same
        if not _temporal_loaded():
            return
        code = 0
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _temporal_loaded() -> bool:
    return "temporalio.client" in sys.modules


def _exit_code(code: object) -> int:
    """What `sys.exit(code)` would make of it: None is 0, a number itself, anything else printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    run()
