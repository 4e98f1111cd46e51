"""`escalade status`: one screen for the on-call engineer.

    Services          edge /healthz and /readyz, routing grpc.health.v1, Temporal reachable (UP/DOWN + why)
    Teams             waiting callbacks, free/total specialists, active calls, estimated and oldest wait,
                      uncertain decisions (and those a review found mis-categorised, 7 days), load spread,
                      callback promises kept and the estimate's accuracy
    Widening          the waiting callbacks of each team that widens, by widening step (policy `widening`)
    Review outcomes   GetReviewOutcomes: per team and rule, the last 7 days' verdicts that confirmed or
                      overturned its decisions
    Specialists       ListAgents: what each one is doing (available, reserved, talking since, wrap-up, away
                      after misses) and their load; `free_specialists` in JSON keeps the available ones
    Waiting callbacks ListCallbacks (numbers masked), and the edge's outbox depth from its /metrics (on the
                      edge's metrics port, ESCALADE_EDGE_METRICS_PORT, or --edge-metrics)

Every probe has a short timeout and its own failure: a service that is down shows DOWN with the reason,
the rest of the screen still renders, and the command exits 1. `--json` prints the same as one document.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from escalade_cli.console import console, literal, settings_or_fail
from escalade_cli.routing import client_settings

if TYPE_CHECKING:
    from escalade_platform.settings import RoutingClientSettings, TemporalConnectionSettings

__all__ = ["Probe", "StatusReport", "collect", "register"]

_DEFAULT_EDGE = "http://127.0.0.1:3000"
_DEFAULT_ROUTING = "127.0.0.1:50051"
_DEFAULT_TEMPORAL = "127.0.0.1:7233"
_DEFAULT_EDGE_METRICS_PORT = 9466


@dataclass
class Probe:
    """One service check: UP or DOWN with the reason."""

    name: str
    target: str
    up: bool
    detail: str


@dataclass
class StatusReport:
    """Everything `escalade status` shows."""

    services: list[Probe] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)
    free_specialists: list[dict[str, Any]] = field(default_factory=list)
    specialists: list[dict[str, Any]] = field(default_factory=list)
    waiting_callbacks: list[dict[str, Any]] = field(default_factory=list)
    outbox_depth: dict[str, int] | None = None
    uncertainty_counts_capped: bool = False
    """The last hour held more decisions than routing reads for the uncertainty counts."""
    review_outcomes: list[dict[str, Any]] | None = None
    """Per (team, rule), the last 7 days' verdicts that confirmed or overturned its decisions (None: routing
    did not answer GetReviewOutcomes)."""

    @property
    def healthy(self) -> bool:
        return all(p.up for p in self.services)

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "services": [asdict(p) for p in self.services],
            "teams": self.teams,
            "free_specialists": self.free_specialists,
            "specialists": self.specialists,
            "waiting_callbacks": self.waiting_callbacks,
            "outbox_depth": self.outbox_depth,
            "uncertainty_counts_capped": self.uncertainty_counts_capped,
            "review_outcomes": self.review_outcomes,
        }


def _reason(exc: BaseException) -> str:
    import grpc

    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {(exc.details() or '').strip()[:160]}"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def _seconds(duration: Any) -> float:
    return float(duration.seconds) + float(duration.nanos) / 1e9


def _age(since: datetime | None, now: datetime) -> float | None:
    return max((now - since).total_seconds(), 0.0) if since is not None else None


def edge_metrics_url(edge_url: str, port: int) -> str:
    """`http://<edge host>:<port>/metrics`: the edge serves its metrics on their own (plain HTTP) port."""
    import httpx

    return str(httpx.URL(edge_url).copy_with(scheme="http", port=port, path="/metrics", query=None))


async def _probe_edge(report: StatusReport, url: str, probe_seconds: float, metrics_url: str | None) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    base = url.rstrip("/")
    async with httpx.AsyncClient(timeout=probe_seconds) as client:
        for path, name in (("/healthz", "edge"), ("/readyz", "edge ready")):
            try:
                reply = await client.get(base + path)
            except httpx.HTTPError as exc:
                report.services.append(Probe(name, base + path, False, _reason(exc)))
                continue
            detail = reply.text[:160]
            try:
                body = reply.json()
                detail = ", ".join(f"{k}={v}" for k, v in body.items()) if isinstance(body, dict) else detail
            except ValueError:
                pass
            report.services.append(Probe(name, base + path, reply.status_code == 200, detail))
        if not metrics_url:
            return
        try:
            reply = await client.get(metrics_url)
            reply.raise_for_status()
        except httpx.HTTPError:
            return
    depth: dict[str, int] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if sample.name == "escalade_edge_outbox_depth":
                depth[sample.labels.get("kind", "")] = int(sample.value)
    report.outbox_depth = depth


async def _probe_routing(
    report: StatusReport, address: str, probe_seconds: float, client: RoutingClientSettings | None
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
    from escalade_platform.masking import mask_number
    from escalade_platform.routing_channel import routing_channel
    from escalade_platform.settings import RoutingClientSettings

    settings = client or RoutingClientSettings(routing_address=address)
    async with routing_channel(settings, address=address) as channel:
        try:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=probe_seconds
            )
        except Exception as exc:
            report.services.append(Probe("routing", address, False, _reason(exc)))
            return
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
        serving = health.status == health_pb2.HealthCheckResponse.SERVING
        report.services.append(Probe("routing", address, serving, status))
        stub = pb_grpc.RoutingServiceStub(channel)
        now = datetime.now(UTC)
        try:
            queues = await stub.GetQueueStatus(pb.GetQueueStatusRequest(), timeout=probe_seconds)
            agents = await stub.ListAgents(pb.ListAgentsRequest(page_size=1000), timeout=probe_seconds)
            callbacks = await stub.ListCallbacks(
                pb.ListCallbacksRequest(state=pb.CALLBACK_STATE_WAITING), timeout=probe_seconds
            )
        except Exception as exc:
            report.services.append(Probe("routing data", address, False, _reason(exc)))
            return
        try:  # a routing service older than this CLI has no review outcomes: the rest still shows
            outcomes = await stub.GetReviewOutcomes(pb.GetReviewOutcomesRequest(), timeout=probe_seconds)
        except Exception:
            outcomes = None
    for team in queues.teams:
        oldest = team.oldest_waiting_since.ToDatetime(UTC) if team.HasField("oldest_waiting_since") else None
        report.teams.append(
            {
                "team_id": team.team_id,
                "display_name": team.display_name,
                "waiting_callbacks": team.waiting_callbacks,
                "free_specialists": team.available_agents,
                "total_specialists": team.total_agents,
                "active_assignments": team.active_assignments,
                "estimated_wait_seconds": _seconds(team.estimated_wait),
                "oldest_waiting_seconds": _age(oldest, now),
                "closed_until": (
                    team.closed_until.ToDatetime(UTC).isoformat() if team.HasField("closed_until") else None
                ),
                "uncertain_last_hour": team.uncertain_decisions_last_hour,
                "uncertain_second_transfers_last_hour": team.uncertain_second_transfers_last_hour,
                "load_last_hour": {
                    "specialists": team.load_last_hour.specialists,
                    "escalations": team.load_last_hour.escalations,
                    "most": team.load_last_hour.most,
                    "fewest": team.load_last_hour.fewest,
                    "gini": round(team.load_last_hour.gini, 3),
                },
                "widening_steps": [
                    {"step": c.step, "label": c.label, "waiting_callbacks": c.waiting_callbacks}
                    for c in team.widening_steps
                ],
                "promises_kept_last_hour": (
                    team.promises_kept_last_hour if team.HasField("promises_kept_last_hour") else None
                ),
                "promises_kept_last_day": (
                    team.promises_kept_last_day if team.HasField("promises_kept_last_day") else None
                ),
                "promise_error_median_seconds": (
                    _seconds(team.promise_error_median) if team.HasField("promise_error_median") else None
                ),
                "promise_error_p90_seconds": (
                    _seconds(team.promise_error_p90) if team.HasField("promise_error_p90") else None
                ),
                "promise_error_samples": team.promise_error_samples,
            }
        )
    report.uncertainty_counts_capped = queues.uncertainty_counts_capped
    if outcomes is not None:
        report.review_outcomes = [
            {
                "team_id": o.team_id,
                "rule_id": o.rule_id,
                "confirmed": o.confirmed,
                "overturned": o.overturned,
                "uncertain_category_wrong": o.uncertain_category_wrong,
            }
            for o in outcomes.outcomes
        ]
        wrong: dict[str, int] = {}
        for o in outcomes.outcomes:
            wrong[o.team_id] = wrong.get(o.team_id, 0) + o.uncertain_category_wrong
        for row in report.teams:
            row["uncertain_category_wrong_7d"] = wrong.get(row["team_id"], 0)
    from escalade_cli.agents import activity_fields
    from routing_service.grpc import mapping

    for agent in agents.agents:
        row = {
            "agent_id": agent.agent_id,
            "display_name": agent.display_name,
            "teams": list(agent.team_ids),
            "free_slots": max(agent.capacity - agent.active_assignments, 0),
            "capacity": agent.capacity,
        }
        status = str(mapping.agent_status_from_pb(agent.status) or "unknown")
        report.specialists.append({**row, "status": status, **activity_fields(agent)})
        if agent.status == pb.AGENT_STATUS_AVAILABLE:
            report.free_specialists.append(row)
    for ticket in callbacks.callbacks:
        enqueued = ticket.enqueued_at.ToDatetime(UTC) if ticket.HasField("enqueued_at") else None
        report.waiting_callbacks.append(
            {
                "call_id": ticket.call_id,
                "team_id": ticket.team_id,
                "position": ticket.position,
                "priority": ticket.priority,
                "tier": ticket.tier,
                "caller": mask_number(ticket.caller_number) if ticket.caller_number else "",
                "waiting_seconds": _age(enqueued, now),
            }
        )


async def _probe_temporal(
    report: StatusReport, address: str, probe_seconds: float, settings: TemporalConnectionSettings | None
) -> None:
    from escalade_platform.settings import TemporalConnectionSettings
    from escalade_platform.temporal_client import connect_temporal

    settings = (settings or TemporalConnectionSettings()).model_copy(update={"temporal_address": address})
    try:
        async with asyncio.timeout(probe_seconds):
            await connect_temporal(settings)  # answers GetSystemInfo: the frontend is up
    except Exception as exc:
        report.services.append(Probe("temporal", address, False, _reason(exc)))
        return
    report.services.append(Probe("temporal", address, True, "reachable"))


async def collect(
    edge: str,
    routing: str,
    temporal: str | None,
    *,
    probe_seconds: float = 3.0,
    edge_metrics: str | None = None,
    temporal_settings: TemporalConnectionSettings | None = None,
    routing_client: RoutingClientSettings | None = None,
) -> StatusReport:
    """Probe every service concurrently; failures become DOWN probes, never exceptions. The outbox depth is
    read from `edge_metrics` (the edge's `/metrics` URL; None: not read). Temporal is reached at `temporal`
    with `temporal_settings`' TLS and API key, routing with `routing_client`'s TLS and token (the
    environment's when not given)."""
    report = StatusReport()
    sections = [
        _probe_edge(report, edge, probe_seconds, edge_metrics),
        _probe_routing(report, routing, probe_seconds, routing_client),
    ]
    if temporal:
        sections.append(_probe_temporal(report, temporal, probe_seconds, temporal_settings))
    results = await asyncio.gather(*sections, return_exceptions=True)
    for name, target, result in zip(
        ("edge", "routing", "temporal"), (edge, routing, temporal), results, strict=False
    ):
        if isinstance(result, BaseException):
            report.services.append(Probe(name, target or "", False, _reason(result)))
    order = {"edge": 0, "edge ready": 1, "routing": 2, "routing data": 3, "temporal": 4}
    report.services.sort(key=lambda p: order.get(p.name, 9))
    return report


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _hours(closed_until: str | None) -> str:
    """ "open", or when a closed team opens (UTC)."""
    if closed_until is None:
        return "open"
    return f"closed until {datetime.fromisoformat(closed_until):%a %H:%M} UTC"


def _uncertain(team: dict[str, Any]) -> str:
    """ "3 (1)": decisions of the last hour below the policy's confidence threshold, and after how many of
    those transfers the call was decided again; "-" when there were none."""
    uncertain = team.get("uncertain_last_hour") or 0
    return f"{uncertain} ({team.get('uncertain_second_transfers_last_hour') or 0})" if uncertain else "-"


def _load(team: dict[str, Any]) -> str:
    """ "5-1 g0.27": the most and fewest escalations any specialist of the team took in the last hour and
    the Gini coefficient of their spread; "-" when nobody took one."""
    load = team.get("load_last_hour") or {}
    if not load.get("escalations"):
        return "-"
    return f"{load['most']}-{load['fewest']} g{load['gini']:.2f}"


def _widening_table(teams: list[dict[str, Any]]) -> Table | None:
    """Waiting callbacks by widening step, for the teams whose policy widens (None when none does)."""
    rows = [(t["team_id"], c) for t in teams for c in t.get("widening_steps") or ()]
    if not rows:
        return None
    table = Table(title="Waiting callbacks by widening step", title_justify="left")
    for column in ("team", "step", "who may take them", "waiting"):
        table.add_column(column, justify="right" if column in ("step", "waiting") else "left")
    for team_id, count in rows:
        label = str(count["label"]).split(": ", 1)[-1] if count["step"] else "the team, as the rules say"
        table.add_row(*literal(team_id, str(count["step"]), label, str(count["waiting_callbacks"])))
    return table


def _kept(team: dict[str, Any]) -> str:
    """ "90% / 75%": the share of callback promises kept in the last hour / 24 hours ("-": none resolved)."""
    rates = (team.get("promises_kept_last_hour"), team.get("promises_kept_last_day"))
    return " / ".join("-" if rate is None else f"{rate:.0%}" for rate in rates)


def _signed(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return ("-" if seconds < 0 else "+") + _duration(abs(seconds))


def _accuracy(team: dict[str, Any]) -> str:
    """ "+1m30s / +4m00s": quoted minus actual wait, median / 90th percentile (+: called back early)."""
    if not team.get("promise_error_samples"):
        return "-"
    return f"{_signed(team['promise_error_median_seconds'])} / {_signed(team['promise_error_p90_seconds'])}"


def _wrong_category(team: dict[str, Any]) -> str:
    """Uncertain decisions of the last 7 days whose review said the category was wrong ("-": none, or not
    known)."""
    return str(team.get("uncertain_category_wrong_7d") or "-")


def _review_outcomes(report: StatusReport) -> None:
    if report.review_outcomes is None:
        console.print("Review outcomes: [dim]unknown (routing did not answer GetReviewOutcomes)[/]")
        return
    rows = [o for o in report.review_outcomes if o["confirmed"] or o["overturned"]]
    if not rows:
        console.print("Review outcomes (7d): no verdicts")
        return
    table = Table(title="Review outcomes (7d): verdicts on each rule's decisions", title_justify="left")
    for column in ("team", "rule", "confirmed", "overturned", "overturned %"):
        table.add_column(column, justify="left" if column in ("team", "rule") else "right")
    for o in rows:
        total = o["confirmed"] + o["overturned"]
        table.add_row(
            *literal(
                o["team_id"] or "-",
                o["rule_id"] or "-",
                str(o["confirmed"]),
                str(o["overturned"]),
                f"{100 * o['overturned'] / total:.0f}%",
            )
        )
    console.print(table)


def render(report: StatusReport) -> None:
    """The rich screen."""
    services = Table(title="Services", title_justify="left")
    for column in ("service", "target", "state", "detail"):
        services.add_column(column)
    for p in report.services:
        state = Text("UP", style="bold green") if p.up else Text("DOWN", style="bold red")
        services.add_row(*literal(p.name, p.target, state, p.detail))
    console.print(services)

    teams = Table(title="Teams", title_justify="left")
    columns = ("team", "waiting", "free / total", "active calls", "est. wait", "oldest waiting", "hours")
    for column in columns:
        teams.add_column(column, justify="left" if column in ("team", "hours") else "right")
    # How each team's calls are going: a second table, so neither wraps its headings on a normal terminal.
    quality = Table(title="Teams: decisions, load and promises", title_justify="left")
    capped = "+" if report.uncertainty_counts_capped else ""
    for column in (
        "team",
        f"uncertain 1h{capped} (2nd transfer)",
        "uncertain, wrong category 7d",
        "load 1h max-min gini",
        "kept 1h / 24h",
        "quoted-actual p50 / p90",
    ):
        quality.add_column(column, justify="left" if column == "team" else "right")
    for t in report.teams:
        teams.add_row(
            *literal(
                t["team_id"],
                str(t["waiting_callbacks"]),
                f"{t['free_specialists']} / {t['total_specialists']}",
                str(t["active_assignments"]),
                _duration(t["estimated_wait_seconds"]),
                _duration(t["oldest_waiting_seconds"]),
                _hours(t["closed_until"]),
            )
        )
        quality.add_row(
            *literal(t["team_id"], _uncertain(t), _wrong_category(t), _load(t), _kept(t), _accuracy(t))
        )
    console.print(teams if report.teams else "[dim]Teams: unknown (routing not reachable)[/]")
    if report.teams:
        console.print(quality)
    widening = _widening_table(report.teams)
    if widening is not None:
        console.print(widening)
    if report.teams:
        _review_outcomes(report)

    free = Table(title=f"Free specialists ({len(report.free_specialists)})", title_justify="left")
    for column in ("specialist", "name", "teams", "free slots"):
        free.add_column(column)
    for a in report.free_specialists:
        free.add_row(
            *literal(
                a["agent_id"], a["display_name"], ", ".join(a["teams"]), f"{a['free_slots']}/{a['capacity']}"
            )
        )
    console.print(free)

    from escalade_cli.agents import activity_label

    now = datetime.now(UTC)
    everyone = Table(title=f"Specialists ({len(report.specialists)})", title_justify="left")
    for column in ("specialist", "teams", "status", "activity", "load"):
        everyone.add_column(column)
    for a in report.specialists:
        everyone.add_row(
            *literal(
                a["agent_id"],
                ", ".join(a["teams"]),
                a["status"],
                activity_label(a, a["status"], now),
                f"{a['capacity'] - a['free_slots']}/{a['capacity']}",
            )
        )
    console.print(everyone)

    waiting = Table(title=f"Waiting callbacks ({len(report.waiting_callbacks)})", title_justify="left")
    for column in ("call id", "team", "position", "priority", "tier", "caller", "waiting"):
        waiting.add_column(column)
    for c in report.waiting_callbacks:
        waiting.add_row(
            *literal(
                c["call_id"],
                c["team_id"],
                str(c["position"]),
                str(c["priority"]),
                c["tier"],
                c["caller"],
                _duration(c["waiting_seconds"]),
            )
        )
    console.print(waiting)

    if report.outbox_depth is None:
        console.print("Outbox: [dim]unknown (edge metrics not reachable)[/]")
    else:
        parts = ", ".join(f"{kind} {count}" for kind, count in sorted(report.outbox_depth.items()))
        console.print(f"Outbox (recorded, not yet started in Temporal): {parts or 'empty'}")
    verdict = "[bold green]all services up[/]" if report.healthy else "[bold red]some services are DOWN[/]"
    console.print(verdict)


def status_command(
    edge: Annotated[
        str | None,
        typer.Option("--edge", help=f"Edge base URL (default ESCALADE_EDGE_URL or {_DEFAULT_EDGE})."),
    ] = None,
    routing: Annotated[
        str | None,
        typer.Option(
            "--routing",
            help=f"Routing gRPC address (default ESCALADE_ROUTING_ADDRESS or {_DEFAULT_ROUTING}).",
        ),
    ] = None,
    temporal: Annotated[
        str | None,
        typer.Option(
            "--temporal",
            help=f"Temporal frontend (default ESCALADE_TEMPORAL_ADDRESS or {_DEFAULT_TEMPORAL}; "
            "'none' skips it). TLS and API key: the ESCALADE_TEMPORAL_* settings.",
        ),
    ] = None,
    edge_metrics: Annotated[
        str | None,
        typer.Option(
            "--edge-metrics",
            help="The edge's metrics URL, for the outbox depth (default: the --edge host on "
            f"ESCALADE_EDGE_METRICS_PORT or {_DEFAULT_EDGE_METRICS_PORT}, /metrics; 'none' skips it).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of the screen.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per probe.", min=0.1)] = 3.0,
) -> None:
    """Services' health, teams, free specialists, waiting callbacks, outbox depth (exit 1: a service DOWN)."""
    edge_url = edge or os.environ.get("ESCALADE_EDGE_URL") or _DEFAULT_EDGE
    routing_address = routing or os.environ.get("ESCALADE_ROUTING_ADDRESS") or _DEFAULT_ROUTING
    if edge_metrics is None:
        port_setting = os.environ.get("ESCALADE_EDGE_METRICS_PORT", "").strip()
        port = int(port_setting) if port_setting.isdigit() else _DEFAULT_EDGE_METRICS_PORT
        edge_metrics = edge_metrics_url(edge_url, port) if port else "none"
    from escalade_platform.settings import TemporalConnectionSettings

    temporal_settings = settings_or_fail(TemporalConnectionSettings)
    temporal_address = temporal or temporal_settings.temporal_address or _DEFAULT_TEMPORAL
    if temporal_address.strip().lower() == "none":
        temporal_address = ""
    client = client_settings(routing_address)
    report = asyncio.run(
        collect(
            edge_url,
            routing_address,
            temporal_address or None,
            probe_seconds=timeout,
            edge_metrics=None if edge_metrics.strip().lower() == "none" else edge_metrics,
            temporal_settings=temporal_settings,
            routing_client=client,
        )
    )
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        render(report)
    if not report.healthy:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `escalade status` to the application."""
    app.command("status")(status_command)
