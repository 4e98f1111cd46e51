"""The policy file's `review_notifications` section: pydantic models, their cross-check against the file's
teams, and the domain `ReviewNotifications` they build.

    review_notifications:
      default:                       # teams not named under `teams`
        contacts:
          - {name: support-lead, url_env: ESCALADE_NOTIFY_SUPPORT_LEAD_URL, format: slack}
      teams:
        technical:
          escalate_after_minutes: 120   # optional; else the review's deadline
          contacts:                     # in escalation order
            - {name: tech-supervisor, url: "https://hooks.example.com/tech", format: json}
            - {name: support-manager, url_env: ESCALADE_NOTIFY_MANAGER_URL, format: slack}
"""

from __future__ import annotations

import re
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from routing_service.domain.review_notifications import (
    NoticeFormat,
    ReviewContact,
    ReviewNotifications,
    TeamNotifications,
)
from routing_service.policy.errors import Problem

__all__ = ["ReviewContactDoc", "ReviewNotificationsDoc", "TeamNotificationsDoc", "check_review_teams"]

_CONTACT_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
_HTTP_URL = re.compile(r"https?://[^\s/$.?#][^\s]{0,2000}", re.IGNORECASE)


def _contact_name(value: str) -> str:
    text = value.strip()
    if not _CONTACT_NAME.fullmatch(text):
        raise ValueError(
            f"{value[:70]!r} is not a valid contact name "
            "(lower-case letters, digits, '-', '_', '.'; at most 64)"
        )
    return text


def _http_url(value: str) -> str:
    text = value.strip()
    if not _HTTP_URL.fullmatch(text):
        raise ValueError("must be an http:// or https:// URL")
    return text


def _env_name(value: str) -> str:
    text = value.strip()
    if not _ENV_NAME.fullmatch(text):
        raise ValueError(f"{value[:70]!r} is not an environment variable name (A-Z, 0-9, _)")
    return text


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ReviewContactDoc(_Doc):
    """A webhook to notify: `url`, or `url_env` naming the worker's environment variable that holds it."""

    name: Annotated[str, Field(max_length=200), AfterValidator(_contact_name)]
    url: Annotated[str | None, Field(max_length=2048), AfterValidator(lambda v: v and _http_url(v))] = None
    url_env: Annotated[str | None, Field(max_length=200), AfterValidator(lambda v: v and _env_name(v))] = None
    format: Literal["json", "slack"] = "json"

    @model_validator(mode="after")
    def _one_url(self) -> ReviewContactDoc:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        return self

    def to_domain(self) -> ReviewContact:
        return ReviewContact(
            name=self.name, url=self.url, url_env=self.url_env, format=NoticeFormat(self.format)
        )


class TeamNotificationsDoc(_Doc):
    """Contacts in escalation order, and how long a review may wait before the next one is told."""

    contacts: Annotated[list[ReviewContactDoc], Field(min_length=1, max_length=20)]
    escalate_after_minutes: Annotated[float, Field(gt=0, le=525_600)] | None = None

    @model_validator(mode="after")
    def _distinct_names(self) -> TeamNotificationsDoc:
        names = [contact.name for contact in self.contacts]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate contact name(s): {', '.join(duplicates)}")
        return self

    def to_domain(self) -> TeamNotifications:
        return TeamNotifications(
            contacts=tuple(contact.to_domain() for contact in self.contacts),
            escalate_after=(
                timedelta(minutes=self.escalate_after_minutes)
                if self.escalate_after_minutes is not None
                else None
            ),
        )


class ReviewNotificationsDoc(_Doc):
    """The section: per team id, and a `default` for the others."""

    teams: Annotated[dict[str, TeamNotificationsDoc], Field(max_length=1000)] = Field(default_factory=dict)
    default: TeamNotificationsDoc | None = None

    def to_domain(self) -> ReviewNotifications:
        return ReviewNotifications(
            teams=MappingProxyType({team_id: team.to_domain() for team_id, team in self.teams.items()}),
            default=self.default.to_domain() if self.default is not None else None,
        )


def check_review_teams(doc: ReviewNotificationsDoc | None, teams: set[str]) -> list[Problem]:
    """Every team the section names must be one of the file's teams."""
    if doc is None:
        return []
    return [
        Problem(
            f"review_notifications.teams.{team_id}",
            f"unknown team {team_id!r}; teams are {', '.join(sorted(teams))}",
        )
        for team_id in doc.teams
        if team_id not in teams
    ]
