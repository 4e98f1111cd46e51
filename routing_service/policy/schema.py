"""Pydantic (v2) models of the policy YAML and of the customer/agent import rows.

These models check shape and per-field rules (types, E.164 numbers, complexity names, time zones, ranges);
`loader` adds the cross-checks (rules naming unknown teams, duplicate ids, template placeholders, ...) and
builds the domain `Policy`. Unknown keys are errors, so a typo never silently changes routing.
See `examples/techcorp.yaml` for a documented example of every section.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from routing_service.domain.models import (
    DEFAULT_CALLBACK_FIRST_MESSAGE,
    DEFAULT_CONFIRM_MESSAGE,
    DEFAULT_MISSED_MESSAGE,
    Agent,
    AgentStatus,
    Complexity,
    Customer,
    Destination,
    LoadCaps,
    TransferMode,
    UncertaintyAction,
)
from routing_service.domain.phone import normalize_caller, parse_destination_number
from routing_service.policy.handoff import HandoffDoc
from routing_service.policy.review_learning import ReviewLearningDoc
from routing_service.policy.review_notifications import ReviewNotificationsDoc
from routing_service.policy.widening import WideningDoc

__all__ = [
    "AgentRecord",
    "AgentsFileDoc",
    "BusinessHoursDoc",
    "ComplexityDoc",
    "CustomerRecord",
    "DestinationDoc",
    "FairLoadDoc",
    "FallbackDoc",
    "HistoryDoc",
    "LoadCapsDoc",
    "PolicyDoc",
    "PriorityDoc",
    "QueueDoc",
    "RuleDoc",
    "RuleWhenDoc",
    "SummaryMessageDoc",
    "TeamDoc",
    "TransferDoc",
    "UncertaintyDoc",
]

_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_EXTENSION = re.compile(r"[0-9*#wW,]{1,20}")
_SIP = re.compile(r"sips?:[^\s<>\"]{1,250}", re.IGNORECASE)
MAX_TEXT = 4000


def _identifier(value: str) -> str:
    text = value.strip()
    if not _ID.fullmatch(text):
        raise ValueError(
            f"{value[:70]!r} is not a valid id (lower-case letters, digits, '-', '_', '.'; at most 64)"
        )
    return text


def _name(value: str) -> str:
    text = value.strip().lower()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > 64:
        raise ValueError("at most 64 characters")
    return text


def _complexity(value: Any) -> Complexity:
    if isinstance(value, Complexity):
        return value
    if not isinstance(value, str):
        raise ValueError("must be one of basic, intermediate, advanced, critical")
    try:
        return Complexity.parse(value)
    except ValueError:
        raise ValueError(
            f"unknown complexity {value[:40]!r}; one of basic, intermediate, advanced, critical"
        ) from None


def _number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError('must be a quoted E.164 string like "+15550100100"')
    return value


def _e164(value: str) -> str:
    return parse_destination_number(value)


def _transfer_mode(value: Any) -> TransferMode:
    if isinstance(value, TransferMode):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a transfer mode name like warm-transfer-say-message")
    try:
        return TransferMode(value.strip())
    except ValueError:
        known = ", ".join(mode.value for mode in TransferMode)
        raise ValueError(f"unknown transfer mode {value[:60]!r}; one of {known}") from None


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except Exception:  # ZoneInfoNotFoundError, ValueError for malformed keys, ...
        raise ValueError(
            f"unknown time zone {value[:60]!r} (use an IANA name like America/New_York)"
        ) from None
    return value


def _hhmm(value: Any) -> time:
    if isinstance(value, str):
        match = _HHMM.fullmatch(value.strip())
        if match:
            return time(int(match.group(1)), int(match.group(2)))
    raise ValueError('must be a time "HH:MM" (24-hour clock), quoted')


def _days(value: Any) -> Any:
    """Accept ["mon", "tue"], "mon-fri", "mon,wed,fri" or "daily"; return a sorted list of 0..6."""
    items: list[Any]
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"daily", "all", "every day"}:
            return list(range(7))
        items = [part.strip() for part in text.split(",")]
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError('must be a list of days like [mon, tue] or a range like "mon-fri"')
    days: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"days are names like mon, tue, ...; got {type(item).__name__}")
        token = item.strip().lower()
        if "-" in token:
            start, _, end = token.partition("-")
            first, last = _day(start), _day(end)
            days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
        else:
            days.add(_day(token))
    if not days:
        raise ValueError("at least one day is needed")
    return sorted(days)


def _day(token: str) -> int:
    key = token.strip()[:3]
    if key not in _DAYS or not token.strip():
        raise ValueError(f"unknown day {token[:20]!r}; use mon, tue, wed, thu, fri, sat, sun")
    return _DAYS.index(key)


def _words(value: Any) -> Any:
    """A list, or for CSV convenience a string separated by ';', '|' or ','."""
    if isinstance(value, str):
        return [part for part in re.split(r"[;|,]", value) if part.strip()]
    return value


def _check_target(number: str | None, sip_uri: str | None, extension: str | None) -> None:
    if (number is None) == (sip_uri is None):
        raise ValueError("give exactly one of number or sip_uri")
    if sip_uri is not None and not _SIP.fullmatch(sip_uri):
        raise ValueError(f"sip_uri {sip_uri[:60]!r} must look like sip:user@host")
    if extension is not None:
        if number is None:
            raise ValueError("extension is only allowed with a number")
        if not _EXTENSION.fullmatch(extension):
            raise ValueError("extension may hold digits, *, # and w (wait) only, at most 20")


Identifier = Annotated[str, Field(max_length=200), AfterValidator(_identifier)]
Name = Annotated[str, Field(max_length=200), AfterValidator(_name)]
Level = Annotated[Complexity, BeforeValidator(_complexity)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Minutes = Annotated[float, Field(ge=0, le=10080)]
PositiveMinutes = Annotated[float, Field(gt=0, le=10080)]
Hours = Annotated[float, Field(gt=0, le=8760)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DestinationDoc(_Doc):
    """Where a call goes: an E.164 `number` (optionally an `extension`) or a `sip_uri`."""

    number: Annotated[str | None, BeforeValidator(_number), AfterValidator(lambda v: v and _e164(v))] = None
    sip_uri: Annotated[str | None, Field(max_length=256)] = None
    extension: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> DestinationDoc:
        _check_target(self.number, self.sip_uri, self.extension)
        return self

    def to_domain(self) -> Destination:
        """The domain `Destination`."""
        return Destination(number=self.number, sip_uri=self.sip_uri, extension=self.extension)


class SummaryMessageDoc(_Doc):
    """One message of Vapi's summaryPlan; `{field}` placeholders are filled, `{{transcript}}` is kept."""

    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class TransferDoc(_Doc):
    """How a transfer is announced to the caller and handed off to the receiving side."""

    mode: Annotated[TransferMode, BeforeValidator(_transfer_mode)]
    caller_message: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    handoff_message: Text = ""
    summary: list[SummaryMessageDoc] = Field(default_factory=list, max_length=20)


class BusinessHoursDoc(_Doc):
    """Opening hours in a time zone. `closes` before `opens` means an overnight shift (22:00-06:00)."""

    timezone: Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
    days: Annotated[list[int], BeforeValidator(_days)]
    opens: Annotated[time, BeforeValidator(_hhmm)]
    closes: Annotated[time, BeforeValidator(_hhmm)]

    @model_validator(mode="after")
    def _distinct(self) -> BusinessHoursDoc:
        if self.opens == self.closes:
            raise ValueError("opens and closes must differ (leave business_hours out for 24/7)")
        return self


class TeamDoc(_Doc):
    """A team: its line, how transfers to it sound, and optional hours, skills and preferences."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    destination: DestinationDoc
    transfer: TransferDoc
    specialist_transfer: TransferDoc | None = None
    required_skills: Annotated[list[Name], BeforeValidator(_words), Field(max_length=50)] = Field(
        default_factory=list
    )
    business_hours: BusinessHoursDoc | None = None
    target_wait_minutes: Minutes = 5
    sticky: bool = True
    max_talk_minutes: PositiveMinutes = 60
    """Safety limit: a conversation nobody completed is taken as over after this long (then wrap-up)."""
    wrap_up_seconds: Annotated[float, Field(ge=0, le=86_400)] = 60
    """After each conversation the specialist gets this long before the next call (0: none)."""
    missed_offers_before_away: Annotated[int, Field(ge=1, le=1000)] = 3
    """Offers missed in a row (busy, no answer, failed transfer) after which the specialist is set away."""


class RuleWhenDoc(_Doc):
    """Conditions of a rule; all given ones must hold, absent ones match anything."""

    tiers: Annotated[list[Name], Field(min_length=1, max_length=100)] | None = None
    categories: Annotated[list[Name], Field(min_length=1, max_length=100)] | None = None
    complexities: Annotated[list[Level], Field(min_length=1, max_length=4)] | None = None
    min_complexity: Level | None = None


class RuleDoc(_Doc):
    """`when` these conditions hold, route to `team`. Rules are tried in order; first match wins."""

    id: Identifier
    when: RuleWhenDoc | None = None
    team: Identifier


class HistoryDoc(_Doc):
    """More than `more_than` previous escalations raise the complexity to `level`."""

    more_than: Annotated[int, Field(ge=0, le=1_000_000)]
    level: Level = Complexity.CRITICAL


class ComplexityDoc(_Doc):
    """How the effective complexity is assessed (see routing_service.domain.complexity)."""

    default: Level = Complexity.BASIC
    keywords: dict[
        Level, Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=500)]
    ] = Field(default_factory=dict)
    history: HistoryDoc | None = None
    tier_floors: dict[Name, Level] = Field(default_factory=dict)


class PriorityDoc(_Doc):
    """Callback queue priority points; aging adds `aging_points_per_minute` for every minute waited."""

    tiers: dict[Name, Annotated[int, Field(ge=-1_000_000, le=1_000_000)]] = Field(default_factory=dict)
    complexities: dict[Level, Annotated[int, Field(ge=-1_000_000, le=1_000_000)]] = Field(
        default_factory=dict
    )
    aging_points_per_minute: Annotated[float, Field(gt=0, le=1_000_000)] = 1.0


class PromisesDoc(_Doc):
    """Callback promises (see routing_service.domain.promises): a promise is at risk once
    `at_risk_fraction` of its window has passed; an at-risk callback then moves ahead of waiting callbacks
    that are not at risk, except those of a tier more than `overtake_tier_gap` tier-priority points above
    its own; `min_callback_minutes` is the least one callback ahead counts for in a wait estimate."""

    at_risk_fraction: Annotated[float, Field(gt=0, le=1)] = 0.75
    overtake_tier_gap: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    min_callback_minutes: Minutes = 2


class QueueDoc(_Doc):
    """The callback queue: its line, its messages, wait announcements, priorities and retry timing."""

    line: DestinationDoc
    transfer: TransferDoc
    announce_wait_over_minutes: Minutes = 5
    wait_message: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] = (
        "Current wait time is approximately {estimated_wait_minutes} minutes."
    )
    closed_message: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] = (
        "The team is closed right now and opens again {opens_at}; we will call you back then."
    )
    missed_message: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] = DEFAULT_MISSED_MESSAGE
    callback_first_message: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] = (
        DEFAULT_CALLBACK_FIRST_MESSAGE
    )
    default_handle_time_minutes: PositiveMinutes = 8
    priority: PriorityDoc = Field(default_factory=PriorityDoc)
    reservation_hold_minutes: PositiveMinutes = 5
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    retry_spacing_minutes: Minutes = 10
    callback_ttl_hours: Hours = 24
    promises: PromisesDoc = Field(default_factory=PromisesDoc)


class FallbackDoc(_Doc):
    """Where calls go when routing fails (or no rule matches)."""

    destination: DestinationDoc
    transfer: TransferDoc


class ReloadGuardDoc(_Doc):
    """Hold back a reload that would move more than `max_moved_share` of the last `replay_last` recorded
    calls to a different team, until the file is confirmed (`escalade policy confirm FILE`)."""

    max_moved_share: Annotated[float, Field(ge=0, le=1)]
    replay_last: Annotated[int, Field(ge=1, le=100_000)] = 500


class UncertaintyDoc(_Doc):
    """Decisions below `threshold` confidence widen (see routing_service.domain.uncertainty): `widen` to
    `generalist_team`, `union` of the candidate categories' teams, or `confirm` the category with the caller
    first (function-tool path; elsewhere `otherwise`)."""

    threshold: Annotated[float, Field(ge=0, le=1)]
    action: UncertaintyAction
    otherwise: Literal[UncertaintyAction.WIDEN, UncertaintyAction.UNION] = UncertaintyAction.UNION
    generalist_team: Identifier | None = None
    category_keywords: dict[
        Name, Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=500)]
    ] = Field(default_factory=dict)
    confirm_message: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] = DEFAULT_CONFIRM_MESSAGE


class LoadCapsDoc(_Doc):
    """Fair-load caps of a team or a specialist (see routing_service.domain.fair_load); each is optional."""

    max_escalations_per_hour: Annotated[int, Field(ge=1, le=60)] | None = None
    critical_cooldown_minutes: Annotated[float, Field(gt=0, le=1440)] | None = None
    max_consecutive_critical: Annotated[int, Field(ge=1, le=1000)] | None = None

    @model_validator(mode="after")
    def _some_cap(self) -> LoadCapsDoc:
        if (
            self.max_escalations_per_hour is None
            and self.critical_cooldown_minutes is None
            and self.max_consecutive_critical is None
        ):
            raise ValueError(
                "set at least one of max_escalations_per_hour, critical_cooldown_minutes,"
                " max_consecutive_critical"
            )
        return self

    def to_domain(self) -> LoadCaps:
        """The domain `LoadCaps`."""
        return LoadCaps(
            max_escalations_per_hour=self.max_escalations_per_hour,
            critical_cooldown=(
                timedelta(minutes=self.critical_cooldown_minutes)
                if self.critical_cooldown_minutes is not None
                else None
            ),
            max_consecutive_critical=self.max_consecutive_critical,
        )


class FairLoadDoc(_Doc):
    """Caps per team (`teams`, by team id) and per specialist (`specialists`, by agent id; a specialist's
    caps override their team's, cap by cap)."""

    teams: Annotated[dict[Identifier, LoadCapsDoc], Field(max_length=1000)] = Field(default_factory=dict)
    specialists: Annotated[dict[Identifier, LoadCapsDoc], Field(max_length=100_000)] = Field(
        default_factory=dict
    )


class PolicyDoc(_Doc):
    """A whole routing policy file."""

    version: Literal[1] = 1
    name: Annotated[str, Field(min_length=1, max_length=200)]
    tiers: Annotated[list[Name], Field(min_length=1, max_length=100)] | None = None
    default_tier: Name
    default_category: Name
    categories: Annotated[list[Name], Field(min_length=1, max_length=100)]
    specialist_transfer: TransferDoc | None = None
    teams: Annotated[dict[Identifier, TeamDoc], Field(min_length=1, max_length=1000)]
    rules: Annotated[list[RuleDoc], Field(min_length=1, max_length=1000)]
    complexity: ComplexityDoc = Field(default_factory=ComplexityDoc)
    queue: QueueDoc
    fallback: FallbackDoc
    assignment_ttl_hours: Hours = 2
    reload_guard: ReloadGuardDoc | None = None
    review_notifications: ReviewNotificationsDoc | None = None
    uncertainty: UncertaintyDoc | None = None
    fair_load: FairLoadDoc | None = None
    widening: WideningDoc | None = None
    handoff: HandoffDoc | None = None
    review_learning: ReviewLearningDoc | None = None


# ---------------------------------------------------------------------------------------------------------
# Import rows (customers CSV, agents YAML/CSV), shared by the CLI and tests
# ---------------------------------------------------------------------------------------------------------
def _caller_key(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError('must be a quoted number string like "+15550100100"')
    if not isinstance(value, str):
        return value
    key = normalize_caller(value)
    if key.key is None:
        raise ValueError(key.note)
    return key.key


def _blank_to_default(default: Any) -> Any:
    def convert(value: Any) -> Any:
        return default if value is None or (isinstance(value, str) and not value.strip()) else value

    return convert


class CustomerRecord(_Doc):
    """One customer row: `number,tier,account,previous_escalations` (number normalised like callers)."""

    number: Annotated[str, BeforeValidator(_caller_key)]
    tier: Name
    account: Annotated[str, Field(max_length=200), BeforeValidator(_blank_to_default(""))] = ""
    previous_escalations: Annotated[int, Field(ge=0, le=1_000_000), BeforeValidator(_blank_to_default(0))] = 0

    def to_domain(self, *, last_agent_id: str | None = None, updated_at: datetime | None = None) -> Customer:
        """The domain `Customer`."""
        return Customer(
            number=self.number,
            tier=self.tier,
            account_name=self.account.strip(),
            previous_escalations=self.previous_escalations,
            last_agent_id=last_agent_id,
            updated_at=updated_at,
        )


def _status(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return AgentStatus.AVAILABLE
    if isinstance(value, str):
        text = value.strip().lower().replace("_", "-")
        if text == "wrapup":
            text = "wrap-up"
        try:
            return AgentStatus(text)
        except ValueError:
            known = ", ".join(s.value for s in AgentStatus)
            raise ValueError(f"unknown status {value[:40]!r}; one of {known}") from None
    return value


class AgentRecord(_Doc):
    """One specialist: `id,name,number|sip_uri,teams,skills,max_complexity,capacity,status`."""

    id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    number: Annotated[
        str | None,
        BeforeValidator(_blank_to_default(None)),
        BeforeValidator(_number),
        AfterValidator(lambda v: v and _e164(v)),
    ] = None
    sip_uri: Annotated[str | None, Field(max_length=256), BeforeValidator(_blank_to_default(None))] = None
    extension: Annotated[str | None, BeforeValidator(_blank_to_default(None))] = None
    teams: Annotated[list[Identifier], BeforeValidator(_words), Field(min_length=1, max_length=100)]
    skills: Annotated[list[Name], BeforeValidator(_blank_to_default([])), BeforeValidator(_words)] = Field(
        default_factory=list, max_length=100
    )
    max_complexity: Level
    capacity: Annotated[int, Field(ge=1, le=1000), BeforeValidator(_blank_to_default(1))] = 1
    status: Annotated[AgentStatus, BeforeValidator(_status)] = AgentStatus.AVAILABLE

    @model_validator(mode="after")
    def _one_target(self) -> AgentRecord:
        _check_target(self.number, self.sip_uri, self.extension)
        return self

    def to_domain(self, *, idle_since: datetime | None = None, updated_at: datetime | None = None) -> Agent:
        """The domain `Agent` (no active assignments: the store keeps those)."""
        return Agent(
            agent_id=self.id,
            display_name=self.name.strip(),
            destination=Destination(number=self.number, sip_uri=self.sip_uri, extension=self.extension),
            team_ids=tuple(dict.fromkeys(self.teams)),
            skills=frozenset(self.skills),
            max_complexity=self.max_complexity,
            capacity=self.capacity,
            status=self.status,
            idle_since=idle_since,
            updated_at=updated_at,
        )


class AgentsFileDoc(_Doc):
    """An agents YAML file: a top-level `agents:` list."""

    agents: Annotated[list[AgentRecord], Field(max_length=100_000)]


def minutes(value: float) -> timedelta:
    """A policy duration in minutes as a timedelta."""
    return timedelta(minutes=value)
