"""requirements.lock covers pyproject.toml: every runtime and test dependency is pinned there, at a version
that the range in pyproject.toml allows, with the packages that its extras (`uvicorn[standard]`, ...) add.

scripts/dev.sh and scripts/test.sh install from the lock and then the project with `--no-deps`, so a
dependency missing from the lock would be missing from every fresh checkout.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"] + project["optional-dependencies"]["test"]]


def locked() -> dict[NormalizedName, Version]:
    pins: dict[NormalizedName, Version] = {}
    for raw in (ROOT / "requirements.lock").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"not pinned with ==: {raw!r}"
        assert canonicalize_name(name) not in pins, f"pinned twice: {name}"
        pins[canonicalize_name(name)] = Version(version.strip())
    return pins


def test_every_line_of_the_lock_pins_one_package_to_one_version() -> None:
    assert len(locked()) > len(project_requirements())


def test_every_dependency_of_pyproject_is_pinned_in_the_lock_within_its_range() -> None:
    pins = locked()
    missing = [str(req) for req in project_requirements() if canonicalize_name(req.name) not in pins]
    outside = [
        f"{req} (locked {pins[canonicalize_name(req.name)]})"
        for req in project_requirements()
        if canonicalize_name(req.name) in pins
        and not req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True)
    ]

    assert (missing, outside) == ([], [])


def test_the_packages_that_requested_extras_add_are_pinned_too() -> None:
    """`uvicorn[standard]` and `sqlalchemy[asyncio]` bring packages of their own: read from the installed
    distribution's metadata (installed from the lock), each one that applies on this platform is locked."""
    pins = locked()
    missing: list[str] = []
    for req in project_requirements():
        for extra in sorted(req.extras):
            for text in metadata.requires(req.name) or []:
                extra_req = Requirement(text)
                if extra_req.marker is None or not extra_req.marker.evaluate({"extra": extra}):
                    continue
                brought_by_the_extra = not extra_req.marker.evaluate({"extra": ""})
                if brought_by_the_extra and canonicalize_name(extra_req.name) not in pins:
                    missing.append(f"{extra_req.name} (for {req.name}[{extra}])")

    assert missing == []
    assert any(req.extras for req in project_requirements())
