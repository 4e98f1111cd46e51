"""The routing domain's vocabulary: plain, immutable dataclasses and enums.

Nothing here does I/O or knows about protobuf, SQL or HTTP. The policy loader builds `Policy`; the store
returns `Customer`, `Agent`, `CallbackTicket` and `Decision`; the gRPC mapping converts them to messages.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from routing_service.domain.handoff_policy import HandoffPolicy
from routing_service.domain.promises import PromisePolicy
from routing_service.domain.review_notifications import ReviewNotifications

if TYPE_CHECKING:
    from routing_service.domain.handoff import HandoffPacket


class Complexity(enum.IntEnum):
    """Ordered: a specialist qualifies when their max_complexity >= the call's effective complexity."""

    BASIC = 1
    INTERMEDIATE = 2
    ADVANCED = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Complexity:
        """`"advanced"` / `"ADVANCED"` / `" Advanced "` -> ADVANCED; ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown complexity {text!r}") from None

    @property
    def label(self) -> str:
        """`"advanced"` for ADVANCED (a table lookup: `name` is a descriptor call, and labels are read many
        times per decision, in trace details and templates)."""
        return _COMPLEXITY_LABELS[self]


_COMPLEXITY_LABELS: tuple[str, ...] = tuple(
    next((member.name.lower() for member in Complexity if member.value == value), "")
    for value in range(max(Complexity) + 1)
)


class DecisionKind(enum.StrEnum):
    TRANSFER_TEAM = "transfer_team"
    TRANSFER_AGENT = "transfer_agent"
    CALLBACK = "callback"
    FALLBACK = "fallback"
    CONFIRM_CATEGORY = "confirm_category"
    """Nothing transferred or reserved: the assistant is asked to confirm the category with the caller and
    escalate again (a low-confidence decision on the function-tool path, when the policy says so)."""


class TransferMode(enum.StrEnum):
    """Vapi's `transferPlan.mode` strings (the twiml mode is not produced by Escalade)."""

    BLIND_TRANSFER = "blind-transfer"
    BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER = "blind-transfer-add-summary-to-sip-header"
    WARM_TRANSFER_SAY_MESSAGE = "warm-transfer-say-message"
    WARM_TRANSFER_SAY_SUMMARY = "warm-transfer-say-summary"
    WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_MESSAGE = (
        "warm-transfer-wait-for-operator-to-speak-first-and-then-say-message"
    )
    WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_SUMMARY = (
        "warm-transfer-wait-for-operator-to-speak-first-and-then-say-summary"
    )
    WARM_TRANSFER_EXPERIMENTAL = "warm-transfer-experimental"

    @property
    def uses_summary(self) -> bool:
        return self in {
            TransferMode.BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER,
            TransferMode.WARM_TRANSFER_SAY_SUMMARY,
            TransferMode.WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_SUMMARY,
            TransferMode.WARM_TRANSFER_EXPERIMENTAL,
        }

    @property
    def uses_message(self) -> bool:
        return self in {
            TransferMode.WARM_TRANSFER_SAY_MESSAGE,
            TransferMode.WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_MESSAGE,
            TransferMode.WARM_TRANSFER_EXPERIMENTAL,
        }


class AgentStatus(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    OFFLINE = "offline"
    WRAP_UP = "wrap-up"
    AWAY = "away"
    """Set by routing after the team's `missed_offers_before_away` missed offers in a row; the specialist
    (or a supervisor) sets AVAILABLE again when they are back."""


class TraceOutcome(enum.StrEnum):
    INFO = "info"
    MATCHED = "matched"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    CHOSEN = "chosen"


class CallbackState(enum.StrEnum):
    WAITING = "waiting"
    RESERVED = "reserved"
    CONNECTED = "connected"
    CANCELLED = "cancelled"
    UNREACHABLE = "unreachable"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self in {CallbackState.WAITING, CallbackState.RESERVED}


@dataclass(frozen=True, slots=True)
class Destination:
    """Exactly one of `number` (E.164) or `sip_uri`; `extension` only with a number."""

    number: str | None = None
    sip_uri: str | None = None
    extension: str | None = None

    def __post_init__(self) -> None:
        if (self.number is None) == (self.sip_uri is None):
            raise ValueError("a destination has exactly one of number or sip_uri")


@dataclass(frozen=True, slots=True)
class TraceStep:
    stage: str
    subject: str
    outcome: TraceOutcome
    detail: str


# ---------------------------------------------------------------------------------------------------------
# Records kept by the store
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Customer:
    number: str
    """E.164, or the opaque `+digits` key for plausible-but-invalid numbers (see `phone.normalize_caller`)."""
    tier: str
    account_name: str = ""
    previous_escalations: int = 0
    last_agent_id: str | None = None
    updated_at: datetime | None = None
    learned: CustomerLearnings | None = None
    """What reviews' verdicts taught routing about this customer (policy `review_learning`); None: nothing
    was ever learned. Expired learnings stay stored and are ignored (`routing_service.domain.learning`)."""


@dataclass(frozen=True, slots=True)
class CustomerLearnings:
    """What routing learned about one customer from reviews' verdicts, each with its expiry and the call
    whose review taught it (see routing_service.domain.learning)."""

    preferred_team: str | None = None
    """Calls of this customer stated as `preferred_team_category` go to this team instead of the rule's."""
    preferred_team_category: str | None = None
    preferred_team_until: datetime | None = None
    preferred_team_call_id: str | None = None
    complexity_ceiling: Complexity | None = None
    """Keywords and history raise this customer's calls no higher (the claim and the tier floor still do)."""
    complexity_ceiling_until: datetime | None = None
    complexity_ceiling_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class EscalationTimes:
    """When a specialist's latest reservations were taken, oldest first, as the store keeps them: each one
    ten digits of epoch seconds and a space. Kept as text so that a decision counts the last hour by a
    binary search over it instead of parsing every entry of every candidate."""

    text: str = ""

    @classmethod
    def of(cls, times: Iterable[int]) -> EscalationTimes:
        """From epoch seconds in ascending order."""
        return cls("".join(f"{int(t):0{ESCALATION_DIGITS}d} " for t in times))

    def __len__(self) -> int:
        return len(self.text) // ESCALATION_ENTRY

    def times(self) -> tuple[int, ...]:
        """Every time kept, as epoch seconds, oldest first."""
        return tuple(map(int, self.text.split()))

    def count_after(self, epoch: float) -> int:
        """How many were taken after `epoch` (a binary search: equal widths compare as the numbers do)."""
        key = f"{math.floor(epoch):0{ESCALATION_DIGITS}d}"
        text, low, high = self.text, 0, len(self)
        while low < high:
            middle = (low + high) // 2
            start = middle * ESCALATION_ENTRY
            if text[start : start + ESCALATION_DIGITS] > key:
                high = middle
            else:
                low = middle + 1
        return len(self) - low

    def appended(self, epoch: int, keep: int) -> EscalationTimes:
        """With `epoch` added, keeping the last `keep`."""
        text = self.text + f"{int(epoch):0{ESCALATION_DIGITS}d} "
        return EscalationTimes(text[-keep * ESCALATION_ENTRY :])


ESCALATION_DIGITS = 10
ESCALATION_ENTRY = ESCALATION_DIGITS + 1
NO_ESCALATIONS = EscalationTimes()


@dataclass(frozen=True, slots=True)
class Agent:
    agent_id: str
    display_name: str
    destination: Destination
    team_ids: tuple[str, ...]
    skills: frozenset[str]
    max_complexity: Complexity
    capacity: int
    status: AgentStatus = AgentStatus.AVAILABLE
    active_assignments: int = 0
    idle_since: datetime | None = None
    updated_at: datetime | None = None
    missed_in_row: int = 0
    """Offers missed in a row (reset when the specialist takes a call or is set available)."""
    recent_escalations: EscalationTimes = field(default_factory=lambda: NO_ESCALATIONS)
    """When the specialist's latest reservations were taken (the store keeps the last
    `RECENT_ESCALATIONS_KEPT`): what the policy's escalations-per-hour cap counts."""
    last_critical_at: datetime | None = None
    """When the specialist was last reserved for a critical call (the cool-down counts from it)."""
    critical_in_row: int = 0
    """Critical calls reserved in a row (a non-critical reservation ends the run)."""
    load_version: int = 0
    """Bumped by every reservation: a reservation judged on these figures succeeds only while they are
    unchanged, so a cap is counted atomically with the reservation (see `routing_service.store`)."""

    @property
    def free_slots(self) -> int:
        return max(0, self.capacity - self.active_assignments)


@dataclass(frozen=True, slots=True)
class CallbackTicket:
    call_id: str
    team_id: str
    state: CallbackState
    caller_number: str
    tier: str
    issue_category: str
    effective_complexity: Complexity
    priority: int
    """Base priority at enqueue time (tier + complexity weights); aging is applied through `service_key`."""
    service_key: float
    """Queue order: lower is served first. `enqueued_at` in epoch seconds minus the priority's head start;
    fixed at enqueue, so older callers climb past newer ones of higher priority as time goes on (aging)."""
    enqueued_at: datetime
    decision_id: str
    customer_context: str = ""
    escalation_reason: str = ""
    agent_id: str | None = None
    reserved_until: datetime | None = None
    finished_at: datetime | None = None
    note: str = ""
    position: int = 0
    """1-based place among the team's open callbacks, filled in when read; 0 when not waiting."""
    first_message: str = ""
    """What the customer hears first when the callback call connects (the policy's template, rendered)."""
    promise_from: datetime | None = None
    """When the promise's clock started: the enqueue time, or the team's opening when it was closed."""
    promised_by: datetime | None = None
    """The latest time the callback should start (`domain.promises`); None for callbacks queued before."""
    at_risk_at: datetime | None = None
    """When the promise becomes at risk (the policy's fraction of its window, fixed when made)."""
    started_at: datetime | None = None
    """When a specialist was first reserved for the callback."""
    breached_at: datetime | None = None
    """When routing first saw the promise broken (the breach is counted once)."""


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    call_id: str
    tool_call_id: str
    kind: DecisionKind
    destination: Destination
    caller_message: str
    transfer_mode: TransferMode
    effective_complexity: Complexity
    claimed_complexity: Complexity | None
    tier: str
    issue_category: str
    decided_at: datetime
    trace: tuple[TraceStep, ...]
    reason: str
    team_id: str = ""
    team_display_name: str = ""
    agent_id: str | None = None
    agent_display_name: str = ""
    handoff_message: str = ""
    summary_messages: tuple[SummaryMessage, ...] = ()
    estimated_wait: timedelta | None = None
    rule_id: str = ""
    caller_number: str = ""
    callback: CallbackTicket | None = None
    replayed: bool = False
    dry_run: bool = False
    missed_agent_ids: tuple[str, ...] = ()
    """Specialists this call was offered to who did not take it (a repeated escalation skips them)."""
    callback_of_call_id: str = ""
    """Set when this call is a callback of an earlier call and the specialist held for it was offered."""
    handoff: HandoffPacket | None = None
    """What the specialist is told about the call (routing_service.domain.handoff); None for decisions
    stored before packets existed."""


@dataclass(frozen=True, slots=True)
class EscalationRequest:
    """What the assistant asked for, as the edge read it from Vapi. Validated by the use case."""

    call_id: str
    tool_call_id: str = ""
    caller_number: str = ""
    caller_sip_uri: str = ""
    issue_category: str = ""
    claimed_complexity: Complexity | None = None
    customer_context: str = ""
    escalation_reason: str = ""
    transcript: str = ""
    dry_run: bool = False
    arguments_problem: str = ""
    callback_of_call_id: str = ""
    """The earlier call this call is Escalade's callback of (empty for an ordinary call)."""
    stated_confidence: float | None = None
    """How sure the assistant said it is of its category and complexity (0-1); None when not stated."""
    can_confirm: bool = False
    """The assistant can still ask the caller before any transfer (the function-tool path): a
    low-confidence decision may ask it to confirm the category instead (policy `uncertainty.action`)."""
    assistant_summary: str = ""
    """The assistant's summary of the call (the tool's optional `summary` argument), for the handoff
    packet."""
    steps_tried: tuple[str, ...] = ()
    """What the assistant already tried with the caller (the tool's optional `steps_tried`)."""
    stated_entities: tuple[tuple[str, str], ...] = ()
    """(kind, value) pairs the assistant passed: account, order, error_code (the tool's optional
    arguments)."""


# ---------------------------------------------------------------------------------------------------------
# Policy (built from YAML by routing_service.policy.loader)
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SummaryMessage:
    """A Vapi summaryPlan message; when used as a template, `{field}` names are filled, `{{x}}` kept."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Opening hours in `timezone` (IANA name). `days` uses Monday = 0."""

    timezone: str
    days: frozenset[int]
    opens: time
    closes: time


@dataclass(frozen=True, slots=True)
class TransferTemplate:
    """How a destination is announced: what the caller hears and what the specialist is told.

    Templates may use {issue_category} {complexity_level} {customer_context} {escalation_reason} {tier}
    {account_name} {team_name} {agent_name} {estimated_wait_minutes} {opens_at}; `{{transcript}}` and other
    Vapi placeholders pass through untouched.
    """

    caller_message: str
    transfer_mode: TransferMode
    handoff_message: str = ""
    summary_messages: tuple[SummaryMessage, ...] = ()


DEFAULT_MAX_TALK = timedelta(minutes=60)
DEFAULT_WRAP_UP = timedelta(seconds=60)
DEFAULT_MISSED_OFFERS_BEFORE_AWAY = 3


@dataclass(frozen=True, slots=True)
class Team:
    team_id: str
    display_name: str
    destination: Destination
    transfer: TransferTemplate
    specialist_transfer: TransferTemplate | None = None
    """Used when a specialist of the team is reserved; falls back to `transfer`."""
    required_skills: frozenset[str] = frozenset()
    business_hours: BusinessHours | None = None
    target_wait: timedelta = timedelta(minutes=5)
    sticky: bool = True
    """Prefer the customer's last specialist when they qualify and are free."""
    max_talk: timedelta = DEFAULT_MAX_TALK
    """Safety limit: a conversation nobody completed is taken as over after this long (logged, counted)."""
    wrap_up: timedelta = DEFAULT_WRAP_UP
    """After a conversation, the specialist stays busy this long before the next call."""
    missed_offers_before_away: int = DEFAULT_MISSED_OFFERS_BEFORE_AWAY
    """Missed offers in a row after which the specialist is set away."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Matches when every given condition holds (None = any). First matching rule wins."""

    rule_id: str
    team_id: str
    tiers: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    complexities: frozenset[Complexity] | None = None
    min_complexity: Complexity | None = None


@dataclass(frozen=True, slots=True)
class KeywordRule:
    """Any keyword (whole word or phrase, case-insensitive) in the call text raises complexity to `level`."""

    level: Complexity
    keywords: tuple[str, ...]


RECENT_ESCALATIONS_KEPT = 64
"""How many of a specialist's latest reservation times the store keeps (enough for any hourly cap)."""


@dataclass(frozen=True, slots=True)
class LoadCaps:
    """Fair-load caps of a team or a specialist (None: no such cap). See routing_service.domain.fair_load."""

    max_escalations_per_hour: int | None = None
    """Reservations in the last rolling hour at which the specialist counts as capped."""
    critical_cooldown: timedelta | None = None
    """After a critical call, the specialist counts as capped for another critical call for this long."""
    max_consecutive_critical: int | None = None
    """Critical calls in a row at which the specialist counts as capped for another critical call."""

    @property
    def any(self) -> bool:
        return (
            self.max_escalations_per_hour is not None
            or self.critical_cooldown is not None
            or self.max_consecutive_critical is not None
        )

    def over(self, base: LoadCaps) -> LoadCaps:
        """These caps, each one not set here taken from `base`."""
        return LoadCaps(
            max_escalations_per_hour=(
                self.max_escalations_per_hour
                if self.max_escalations_per_hour is not None
                else base.max_escalations_per_hour
            ),
            critical_cooldown=(
                self.critical_cooldown if self.critical_cooldown is not None else base.critical_cooldown
            ),
            max_consecutive_critical=(
                self.max_consecutive_critical
                if self.max_consecutive_critical is not None
                else base.max_consecutive_critical
            ),
        )


NO_CAPS = LoadCaps()


@dataclass(frozen=True, slots=True)
class FairLoadPolicy:
    """Caps per team and per specialist (policy `fair_load`); a specialist's own caps override their
    team's, cap by cap."""

    teams: Mapping[str, LoadCaps] = field(default_factory=dict)
    specialists: Mapping[str, LoadCaps] = field(default_factory=dict)

    def caps_for(self, team_id: str, agent_id: str) -> LoadCaps:
        team = self.teams.get(team_id, NO_CAPS)
        own = self.specialists.get(agent_id)
        return team if own is None else own.over(team)


DEFAULT_CONFIRM_MESSAGE = (
    "Before transferring, check with the caller what the issue is about: is it {issue_category}, or"
    " {other_categories}? Then call escalateToSupport again with the category they confirm and"
    " confidence 1."
)


class UncertaintyAction(enum.StrEnum):
    """What a decision below the policy's confidence threshold does instead of the narrow specialist pool."""

    WIDEN = "widen"
    """The policy's generalist team takes the call."""
    UNION = "union"
    """The teams the candidate categories lead to, the stated category's first: the first with a
    qualified free specialist takes the call."""
    CONFIRM = "confirm"
    """On the function-tool path, the assistant is asked to confirm the category with the caller first;
    elsewhere (or once confirmed) the policy's `otherwise` action applies."""


@dataclass(frozen=True, slots=True)
class UncertaintyPolicy:
    """When a decision counts as uncertain and what it does then (see routing_service.domain.uncertainty)."""

    threshold: float
    """Confidence below this (0-1) is low."""
    action: UncertaintyAction
    otherwise: UncertaintyAction = UncertaintyAction.UNION
    """What CONFIRM does where the assistant cannot ask (the transfer tool) or already asked (WIDEN/UNION)."""
    generalist_team: str = ""
    """The team WIDEN sends the call to (the loader requires it when WIDEN can happen)."""
    category_keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per category, words or phrases in the call that point to it (whole words, any case)."""
    confirm_message: str = DEFAULT_CONFIRM_MESSAGE
    """The tool result the assistant reads for a CONFIRM; {issue_category}, {other_categories} and the
    usual placeholders are filled."""


@dataclass(frozen=True, slots=True)
class ComplexityPolicy:
    keyword_rules: tuple[KeywordRule, ...] = ()
    history_threshold: int | None = None
    """More than this many previous escalations -> `history_level`."""
    history_level: Complexity = Complexity.CRITICAL
    tier_floors: Mapping[str, Complexity] = field(default_factory=dict)
    default: Complexity = Complexity.BASIC
    """Used when the assistant made no claim."""


DEFAULT_MISSED_MESSAGE = (
    "The specialist could not take your call just now."
    " You are number {queue_position} in line for a call back."
)
DEFAULT_CALLBACK_FIRST_MESSAGE = (
    "Hello, this is a call back from {team_name} about the {issue_category} issue you called us about"
    " earlier. Do you have a moment now?"
)


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    line: Destination
    transfer: TransferTemplate
    announce_wait_over: timedelta = timedelta(minutes=5)
    wait_message: str = "Current wait time is approximately {estimated_wait_minutes} minutes."
    closed_message: str = (
        "The team is closed right now and opens again {opens_at}; we will call you back then."
    )
    """Said instead of `wait_message` when the team is outside its business hours."""
    default_handle_time: timedelta = timedelta(minutes=8)
    tier_priority: Mapping[str, int] = field(default_factory=dict)
    complexity_priority: Mapping[Complexity, int] = field(default_factory=dict)
    aging_points_per_minute: float = 1.0
    reservation_hold: timedelta = timedelta(minutes=5)
    max_attempts: int = 3
    retry_spacing: timedelta = timedelta(minutes=10)
    callback_ttl: timedelta = timedelta(hours=24)
    missed_message: str = DEFAULT_MISSED_MESSAGE
    """Said when a call escalates again after a specialist did not take it and nobody else is free (before
    the wait); may use {queue_position}."""
    callback_first_message: str = DEFAULT_CALLBACK_FIRST_MESSAGE
    """What the customer hears first on a callback call; placeholders {issue_category} {account_name}
    {team_name} {complexity_level}."""
    promises: PromisePolicy = field(default_factory=PromisePolicy)
    """When a callback's promise is at risk and whom it may then overtake (`domain.promises`)."""


@dataclass(frozen=True, slots=True)
class FallbackPolicy:
    destination: Destination
    transfer: TransferTemplate


@dataclass(frozen=True, slots=True)
class WideningStep:
    """One step of a team's widening: from `after` of waiting on, who may take the callback grows by this
    step's relaxations and overflow teams (on top of the earlier steps')."""

    after: timedelta
    relax_skills: bool = False
    """The team's `required_skills` are no longer required."""
    relax_complexity_levels: int = 0
    """A specialist whose max_complexity is this many levels below the call's effective complexity
    qualifies (never below basic)."""
    overflow_teams: tuple[str, ...] = ()
    """Other teams whose qualified specialists may take the callback, in order."""


@dataclass(frozen=True, slots=True)
class WideningPolicy:
    """Widening over time of who may take a waiting callback (see routing_service.domain.widening)."""

    steps: Mapping[str, tuple[WideningStep, ...]] = field(default_factory=dict)
    """Per team, its steps in order of `after` (strictly increasing)."""
    tier_exclusions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per tier, the teams a callback of that tier never overflows to."""


@dataclass(frozen=True, slots=True)
class ReloadGuard:
    """A reload that would send more than `max_moved_share` of the last `replay_last` recorded calls to a
    different team is held back until an operator confirms the file."""

    max_moved_share: float
    replay_last: int = 500


@dataclass(frozen=True, slots=True)
class LearnPreferredTeam:
    """A verdict that the call was routed under the wrong category teaches: this customer's calls stated as
    that category go to the team the policy's rules give the category the call was really about."""

    expires_after: timedelta


@dataclass(frozen=True, slots=True)
class LearnComplexityCeiling:
    """A verdict that the call should not have been escalated teaches: keywords and history raise this
    customer's calls no higher than `ceiling`."""

    ceiling: Complexity
    expires_after: timedelta


@dataclass(frozen=True, slots=True)
class ReviewLearningPolicy:
    """What reviews' verdicts may teach routing about a customer (policy `review_learning`); a verdict whose
    part is None teaches nothing."""

    wrong_category: LearnPreferredTeam | None = None
    should_not_have_escalated: LearnComplexityCeiling | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    default_tier: str
    default_category: str
    categories: tuple[str, ...]
    """The categories the assistant's tool offers (the escalateToSupport enum)."""
    teams: Mapping[str, Team]
    rules: tuple[Rule, ...]
    complexity: ComplexityPolicy
    queue: QueuePolicy
    fallback: FallbackPolicy
    assignment_ttl: timedelta = timedelta(hours=2)
    """A live reservation never released (a lost `ended` webhook) is freed after this long."""
    uncertainty: UncertaintyPolicy | None = None
    """When set, each decision weighs its confidence and widens below the threshold."""
    fair_load: FairLoadPolicy | None = None
    """When set, selection passes over specialists at their caps while anyone else qualifies."""
    source: str = ""
    """The file the policy was loaded from, for messages."""
    reload_guard: ReloadGuard | None = None
    """None: every valid reload applies."""
    review_notifications: ReviewNotifications = field(default_factory=ReviewNotifications)
    """Who is told about a review that needs a person (`review_notifications` in the file)."""
    widening: WideningPolicy = field(default_factory=WideningPolicy)
    """Who may take a callback as it waits longer (`widening` in the file; empty: never widens)."""
    handoff: HandoffPolicy | None = None
    """What the handoff packet extracts and what its logs mask (`handoff` in the file). None: the built-in
    entity kinds, phone numbers masked; every decision builds its packet either way, and the escalation tool
    offers the packet's optional arguments only with the section (as it offers `confidence` only with
    `uncertainty`)."""
    review_learning: ReviewLearningPolicy | None = None
    """What a review's verdict may teach routing about the customer; None: nothing is learned."""
