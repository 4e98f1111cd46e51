"""Callback promises: the latest time a queued caller's callback should start, whether it is kept, and the
wait estimate that sets it.

A promise is made when a caller is queued (`make_promise`): the clock starts now, or at the team's next
opening when it is closed (a caller told "Monday at 9:00 AM" is not late on Sunday), and the callback should
start (a specialist reserved for it) by `due_by = now + the estimated wait`. Its state (`promise_state`):

    on-track ──(at_risk_fraction of the window passed)──> at-risk ──(due_by passed, not started)──> breached
        └──────────────── started by due_by ───────────────┴──> kept          started later ──> breached

An at-risk callback moves ahead of waiting callbacks that are not at risk (`claim_turn`), except those of a
tier more than `overtake_tier_gap` priority points above its own: the tier limits the policy sets.

The estimate (`estimate_callback_wait`): the handle time is the team's recent real conversations (connected
-> completed) shrunk toward the policy's default while there are few of them (`blend_handle_time`, so two
very short calls cannot drag it to zero), scaled by what the estimate learned from its own recent errors
(`learned_ratio`: actual over quoted waits), and never below the time the callbacks ahead of this one take
(`min_callback_time` each).
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

__all__ = [
    "HANDLE_TIME_PRIOR",
    "MAX_RATIO",
    "MIN_LEARNING_SAMPLES",
    "MIN_RATIO",
    "AtRisk",
    "ClaimTurn",
    "Promise",
    "PromiseAccuracy",
    "PromiseOutcome",
    "PromisePolicy",
    "PromiseState",
    "accuracy",
    "blend_handle_time",
    "claim_turn",
    "estimate_callback_wait",
    "is_at_risk",
    "kept_rate",
    "learned_ratio",
    "make_promise",
    "promise_state",
    "wait_ratios",
]

HANDLE_TIME_PRIOR = 5
"""Conversations the policy's default handle time counts as: with n real ones, the estimate is
(n x their mean + 5 x the default) / (n + 5)."""
MIN_LEARNING_SAMPLES = 3
"""Started callbacks needed before the estimate corrects itself from its errors."""
MIN_RATIO, MAX_RATIO = 0.5, 3.0
"""The learned correction never shrinks an estimate below half, nor triples it more."""


class PromiseState(enum.StrEnum):
    """Where a callback's promise stands (the `CallbackPromiseState` search attribute's values)."""

    ON_TRACK = "on-track"
    AT_RISK = "at-risk"
    BREACHED = "breached"
    KEPT = "kept"


@dataclass(frozen=True, slots=True)
class PromisePolicy:
    """The `queue.promises` policy section."""

    at_risk_fraction: float = 0.75
    """A promise is at risk once this share of its window (starts_at -> due_by) has passed."""
    overtake_tier_gap: int = 0
    """An at-risk callback moves ahead of a waiting one whose tier has at most this many more tier-priority
    points than its own (0: only the same tier or lower ones)."""
    min_callback_time: timedelta = timedelta(minutes=2)
    """The least one callback ahead takes (dial, greeting, the shortest conversation)."""


@dataclass(frozen=True, slots=True)
class Promise:
    starts_at: datetime
    """When the promise's clock starts: the enqueue time, or the team's next opening when it is closed."""
    due_by: datetime
    """The latest time the callback should start."""
    at_risk_at: datetime
    """When the promise becomes at risk."""


@dataclass(frozen=True, slots=True)
class PromiseOutcome:
    """One stored promise, as the kept rate and the accuracy read it."""

    starts_at: datetime
    due_by: datetime
    started_at: datetime | None = None
    """When a specialist was first reserved for the callback (None: not started)."""
    ended_at: datetime | None = None
    """When the callback ended (cancelled, expired, ...): one that ended unstarted before its deadline was
    never put to the test and counts neither way."""


@dataclass(frozen=True, slots=True)
class AtRisk:
    """A waiting callback whose promise is at risk, as a claim weighs it (what `claim_turn` reads)."""

    call_id: str
    tier: str
    service_key: float
    enqueued_at: datetime
    at_risk_at: datetime | None
    promised_by: datetime | None


@dataclass(frozen=True, slots=True)
class PromiseAccuracy:
    """Quoted minus actual wait over started callbacks (positive: the callback started early)."""

    samples: int
    median: timedelta
    p90: timedelta


@dataclass(frozen=True, slots=True)
class ClaimTurn:
    """Whether a callback may take a free specialist now, and the claim's trace lines for it."""

    is_head: bool
    reasons: tuple[str, ...] = ()


def make_promise(
    now: datetime, estimated_wait: timedelta, *, opens_at: datetime | None, at_risk_fraction: float
) -> Promise:
    """The promise a queued caller hears: due `estimated_wait` from now (the estimate already counts the time
    until `opens_at` when the team is closed), its clock starting at the opening when there is one."""
    due_by = now + max(estimated_wait, timedelta(0))
    starts_at = min(max(now, opens_at or now), due_by)
    fraction = min(max(at_risk_fraction, 0.0), 1.0)
    return Promise(starts_at=starts_at, due_by=due_by, at_risk_at=starts_at + (due_by - starts_at) * fraction)


def is_at_risk(at_risk_at: datetime | None, due_by: datetime | None, now: datetime) -> bool:
    """True from `at_risk_at` until (and including) `due_by`; a promise without times never is."""
    return at_risk_at is not None and due_by is not None and at_risk_at <= now <= due_by


def promise_state(
    *, at_risk_at: datetime | None, due_by: datetime | None, started_at: datetime | None, now: datetime
) -> PromiseState | None:
    """The promise's state at `now`; None for a callback without a promise (queued before promises)."""
    if due_by is None:
        return None
    if started_at is not None:
        return PromiseState.KEPT if started_at <= due_by else PromiseState.BREACHED
    if now > due_by:
        return PromiseState.BREACHED
    if at_risk_at is not None and now >= at_risk_at:
        return PromiseState.AT_RISK
    return PromiseState.ON_TRACK


def blend_handle_time(mean: timedelta | None, samples: int, default: timedelta) -> timedelta:
    """The team's real handle time (mean of `samples` recent conversations) shrunk toward the policy's
    `default` by `HANDLE_TIME_PRIOR` pseudo-conversations: a few very short calls move it a little, a
    steady run of them moves it all the way."""
    if mean is None or samples <= 0:
        return default
    real = max(mean, timedelta(0))
    return (real * samples + default * HANDLE_TIME_PRIOR) / (samples + HANDLE_TIME_PRIOR)


def wait_ratios(outcomes: Sequence[PromiseOutcome]) -> list[float]:
    """Actual over quoted wait of each started promise; quotes of a second or less carry no information and
    are skipped (the store computes the same in SQL for the estimate, `learned_ratio`'s input)."""
    ratios = []
    for outcome in outcomes:
        if outcome.started_at is None:
            continue
        quoted = (outcome.due_by - outcome.starts_at).total_seconds()
        if quoted < 1:
            continue
        actual = max(0.0, (outcome.started_at - outcome.starts_at).total_seconds())
        ratios.append(actual / quoted)
    return ratios


def learned_ratio(ratios: Sequence[float]) -> float:
    """What the estimate learned from its errors: the median of the recent actual-over-quoted wait ratios
    (`wait_ratios`; 1.0 with fewer than `MIN_LEARNING_SAMPLES`), within [`MIN_RATIO`, `MAX_RATIO`]."""
    finite = [r for r in ratios if math.isfinite(r) and r >= 0]
    if len(finite) < MIN_LEARNING_SAMPLES:
        return 1.0
    return min(MAX_RATIO, max(MIN_RATIO, statistics.median(finite)))


def estimate_callback_wait(
    *,
    position: int,
    serving_agents: int,
    handle_time: timedelta,
    ratio: float = 1.0,
    min_callback_time: timedelta = timedelta(0),
) -> timedelta:
    """Expected wait at 1-based `position` (0 or less: none): position x handle time / serving agents,
    scaled by the learned `ratio`, and never below the callbacks ahead's own time ((position - 1) x
    `min_callback_time` / serving agents)."""
    if position <= 0:
        return timedelta(0)
    serving = max(1, serving_agents)
    scale = ratio if math.isfinite(ratio) and ratio > 0 else 1.0
    base = max(handle_time, timedelta(0)) * position / serving * scale
    floor = max(min_callback_time, timedelta(0)) * (position - 1) / serving
    return max(base, floor)


class _Queued(Protocol):
    """What `claim_turn` reads of a callback (a structural subset of `models.CallbackTicket`)."""

    @property
    def call_id(self) -> str: ...
    @property
    def tier(self) -> str: ...
    @property
    def service_key(self) -> float: ...
    @property
    def enqueued_at(self) -> datetime: ...
    @property
    def at_risk_at(self) -> datetime | None: ...
    @property
    def promised_by(self) -> datetime | None: ...


def _order(ticket: _Queued) -> tuple[float, datetime, str]:
    return (ticket.service_key, ticket.enqueued_at, ticket.call_id)


def _may_overtake(
    runner: _Queued, other_tier: str, tier_priority: Mapping[str, int], policy: PromisePolicy
) -> bool:
    gap = int(tier_priority.get(other_tier, 0)) - int(tier_priority.get(runner.tier, 0))
    return gap <= policy.overtake_tier_gap


def claim_turn(
    ticket: _Queued,
    *,
    now: datetime,
    waiting_before: bool,
    at_risk: Sequence[_Queued],
    tiers_before: set[str],
    tier_priority: Mapping[str, int],
    policy: PromisePolicy,
) -> ClaimTurn:
    """Whether the WAITING `ticket` is the head of its team's queue once at-risk promises move ahead.

    `waiting_before`: a WAITING callback precedes it in service order; `at_risk`: the team's WAITING
    callbacks whose promise is at risk now (any order); `tiers_before`: the tiers of the WAITING callbacks
    that precede it (read only when it is at risk)."""
    mine = is_at_risk(ticket.at_risk_at, ticket.promised_by, now)
    others = [t for t in at_risk if t.call_id != ticket.call_id]
    if mine:
        earlier = [t for t in others if _order(t) < _order(ticket)]
        if earlier:
            first = min(earlier, key=_order)
            return ClaimTurn(False, (f"promise at risk, but {first.call_id}'s is too and comes first",))
        if not waiting_before:
            return ClaimTurn(True)
        blocked = sorted(t for t in tiers_before if not _may_overtake(ticket, t, tier_priority, policy))
        if blocked:
            return ClaimTurn(
                False,
                (f"promise at risk, but a {', '.join(blocked)} callback ahead is beyond the tier limit",),
            )
        due = ticket.promised_by.strftime("%H:%M:%S") if ticket.promised_by else "?"
        return ClaimTurn(True, (f"promise at risk (due {due} UTC): moved ahead of callbacks not at risk",))
    if waiting_before:
        return ClaimTurn(False)
    overtaking = sorted(
        (t for t in others if _may_overtake(t, ticket.tier, tier_priority, policy)), key=_order
    )
    if overtaking:
        return ClaimTurn(False, (f"{overtaking[0].call_id}'s promise is at risk: it goes first",))
    return ClaimTurn(True)


def kept_rate(outcomes: Sequence[PromiseOutcome], *, now: datetime, window: timedelta) -> float | None:
    """The share of promises resolved in the last `window` that were kept (None when none resolved). A
    promise resolves when its callback starts by the deadline (kept) or when the deadline passes without
    it (breached, at the deadline); one cancelled unstarted before its deadline never resolves."""
    since = now - window
    kept = breached = 0
    for outcome in outcomes:
        if outcome.started_at is not None and outcome.started_at <= outcome.due_by:
            if since <= outcome.started_at <= now:
                kept += 1
        elif (
            outcome.started_at is None and outcome.ended_at is not None and outcome.ended_at <= outcome.due_by
        ):
            continue
        elif since <= outcome.due_by <= now:
            breached += 1
    total = kept + breached
    return None if total == 0 else kept / total


def accuracy(outcomes: Sequence[PromiseOutcome]) -> PromiseAccuracy | None:
    """Quoted minus actual wait of the started promises (due_by - started_at): its median and 90th
    percentile (nearest rank); None without any."""
    errors = sorted((o.due_by - o.started_at).total_seconds() for o in outcomes if o.started_at is not None)
    if not errors:
        return None
    p90 = errors[min(len(errors) - 1, math.ceil(0.9 * len(errors)) - 1)]
    return PromiseAccuracy(
        samples=len(errors),
        median=timedelta(seconds=statistics.median(errors)),
        p90=timedelta(seconds=p90),
    )
