"""Queue arithmetic: priority, aging-fair order, wait estimates and sentences, business hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_service.domain.models import BusinessHours, Complexity, Policy
from routing_service.domain.queueing import (
    callback_priority,
    closed_until,
    estimate_wait,
    is_open,
    next_opening,
    opening_phrase,
    overtake_window,
    service_key,
    wait_minutes,
    wait_sentence,
    wait_with_hours,
)
from routing_service.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
C = Complexity
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def techcorp() -> Policy:
    return load_policy(ROOT / "examples" / "techcorp.yaml")


def test_enterprise_and_critical_come_first_when_enqueued_together(techcorp: Policy) -> None:
    q = techcorp.queue
    callers = {
        (tier, level): service_key(
            T0, callback_priority(q, tier=tier, complexity=level), q.aging_points_per_minute
        )
        for tier in ("enterprise", "premium", "standard")
        for level in C
    }
    order = sorted(callers, key=callers.__getitem__)
    assert order[0] == ("enterprise", C.CRITICAL)
    assert order[-1] == ("standard", C.BASIC)
    assert callers[("enterprise", C.BASIC)] < callers[("premium", C.BASIC)] < callers[("standard", C.BASIC)]


def test_unknown_tiers_get_no_priority_when_not_listed(techcorp: Policy) -> None:
    assert callback_priority(techcorp.queue, tier="gold", complexity=C.BASIC) == 0


def test_an_older_caller_is_served_first_when_the_newer_one_is_beyond_the_overtake_window(
    techcorp: Policy,
) -> None:
    q = techcorp.queue
    window = overtake_window(q)
    assert window == timedelta(minutes=60)
    old = service_key(
        T0, callback_priority(q, tier="standard", complexity=C.BASIC), q.aging_points_per_minute
    )
    vip = callback_priority(q, tier="enterprise", complexity=C.CRITICAL)
    assert service_key(T0 + window - timedelta(seconds=1), vip, q.aging_points_per_minute) < old
    assert service_key(T0 + window + timedelta(seconds=1), vip, q.aging_points_per_minute) > old


@settings(deadline=None, max_examples=200)
@given(
    first=st.integers(min_value=0, max_value=10**6),
    gap=st.integers(min_value=1, max_value=10**6),
    p_old=st.integers(min_value=0, max_value=200),
    p_new=st.integers(min_value=0, max_value=200),
    aging=st.sampled_from([0.5, 1.0, 2.0, 10.0]),
)
def test_service_key_is_aging_fair_when_comparing_any_two_tickets(
    first: int, gap: int, p_old: int, p_new: int, aging: float
) -> None:
    older_at = T0 + timedelta(seconds=first)
    newer_at = older_at + timedelta(seconds=gap)
    older = service_key(older_at, p_old, aging)
    newer = service_key(newer_at, p_new, aging)
    head_start = (p_new - p_old) / aging * 60  # seconds of waiting the newer ticket's priority is worth
    if gap > head_start:
        assert older < newer  # the older ticket comes first once it has waited out the head start
    if p_new <= p_old:
        assert older < newer  # never overtaken by equal or lower priority


def test_service_key_falls_back_to_strict_priority_when_aging_is_off() -> None:
    assert service_key(T0 + timedelta(days=365), 2, 0) < service_key(T0, 1, 0)


@pytest.mark.parametrize(
    ("position", "serving", "handle", "expected"),
    [
        (1, 1, timedelta(minutes=8), timedelta(minutes=8)),
        (3, 2, timedelta(minutes=8), timedelta(minutes=12)),
        (2, 0, timedelta(minutes=4), timedelta(minutes=8)),  # nobody serving: assume one will
        (0, 3, timedelta(minutes=8), timedelta(0)),
    ],
)
def test_estimate_wait_divides_the_queue_among_serving_agents_when_estimating(
    position: int, serving: int, handle: timedelta, expected: timedelta
) -> None:
    assert estimate_wait(position=position, serving_agents=serving, handle_time=handle) == expected


@pytest.mark.parametrize(
    ("wait", "sentence"),
    [
        (None, None),
        (timedelta(minutes=3), None),
        (timedelta(minutes=5), None),  # the seed: only when over 5 minutes
        (timedelta(minutes=5, seconds=1), "Current wait time is approximately 6 minutes."),
        (timedelta(minutes=6), "Current wait time is approximately 6 minutes."),
        (timedelta(minutes=6, microseconds=1), "Current wait time is approximately 7 minutes."),
        (timedelta(hours=2), "Current wait time is approximately 120 minutes."),
    ],
)
def test_wait_sentence_rounds_minutes_up_when_over_the_threshold(
    techcorp: Policy, wait: timedelta | None, sentence: str | None
) -> None:
    assert wait_sentence(techcorp.queue, wait) == sentence


def test_wait_sentence_says_when_a_closed_team_opens_whatever_the_wait(techcorp: Policy) -> None:
    closed = "The team is closed right now and opens again Monday at 9:00 AM; we will call you back then."
    assert wait_sentence(techcorp.queue, timedelta(minutes=1), opens_at="Monday at 9:00 AM") == closed
    assert wait_sentence(techcorp.queue, timedelta(hours=30), opens_at="Monday at 9:00 AM") == closed
    assert wait_sentence(techcorp.queue, timedelta(minutes=1), opens_at="") is None  # open: threshold applies


def test_wait_minutes_never_goes_negative_when_the_wait_is_negative() -> None:
    assert wait_minutes(timedelta(seconds=-5)) == 0


NY_WEEKDAYS = BusinessHours(
    timezone="America/New_York", days=frozenset(range(5)), opens=time(9), closes=time(17)
)
NIGHT = BusinessHours(timezone="Europe/Berlin", days=frozenset({4}), opens=time(22), closes=time(6))


@pytest.mark.parametrize(
    ("hours", "at", "expected"),
    [
        (None, T0, True),
        (NY_WEEKDAYS, datetime(2026, 1, 5, 14, 0, tzinfo=UTC), True),  # Mon 09:00 New York
        (NY_WEEKDAYS, datetime(2026, 1, 5, 13, 59, tzinfo=UTC), False),  # Mon 08:59 New York
        (NY_WEEKDAYS, datetime(2026, 1, 5, 22, 0, tzinfo=UTC), False),  # Mon 17:00 New York: closed
        (NY_WEEKDAYS, datetime(2026, 1, 10, 3, 0, tzinfo=UTC), False),  # Fri 22:00 NY, but Saturday in UTC
        (NY_WEEKDAYS, datetime(2026, 1, 10, 15, 0, tzinfo=UTC), False),  # Saturday
        (NY_WEEKDAYS, datetime(2026, 7, 6, 13, 0, tzinfo=UTC), True),  # Mon 09:00 EDT (summer time)
        (NY_WEEKDAYS, datetime(2026, 1, 5, 14, 0), True),  # naive = UTC
        (NIGHT, datetime(2026, 1, 9, 21, 0, tzinfo=UTC), True),  # Fri 22:00 Berlin
        (NIGHT, datetime(2026, 1, 10, 4, 59, tzinfo=UTC), True),  # Sat 05:59 Berlin, shift from Friday
        (NIGHT, datetime(2026, 1, 10, 5, 0, tzinfo=UTC), False),  # Sat 06:00 Berlin: closed
        (NIGHT, datetime(2026, 1, 9, 4, 0, tzinfo=UTC), False),  # Fri 05:00 Berlin: Thursday had no shift
        (NIGHT, datetime(2026, 1, 10, 21, 30, tzinfo=UTC), False),  # Sat 22:30: no Saturday shift
    ],
)
def test_is_open_reads_hours_in_the_team_time_zone_when_checking(
    hours: BusinessHours | None, at: datetime, expected: bool
) -> None:
    assert is_open(hours, at) is expected


@pytest.mark.parametrize(
    ("hours", "at", "expected"),
    [
        (NY_WEEKDAYS, datetime(2026, 1, 5, 14, 30, tzinfo=UTC), datetime(2026, 1, 5, 14, 30, tzinfo=UTC)),
        (NY_WEEKDAYS, datetime(2026, 1, 5, 23, 0, tzinfo=UTC), datetime(2026, 1, 6, 14, 0, tzinfo=UTC)),
        (NY_WEEKDAYS, datetime(2026, 1, 9, 23, 0, tzinfo=UTC), datetime(2026, 1, 12, 14, 0, tzinfo=UTC)),
        (
            NY_WEEKDAYS,
            datetime(2026, 3, 6, 23, 0, tzinfo=UTC),
            datetime(2026, 3, 9, 13, 0, tzinfo=UTC),
        ),  # DST
        (NIGHT, datetime(2026, 1, 5, 12, 0, tzinfo=UTC), datetime(2026, 1, 9, 21, 0, tzinfo=UTC)),
    ],
)
def test_next_opening_finds_the_next_local_opening_when_closed(
    hours: BusinessHours, at: datetime, expected: datetime
) -> None:
    opening = next_opening(hours, at)
    assert opening == expected
    assert is_open(hours, opening)


@settings(deadline=None, max_examples=100)
@given(st.integers(min_value=0, max_value=60 * 24 * 400), st.sampled_from([NY_WEEKDAYS, NIGHT]))
def test_next_opening_is_never_in_the_past_and_always_open_when_computed(
    minutes: int, hours: BusinessHours
) -> None:
    at = T0 + timedelta(minutes=minutes)
    opening = next_opening(hours, at)
    assert opening >= at
    assert is_open(hours, opening)
    assert opening - at <= timedelta(days=7)
    assert opening.astimezone(ZoneInfo(hours.timezone)).time() == hours.opens or opening == at


@pytest.mark.parametrize(
    ("hours", "at", "expected"),
    [
        # open (Mon 10:00 New York), or no hours at all: the queue's own estimate
        (NY_WEEKDAYS, datetime(2026, 1, 5, 15, 0, tzinfo=UTC), timedelta(minutes=8)),
        (None, datetime(2026, 1, 4, 8, 0, tzinfo=UTC), timedelta(minutes=8)),
        # Sun 03:00 New York: opens Mon 09:00, 30 hours later, then the queue's 8 minutes
        (NY_WEEKDAYS, datetime(2026, 1, 4, 8, 0, tzinfo=UTC), timedelta(hours=30, minutes=8)),
        # Mon 08:59 New York: one minute to opening
        (NY_WEEKDAYS, datetime(2026, 1, 5, 13, 59, tzinfo=UTC), timedelta(minutes=9)),
        # hours with no day never open: nothing sensible to add
        (BusinessHours("UTC", frozenset(), time(9), time(17)), T0, timedelta(minutes=8)),
    ],
)
def test_wait_with_hours_adds_the_time_until_opening_when_the_team_is_closed(
    hours: BusinessHours | None, at: datetime, expected: timedelta
) -> None:
    assert wait_with_hours(timedelta(minutes=8), hours, at) == expected


@pytest.mark.parametrize(
    ("hours", "opens", "phrase"),
    [
        (NY_WEEKDAYS, datetime(2026, 1, 5, 14, 0, tzinfo=UTC), "Monday at 9:00 AM"),  # EST, UTC-5
        (NY_WEEKDAYS, datetime(2026, 7, 6, 13, 0, tzinfo=UTC), "Monday at 9:00 AM"),  # EDT, UTC-4
        (NIGHT, datetime(2026, 1, 9, 21, 0, tzinfo=UTC), "Friday at 10:00 PM"),
        (
            BusinessHours("UTC", frozenset({0}), time(0, 5), time(1)),
            T0.replace(hour=0, minute=5),
            "Monday at 12:05 AM",
        ),
        (
            BusinessHours("UTC", frozenset({0}), time(12, 30), time(13)),
            T0.replace(minute=30),
            "Monday at 12:30 PM",
        ),
    ],
)
def test_opening_phrase_reads_the_opening_in_the_team_zone_on_a_12_hour_clock(
    hours: BusinessHours, opens: datetime, phrase: str
) -> None:
    assert opening_phrase(hours, opens) == phrase


def test_closed_until_names_the_next_opening_only_when_the_team_is_closed() -> None:
    sunday_night = datetime(2026, 1, 4, 8, 0, tzinfo=UTC)  # Sun 03:00 New York
    assert closed_until(NY_WEEKDAYS, sunday_night) == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    assert closed_until(NY_WEEKDAYS, datetime(2026, 1, 5, 15, 0, tzinfo=UTC)) is None  # open
    assert closed_until(None, sunday_night) is None
    assert closed_until(BusinessHours("UTC", frozenset(), time(9), time(17)), sunday_night) is None
