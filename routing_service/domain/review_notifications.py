"""Who hears about a review that needs a person: the policy's `review_notifications` section as data.

Each team (or the `default` entry, for teams the section does not name) lists its contacts in escalation
order and how long a review may wait for a verdict before the next one is told (`escalate_after`; None: the
review's own deadline). A contact is a webhook: its URL is given in the policy file (`url`) or read from an
environment variable of the worker when it sends (`url_env`), so a secret webhook URL need not be written in
the file. Plain data, no I/O: the review workflow's worker resolves and sends (`workflows.activities`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

__all__ = ["NoticeFormat", "ReviewContact", "ReviewNotifications", "TeamNotifications"]


class NoticeFormat(enum.StrEnum):
    """The body a contact's webhook receives."""

    JSON = "json"
    """Escalade's own JSON document (call, team, findings, the decision's explanation, the link)."""
    SLACK = "slack"
    """A Slack incoming-webhook message (`text` and `blocks`)."""


@dataclass(frozen=True, slots=True)
class ReviewContact:
    """One person or channel to notify, reached by an HTTP webhook."""

    name: str
    url: str | None = None
    """The webhook URL, when the policy file holds it."""
    url_env: str | None = None
    """Else the worker's environment variable holding it."""
    format: NoticeFormat = NoticeFormat.JSON


@dataclass(frozen=True, slots=True)
class TeamNotifications:
    """A team's contacts in escalation order: the first is told when a review needs a person, each next one
    when the review is still without a verdict `escalate_after` later."""

    contacts: tuple[ReviewContact, ...]
    escalate_after: timedelta | None = None
    """None: the review's deadline."""

    def contact(self, name: str) -> ReviewContact | None:
        """The contact called `name`, if the team lists one."""
        return next((c for c in self.contacts if c.name == name), None)


@dataclass(frozen=True, slots=True)
class ReviewNotifications:
    """The whole section: per team id, and a `default` for the teams it does not name."""

    teams: Mapping[str, TeamNotifications] = field(default_factory=lambda: MappingProxyType({}))
    default: TeamNotifications | None = None

    def for_team(self, team_id: str) -> TeamNotifications | None:
        """The team's own entry, else the default; None when nobody is to be notified."""
        return self.teams.get(team_id, self.default)
