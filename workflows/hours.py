"""Business hours inside workflows: the input's plain fields turned into the domain's `BusinessHours`, then
the domain's pure `is_open` / `next_opening` (deterministic, no I/O, so safe in workflow code)."""

from __future__ import annotations

from datetime import datetime, time

from routing_service.domain import queueing
from routing_service.domain.models import BusinessHours
from workflows.inputs import BusinessHoursInput

__all__ = ["is_open", "next_opening", "to_domain"]


def to_domain(hours: BusinessHoursInput) -> BusinessHours:
    """ "09:00"/"17:30" strings and a day list -> the domain's frozen `BusinessHours`."""
    return BusinessHours(
        timezone=hours.timezone,
        days=frozenset(hours.days),
        opens=time.fromisoformat(hours.opens),
        closes=time.fromisoformat(hours.closes),
    )


def is_open(hours: BusinessHoursInput, at: datetime) -> bool:
    """True when the team is open at the instant `at` (timezone-aware). Unusable hours (no days, an unknown
    time zone, a malformed time) count as always open: a promise is better kept early than never."""
    try:
        return queueing.is_open(to_domain(hours), at) or not hours.days
    except (ValueError, KeyError):
        return True


def next_opening(hours: BusinessHoursInput, at: datetime) -> datetime:
    """The next instant at or after `at` when the team opens (`at` itself for unusable hours)."""
    try:
        return queueing.next_opening(to_domain(hours), at)
    except (ValueError, KeyError):
        return at
