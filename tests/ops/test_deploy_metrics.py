"""What operators import (deploy/prometheus/alerts.yml, deploy/grafana/escalade.json) names only metrics that
Escalade registers, and the dashboard shows every one of them.

The registered names come from the code itself: the routing service's and the edge's prometheus_client
registries (a fresh `RoutingMetrics()` and `EdgeMetrics()`), and the worker's counters, found by reading the
`create_counter(...)` calls in `workflows/` and served through a real temporalio Prometheus exporter, so the
names are the ones a scrape of the worker shows. deploy/prometheus/prometheus.yml scrapes each process on its
default metrics port."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from routing_service.metrics import RoutingMetrics
from webhook_edge.metrics import EdgeMetrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "escalade.json"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS_MADE = frozenset({"up"})
"""Series Prometheus makes itself for every scrape target."""

_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}
_METER_CALLS = frozenset(
    {
        "create_counter",
        "create_gauge",
        "create_gauge_float",
        "create_histogram",
        "create_histogram_float",
        "create_histogram_timedelta",
    }
)
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)
_KEYWORDS |= {"inf", "nan"}


# ----------------------------------------------------------------------------------------------------------
# What the code registers
# ----------------------------------------------------------------------------------------------------------
def registry_samples(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry can expose (labelled metrics expose none until first used)."""
    names: set[str] = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in _SAMPLE_SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def worker_meter_names(folder: Path = ROOT / "workflows") -> set[str]:
    """Names passed to temporalio's `metric_meter().create_*` in the worker's code (literals or module
    constants)."""
    found: set[str] = set()
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _METER_CALLS
            ):
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
            elif isinstance(first, ast.Name) and first.id in constants:
                found.add(constants[first.id])
            else:
                pytest.fail(f"{path.name}:{node.lineno}: metric name is not a literal or module constant")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def served_worker_samples(counters: set[str]) -> set[str]:
    """The sample names a temporalio runtime's Prometheus endpoint serves for these counters."""
    address = f"127.0.0.1:{free_port()}"
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    for name in counters:
        runtime.metric_meter.create_counter(name).add(1)
    text = ""
    async with httpx.AsyncClient(timeout=2.0) as http, asyncio.timeout(10):
        while not all(name in text for name in counters):
            with contextlib.suppress(httpx.TransportError):
                text = (await http.get(f"http://{address}/metrics")).text
            await asyncio.sleep(0.05)
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#") and line.startswith("escalade_")
    }


@pytest.fixture(scope="module")
def registered() -> set[str]:
    names = registry_samples(RoutingMetrics().registry) | registry_samples(EdgeMetrics().registry)
    counters = worker_meter_names()
    assert counters, "the worker's metric_meter counters were not found in workflows/"
    return names | asyncio.run(served_worker_samples(counters))


# ----------------------------------------------------------------------------------------------------------
# What the deploy files name
# ----------------------------------------------------------------------------------------------------------
def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (Grafana's `label_values(metric, label)` and `$variables`
    allowed): identifiers that are not functions, keywords, label names or durations."""
    text = re.sub(r"label_values\(\s*([A-Za-z_:][\w:]*)[^)]*\)", r" \1 ", expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', text)  # strings (label values)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.:])[A-Za-z_:][\w:]*", text):
        name = match.group(0)
        if name.lower() in _KEYWORDS or re.match(r"\s*\(", text[match.end() :]):
            continue
        names.add(name)
    return names


def alert_expressions(path: Path = ALERTS) -> dict[str, str]:
    """`{alert name: expr}` of every rule in a Prometheus rules file."""
    document = yaml.safe_load(path.read_text())
    found: dict[str, str] = {}
    for group in document["groups"]:
        for rule in group["rules"]:
            found[rule.get("alert") or rule["record"]] = rule["expr"]
    return found


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def dashboard_expressions(path: Path = DASHBOARD) -> list[str]:
    """Every PromQL query in a Grafana dashboard: panel targets' `expr` and template variables' queries."""
    dashboard = json.loads(path.read_text())
    found = [value for key, value in _walk(dashboard) if key == "expr" and isinstance(value, str)]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        found.append(query["query"] if isinstance(query, dict) else str(query or ""))
    return [expr for expr in found if expr]


def unknown_names(expressions: list[str], registered: set[str]) -> dict[str, set[str]]:
    known = registered | PROMETHEUS_MADE
    problems = {expr: metric_names(expr) - known for expr in expressions}
    return {expr: names for expr, names in problems.items() if names}


# ----------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------
def test_metric_names_are_found_when_an_expression_has_labels_ranges_and_aggregations() -> None:
    expr = (
        "sum by (team) (rate(escalade_routing_decisions_total"
        '{kind!="fallback", team=~"$team"}[$__rate_interval]))'
        " / on (team) group_left max by (team) (escalade_routing_free_specialists offset 5m) > bool 0"
        ' and up{job="x"} == 0 or label_values(escalade_edge_outbox_depth, kind)'
    )
    assert metric_names(expr) == {
        "escalade_routing_decisions_total",
        "escalade_routing_free_specialists",
        "up",
        "escalade_edge_outbox_depth",
    }


def test_registered_names_include_each_services_metrics_when_read_from_the_code(registered: set[str]) -> None:
    assert "escalade_routing_decisions_total" in registered
    assert "escalade_routing_decision_latency_seconds_bucket" in registered
    assert "escalade_edge_outbox_depth" in registered
    assert "escalade_callbacks_reconciled" in registered


def test_alert_rules_name_only_registered_metrics_when_parsed(registered: set[str]) -> None:
    expressions = alert_expressions()
    assert len(expressions) >= 4
    assert unknown_names(list(expressions.values()), registered) == {}


def test_alert_rules_cover_routing_down_outbox_callbacks_and_fallbacks_when_parsed() -> None:
    named = set().union(*(metric_names(expr) for expr in alert_expressions().values()))
    for needed in (
        "up",
        "escalade_edge_outbox_depth",
        "escalade_routing_oldest_waiting_seconds",
        "escalade_edge_fallbacks_total",
    ):
        assert needed in named, f"no alert rule watches {needed}"


def test_dashboard_names_only_registered_metrics_when_parsed(registered: set[str]) -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    assert unknown_names(expressions, registered) == {}


def test_dashboard_shows_every_metric_the_code_registers_when_parsed(registered: set[str]) -> None:
    shown = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
    families = {re.sub(r"_(total|created|bucket|count|sum)$", "", name) for name in registered}
    shown_families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in shown}
    assert families - shown_families == set(), "add a panel for these metrics to deploy/grafana/escalade.json"


def test_a_misspelled_metric_is_reported_when_a_rules_file_names_it(
    registered: set[str], tmp_path: Path
) -> None:
    broken = tmp_path / "alerts.yml"
    broken.write_text(
        ALERTS.read_text().replace("escalade_edge_outbox_depth", "escalade_edge_outbox_dept", 1)
    )
    problems = unknown_names(list(alert_expressions(broken).values()), registered)
    assert [names for names in problems.values()] == [{"escalade_edge_outbox_dept"}]


def test_a_misspelled_metric_is_reported_when_the_dashboard_names_it(
    registered: set[str], tmp_path: Path
) -> None:
    broken = tmp_path / "escalade.json"
    broken.write_text(
        DASHBOARD.read_text().replace("escalade_routing_waiting_callbacks", "waiting_callbacks")
    )
    problems = unknown_names(dashboard_expressions(broken), registered)
    assert problems and all(names == {"waiting_callbacks"} for names in problems.values())


def test_operations_page_describes_every_metric_the_code_registers_when_read(registered: set[str]) -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    described = {
        re.sub(r"_(total|bucket|count|sum)$", "", name) for name in re.findall(r"`(escalade_\w+)", text)
    }
    families = {re.sub(r"_(total|created|bucket|count|sum)$", "", name) for name in registered}
    assert families - described == set(), "describe these metrics in docs/operations.md"


# ----------------------------------------------------------------------------------------------------------
# Where the scrape configuration points
# ----------------------------------------------------------------------------------------------------------
def test_scrape_targets_are_each_services_default_metrics_address_when_parsed() -> None:
    from routing_service.settings import RoutingSettings
    from webhook_edge.settings import EdgeSettings
    from workflows.settings import WorkerSettings

    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    defaults = {
        "escalade-routing": RoutingSettings.model_fields["metrics_port"].default,
        "escalade-edge": EdgeSettings.model_fields["edge_metrics_port"].default,
        "escalade-worker": int(WorkerSettings.model_fields["worker_metrics_address"].default.rsplit(":")[1]),
    }
    assert targets == {job: [f"127.0.0.1:{port}"] for job, port in defaults.items()}
    webhook_port = EdgeSettings.model_fields["port"].default
    assert len({*defaults.values(), webhook_port}) == 4, "every process's metrics have a port of their own"
