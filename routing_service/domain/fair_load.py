"""Fair load on scarce specialists: the caps a specialist can be at (policy `fair_load`), and how evenly a
team's escalations are spread.

Least-busy selection alone sends every critical call to whichever senior frees first. Each cap a team or
a specialist sets is checked against the specialist's figures as the store read them with the candidate
(under the reservation's lock):

    escalations per hour      reservations in the last rolling hour >= max_escalations_per_hour
                              (excess: (count + 1 - cap) / cap)
    critical cool-down        a critical call, and the specialist's last critical call was reserved less
                              than critical_cooldown ago (excess: the share of the cool-down still to run)
    consecutive critical      a critical call, and critical_in_row >= max_consecutive_critical; a non-critical
                              call, or an hour without a critical one, ends the run
                              (excess: (run + 1 - cap) / cap)

A specialist at any cap is passed over while someone under their caps qualifies; when nobody does, the one
least over (the smallest sum of excesses) is taken (`routing_service.domain.selection`). Each is a trace
step of stage "fair-load".

The spread of a team's escalations over its specialists: the most and fewest per specialist and the Gini
coefficient (0: everyone took the same; (n-1)/n: one specialist took them all).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from routing_service.domain.models import Agent, EscalationTimes, LoadCaps

__all__ = [
    "CONSECUTIVE_RUN_BREAK",
    "ESCALATIONS_WINDOW",
    "STAGE",
    "CapPassed",
    "LoadSpread",
    "caps_passed",
    "escalations_in_window",
    "gini",
    "load_spread",
]

STAGE = "fair-load"
ESCALATIONS_WINDOW = timedelta(hours=1)
"""The rolling window of the escalations-per-hour cap and of the load spread."""
CONSECUTIVE_RUN_BREAK = timedelta(hours=1)
"""A run of critical calls also ends after this long without one."""
_WINDOW_SECONDS = ESCALATIONS_WINDOW.total_seconds()


@dataclass(frozen=True, slots=True)
class CapPassed:
    """One cap the specialist is at: its name, what the figures are, and by how much (0-1+) it is over."""

    cap: str
    detail: str
    excess: float

    def describe(self) -> str:
        return f"{self.cap} {self.detail}"


def escalations_in_window(recent: EscalationTimes, now: datetime) -> int:
    """Reservations (`Agent.recent_escalations`) in the rolling hour before `now`."""
    return recent.count_after(now.timestamp() - _WINDOW_SECONDS)


def caps_passed(agent: Agent, caps: LoadCaps, *, now: datetime, critical: bool) -> tuple[CapPassed, ...]:
    """The caps `agent` is at for a call (critical or not) at `now`; empty when under all of them."""
    passed: list[CapPassed] = []
    per_hour = caps.max_escalations_per_hour
    if per_hour is not None:
        count = escalations_in_window(agent.recent_escalations, now)
        if count >= per_hour:
            excess = (count + 1 - per_hour) / per_hour if per_hour else float(count + 1)
            passed.append(CapPassed("escalations per hour", f"{count}/{per_hour} in the last hour", excess))
    last = agent.last_critical_at
    cooldown = caps.critical_cooldown
    if critical and cooldown is not None and last is not None and cooldown > timedelta(0):
        left = last + cooldown - now
        if left > timedelta(0):
            passed.append(
                CapPassed(
                    "critical cool-down",
                    f"until {_clock(last + cooldown)}"
                    f" ({_minutes(cooldown)} after the critical call at {_clock(last)})",
                    min(1.0, left / cooldown),
                )
            )
    in_row = caps.max_consecutive_critical
    if critical and in_row is not None and last is not None and now - last < CONSECUTIVE_RUN_BREAK:
        run = agent.critical_in_row
        if run >= in_row:
            excess = (run + 1 - in_row) / in_row if in_row else float(run + 1)
            passed.append(
                CapPassed("consecutive critical", f"{run}/{in_row} critical calls in a row", excess)
            )
    return tuple(passed)


def gini(values: Sequence[float]) -> float:
    """The Gini coefficient of non-negative `values`: 0 when all are equal (or all zero, or fewer than two),
    up to (n-1)/n when one holds everything. Mean absolute difference over twice the mean."""
    n = len(values)
    total = float(sum(values))
    if n < 2 or total <= 0:
        return 0.0
    if any(v < 0 for v in values):
        raise ValueError("gini of negative values")
    ranked = sorted(values)
    weighted = sum(position * value for position, value in enumerate(ranked, start=1))
    return max(0.0, (2.0 * weighted) / (n * total) - (n + 1) / n)


@dataclass(frozen=True, slots=True)
class LoadSpread:
    """How a team's escalations of the last hour are spread over its specialists."""

    specialists: int
    escalations: int
    most: int
    fewest: int
    gini: float


def load_spread(per_specialist: Iterable[int]) -> LoadSpread:
    """The spread of escalations per specialist (every specialist of the team, zeros included)."""
    counts = list(per_specialist)
    if not counts:
        return LoadSpread(specialists=0, escalations=0, most=0, fewest=0, gini=0.0)
    return LoadSpread(
        specialists=len(counts),
        escalations=sum(counts),
        most=max(counts),
        fewest=min(counts),
        gini=gini(counts),
    )


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:g} min"


def _clock(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
