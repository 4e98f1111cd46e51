"""Who hears about uncertain decisions: the metrics count them by team (see
routing_service.domain.uncertainty for what makes a decision uncertain).

`resolve_escalation` tells the observers after a decision is stored (never for a dry run or a replay), so
each uncertain decision and each second transfer after one is counted once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["UncertaintyObserver", "notify_second_transfer", "notify_uncertain", "observe_uncertainty"]


class UncertaintyObserver(Protocol):
    """What the metrics hear (team "" for a decision without a team: a confirm or the fallback line)."""

    def uncertain_decision(self, team_id: str, action: str) -> None: ...
    def second_transfer(self, team_id: str) -> None: ...


_observers: list[UncertaintyObserver] = []


def observe_uncertainty(observer: UncertaintyObserver) -> Callable[[], None]:
    """Register `observer` (the routing metrics); returns the function that unregisters it."""
    _observers.append(observer)
    return lambda: _observers.remove(observer) if observer in _observers else None


def notify_uncertain(team_id: str, action: str) -> None:
    """A decision below the policy's confidence threshold was stored; `action` is what it did."""
    for observer in tuple(_observers):
        observer.uncertain_decision(team_id, action)


def notify_second_transfer(team_id: str) -> None:
    """A call whose earlier decision (to `team_id`) was uncertain needed another decision."""
    for observer in tuple(_observers):
        observer.second_transfer(team_id)
