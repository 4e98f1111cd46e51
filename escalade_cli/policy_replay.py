"""What-if over recorded decisions: `escalade policy check CANDIDATE --replay` and `export-decisions`.

`check CANDIDATE --replay --since 24h` reads the decisions the routing service recorded in the period from
the store (opened without migrating, read only) and replays them under CANDIDATE
(`routing_service.domain.replay`): how many calls would go to a different team, which rules gain and lose
calls, each team's estimated change in load, and examples with masked caller numbers. `--replay-file`
replays an export instead. `export-decisions --since 24h > export.jsonl` writes that export: one decision
a line, with what a replay reads; caller numbers are masked and the messages and free text the caller gave
are left out.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from escalade_cli.console import console, fail, literal, print_table, readable_errors

if TYPE_CHECKING:
    from routing_service.domain.models import Decision, Policy
    from routing_service.domain.replay import PolicyDiff, TeamEffect

__all__ = [
    "Period",
    "confirm_command",
    "export_command",
    "parse_moment",
    "print_replay",
    "read_export",
    "replay_from_store",
]

PAGE = 500
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(text: str, *, now: datetime, option: str) -> datetime:
    """`24h`, `30m`, `7d` (that long before `now`) or an ISO date/time (UTC when no zone is given);
    a readable error (exit 2) naming `option` otherwise."""
    value = text.strip().lower()
    found = _DURATION.match(value)
    if found:
        return now - timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(
            f"{option}: expected a duration such as 24h, 30m or 7d, or an ISO date/time; got {text!r}", code=2
        )
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Period:
    since: datetime
    until: datetime | None

    @classmethod
    def from_options(cls, since: str | None, until: str | None) -> Period:
        now = datetime.now(UTC)
        start = parse_moment(since or "24h", now=now, option="--since")
        end = parse_moment(until, now=now, option="--until") if until else None
        if end is not None and end <= start:
            fail(f"--until ({end.isoformat()}) must be after --since ({start.isoformat()})", code=2)
        return cls(start, end)

    @property
    def length(self) -> timedelta:
        return (self.until or datetime.now(UTC)) - self.since


def require_store(url: str) -> None:
    """Exit 2 with a readable message when `url` names a SQLite file that does not exist (opening it would
    create an empty database: a replay only reads)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        fail(f"not a database URL: {url!r}", code=2)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:")
    if parsed.get_backend_name() == "sqlite" and not in_memory and not Path(database).is_file():
        fail(f"no routing store at {database} (check --database-url or ESCALADE_DATABASE_URL)", code=2)


async def recorded_decisions(url: str, period: Period) -> list[Decision]:
    """The decisions recorded in `period`, oldest first (the store opened without migrating, read only)."""
    from routing_service.store.store import Store

    store = await Store.open(url, migrate=False)
    try:
        return await _read_period(store, period)
    finally:
        await store.close()


async def _read_period(store: Any, period: Period) -> list[Decision]:
    found: list[Decision] = []
    before: str | None = None
    while True:
        async with store.uow() as u:
            page = await u.decisions.page(team_id=None, kind=None, limit=PAGE, before=before)
        for decision in page:
            if decision.decided_at < period.since:
                return found[::-1]
            if period.until is None or decision.decided_at <= period.until:
                found.append(decision)
        if len(page) < PAGE:
            return found[::-1]
        before = page[-1].decision_id


@dataclass(frozen=True, slots=True)
class TeamFacts:
    """What the store says about each team, for the load estimates."""

    handle_times: dict[str, timedelta]
    specialists: dict[str, int]


async def replay_from_store(
    url: str, period: Period, teams: Sequence[str]
) -> tuple[list[Decision], TeamFacts]:
    """The period's decisions and, for `teams`, their recent handle times and head counts."""
    from routing_service.app.promises import HANDLE_TIME_WINDOW
    from routing_service.store.store import Store

    store = await Store.open(url, migrate=False)
    try:
        decisions = await _read_period(store, period)
        handle_times: dict[str, timedelta] = {}
        specialists: dict[str, int] = {}
        since = min(period.since, (period.until or datetime.now(UTC)) - HANDLE_TIME_WINDOW)
        names = set(teams) | {d.team_id for d in decisions if d.team_id}
        async with store.uow() as u:
            for team in sorted(names):
                handle = await u.assignments.recent_handle_time(team, since)
                if handle is not None and handle > timedelta(0):
                    handle_times[team] = handle
                specialists[team] = await u.agents.count_in_team(team)
        return decisions, TeamFacts(handle_times, specialists)
    finally:
        await store.close()


def export_line(decision: Decision) -> str:
    """One export line: the decision's columns and body, caller numbers masked, messages and the caller's
    free text left out (a replay does not read them)."""
    from escalade_platform.masking import mask_number
    from routing_service.store.decisions import decision_to_body

    body = decision_to_body(decision)
    body["caller_number"] = mask_number(body["caller_number"]) if body["caller_number"] else ""
    body["caller_message"] = ""
    body["handoff_message"] = ""
    body["summary_messages"] = []
    callback = body.get("callback")
    if callback is not None:
        callback.update(
            caller_number=mask_number(callback["caller_number"]) if callback["caller_number"] else "",
            customer_context="",
            escalation_reason="",
            first_message="",
            note="",
        )
    row = {
        "decision_id": decision.decision_id,
        "call_id": decision.call_id,
        "tool_call_id": decision.tool_call_id,
        "kind": str(decision.kind),
        "team_id": decision.team_id,
        "agent_id": decision.agent_id,
        "decided_at": decision.decided_at.isoformat(),
        "body": body,
    }
    return json.dumps(row, separators=(",", ":"), sort_keys=True)


def read_export(path: Path) -> list[Decision]:
    """Decisions from an `export-decisions` file; `file:line: reason` (exit 2) on the first bad line."""
    from routing_service.store.decisions import decision_from_body

    decisions = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("body"), dict):
                raise ValueError(
                    "expected a JSON object with a body (a line of `escalade policy export-decisions`)"
                )
            decided_at = datetime.fromisoformat(data["decided_at"])
            if decided_at.tzinfo is None:
                raise ValueError("decided_at has no time zone")
            row = SimpleNamespace(**{**data, "decided_at": decided_at})
            decisions.append(decision_from_body(row))
        except json.JSONDecodeError as exc:
            fail(f"{path}:{number}: not JSON ({exc.msg})", code=2)
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            fail(f"{path}:{number}: not a recorded decision: {reason}", code=2)
    return sorted(decisions, key=lambda d: (d.decided_at, d.decision_id))


def _load(effect: TeamEffect) -> str:
    if effect.recorded_load is None or effect.candidate_load is None:
        return "?"
    return f"{effect.recorded_load:.0%} -> {effect.candidate_load:.0%}"


def _team(name: str) -> str:
    return name or "(fallback)"


def _hours(value: timedelta) -> str:
    minutes = value.total_seconds() / 60
    return f"{minutes / 60:+.1f} h" if abs(minutes) >= 90 else f"{minutes:+.0f} min"


def print_replay(
    diff: PolicyDiff,
    effects: Sequence[TeamEffect],
    *,
    candidate: Policy,
    source: str,
    examples: int,
    handle_times_from_store: bool,
    compared: str = "recorded",
) -> None:
    """The diff as `check --replay` prints it: the summary, moves, rules, team effects and examples."""
    from escalade_platform.masking import mask_number
    from routing_service.domain.replay import NOT_REPLAYED

    replayed = len(diff.replayed)
    span = (
        f"{diff.first.isoformat(timespec='minutes')} .. {diff.last.isoformat(timespec='minutes')}"
        if diff.first is not None and diff.last is not None
        else "no decisions"
    )
    console.print(
        f"replayed {replayed} recorded decision(s) from {source} ({span}) under policy {candidate.name!r}",
        highlight=False,
        soft_wrap=True,
    )
    for key, count in sorted(diff.not_replayed.items()):
        console.print(f"  not replayed: {count} ({NOT_REPLAYED[key]})", highlight=False, soft_wrap=True)
    moved = len(diff.moved)
    console.print(
        f"{moved} of {replayed} call(s) would go to a different team ({diff.moved_share:.1%}); "
        f"{sum(1 for r in diff.replayed if r.rule_changed)} would match a different rule",
        highlight=False,
        soft_wrap=True,
    )
    if diff.moves():
        table = Table(title="calls that would move")
        for column in ("from team", "to team", "calls"):
            table.add_column(column)
        for a, b, n in diff.moves():
            table.add_row(*literal(_team(a), _team(b), n))
        print_table(table)
    if diff.rule_changes():
        table = Table(title="rules that gain and lose calls")
        for column in ("rule", compared, "candidate", "change"):
            table.add_column(column)
        for rule, before, after in diff.rule_changes():
            table.add_row(*literal(rule or "(none: fallback)", before, after, f"{after - before:+d}"))
        print_table(table)
    if effects:
        table = Table(title="estimated effect on each team (estimates: see below)")
        for column in (
            "team",
            compared,
            "candidate",
            "in",
            "out",
            "handle time",
            "extra handling",
            "specialists",
            f"load ({compared} -> candidate)",
            "queued (recorded)",
            "mean wait (recorded)",
        ):
            table.add_column(column)
        for e in effects:
            table.add_row(
                *literal(
                    e.team_id,
                    e.recorded,
                    e.candidate,
                    e.moved_in,
                    e.moved_out,
                    f"{e.handle_time.total_seconds() / 60:.0f} min",
                    _hours(e.extra_handling),
                    e.specialists if e.specialists is not None else "?",
                    _load(e),
                    f"{e.queued_share:.0%}",
                    f"{e.recorded_wait.total_seconds() / 60:.0f} min" if e.recorded_wait is not None else "-",
                )
            )
        print_table(table)
        where = "the team's recent mean handle time, else" if handle_times_from_store else ""
        console.print(
            "Estimates: extra handling = change in calls x handle time "
            f"({where} the candidate's queue.default_handle_time_minutes); load = calls x handle time over "
            "the specialists' time in the period (? without a head count, as in replays of an export; over "
            "100% the team cannot keep up and callback waits keep growing); queued and mean wait are as "
            "recorded: calls moved into a team that often queued are likely to wait at least as long. "
            "Which calls would have found a specialist free cannot be replayed.",
            highlight=False,
        )
    if moved and examples > 0:
        table = Table(title=f"examples (first {min(examples, moved)} of {moved})")
        for column in (
            "decided",
            "call",
            "caller",
            "tier",
            "category",
            "complexity",
            compared,
            "candidate",
        ):
            table.add_column(column)
        for r in diff.moved[:examples]:
            d = r.decision
            table.add_row(
                *literal(
                    d.decided_at.isoformat(timespec="minutes"),
                    d.call_id,
                    mask_number(d.caller_number) if d.caller_number else "-",
                    r.tier,
                    r.category,
                    r.complexity.label,
                    f"{_team(d.team_id)} ({d.rule_id or '-'})",
                    f"{_team(r.team_id)} ({r.rule_id or '-'})",
                )
            )
        print_table(table)


def run_replay(
    candidate: Policy,
    *,
    candidate_file: Path,
    since: str | None,
    until: str | None,
    team: str | None,
    replay_file: Path | None,
    database_url: str | None,
    examples: int,
    baseline: Path | None = None,
) -> None:
    """`check --replay`: read the recorded decisions, replay them under `candidate`, print the diff."""
    from routing_service.domain.errors import EscalationError
    from routing_service.domain.replay import compare, team_effects
    from routing_service.policy.errors import PolicyError
    from routing_service.policy.loader import load_policy
    from routing_service.settings import RoutingSettings

    against = None
    if baseline is not None:
        with readable_errors(f"baseline {baseline}"):
            try:
                against = load_policy(baseline)
            except PolicyError as exc:
                fail(f"--baseline: policy rejected:\n{exc}", code=2)
    if team is not None and team not in candidate.teams:
        known = ", ".join(sorted(candidate.teams))
        fail(f"--team: no team {team!r} in {candidate_file} (teams: {known})", code=2)
    period: Period | None = None
    facts = TeamFacts({}, {})
    if replay_file is not None:
        with readable_errors(f"replay {replay_file}"):
            decisions = read_export(replay_file)
        if since is not None or until is not None:
            period = Period.from_options(since, until)
            decisions = [
                d
                for d in decisions
                if d.decided_at >= period.since and (period.until is None or d.decided_at <= period.until)
            ]
        source = str(replay_file)
    else:
        period = Period.from_options(since, until)
        url = database_url or RoutingSettings().database_url
        require_store(url)
        try:
            decisions, facts = asyncio.run(replay_from_store(url, period, list(candidate.teams)))
        except EscalationError as exc:
            fail(f"replay: the store cannot be read: {exc.message}")
        source = "the store"
    if against is not None:
        source += f", compared with policy {against.name!r} from {baseline} (not with what was recorded)"
    diff = compare(candidate, decisions, team_id=team, baseline=against)
    effects = team_effects(
        diff,
        default_handle_time=candidate.queue.default_handle_time,
        handle_times=facts.handle_times,
        specialists=facts.specialists or None,
        period=period.length if period is not None else None,
    )
    print_replay(
        diff,
        effects,
        candidate=candidate,
        source=source,
        examples=examples,
        handle_times_from_store=replay_file is None,
        compared="recorded" if against is None else "baseline",
    )
    if diff.moved:
        console.print(
            f"If the routing service's reload_guard holds this file back: escalade policy confirm "
            f"{candidate_file}",
            highlight=False,
            soft_wrap=True,
        )


def export_command(
    since: Annotated[
        str, typer.Option("--since", help="Start of the period: 24h, 30m, 7d ago, or an ISO date/time.")
    ] = "24h",
    until: Annotated[str | None, typer.Option("--until", help="End of the period (default: now).")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="The routing store (default ESCALADE_DATABASE_URL).")
    ] = None,
) -> None:
    """Write the decisions recorded in a period as JSONL on stdout, for `policy check --replay-file`.

    Read only. Caller numbers are masked; messages and the caller's free text are left out."""
    from routing_service.domain.errors import EscalationError
    from routing_service.settings import RoutingSettings

    period = Period.from_options(since, until)
    url = database_url or RoutingSettings().database_url
    require_store(url)
    try:
        decisions = asyncio.run(recorded_decisions(url, period))
    except EscalationError as exc:
        fail(f"export: the store cannot be read: {exc.message}")
    for decision in decisions:
        sys.stdout.write(export_line(decision) + "\n")
    sys.stdout.flush()


def confirm_command(
    file: Annotated[Path, typer.Argument(help="The policy file whose current content you reviewed.")],
) -> None:
    """Confirm a reviewed policy file so the routing service applies it past the policy's reload_guard.

    Writes FILE.confirmed holding the sha256 of FILE's content: a later edit of FILE needs a new
    confirmation. The policy is validated first."""
    from routing_service.policy.confirmation import confirm, confirmation_marker
    from routing_service.policy.errors import PolicyError
    from routing_service.policy.loader import load_policy

    with readable_errors(f"confirm {file}"):
        try:
            load_policy(file)
        except PolicyError as exc:
            fail(f"policy rejected:\n{exc}")
        digest = confirm(file)
    console.print(
        f"{confirmation_marker(file)}: confirmed sha256 {digest[:12]}; reload the routing service "
        "(SIGHUP, or it notices within its policy poll interval)",
        highlight=False,
        soft_wrap=True,
    )
