"""The documentation says what is true: links and named files exist, the configuration reference is the one
the settings classes generate, every policy field is described, and the README's walk-through is runnable."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from routing_service.policy.schema import PolicyDoc

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
APP_PACKAGES = ("routing_service", "webhook_edge", "workflows", "escalade_cli", "escalade_platform")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def load_generator() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_docs", ROOT / "scripts" / "gen_config_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (repeated headings get -1, -2, ... as on GitHub)."""
    text = _FENCE.sub("", path.read_text())
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in text.splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    problems: list[str] = []
    for target in _LINK.findall(_FENCE.sub("", path.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"{path.name}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{path.name}: {target} (no such heading)")
    return problems


def named_paths(path: Path) -> list[str]:
    """Repository paths written in backticks, e.g. `routing_service/app/resolve.py` or `tests/faults/`."""
    tops = {entry.name for entry in ROOT.iterdir() if not entry.name.startswith(".")}
    found = []
    for token in _CODE.findall(path.read_text()):
        if re.fullmatch(r"(?:[\w.-]+/)+[\w.-]*", token) and token.split("/")[0] in tops:
            found.append(token)
    return found


def named_modules(path: Path) -> list[str]:
    """Dotted names of Escalade's code in backticks, e.g. `routing_service.domain.lifecycle`."""
    pattern = rf"(?:{'|'.join(APP_PACKAGES)})(?:\.\w+)+"
    return [token for token in _CODE.findall(path.read_text()) if re.fullmatch(pattern, token)]


def resolves(dotted: str) -> bool:
    """An importable module, or an attribute reached from the longest importable prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            found = None
        if found is None:
            continue
        target: Any = importlib.import_module(name)
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def escalade_variables_in_code(source: str) -> set[str]:
    """`ESCALADE_*` names in a module's string literals, docstrings left out (they may show placeholders
    such as ESCALADE_X)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found |= set(re.findall(r"\bESCALADE_[A-Z0-9_]+\b", node.value))
    return found


def schema_fields(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every field name of a pydantic model and of the models nested in it."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for nested in _models_in(info.annotation):
            names |= schema_fields(nested, seen)
    return names


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_relative_links_point_at_files_and_headings_that_exist_when_a_page_is_read(path: Path) -> None:
    assert broken_links(path) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_files_named_in_a_page_exist_when_the_page_is_read(path: Path) -> None:
    missing = [name for name in named_paths(path) if not (ROOT / name).exists()]
    assert missing == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_modules_named_in_a_page_resolve_when_the_page_is_read(path: Path) -> None:
    assert [name for name in named_modules(path) if not resolves(name)] == []


def test_link_check_reports_a_missing_file_and_a_missing_heading_when_a_page_has_them(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Present heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[a](other.md#present-heading) [b](missing.md) [c](other.md#absent) [d](#local)\n# Local\n"
    )
    assert broken_links(page) == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#absent (no such heading)",
    ]


def test_configuration_reference_is_what_the_settings_classes_generate_when_regenerated() -> None:
    generator = load_generator()
    expected = generator.render()
    assert (ROOT / "docs" / "configuration.md").read_text() == expected, (
        "docs/configuration.md is stale: run .venv/bin/python scripts/gen_config_docs.py"
    )


def test_configuration_reference_lists_every_field_of_every_settings_class_when_generated() -> None:
    generator = load_generator()
    text = generator.render()
    for source in generator.SETTINGS:
        cls = generator.load(source.target)
        for name, info in cls.model_fields.items():
            assert f"`{generator.env_name(cls, name, info)}`" in text, f"{source.target}.{name}"


def test_every_escalade_variable_the_code_reads_is_documented_when_the_sources_are_scanned() -> None:
    documented = (ROOT / "docs" / "configuration.md").read_text()
    used: set[str] = set()
    for package in APP_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            used |= escalade_variables_in_code(path.read_text())
    variables = {name for name in used if not name.endswith("_")}
    assert variables, "no ESCALADE_ variable found in the code"
    assert sorted(name for name in variables if f"`{name}`" not in documented) == []


def test_policy_page_names_every_field_of_the_policy_schema_when_read() -> None:
    text = (ROOT / "docs" / "policy.md").read_text()
    quoted = " ".join(_CODE.findall(text))
    fields = schema_fields(PolicyDoc)
    assert {"more_than", "aging_points_per_minute", "min_complexity", "sip_uri"} <= fields
    assert sorted(name for name in fields if not re.search(rf"\b{name}\b", quoted)) == []


def test_readme_walkthrough_is_one_block_of_four_to_six_commands_each_saying_what_to_expect() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(
        r"<!-- walkthrough:start -->\n```bash\n(.*?)```\n<!-- walkthrough:end -->", readme, re.DOTALL
    )
    assert match, "README.md lacks the walkthrough block between its markers"
    commands = [line for line in match.group(1).splitlines() if line.strip()]
    assert 4 <= len(commands) <= 6
    assert all(re.search(r"\S\s+# expect: \S", line) for line in commands), commands


def test_every_setting_has_a_description_when_the_reference_is_generated() -> None:
    generator = load_generator()
    undescribed = [
        f"{source.target}.{name}"
        for source in generator.SETTINGS
        for name, info in generator.load(source.target).model_fields.items()
        if not generator.describe(generator.load(source.target), name, info)
    ]
    assert undescribed == [], "give these fields a docstring (the string right under the field)"
