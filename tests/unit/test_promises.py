"""Callback promises: made when queued, their states, who an at-risk callback overtakes, the wait estimate
that never drops below the callbacks ahead, kept rates and accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from routing_service.domain.promises import (
    HANDLE_TIME_PRIOR,
    MAX_RATIO,
    MIN_RATIO,
    PromiseOutcome,
    PromisePolicy,
    PromiseState,
    accuracy,
    blend_handle_time,
    claim_turn,
    estimate_callback_wait,
    kept_rate,
    learned_ratio,
    make_promise,
    promise_state,
    wait_ratios,
)
from routing_service.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
TIERS = {"enterprise": 30, "premium": 15, "standard": 0}


@dataclass(frozen=True)
class Queued:
    call_id: str
    tier: str
    service_key: float
    enqueued_at: datetime = T0
    at_risk_at: datetime | None = None
    promised_by: datetime | None = None


def at_risk(call_id: str, tier: str, key: float) -> Queued:
    return Queued(call_id, tier, key, at_risk_at=T0 - MIN, promised_by=T0 + MIN)


# ----------------------------------------------------------------------------------------------- promises
def test_a_promise_is_due_after_the_estimated_wait_and_at_risk_at_the_policy_fraction() -> None:
    promise = make_promise(T0, 12 * MIN, opens_at=None, at_risk_fraction=0.75)
    assert promise.starts_at == T0
    assert promise.due_by == T0 + 12 * MIN
    assert promise.at_risk_at == T0 + 9 * MIN


def test_a_closed_teams_promise_starts_its_clock_at_the_opening_time() -> None:
    opens = T0 + timedelta(hours=14)
    promise = make_promise(T0, timedelta(hours=14) + 4 * MIN, opens_at=opens, at_risk_fraction=0.5)
    assert promise.starts_at == opens
    assert promise.due_by == opens + 4 * MIN
    assert promise.at_risk_at == opens + 2 * MIN


@given(
    wait=st.integers(min_value=0, max_value=10**6),
    closed_for=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    fraction=st.floats(min_value=0, max_value=1),
)
def test_promise_times_are_always_ordered(wait: int, closed_for: int | None, fraction: float) -> None:
    opens = None if closed_for is None else T0 + timedelta(seconds=closed_for)
    promise = make_promise(T0, timedelta(seconds=wait), opens_at=opens, at_risk_fraction=fraction)
    assert T0 <= promise.starts_at <= promise.at_risk_at <= promise.due_by == T0 + timedelta(seconds=wait)


def test_promise_states_follow_the_clock_and_the_start() -> None:
    times = {"at_risk_at": T0 + 9 * MIN, "due_by": T0 + 12 * MIN}
    assert promise_state(**times, started_at=None, now=T0) is PromiseState.ON_TRACK
    assert promise_state(**times, started_at=None, now=T0 + 10 * MIN) is PromiseState.AT_RISK
    assert promise_state(**times, started_at=None, now=T0 + 12 * MIN) is PromiseState.AT_RISK
    assert promise_state(**times, started_at=None, now=T0 + 13 * MIN) is PromiseState.BREACHED
    assert promise_state(**times, started_at=T0 + 11 * MIN, now=T0 + 20 * MIN) is PromiseState.KEPT
    assert promise_state(**times, started_at=T0 + 13 * MIN, now=T0 + 20 * MIN) is PromiseState.BREACHED
    assert promise_state(at_risk_at=None, due_by=None, started_at=None, now=T0) is None


@given(start=st.integers(0, 3600), due=st.integers(0, 3600), now=st.integers(0, 7200))
def test_a_started_promise_is_kept_exactly_when_it_started_by_its_deadline(
    start: int, due: int, now: int
) -> None:
    state = promise_state(
        at_risk_at=T0,
        due_by=T0 + timedelta(seconds=due),
        started_at=T0 + timedelta(seconds=start),
        now=T0 + timedelta(seconds=now),
    )
    assert (state is PromiseState.KEPT) == (start <= due)
    assert state in (PromiseState.KEPT, PromiseState.BREACHED)


# ------------------------------------------------------------------------------------------------- claims
POLICY = PromisePolicy(at_risk_fraction=0.75, overtake_tier_gap=15)


def turn(ticket: Queued, *, before: bool, risky: list[Queued], tiers: set[str] | None = None) -> bool:
    return claim_turn(
        ticket,
        now=T0,
        waiting_before=before,
        at_risk=risky,
        tiers_before=tiers or set(),
        tier_priority=TIERS,
        policy=POLICY,
    ).is_head


def test_an_at_risk_callback_moves_ahead_of_callbacks_not_at_risk_and_says_so() -> None:
    mine = at_risk("late", "standard", 100.0)
    result = claim_turn(
        mine,
        now=T0,
        waiting_before=True,
        at_risk=[mine],
        tiers_before={"standard", "premium"},
        tier_priority=TIERS,
        policy=POLICY,
    )
    assert result.is_head
    assert "moved ahead of callbacks not at risk" in result.reasons[0]


def test_an_at_risk_callback_never_overtakes_a_tier_beyond_the_policys_gap() -> None:
    mine = at_risk("late", "standard", 100.0)
    result = claim_turn(
        mine,
        now=T0,
        waiting_before=True,
        at_risk=[mine],
        tiers_before={"enterprise"},
        tier_priority=TIERS,
        policy=POLICY,
    )
    assert not result.is_head
    assert "enterprise" in result.reasons[0] and "tier limit" in result.reasons[0]


def test_the_head_not_at_risk_waits_for_an_at_risk_callback_behind_it() -> None:
    head = Queued("head", "premium", 1.0, promised_by=T0 + 30 * MIN, at_risk_at=T0 + 20 * MIN)
    result = claim_turn(
        head,
        now=T0,
        waiting_before=False,
        at_risk=[at_risk("late", "standard", 100.0)],
        tiers_before=set(),
        tier_priority=TIERS,
        policy=POLICY,
    )
    assert not result.is_head
    assert result.reasons == ("late's promise is at risk: it goes first",)


def test_an_enterprise_head_keeps_its_turn_against_an_at_risk_standard_callback() -> None:
    head = Queued("head", "enterprise", 1.0)
    assert turn(head, before=False, risky=[at_risk("late", "standard", 100.0)])


def test_among_at_risk_callbacks_service_order_holds() -> None:
    first, second = at_risk("a", "standard", 5.0), at_risk("b", "standard", 9.0)
    assert turn(first, before=False, risky=[first, second])
    assert not turn(second, before=True, risky=[first, second], tiers={"standard"})


def test_without_promises_the_queue_order_is_unchanged() -> None:
    plain = Queued("x", "standard", 3.0)
    assert turn(plain, before=False, risky=[])
    assert not turn(plain, before=True, risky=[])


# -------------------------------------------------------------------------------------------- the estimate
def test_two_very_short_calls_no_longer_drag_the_handle_time_to_zero() -> None:
    blended = blend_handle_time(timedelta(seconds=3), 2, 8 * MIN)
    assert blended > 5 * MIN
    assert blend_handle_time(None, 0, 8 * MIN) == 8 * MIN


def test_a_steady_run_of_real_handle_times_takes_over_from_the_default() -> None:
    blended = blend_handle_time(4 * MIN, 1000, 8 * MIN)
    assert abs(blended - 4 * MIN) < timedelta(seconds=2)


@given(
    mean=st.integers(0, 7200),
    samples=st.integers(0, 500),
    default=st.integers(1, 7200),
)
def test_the_blended_handle_time_lies_between_the_real_mean_and_the_default(
    mean: int, samples: int, default: int
) -> None:
    blended = blend_handle_time(timedelta(seconds=mean), samples, timedelta(seconds=default))
    low, high = sorted((mean, default)) if samples else (default, default)
    assert timedelta(seconds=low) - timedelta(microseconds=1) <= blended
    assert blended <= timedelta(seconds=high) + timedelta(microseconds=1)
    assert HANDLE_TIME_PRIOR > 0


def test_est_wait_is_not_zero_with_two_callbacks_waiting() -> None:
    wait = estimate_callback_wait(
        position=3, serving_agents=1, handle_time=timedelta(0), min_callback_time=2 * MIN
    )
    assert wait == 4 * MIN


@given(
    position=st.integers(1, 200),
    serving=st.integers(1, 50),
    handle=st.integers(0, 3600),
    ratio=st.floats(min_value=MIN_RATIO, max_value=MAX_RATIO),
    floor=st.integers(0, 600),
)
def test_the_estimate_is_never_below_the_time_the_callbacks_ahead_take(
    position: int, serving: int, handle: int, ratio: float, floor: int
) -> None:
    wait = estimate_callback_wait(
        position=position,
        serving_agents=serving,
        handle_time=timedelta(seconds=handle),
        ratio=ratio,
        min_callback_time=timedelta(seconds=floor),
    )
    assert wait >= timedelta(seconds=floor) * (position - 1) / serving
    later = estimate_callback_wait(
        position=position + 1,
        serving_agents=serving,
        handle_time=timedelta(seconds=handle),
        ratio=ratio,
        min_callback_time=timedelta(seconds=floor),
    )
    assert later >= wait


def outcome(quoted_s: int, actual_s: int | None) -> PromiseOutcome:
    started = None if actual_s is None else T0 + timedelta(seconds=actual_s)
    return PromiseOutcome(starts_at=T0, due_by=T0 + timedelta(seconds=quoted_s), started_at=started)


def test_the_estimate_learns_from_its_errors_once_it_has_enough() -> None:
    late = [outcome(100, 200), outcome(100, 250), outcome(100, 180)]
    assert learned_ratio(wait_ratios(late[:2])) == 1.0
    assert learned_ratio(wait_ratios(late)) == 2.0
    assert learned_ratio(wait_ratios([outcome(100, 10)] * 5)) == MIN_RATIO
    assert learned_ratio(wait_ratios([outcome(100, 100_000)] * 5)) == MAX_RATIO
    assert learned_ratio(wait_ratios([outcome(100, None)] * 5)) == 1.0
    assert wait_ratios([outcome(0, 5)]) == [], "a quote under a second teaches nothing"


@given(st.lists(st.tuples(st.integers(0, 10**5), st.one_of(st.none(), st.integers(0, 10**5)))))
def test_the_learned_correction_stays_within_its_bounds(pairs: list[tuple[int, int | None]]) -> None:
    assert MIN_RATIO <= learned_ratio(wait_ratios([outcome(q, a) for q, a in pairs])) <= MAX_RATIO


# ------------------------------------------------------------------------------------- kept rate, accuracy
def test_kept_rate_counts_promises_resolved_in_the_window() -> None:
    now = T0 + timedelta(hours=2)
    kept_recently = PromiseOutcome(T0, now - 10 * MIN, started_at=now - 20 * MIN)
    breached_recently = PromiseOutcome(T0, now - 5 * MIN)
    kept_long_ago = PromiseOutcome(T0, T0 + 10 * MIN, started_at=T0 + 5 * MIN)
    still_open = PromiseOutcome(T0, now + 10 * MIN)
    cancelled_in_time = PromiseOutcome(T0, now - 5 * MIN, ended_at=now - 30 * MIN)
    outcomes = [kept_recently, breached_recently, kept_long_ago, still_open, cancelled_in_time]
    assert kept_rate(outcomes, now=now, window=timedelta(hours=1)) == 0.5
    assert kept_rate(outcomes, now=now, window=timedelta(hours=24)) == 2 / 3
    assert kept_rate([still_open], now=now, window=timedelta(hours=1)) is None


def test_accuracy_is_quoted_minus_actual_median_and_90th_percentile() -> None:
    outcomes = [outcome(600, 600 - early) for early in range(0, 100, 10)] + [outcome(600, None)]
    result = accuracy(outcomes)
    assert result is not None
    assert result.samples == 10
    assert result.median == timedelta(seconds=45)
    assert result.p90 == timedelta(seconds=80)
    assert accuracy([outcome(600, None)]) is None


@given(st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 10**4)), min_size=1))
def test_accuracy_percentiles_are_ordered(pairs: list[tuple[int, int]]) -> None:
    result = accuracy([outcome(q, a) for q, a in pairs])
    assert result is not None
    assert result.median <= result.p90 or result.samples == 1
    errors = [q - a for q, a in pairs]
    assert timedelta(seconds=min(errors)) <= result.median <= timedelta(seconds=max(errors))


# ------------------------------------------------------------------------------------------------- policy
def test_techcorp_sets_the_promise_policy() -> None:
    policy = load_policy(ROOT / "examples" / "techcorp.yaml")
    assert policy.queue.promises == PromisePolicy(
        at_risk_fraction=0.75, overtake_tier_gap=15, min_callback_time=2 * MIN
    )


def test_a_bad_promise_setting_is_refused_naming_the_field(tmp_path: Path) -> None:
    from routing_service.policy.errors import PolicyError

    text = (ROOT / "examples" / "techcorp.yaml").read_text()
    assert "at_risk_fraction: 0.75" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("at_risk_fraction: 0.75", "at_risk_fraction: 1.5"))
    try:
        load_policy(bad)
    except PolicyError as error:
        assert "queue.promises.at_risk_fraction" in str(error)
    else:
        raise AssertionError("a fraction above 1 was accepted")


def test_the_dev_server_registers_every_search_attribute_the_workflows_use() -> None:
    from escalade_cli.dev import SEARCH_ATTRIBUTES
    from workflows.search_attributes import ALL_KEYS, dev_server_flag

    assert tuple(dev_server_flag(key) for key in ALL_KEYS) == SEARCH_ATTRIBUTES
    assert "CallbackPromisedBy=Datetime" in SEARCH_ATTRIBUTES
    assert "CallbackPromiseState=Keyword" in SEARCH_ATTRIBUTES
