"""QueueCallbackWorkflow on the time-skipping test server: simulated hours and days take seconds.

Time only moves when a test awaits a result or calls `env.sleep`, so between those steps a test can look
at the workflow's status without the safety timer firing behind its back.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from tests.workflow.workflow_fakes import FakeRouting, FakeVapi, callback_input, eventually, new_worker
from workflows.callback import QueueCallbackWorkflow, default_first_message
from workflows.client import prepare_callback
from workflows.inputs import (
    BusinessHoursInput,
    CallbackStatus,
    QueueCallbackInput,
    RescheduleRequest,
    callback_workflow_id,
)
from workflows.payloads import ClaimOutcome, DialOutcome
from workflows.search_attributes import CALLBACK_STATE, CALLBACK_WIDENING

pytestmark = pytest.mark.temporal


async def start(
    client: Client, task_queue: str, data: QueueCallbackInput
) -> WorkflowHandle[QueueCallbackWorkflow, CallbackStatus]:
    return await client.start_workflow(
        QueueCallbackWorkflow.run, data, id=callback_workflow_id(data.call_id), task_queue=task_queue
    )


async def status_of(handle: WorkflowHandle[QueueCallbackWorkflow, CallbackStatus]) -> CallbackStatus:
    return await handle.query(QueueCallbackWorkflow.status)


async def test_callback_waits_for_signal_when_no_specialist_free(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, vapi = FakeRouting(outcome=ClaimOutcome.NO_SPECIALIST_FREE), FakeVapi()
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, callback_input())
        await eventually(lambda: _has(routing.claims, 1))
        assert (await status_of(handle)).state == "waiting"

        await time_env.sleep(timedelta(minutes=10))  # shorter than the safety recheck: no polling
        assert len(routing.claims) == 1 and vapi.dials == []

        routing.outcome = ClaimOutcome.RESERVED
        await handle.signal(QueueCallbackWorkflow.specialist_available)
        result = await handle.result()

    assert result.state == "connected"
    assert len(routing.claims) == 2
    assert [p.attempt_key for p, _ in vapi.dials] == [f"callback-{result.call_id}-attempt-1"]
    dial = vapi.dials[0][0]
    assert dial.customer_number == "+15550100003"
    assert dial.variable_values["originalCallId"] == result.call_id
    assert dial.variable_values["specialistId"] == "agent-ana"
    assert "specialistNumber" not in dial.variable_values  # nobody at Vapi reads it
    assert dial.variable_values["customerContext"] == "duplicate charge on the November invoice"
    assert dial.first_message == default_first_message("billing")
    assert [f.state for f in routing.finished] == ["connected"]
    assert result.last_outcome == "connected (customer-ended-call): the customer spoke"


async def test_callback_claims_again_on_safety_timer_when_signal_is_lost(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, vapi = (
        FakeRouting(outcome=ClaimOutcome.NO_SPECIALIST_FREE, clock=time_env.get_current_time),
        FakeVapi(),
    )
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, callback_input(safety_recheck_seconds=900))
        await eventually(lambda: _has(routing.claims, 1))
        routing.outcome = ClaimOutcome.RESERVED  # freed, but nobody signalled
        result = await handle.result()

    assert result.state == "connected"
    first, second = routing.claims[0][1], routing.claims[1][1]
    assert second - first >= timedelta(seconds=900)


async def test_callback_waits_for_opening_when_promised_after_hours(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    now = await time_env.get_current_time()
    zone = _zone_where_it_is_21h(now)
    hours = BusinessHoursInput(timezone=zone, days=[0, 1, 2, 3, 4, 5, 6], opens="09:00", closes="17:00")
    routing, vapi = FakeRouting(outcome=ClaimOutcome.RESERVED, clock=time_env.get_current_time), FakeVapi()
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, callback_input(business_hours=hours))
        await eventually(lambda: _state_is(handle, "closed"))
        status = await status_of(handle)
        assert routing.claims == []
        assert status.next_attempt_at is not None
        local_opening = status.next_attempt_at.astimezone(ZoneInfo(zone))
        assert (local_opening.hour, local_opening.minute) == (9, 0)
        assert timedelta(hours=11) <= status.next_attempt_at - now <= timedelta(hours=13)

        result = await handle.result()

    assert result.state == "connected"
    dialled_at = vapi.dials[0][1].astimezone(ZoneInfo(zone))
    assert dialled_at >= local_opening
    assert routing.claims[0][1] >= status.next_attempt_at


async def test_callback_keeps_waiting_when_not_at_head(client: Client, time_env: WorkflowEnvironment) -> None:
    routing, vapi = FakeRouting(outcome=ClaimOutcome.NOT_AT_HEAD, position=2), FakeVapi()
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, callback_input())
        await eventually(lambda: _has(routing.claims, 1))
        assert (await status_of(handle)).position == 2

        await handle.signal(QueueCallbackWorkflow.specialist_available)  # a slot freed, but for the head
        await eventually(lambda: _has(routing.claims, 2))
        await time_env.sleep(timedelta(seconds=30))  # the one short head recheck after a signal
        await eventually(lambda: _has(routing.claims, 3))
        await time_env.sleep(timedelta(minutes=5))
        assert len(routing.claims) == 3 and vapi.dials == []
        status = await status_of(handle)
        assert (status.state, status.position) == ("waiting", 2)

        routing.outcome, routing.position = ClaimOutcome.RESERVED, 1
        await handle.signal(QueueCallbackWorkflow.specialist_available)
        result = await handle.result()

    assert result.state == "connected"
    assert len(vapi.dials) == 1


async def test_callback_ends_unreachable_when_every_attempt_fails(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing = FakeRouting(outcome=ClaimOutcome.RESERVED)
    vapi = FakeVapi(results=[DialOutcome.NOT_REACHED])
    data = callback_input(max_attempts=3, retry_spacing_seconds=600)
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, data)
        result = await handle.result()

    assert result.state == "unreachable"
    assert result.attempts == 3
    keys = [p.attempt_key for p, _ in vapi.dials]
    assert keys == [f"callback-{data.call_id}-attempt-{n}" for n in (1, 2, 3)]
    times = [t for _, t in vapi.dials]
    assert all(b - a >= timedelta(seconds=600) for a, b in itertools.pairwise(times))
    assert [f.state for f in routing.finished] == ["unreachable"]


async def test_callback_connects_on_second_attempt_when_first_is_not_answered(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing = FakeRouting(outcome=ClaimOutcome.RESERVED)
    vapi = FakeVapi(results=[DialOutcome.NOT_REACHED, DialOutcome.CONNECTED])
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        result = await (await start(client, worker.task_queue, callback_input())).result()

    assert (result.state, result.attempts) == ("connected", 2)
    assert [f.state for f in routing.finished] == ["connected"]


@pytest.mark.parametrize(("setting", "scheduled"), [(0, 10), (-5, 10), (3, 10), (45, 45)])
async def test_dial_heartbeat_timeout_is_the_setting_but_never_below_the_floor(
    client: Client, time_env: WorkflowEnvironment, setting: int, scheduled: int
) -> None:
    """Zero would switch Temporal's dead-worker check off, and less than the worker's poll would retry a
    healthy dial: the dial is scheduled with the setting, at least `MIN_DIAL_HEARTBEAT`."""
    routing, vapi = FakeRouting(outcome=ClaimOutcome.RESERVED), FakeVapi()
    data = callback_input(dial_heartbeat_timeout_seconds=setting)
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, data)
        assert (await handle.result()).state == "connected"
    history = await handle.fetch_history()
    timeouts = [
        e.activity_task_scheduled_event_attributes.heartbeat_timeout.ToTimedelta()
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "place_callback_call"
    ]
    assert timeouts == [timedelta(seconds=scheduled)]


async def test_voicemail_is_retried_and_its_reason_shows_until_reached(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing = FakeRouting(outcome=ClaimOutcome.RESERVED)
    vapi = FakeVapi(results=[DialOutcome.NOT_REACHED, DialOutcome.CONNECTED], not_reached_reason="voicemail")
    data = callback_input(first_message="Hello from TechCorp about your billing question.")
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, data)

        async def retry_wait() -> bool:
            return (await status_of(handle)).state == "retry-wait"

        await eventually(retry_wait)
        waiting = await status_of(handle)
        assert waiting.last_outcome == "not-reached (voicemail): voicemail answered"
        result = await handle.result()

    assert (result.state, result.attempts) == ("connected", 2)
    assert [p.first_message for p, _ in vapi.dials] == [data.first_message] * 2


@pytest.mark.parametrize("number", ["+0987654321", "+1234567890", "0987654321"])
async def test_number_that_is_not_e164_is_never_dialled(
    client: Client, time_env: WorkflowEnvironment, number: str
) -> None:
    routing = FakeRouting(outcome=ClaimOutcome.RESERVED)
    vapi = FakeVapi()
    given = QueueCallbackInput(
        call_id=f"call-{uuid.uuid4()}", customer_number=number, masked_number="", team_id="billing"
    )
    data = prepare_callback(given)
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, data)
        result = await handle.result()
        described = await handle.describe()

    assert result.state == "unreachable" and result.attempts == 0
    assert result.note.startswith("never dialled: ") and number not in result.note
    assert result.last_outcome == "not dialled (the customer's number is not E.164)"
    assert described.typed_search_attributes.get(CALLBACK_STATE) == "unreachable"
    assert vapi.dials == [] and routing.claims == []  # no specialist held for a number nobody can dial
    assert [(f.state, f.note) for f in routing.finished] == [("unreachable", result.note)]


async def test_number_syntax_is_checked_when_the_starter_did_not_judge_it(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, vapi = FakeRouting(outcome=ClaimOutcome.RESERVED), FakeVapi()
    data = callback_input(customer_number="+0987654321", masked_number="+******4321")
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        result = await (await start(client, worker.task_queue, data)).result()

    assert (result.state, result.note) == ("unreachable", "never dialled: +******4321 is not an E.164 number")
    assert vapi.dials == []


async def test_callback_cancels_when_asked_while_waiting(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, vapi = FakeRouting(), FakeVapi()
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, callback_input())
        await eventually(lambda: _has(routing.claims, 1))
        status = await handle.execute_update(QueueCallbackWorkflow.cancel, "customer called back themselves")
        assert status.state == "cancelled"
        result = await handle.result()

    assert result.state == "cancelled"
    assert [(f.state, f.note) for f in routing.finished] == [("cancelled", "customer called back themselves")]
    assert vapi.dials == []


async def test_callback_dials_after_new_time_when_rescheduled(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, vapi = (
        FakeRouting(outcome=ClaimOutcome.NO_SPECIALIST_FREE, clock=time_env.get_current_time),
        FakeVapi(),
    )
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, callback_input())
        await eventually(lambda: _has(routing.claims, 1))
        at = (await time_env.get_current_time()) + timedelta(hours=3)
        status = await handle.execute_update(QueueCallbackWorkflow.reschedule, RescheduleRequest(at))
        assert status.next_attempt_at == at

        routing.outcome = ClaimOutcome.RESERVED
        await handle.signal(QueueCallbackWorkflow.specialist_available)  # too early: ignored until `at`
        await time_env.sleep(timedelta(minutes=30))
        assert len(routing.claims) == 1 and vapi.dials == []

        result = await handle.result()

    assert result.state == "connected"
    assert routing.claims[1][1] >= at


async def test_reschedule_is_rejected_when_time_is_in_the_past(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, vapi = FakeRouting(), FakeVapi()
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, callback_input())
        await eventually(lambda: _has(routing.claims, 1))
        past = (await time_env.get_current_time()) - timedelta(hours=1)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(QueueCallbackWorkflow.reschedule, RescheduleRequest(past))
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                QueueCallbackWorkflow.reschedule, RescheduleRequest(datetime(2030, 1, 1))
            )
        await handle.execute_update(QueueCallbackWorkflow.cancel, "")
        await handle.result()


async def test_callback_expires_when_nobody_frees_up_in_time(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, vapi = FakeRouting(), FakeVapi()
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        data = callback_input(expires_after_seconds=4 * 3600, safety_recheck_seconds=3600)
        result = await (await start(client, worker.task_queue, data)).result()

    assert result.state == "expired"
    assert 4 <= len(routing.claims) <= 6  # hourly safety rechecks, never a tight loop
    assert [f.state for f in routing.finished] == ["expired"]


async def test_second_start_returns_existing_run_when_id_is_reused(client: Client) -> None:
    from temporalio.common import WorkflowIDConflictPolicy

    routing, vapi = FakeRouting(), FakeVapi()
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        data = callback_input()
        first = await start(client, worker.task_queue, data)
        second = await client.start_workflow(
            QueueCallbackWorkflow.run,
            data,
            id=callback_workflow_id(data.call_id),
            task_queue=worker.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert second.result_run_id == first.result_run_id
        await first.execute_update(QueueCallbackWorkflow.cancel, "")
        await first.result()


def _has(items: Sequence[object], count: int) -> Awaitable[bool]:
    async def check() -> bool:
        return len(items) >= count

    return check()


def _state_is(handle: WorkflowHandle[QueueCallbackWorkflow, CallbackStatus], state: str) -> Awaitable[bool]:
    async def check() -> bool:
        try:
            return (await status_of(handle)).state == state
        except Exception:
            return False

    return check()


def _zone_where_it_is_21h(now: datetime) -> str:
    """An `Etc/GMT±N` zone whose local hour is 21 at `now` (Etc/GMT-N means UTC+N)."""
    offset = (21 - now.astimezone(UTC).hour) % 24
    if offset > 14:
        offset -= 24
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


async def test_rescheduled_callback_is_served_when_new_time_is_past_original_expiry(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, vapi = (
        FakeRouting(outcome=ClaimOutcome.NO_SPECIALIST_FREE, clock=time_env.get_current_time),
        FakeVapi(),
    )
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, callback_input(expires_after_seconds=3600))
        await eventually(lambda: _has(routing.claims, 1))
        at = (await time_env.get_current_time()) + timedelta(hours=5)  # "call me after lunch"
        await handle.execute_update(QueueCallbackWorkflow.reschedule, RescheduleRequest(at))
        routing.outcome = ClaimOutcome.RESERVED
        result = await handle.result()

    assert result.state == "connected"
    assert routing.claims[1][1] >= at


async def test_callback_claims_again_when_its_next_widening_step_starts_and_shows_the_step(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    """Routing says when the team's next widening step starts: the workflow claims again then (not only on a
    signal or its safety timer), and shows the step routing reports as `CallbackWidening`."""
    started = await time_env.get_current_time()
    routing = FakeRouting(
        outcome=ClaimOutcome.NO_SPECIALIST_FREE,
        clock=time_env.get_current_time,
        next_widening_at=started + timedelta(minutes=5),
    )
    vapi = FakeVapi()
    label = "step 1: overflow to team general after 5 min"
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await start(client, worker.task_queue, callback_input())
        await eventually(lambda: _has(routing.claims, 1))
        described = await handle.describe()
        assert described.typed_search_attributes.get(CALLBACK_WIDENING) is None
        routing.widening_step, routing.widening, routing.next_widening_at = 1, label, None

        await time_env.sleep(timedelta(minutes=6))
        assert len(routing.claims) == 2
        assert routing.claims[1][1] >= started + timedelta(minutes=5)
        assert (await status_of(handle)).widening == label
        described = await handle.describe()
        assert described.typed_search_attributes.get(CALLBACK_WIDENING) == label

        await time_env.sleep(timedelta(minutes=10))  # no further step: back to signals and the safety timer
        assert len(routing.claims) == 2
        routing.outcome = ClaimOutcome.RESERVED
        await handle.signal(QueueCallbackWorkflow.specialist_available)
        result = await handle.result()
    assert (result.state, result.widening) == ("connected", label)
