"""Readable errors for the CLI: every failure a user can cause ends in one clear line and exit code 1 or 2,
never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import grpc
import typer
from pydantic_settings import BaseSettings
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

err_console = Console(stderr=True)
console = Console()


def fail(message: str, code: int = 1) -> NoReturn:
    """`error: <message>` on stderr, then exit with `code`. The message is printed as it is: not read as
    rich markup (a YAML error quoting "[x]" stays literal) and not wrapped at the console's width (a path
    in it stays whole, to be copied or matched, whatever the terminal or pipe)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_or_fail(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """`cls(**overrides)` from the environment, or a readable `invalid setting ESCALADE_X: why` (exit 2)."""
    from pydantic import ValidationError

    from escalade_platform.settings import describe_settings_error

    try:
        return cls(**overrides)
    except ValidationError as exc:
        fail(describe_settings_error(cls, exc), code=2)


def print_table(table: Table) -> None:
    """Print a table on stdout: fitted to the terminal, or, when stdout is a pipe or a file, at its natural
    width, so that no cell is folded to a few characters by the 80 columns rich assumes without a terminal
    (a workflow id in `callbacks list | grep` stays whole)."""
    if console.is_terminal:
        console.print(table)
        return
    Console(file=sys.stdout, width=10_000, highlight=False, color_system=None).print(table)


def literal(*values: object) -> list[Text]:
    """Table cells shown exactly as given. A plain string cell is read as rich markup, so a trace detail such
    as "tier standard not in [enterprise]" would lose its list; `Text` cells (the few styled on purpose)
    pass through."""
    return [value if isinstance(value, Text) else Text(str(value)) for value in values]


def describe_rpc_error(error: grpc.RpcError) -> str:
    """`NOT_FOUND: no agent 'x'` plus `field: description` lines from google.rpc.BadRequest details."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    lines = [f"{code.name if code else 'ERROR'}: {details}"]
    if isinstance(error, grpc.Call):
        status = rpc_status.from_call(error)
        for detail in status.details if status else ():
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                lines += [f"  {v.field}: {v.description}" for v in bad.field_violations]
    return "\n".join(lines)


@contextmanager
def readable_errors(action: str) -> Iterator[None]:
    """Turn gRPC and file errors raised inside the block into `error: <action>: <reason>`."""
    try:
        yield
    except grpc.RpcError as exc:
        if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.UNAVAILABLE:
            fail(f"{action}: the routing service is not reachable ({exc.details()})")
        fail(f"{action}: {describe_rpc_error(exc)}")
    except FileNotFoundError as exc:
        fail(f"{action}: no such file {exc.filename}")
    except OSError as exc:
        fail(f"{action}: {exc}")
