"""deploy/compose.yaml and deploy/Dockerfile agree with the code they run.

Compose: the topology's services are all there (PostgreSQL, Temporal and its UI, two replicas each of
routing, edge and worker); each Escalade service runs a command the CLI has, sets only `ESCALADE_*` variables
its settings class reads (the names come from the settings classes the way scripts/gen_config_docs.py
derives them for docs/configuration.md), and its environment, built into that settings class, listens on the
ports the service exposes and its healthcheck probes, and calls routing, Temporal and PostgreSQL where those
services listen; replicas run alike and every process shares one Temporal, database and policy. Routing's
healthcheck command is run against a real routing service. Secrets are `${…}` placeholders, never literal
values.

Dockerfile: multi-stage, installs the pinned requirements.runtime.lock (the runtime part of requirements.lock,
at the same versions, without test tools) then the project (non-editable, without resolving again), copies
every package the project ships, and runs as a non-root user with `escalade` as its entry point. Each check
is shown to fail on a broken copy of the document.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from escalade_cli.main import app
from routing_service.settings import RoutingSettings
from tests.conftest import free_port
from tests.ops.ops_support import Stack
from tests.ops.test_docs import load_generator
from webhook_edge.settings import EdgeSettings
from workflows.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"

SERVICES = frozenset(
    {
        "postgres",
        "temporal",
        "temporal-ui",
        "routing-1",
        "routing-2",
        "edge-1",
        "edge-2",
        "worker-1",
        "worker-2",
    }
)
SETTINGS: dict[str, type[BaseSettings]] = {
    "routing": RoutingSettings,
    "edge": EdgeSettings,
    "worker": WorkerSettings,
}
"""Escalade's service roles (a compose service `<role>-<n>`) and the settings class each process builds."""
COMMANDS: dict[str, list[str]] = {
    "routing": ["routing", "serve"],
    "edge": ["edge", "serve"],
    "worker": ["worker"],
}
_PLACEHOLDER = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[?-])(?P<arg>[^}]*))?\}")
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PWD|API_KEY|PAYLOAD_KEYS")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


# ----------------------------------------------------------------------------------------------------------
# Reading the documents
# ----------------------------------------------------------------------------------------------------------
def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def role_of(service: str) -> str:
    """`edge-2` -> `edge`; a service without a replica number is its own role."""
    base, _, number = service.rpartition("-")
    return base if base and number.isdigit() else service


def setting_variables(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable `cls` reads, named as docs/configuration.md names it."""
    generator = load_generator()
    return {generator.env_name(cls, name, info) for name, info in cls.model_fields.items()}


def interpolate(value: str) -> str:
    """`value` as compose would pass it with no variable set: `${X:-default}` gives its default, `${X:?…}`
    (which compose refuses to leave unset) a 32-character stand-in, long enough for a routing token."""

    def replace(match: re.Match[str]) -> str:
        if match["op"] == "-":
            return match["arg"]
        return "s" * 32

    return _PLACEHOLDER.sub(replace, value)


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """`os.environ` with exactly `variables` as its `ESCALADE_*` variables."""
    with mock.patch.dict(os.environ):
        for name in [name for name in os.environ if name.upper().startswith("ESCALADE_")]:
            del os.environ[name]
        os.environ.update(variables)
        yield


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def host_of(address: str) -> str:
    return address.rpartition(":")[0]


def container_ports(service: Mapping[str, Any]) -> set[int]:
    """Ports a service listens on for the others: its `expose` list and the container side of `ports`."""
    ports = {int(str(port)) for port in service.get("expose", [])}
    ports |= {int(str(mapping).rpartition(":")[2].partition("/")[0]) for mapping in service.get("ports", [])}
    return ports


def names_of(services: Mapping[str, Any], role: str) -> set[str]:
    """The names other containers reach a role's replicas by: service names and network aliases."""
    names: set[str] = set()
    for name, service in services.items():
        if role_of(name) != role:
            continue
        names.add(name)
        networks = service.get("networks") or {}
        if isinstance(networks, dict):
            for network in networks.values():
                names.update((network or {}).get("aliases", []))
    return names


# ----------------------------------------------------------------------------------------------------------
# The checks: each returns every problem it finds (empty: the document is right)
# ----------------------------------------------------------------------------------------------------------
def listen_ports(role: str, settings: Any) -> tuple[set[str], int, set[int]]:
    """(hosts it binds, the port its healthcheck probes, every port it listens on) of a role's settings."""
    if role == "routing":
        return (
            {host_of(settings.routing_address)},
            port_of(settings.routing_address),
            {port_of(settings.routing_address), settings.metrics_port},
        )
    if role == "edge":
        return {settings.host}, settings.port, {settings.port, settings.edge_metrics_port}
    address = settings.worker_metrics_address
    return {host_of(address)}, port_of(address), {port_of(address)}


def escalade_service_problems(
    name: str, service: Mapping[str, Any], services: Mapping[str, Any]
) -> list[str]:
    role = role_of(name)
    cls = SETTINGS[role]
    problems: list[str] = []
    if service.get("command") != COMMANDS[role]:
        problems.append(f"{name}: command {service.get('command')!r}, expected {COMMANDS[role]!r}")
    raw: dict[str, str] = {key: str(value) for key, value in (service.get("environment") or {}).items()}
    known = setting_variables(cls)
    for key in sorted(raw):
        if key.startswith("ESCALADE_") and key not in known:
            problems.append(f"{name}: {key} is not a setting of {cls.__name__}")
        if _SECRET_NAME.search(key) and "${" not in raw[key]:
            problems.append(f"{name}: {key} holds a literal value, not a ${{…}} placeholder")
    url = raw.get("ESCALADE_DATABASE_URL", "")
    if url and not re.search(r"://[^:/@]+:\$\{", url):
        problems.append(f"{name}: ESCALADE_DATABASE_URL's password is not a ${{…}} placeholder")
    with environment({key: interpolate(value) for key, value in raw.items() if key in known}):
        settings: Any = cls()

    hosts, probed, ports = listen_ports(role, settings)
    if hosts & _LOOPBACK:
        problems.append(
            f"{name}: listens on loopback ({', '.join(sorted(hosts))}): no other container reaches it"
        )
    exposed = container_ports(service)
    if exposed != ports:
        problems.append(f"{name}: exposes {sorted(exposed)}, its settings listen on {sorted(ports)}")
    healthcheck = " ".join(str(part) for part in (service.get("healthcheck") or {}).get("test", []))
    if f":{probed}" not in healthcheck:
        problems.append(f"{name}: the healthcheck does not probe port {probed}: {healthcheck!r}")

    depends = service.get("depends_on") or {}
    wanted = {"postgres"}
    if role != "routing":  # the edges and workers call routing and Temporal from the start
        wanted |= {"temporal"} | (names_of(services, "routing") & set(services))
    for dependency in sorted(wanted):
        if (depends.get(dependency) or {}).get("condition") != "service_healthy":
            problems.append(f"{name}: does not wait for {dependency} to be healthy")

    database = make_url(settings.database_url)
    if (database.host, database.port or 5432) != ("postgres", 5432) or "5432" not in map(
        str, services.get("postgres", {}).get("expose", [])
    ):
        problems.append(f"{name}: ESCALADE_DATABASE_URL does not reach postgres:5432 ({database.host})")
    if role != "routing":
        routing_ports = set().union(
            *(container_ports(services[n]) for n in names_of(services, "routing") if n in services)
        )
        target = settings.routing_address
        if host_of(target) not in names_of(services, "routing") or port_of(target) not in routing_ports:
            problems.append(f"{name}: ESCALADE_ROUTING_ADDRESS {target} is not where routing listens")
        temporal = settings.temporal_address or ""
        if host_of(temporal) != "temporal" or port_of(temporal) not in container_ports(
            services.get("temporal", {})
        ):
            problems.append(f"{name}: ESCALADE_TEMPORAL_ADDRESS {temporal} is not where Temporal listens")
    if role == "worker":
        published = {str(port).partition(":")[0] for port in services.get("temporal-ui", {}).get("ports", [])}
        ui_port = str(urlsplit(settings.temporal_ui_url).port)
        if ui_port not in published:
            problems.append(
                f"{name}: ESCALADE_TEMPORAL_UI_URL's port {ui_port} is not the UI's published port"
            )
    return problems


_SHARED = re.compile(
    r"ESCALADE_(TEMPORAL_(ADDRESS|NAMESPACE|PAYLOAD_KEYS?|PAYLOAD_KEY_ID)|TASK_QUEUE|DATABASE_URL|POLICY)$"
)
"""Variables every Escalade process must be given the same value of (one Temporal, one store, one policy)."""


def consistency_problems(services: Mapping[str, Any]) -> list[str]:
    """Replicas of a role run alike, and every process shares Temporal, the database and the policy."""
    problems: list[str] = []
    shared: dict[str, dict[str, str]] = {}
    for name, service in sorted(services.items()):
        role = role_of(name)
        if role not in SETTINGS:
            continue
        first = f"{role}-1"
        for key in ("command", "environment", "expose", "healthcheck", "volumes", "image"):
            if first in services and service.get(key) != services[first].get(key):
                problems.append(f"{name}: its {key} differs from {first}'s")
        for key, value in (service.get("environment") or {}).items():
            if _SHARED.match(key):
                shared.setdefault(key, {})[name] = str(value)
    for key, values in sorted(shared.items()):
        if len(set(values.values())) > 1:
            problems.append(f"{key} differs between services: {values}")
    return problems


def compose_problems(document: Mapping[str, Any]) -> list[str]:
    services: Mapping[str, Any] = document.get("services") or {}
    problems: list[str] = []
    if set(services) != SERVICES:
        missing, unexpected = sorted(SERVICES - set(services)), sorted(set(services) - SERVICES)
        problems.append(f"services: missing {missing}, unexpected {unexpected}")
    for name, service in services.items():
        if role_of(name) in SETTINGS:
            problems += escalade_service_problems(name, service, services)
    problems += consistency_problems(services)
    for volume in (services.get("routing-1") or {}).get("volumes", []):
        source = interpolate(str(volume)).partition(":")[0]
        if source.startswith(".") and not (DEPLOY / source).exists():
            problems.append(f"routing-1: mounts {source}, which does not exist")
    return problems


def dockerfile_problems(text: str) -> list[str]:
    lines = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    problems: list[str] = []
    stages = [line for line in instructions if line.upper().startswith("FROM ")]
    if len(stages) < 2:
        problems.append(f"not multi-stage: {len(stages)} FROM")
    users = [line.split(None, 1)[1] for line in instructions if line.upper().startswith("USER ")]
    if not users or users[-1].partition(":")[0] in {"root", "0"}:
        problems.append("runs as root: no USER, or USER root, in the last stage")
    elif stages and instructions.index(f"USER {users[-1]}") < instructions.index(stages[-1]):
        problems.append("the last stage sets no USER")
    runs = [line for line in instructions if line.upper().startswith("RUN ")]
    if not any(re.search(r"pip install .*-r requirements\.runtime\.lock", run) for run in runs):
        problems.append("does not pip install -r requirements.runtime.lock")
    project = [run for run in runs if re.search(r"pip install [^&]*--no-deps [^&]*\.(\s|$)", run)]
    if not project or any(" -e " in run or "--editable" in run for run in project):
        problems.append("does not install the project non-editable with --no-deps")
    if not any(line.upper().startswith("COPY --FROM=") for line in instructions):
        problems.append("the runtime stage copies nothing from the builder")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoints = [line for line in instructions if line.upper().startswith("ENTRYPOINT ")]
    if (
        not entrypoints
        or yaml.safe_load(entrypoints[-1].split(None, 1)[1]) != ["escalade"]
        or "escalade" not in scripts
    ):
        problems.append("the entry point is not the `escalade` console script")
    copied: set[str] = set()
    for line in instructions:
        if line.upper().startswith("COPY ") and "--from=" not in line:
            sources = [word for word in line.split()[1:-1] if not word.startswith("--")]
            copied.update(source.rstrip("/") for source in sources)
    for source in sorted(copied):
        if not (ROOT / source).exists():
            problems.append(f"COPY {source}: no such path in the repository")
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    for package in packages:
        if package.rstrip("*") not in copied:
            problems.append(f"the package {package.rstrip('*')} is not copied into the image")
    return problems


# ----------------------------------------------------------------------------------------------------------
# The files as they are
# ----------------------------------------------------------------------------------------------------------
def test_the_compose_file_matches_the_settings_classes() -> None:
    assert compose_problems(load_compose()) == []


def test_the_dockerfile_is_multi_stage_non_root_and_installs_from_the_lock_file() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize("role", sorted(COMMANDS))
def test_each_compose_command_exists_in_the_cli(role: str) -> None:
    services = load_compose()["services"]
    commands = {tuple(service["command"]) for name, service in services.items() if role_of(name) == role}
    assert commands == {tuple(COMMANDS[role])}
    result = CliRunner().invoke(app, [*COMMANDS[role], "--help"])
    assert result.exit_code == 0, result.output


def test_a_command_the_cli_lacks_is_refused() -> None:
    result = CliRunner().invoke(app, ["routing", "serv", "--help"])
    assert result.exit_code != 0


async def run_routing_healthcheck(address: str) -> int:
    """Exit code of routing-1's healthcheck command, run with this Python against `address`."""
    test = load_compose()["services"]["routing-1"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"] and "127.0.0.1:50051" in test[-1]
    command = [part.replace("127.0.0.1:50051", address) for part in test[2:]]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), timeout=30)


def test_every_python_healthcheck_is_valid_python() -> None:
    snippets = {
        name: service["healthcheck"]["test"][-1]
        for name, service in load_compose()["services"].items()
        if service.get("healthcheck", {}).get("test", [])[:3] == ["CMD", "python", "-c"]
    }
    assert {role_of(name) for name in snippets} == set(SETTINGS)
    for name, snippet in snippets.items():
        compile(snippet, f"{name} healthcheck", "exec")


async def test_the_routing_healthcheck_passes_on_a_serving_routing_service(sqlite_stack: Stack) -> None:
    assert await run_routing_healthcheck(sqlite_stack.routing_address) == 0


async def test_the_routing_healthcheck_fails_when_nothing_serves() -> None:
    assert await run_routing_healthcheck(f"127.0.0.1:{free_port()}") != 0


# ----------------------------------------------------------------------------------------------------------
# The checks fail on a broken copy
# ----------------------------------------------------------------------------------------------------------
def _set(service: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target = document["services"][service]  # a copy: replicas share one mapping through a YAML anchor
        target["environment"] = {**target["environment"], key: value}

    return mutate


def _set_all(role: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        for name, service in document["services"].items():
            if role_of(name) == role:
                service["environment"] = {**service["environment"], key: value}

    return mutate


def _drop(service: str) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        del document["services"][service]

    return mutate


def _replace(service: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        document["services"][service][key] = value

    return mutate


BROKEN_COMPOSE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "misspelled variable": (_set("edge-1", "ESCALADE_EDGE_METRIC_PORT", "9466"), "ESCALADE_EDGE_METRIC_PORT"),
    "another service's variable": (
        _set("routing-2", "ESCALADE_VAPI_SECRET", "${S:?}"),
        "ESCALADE_VAPI_SECRET",
    ),
    "edge port drifts": (_set("edge-2", "ESCALADE_PORT", "3100"), "listen on [3100, 9466]"),
    "routing metrics port drifts": (_set("routing-1", "ESCALADE_METRICS_PORT", "9999"), "9999"),
    "worker metrics port drifts": (
        _set("worker-2", "ESCALADE_WORKER_METRICS_ADDRESS", "0.0.0.0:9565"),
        "9565",
    ),
    "exposed port drifts": (_replace("routing-1", "expose", ["50052", "9464"]), "exposes [9464, 50052]"),
    "listens on loopback": (
        _set("worker-1", "ESCALADE_WORKER_METRICS_ADDRESS", "127.0.0.1:9465"),
        "loopback",
    ),
    "client calls the wrong port": (
        _set("edge-1", "ESCALADE_ROUTING_ADDRESS", "routing:50052"),
        "routing listens",
    ),
    "client calls an unknown host": (
        _set("worker-1", "ESCALADE_TEMPORAL_ADDRESS", "temporal-x:7233"),
        "Temporal",
    ),
    "literal secret": (_set("edge-2", "ESCALADE_VAPI_SECRET", "hunter2hunter2"), "literal value"),
    "literal database password": (
        _set("worker-1", "ESCALADE_DATABASE_URL", "postgresql+asyncpg://escalade:pw@postgres:5432/escalade"),
        "password",
    ),
    "wrong command": (_replace("worker-2", "command", ["workers"]), "command"),
    "missing replica": (_drop("edge-2"), "missing ['edge-2']"),
    "missing temporal ui": (_drop("temporal-ui"), "missing ['temporal-ui']"),
    "no wait for routing": (
        _replace("edge-1", "depends_on", {"postgres": {"condition": "service_healthy"}}),
        "routing",
    ),
    "replica drifts": (_set("worker-2", "ESCALADE_LOG_LEVEL", "debug"), "worker-2: its environment differs"),
    "another namespace": (
        _set_all("edge", "ESCALADE_TEMPORAL_NAMESPACE", "edges"),
        "ESCALADE_TEMPORAL_NAMESPACE differs",
    ),
    "healthcheck on another port": (
        _replace("routing-2", "healthcheck", {"test": ["CMD", "probe", "127.0.0.1:50052"]}),
        "does not probe port 50051",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_COMPOSE))
def test_a_broken_compose_file_is_caught(case: str) -> None:
    mutate, expected = BROKEN_COMPOSE[case]
    document = copy.deepcopy(load_compose())
    mutate(document)
    problems = compose_problems(document)
    assert any(expected in problem for problem in problems), problems


BROKEN_DOCKERFILE: dict[str, tuple[Callable[[str], str], str]] = {
    "single stage": (
        lambda text: re.sub(r"(?m)^FROM python:3.11-slim AS runtime\n", "", text),
        "multi-stage",
    ),
    "root user": (lambda text: re.sub(r"(?m)^USER .*$", "USER root", text), "root"),
    "no user": (lambda text: re.sub(r"(?m)^USER .*$", "", text), "root"),
    "no lock file": (
        lambda text: text.replace("-r requirements.runtime.lock", "escalade"),
        "requirements.runtime.lock",
    ),
    "test lock": (
        lambda text: text.replace("requirements.runtime.lock", "requirements.lock"),
        "requirements.runtime.lock",
    ),
    "editable install": (lambda text: text.replace("--no-deps .", "--no-deps -e ."), "non-editable"),
    "resolves again": (lambda text: text.replace("--no-deps .", "."), "--no-deps"),
    "other entry point": (
        lambda text: text.replace('ENTRYPOINT ["escalade"]', 'ENTRYPOINT ["python"]'),
        "entry",
    ),
    "package left out": (lambda text: text.replace("COPY workflows ./workflows\n", ""), "workflows"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_DOCKERFILE))
def test_a_broken_dockerfile_is_caught(case: str) -> None:
    mutate, expected = BROKEN_DOCKERFILE[case]
    text = DOCKERFILE.read_text()
    broken = mutate(text)
    assert broken != text
    problems = dockerfile_problems(broken)
    assert any(expected in problem for problem in problems), problems


# ----------------------------------------------------------------------------------------------------------
# The runtime lock the image installs
# ----------------------------------------------------------------------------------------------------------
def _lock(path: Path) -> tuple[dict[str, str], dict[str, set[str]]]:
    """The pins of a `uv pip compile` lock and, per package, the packages its `# via` lines name."""
    pins: dict[str, str] = {}
    via: dict[str, set[str]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", line):
            current = match[1].lower()
            pins[current] = match[3]
            via[current] = set()
        elif current and (match := re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9_.\-]+)", line)):
            via[current].add(match[1].lower())
    return pins, via


def _requirement_name(spec: str) -> str:
    match = re.match(r"[A-Za-z0-9_.\-]+", spec)
    assert match is not None, spec
    return match[0].lower()


def test_the_runtime_lock_is_the_runtime_part_of_the_test_lock_at_the_same_versions() -> None:
    """requirements.runtime.lock holds exactly what the project's own dependencies need, as requirements.lock
    resolves them (its `# via` lines), pinned to the same versions: the image runs what the tests ran,
    without pytest, mypy, ruff or the other test tools."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test_pins, test_via = _lock(ROOT / "requirements.lock")
    runtime_pins, _ = _lock(ROOT / "requirements.runtime.lock")
    needed = {_requirement_name(spec) for spec in project["dependencies"]}
    while grown := {name for name, parents in test_via.items() if parents & needed} - needed:
        needed |= grown
    assert set(runtime_pins) == needed & set(test_pins), (
        f"missing {sorted(needed & set(test_pins) - set(runtime_pins))}, "
        f"extra {sorted(set(runtime_pins) - needed)}; regenerate with the command in its header"
    )
    assert {name: pin for name, pin in runtime_pins.items() if test_pins[name] != pin} == {}
    assert not {"pytest", "mypy", "ruff", "hypothesis", "schemathesis"} & set(runtime_pins)
