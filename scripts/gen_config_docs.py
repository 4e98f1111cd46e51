"""Generate docs/configuration.md from the pydantic settings classes, so the page cannot drift from the code.

    python scripts/gen_config_docs.py           # rewrites docs/configuration.md
    python scripts/gen_config_docs.py --check   # exit 1 (and say why) when the page is out of date

Each settings class in `SETTINGS` becomes one section listing every field it reads, inherited ones included:
the environment variable (the class's `env_prefix` + the field name, upper case), its type, its default and
its description. The description is the field's `description=` when it has one, else the string literal
written right under the field (an attribute docstring), found in the source of the class that declares it.
`tests/ops/test_docs.py` regenerates the page and compares it with the checked-in file.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import enum
import importlib
import inspect
import itertools
import sys
import textwrap
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import FilePath, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "configuration.md"


@dataclass(frozen=True)
class Source:
    """One settings class and what reads it."""

    target: str
    """`module:Class`."""
    title: str
    reader: str
    """Which process or command builds it from the environment."""


SETTINGS: tuple[Source, ...] = (
    Source("routing_service.settings:RoutingSettings", "Routing service", "`escalade routing serve`"),
    Source("webhook_edge.settings:EdgeSettings", "Webhook edge", "`escalade edge serve`"),
    Source("workflows.settings:WorkerSettings", "Temporal worker", "`escalade worker`"),
    Source(
        "escalade_platform.settings:TemporalConnectionSettings",
        "Temporal clients of the CLI",
        "`escalade callbacks`, `escalade reviews` and `escalade status` (the edge and the worker read the "
        "same variables in their own sections)",
    ),
    Source(
        "escalade_platform.tracing:TracingSettings",
        "Tracing",
        "every served process (`escalade routing serve`, `edge serve`, `worker`)",
    ),
    Source(
        "escalade_platform.settings:RoutingClientSettings",
        "Routing clients",
        "every command that calls the routing service (`escalade agents`, `customers`, `policy explain`, "
        "`status`, `dev`); the edge, the worker and `escalade simulate` read the same fields",
    ),
    Source("escalade_cli.simulate:SimulateSettings", "`escalade simulate`", "`escalade simulate`"),
    Source("escalade_cli.vapi:VapiCliSettings", "`escalade vapi`", "`escalade vapi provision` and friends"),
    Source(
        "escalade_cli.codec_server:CodecServerSettings",
        "Codec server",
        "`escalade temporal codec-server`",
    ),
)

OTHER_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("ESCALADE_EDGE_URL", "`escalade status`", "Edge base URL it probes (default `http://127.0.0.1:3000`)."),
    (
        "ESCALADE_EDGE_METRICS_PORT",
        "`escalade status`",
        "The edge's metrics port it reads the outbox depth from, on the edge URL's host (default `9466`).",
    ),
)
"""Variables read outside a settings class: (variable, reader, description)."""


def load(target: str) -> type[BaseSettings]:
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
        raise TypeError(f"{target} is not a pydantic BaseSettings class")
    return cls


def attribute_docstrings(cls: type) -> dict[str, str]:
    """`{field: docstring}` for the string literals written right under an annotated field of `cls` itself."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    [node] = ast.parse(source).body
    assert isinstance(node, ast.ClassDef)
    found: dict[str, str] = {}
    body = node.body
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def declaring_class(cls: type[BaseSettings], name: str) -> type:
    """The class in `cls`'s MRO that declares field `name` (the nearest one that annotates it)."""
    for klass in cls.__mro__:
        if name in inspect.get_annotations(klass):
            return klass
    return cls


def describe(cls: type[BaseSettings], name: str, info: FieldInfo) -> str:
    if info.description:
        return inspect.cleandoc(info.description)
    for klass in cls.__mro__:
        if name in inspect.get_annotations(klass):
            text = attribute_docstrings(klass).get(name)
            if text:
                return text
    return ""


def type_name(annotation: Any) -> str:
    """A reader's name for a field type: `int`, `path`, `secret`, `sha256 | sha1`, `float (optional)`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # pydantic's FilePath and friends: the type, its checks aside
        base = type_name(typing.get_args(annotation)[0])
        return "path to an existing file" if annotation == FilePath else base
    if origin is dict:
        key, value = (type_name(arg) for arg in typing.get_args(annotation))
        return f"JSON object of {key} → {value}"
    if origin is list:
        return f"{type_name(typing.get_args(annotation)[0])} list"
    if origin is typing.Literal:
        return " | ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        inner = " | ".join(type_name(arg) for arg in args)
        return f"{inner} (optional)" if len(args) < len(typing.get_args(annotation)) else inner
    if isinstance(annotation, type):
        if issubclass(annotation, SecretStr):
            return "secret"
        if issubclass(annotation, Path):
            return "path"
        if issubclass(annotation, enum.Enum):
            return " | ".join(f"`{member.value}`" for member in annotation)
        return annotation.__name__
    return str(annotation)


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "(required)"
    value = info.get_default(call_default_factory=True, validated_data={})
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return "(empty)" if not value.get_secret_value() else "(set)"
    if isinstance(value, Path):
        with contextlib.suppress(ValueError):
            value = value.resolve().relative_to(ROOT)
        return f"`{value.as_posix()}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if value == "":
        return "(empty)"
    return f"`{value}`"


def bounds(info: FieldInfo) -> str:
    parts: list[str] = []
    for item in info.metadata:
        if isinstance(item, Ge):
            parts.append(f"≥ {item.ge}")
        elif isinstance(item, Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, Le):
            parts.append(f"≤ {item.le}")
        elif isinstance(item, Lt):
            parts.append(f"< {item.lt}")
        elif isinstance(item, MinLen):
            parts.append(f"at least {item.min_length} characters")
        elif isinstance(item, MaxLen):
            parts.append(f"at most {item.max_length} characters")
    return ", ".join(parts)


def env_name(cls: type[BaseSettings], name: str, info: FieldInfo) -> str:
    alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
    if alias:
        return alias.upper()
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def cell(text: str) -> str:
    """Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    classes = [(source, load(source.target)) for source in SETTINGS]
    readers: dict[str, list[str]] = {}
    sections: list[str] = []
    for source, cls in classes:
        anchor = slug(source.title)
        rows = [
            f"## {source.title}",
            "",
            f"`{source.target.replace(':', '.')}`, read by {source.reader}.",
            "",
            "| variable | type | default | description |",
            "|---|---|---|---|",
        ]
        for name, info in cls.model_fields.items():
            variable = env_name(cls, name, info)
            readers.setdefault(variable, []).append(f"[{source.title}](#{anchor})")
            kind = type_name(info.annotation)
            limits = bounds(info)
            if limits:
                kind = f"{kind} ({limits})"
            inherited = declaring_class(cls, name)
            origin = "" if inherited is cls else f" (from `{inherited.__name__}`)"
            rows.append(
                f"| `{variable}` | {cell(kind)} | {cell(default_text(info))} "
                f"| {cell(describe(cls, name, info))}{origin} |"
            )
        sections.append("\n".join(rows))
    for variable, reader, _ in OTHER_VARIABLES:
        readers.setdefault(variable, []).append(reader)

    index = ["| variable | read by |", "|---|---|"]
    index += [f"| `{variable}` | {', '.join(readers[variable])} |" for variable in sorted(readers)]
    other = ["| variable | read by | description |", "|---|---|---|"]
    other += [f"| `{variable}` | {reader} | {cell(text)} |" for variable, reader, text in OTHER_VARIABLES]
    return "\n".join(
        [
            "# Configuration",
            "",
            "<!-- Generated by scripts/gen_config_docs.py from the settings classes; do not edit. -->",
            "<!-- Regenerate with: .venv/bin/python scripts/gen_config_docs.py -->",
            "",
            "Every Escalade process reads its settings from environment variables with the prefix",
            "`ESCALADE_` (pydantic-settings; names are case-insensitive, nested fields use `__`). Every",
            "setting has a default, so a fresh checkout runs with no environment at all; `escalade dev` sets",
            "the few that tie its processes together (database file, webhook secret, addresses).",
            "Command-line options of the `escalade` commands, where they exist, win over the environment.",
            "",
            "## Index",
            "",
            *index,
            "",
            *[section + "\n" for section in sections],
            "## Read outside a settings class",
            "",
            *other,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail when docs/configuration.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python scripts/gen_config_docs.py")
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
