"""The callback queue's arithmetic: priority, service order with aging, wait estimates, business hours.

Service order. A ticket's `service_key` is fixed when it is enqueued:

    service_key = enqueued_at (epoch seconds) - priority / aging_points_per_minute * 60

Lower keys are served first. A priority point is worth 1/aging minutes of waiting, so a ticket is only
ever overtaken by tickets that arrived less than (their priority advantage / aging) minutes after it:
enterprise and critical callers go first, yet nobody starves, and the order never needs re-computing.

Business hours. `BusinessHours(timezone, days, opens, closes)` is read in its IANA time zone. When
`closes` is earlier than `opens` the shift runs overnight: it opens on a listed day and closes the next
morning (22:00-06:00 opened on Friday is open until Saturday 06:00).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from routing_service.domain.models import BusinessHours, Complexity, QueuePolicy

__all__ = [
    "callback_priority",
    "closed_until",
    "estimate_wait",
    "is_open",
    "next_opening",
    "opening_label",
    "opening_phrase",
    "overtake_window",
    "service_key",
    "wait_label",
    "wait_minutes",
    "wait_sentence",
    "wait_with_hours",
]


def callback_priority(queue: QueuePolicy, *, tier: str, complexity: Complexity) -> int:
    """Base priority points: the tier's plus the complexity's (unknown ones count 0)."""
    return int(queue.tier_priority.get(tier, 0)) + int(queue.complexity_priority.get(complexity, 0))


def service_key(enqueued_at: datetime, priority: int, aging_points_per_minute: float) -> float:
    """The queue order key (lower first): enqueue time minus the priority's head start in seconds."""
    if aging_points_per_minute <= 0 or not math.isfinite(aging_points_per_minute):
        return enqueued_at.timestamp() - priority * 1e9  # no aging: strict priority, then age
    return enqueued_at.timestamp() - (priority / aging_points_per_minute) * 60


def overtake_window(queue: QueuePolicy) -> timedelta:
    """The longest a later caller can still be served first: the priority spread divided by aging."""
    tiers = list(queue.tier_priority.values()) or [0]
    levels = list(queue.complexity_priority.values()) or [0]
    spread = (max(tiers) + max(levels)) - (min(*tiers, 0) + min(*levels, 0))
    if queue.aging_points_per_minute <= 0:
        return timedelta.max
    return timedelta(minutes=max(0, spread) / queue.aging_points_per_minute)


def estimate_wait(*, position: int, serving_agents: int, handle_time: timedelta) -> timedelta:
    """Expected wait for the caller at 1-based `position`: position x handle time / serving agents."""
    if position <= 0:
        return timedelta(0)
    return handle_time * position / max(1, serving_agents)


def wait_minutes(wait: timedelta) -> int:
    """Whole minutes, rounded up (5 min 1 s -> 6): a caller would rather wait less than announced."""
    return max(0, math.ceil(wait.total_seconds() / 60 - 1e-9))


def wait_label(wait: timedelta) -> str:
    """`6 min`: an estimated wait as every trace and screen shows it, rounded like `wait_minutes`."""
    return f"{wait_minutes(wait)} min"


def wait_sentence(queue: QueuePolicy, estimated_wait: timedelta | None, *, opens_at: str = "") -> str | None:
    """The wait announcement. For a team that is closed now (`opens_at` says when it opens, as
    `opening_phrase` words it) always the policy's closed message, since minutes until Monday morning tell a
    caller little; otherwise the wait message, only when the estimate is over the policy's threshold (the
    seed: 5 min)."""
    from routing_service.domain.decision import render  # local: decision imports this module

    minutes = str(wait_minutes(estimated_wait)) if estimated_wait is not None else ""
    if opens_at:
        return render(queue.closed_message, {"opens_at": opens_at, "estimated_wait_minutes": minutes})
    if estimated_wait is None or estimated_wait <= queue.announce_wait_over:
        return None
    return render(queue.wait_message, {"estimated_wait_minutes": minutes})


def is_open(hours: BusinessHours | None, at: datetime) -> bool:
    """Whether a team with these hours is open at `at` (None = always open; naive `at` is UTC)."""
    if hours is None:
        return True
    local = _local(hours, at)
    now, day = local.time().replace(tzinfo=None), local.weekday()
    if hours.opens < hours.closes:
        return day in hours.days and hours.opens <= now < hours.closes
    # overnight: open from `opens` on a listed day until `closes` the next morning
    return (day in hours.days and now >= hours.opens) or ((day - 1) % 7 in hours.days and now < hours.closes)


def next_opening(hours: BusinessHours | None, at: datetime) -> datetime:
    """`at` when open, else the next opening time (UTC). ValueError when the hours list no days."""
    if hours is None or is_open(hours, at):
        return at
    if not hours.days:
        raise ValueError("business hours without days never open")
    zone = ZoneInfo(hours.timezone)
    moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    start: date = _local(hours, moment).date()
    for offset in range(8):
        day = start + timedelta(days=offset)
        if day.weekday() not in hours.days:
            continue
        # Wall-clock time -> UTC; a time skipped by a DST change maps forward, as clocks do.
        candidate = datetime.combine(day, hours.opens, tzinfo=zone).astimezone(UTC)
        if candidate > moment:
            return candidate
    raise ValueError("no opening within a week")  # unreachable with at least one day


def closed_until(hours: BusinessHours | None, at: datetime) -> datetime | None:
    """When a team closed at `at` next opens (UTC); None while it is open, without hours, or with hours
    that list no day (which never open: there is nothing to wait for)."""
    if hours is None or not hours.days or is_open(hours, at):
        return None
    return next_opening(hours, at)


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def opening_phrase(hours: BusinessHours, opens: datetime) -> str:
    """When a closed team opens, as a caller would hear it, in the team's time zone: "Monday at 9:00 AM",
    "Friday at 10:30 PM" (weekday and 12-hour clock, independent of the process's locale)."""
    local = _local(hours, opens)
    hour = local.hour % 12 or 12
    return f"{_DAYS[local.weekday()]} at {hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def opening_label(hours: BusinessHours, opens: datetime) -> str:
    """When a closed team opens, for a decision's trace: "Mon 09:00 America/New_York"."""
    return f"{_local(hours, opens):%a %H:%M} {hours.timezone}"


def wait_with_hours(wait: timedelta, hours: BusinessHours | None, at: datetime) -> timedelta:
    """A queue estimate for a team that may be closed at `at`: callbacks are placed only once it opens, so a
    closed team's wait is the time until its next opening plus the queue's own estimate (see
    `closed_until` for when it is unchanged)."""
    opens = closed_until(hours, at)
    if opens is None:
        return wait
    return opens - (at if at.tzinfo is not None else at.replace(tzinfo=UTC)) + wait


def _local(hours: BusinessHours, at: datetime) -> datetime:
    moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(hours.timezone))
