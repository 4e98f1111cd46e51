"""`QueueCallbackWorkflow`: keeps the "we'll call you back" promise of a CALLBACK decision.

Life of a callback (workflow id `callback-<vapi call id>`):

    (customer key not E.164 ──> unreachable, never dialled)
    waiting ──claim RESERVED──> dialling ──reached──> connected
      │  ▲  NOT_AT_HEAD / NO_SPECIALIST_FREE: wait for `specialist_available` (or the safety timer)
      │  └── closed: outside business hours, sleep until the next opening
      │                 └─not reached─> retry-wait (retry spacing) ──> claim again ... ──> unreachable
      └── cancel ──> cancelled;  still waiting `expires_after_seconds` after the start (or after the
          latest rescheduled time) ──> expired

The workflow never polls tightly: between claims it sleeps on a timer (business hours, a reschedule, retry
spacing, the start of the team's next widening step as routing reports it, or the long safety recheck) that a
signal or update can cut short. The routing service decides who
is at the head of the queue (priority, then age with aging); a claim that is not at the head just waits.
Each dial attempt has its own key `callback-<call id>-attempt-<n>`, and the dial activity's ledger makes
sure that key dials at most once whatever happens to workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import hours
    from workflows.activities import RoutingActivities, VapiActivities
    from workflows.inputs import (
        CallbackPhase,
        CallbackStatus,
        QueueCallbackInput,
        RescheduleRequest,
        review_workflow_id,
    )
    from workflows.payloads import (
        ClaimOutcome,
        ClaimParams,
        ClaimResult,
        DialOutcome,
        DialParams,
        DialResult,
        FinishParams,
    )
    from workflows.search_attributes import (
        CALLBACK_PROMISE_STATE,
        CALLBACK_PROMISED_BY,
        CALLBACK_STATE,
        CALLBACK_WIDENING,
        ESCALATION_CATEGORY,
        ESCALATION_COMPLEXITY,
        ESCALATION_TIER,
    )

__all__ = [
    "QueueCallbackWorkflow",
    "attempt_key",
    "callback_variables",
    "default_first_message",
    "dial_heartbeat_timeout",
    "initial_search_attributes",
    "number_problem",
]

RESCHEDULABLE_STATES = frozenset({CallbackPhase.WAITING, CallbackPhase.CLOSED, CallbackPhase.RETRY_WAIT})
MAX_RESCHEDULE = timedelta(days=30)

LEAN_CLAIMS = "lean-claims"
"""Patch id: claims run as local activities (a quick gRPC call to routing, recorded as one marker in the
workflow task that asked, instead of an activity task the server schedules, dispatches and records in three
events and a second workflow task), and the start no longer upserts the CallbackState the starter set. With
10,000 callbacks on the dev server this halves the server's work per callback. Histories recorded before
it replay the old way (`tests/workflow/histories/before_lean_claims/`)."""

NUMBER_CHECK = "e164-before-dial"
"""Patch id: a customer key that is not an E.164 number ends the callback `unreachable` before any claim or
dial (Vapi would reject it, or worse, dial something). Only workflows with such a number take the new path, so
histories of valid numbers carry no marker and replay as before."""

WIDENING = "widening-steps"
"""Patch id: the claim reports the team's widening step (routing's policy `widening`); the workflow shows it
as the `CallbackWidening` search attribute and, while it waits, claims again when the next step starts (a
specialist of an overflow team frees no slot in this team's queue, so no signal would wake it). Asked only
when a claim reports widening, so histories of teams that never widen, and those recorded before, carry no
marker and replay as before."""
WIDENING_FROM_START = "widening-steps-from-start"
"""Patch id: `WIDENING` asked once, at the start of every callback, instead of when a claim first reports
widening. A marker written in the middle of the loop, only when a claim's result said so, was found on
replay after a worker was killed with no call to match it (a `NondeterminismError` seen once in the worker
crash test); a marker every new callback writes at the same first step cannot depend on what a claim
returned. Histories recorded before it (`histories/before_widening_from_start/`) take the old path: they
ask `WIDENING` when a claim reports widening, as they did."""
MIN_WIDENING_WAIT = timedelta(seconds=5)
"""The shortest sleep until the next widening step: a routing clock behind the worker's cannot make a
callback claim in a tight loop."""
PROMISES = "callback-promises"
"""Patch id: the callback shows routing's promise (`CallbackPromisedBy`, `CallbackPromiseState` search
attributes and `CallbackStatus.promise_state`), and while it waits it also wakes when its promise becomes at
risk (its claim may then move ahead) and just after the deadline (routing records the breach). Histories
recorded before it have no such timers or upserts and replay as before."""
PROMISE_GRACE = timedelta(seconds=1)
"""How long after the deadline the breach claim runs (routing counts a breach strictly after it)."""

MIN_DIAL_HEARTBEAT = timedelta(seconds=10)
"""The shortest heartbeat timeout of the dial activity: twice the worker's default 5 s poll of the call
(each poll heartbeats), so a healthy dial is never retried for being slow to poll, and a zero or negative
setting (which Temporal would take as "no heartbeat timeout") cannot switch the dead-worker check off."""


def dial_heartbeat_timeout(data: QueueCallbackInput) -> timedelta:
    """The dial activity's heartbeat timeout: the callback's setting, at least `MIN_DIAL_HEARTBEAT`."""
    return max(timedelta(seconds=data.dial_heartbeat_timeout_seconds), MIN_DIAL_HEARTBEAT)


ROUTING_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
"""Routing calls retry until they succeed (a routing outage only delays the callback) unless permanent."""
DIAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["VapiRejected"],
)


def attempt_key(call_id: str, attempt: int) -> str:
    """The idempotency key of one dial attempt."""
    return f"callback-{call_id}-attempt-{attempt}"


_E164 = re.compile(r"\+[1-9]\d{1,14}")


def number_problem(data: QueueCallbackInput) -> str:
    """Why the customer's number cannot be dialled, or "" when it can: the starter's verdict
    (`customer_number_problem`, judged with `phonenumbers`, which cannot load its metadata inside the
    workflow sandbox), else the E.164 syntax (`+`, a country code that does not start with 0, 15 digits at
    most) for inputs built by other means."""
    if data.customer_number_problem:
        return data.customer_number_problem
    if not _E164.fullmatch(data.customer_number):
        return f"{data.masked_number} is not an E.164 number"
    return ""


def default_first_message(category: str) -> str:
    """The callback's greeting when the starter passed none (routing renders the policy's template into
    `QueueCallbackInput.first_message`; older payloads and histories have none)."""
    issue = f"the {category} issue" if category.strip() else "the issue"
    return (
        f"Hello, this is the call back you were promised about {issue} you called us about earlier. "
        "Do you have a moment now?"
    )


def callback_variables(data: QueueCallbackInput, key: str, claim: ClaimResult) -> dict[str, str]:
    """`assistantOverrides.variableValues` of a callback call, each for a reader:

    - `originalCallId`: the edge links the callback call's escalation to the specialist held for it
      (`ResolveEscalationRequest.callback_of_call_id`).
    - `callbackAttemptKey`: the attempt's full key (Vapi's `name` is a digest when the key is long), for
      ops reading a call in Vapi's dashboard and for the local Vapi stand-in's dial record.
    - `specialistId`: the specialist held for the callback (the stand-in's dial record; the edge asks
      routing, not this value).
    - `decisionId`: the original call's decision, whose handoff packet routing carries over to the callback
      call's decision (and so to the specialist: their handoff message, the SIP headers, and
      `GetHandoffPacket` by either call id); an agent desktop that sees the callback call can ask for it.
    - `issueCategory`, `complexityLevel`, `customerContext`, `callbackReason`: the original escalation, for
      the provisioned assistant's prompt (`{{issueCategory}}` ...), so that it escalates the callback with the
      same category and does not make the customer explain it all again.

    The specialist's number and SIP URI are not sent (nobody at Vapi reads them; the edge answers the
    transfer from routing), nor are the tier or team id."""
    return {
        "originalCallId": data.call_id,
        "callbackAttemptKey": key,
        "specialistId": claim.agent_id,
        "decisionId": data.decision_id,
        "issueCategory": data.category,
        "complexityLevel": data.complexity,
        "customerContext": data.context,
        "callbackReason": data.reason,
    }


def initial_search_attributes(data: QueueCallbackInput) -> TypedSearchAttributes:
    """What the starter sets so the callback is filterable from its first moment (state `waiting`)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(ESCALATION_TIER, data.tier),
            SearchAttributePair(ESCALATION_CATEGORY, data.category),
            SearchAttributePair(ESCALATION_COMPLEXITY, data.complexity),
            SearchAttributePair(CALLBACK_STATE, CallbackPhase.WAITING.value),
        ]
    )


def _phase(text: str) -> CallbackPhase:
    """A `CallbackState` search attribute value as a phase (UNSPECIFIED for a value this code does not know:
    the starter sets `waiting`, so that only happens to a workflow someone started by hand)."""
    try:
        return CallbackPhase(text)
    except ValueError:
        return CallbackPhase.UNSPECIFIED


def _outcome_text(result: DialResult) -> str:
    """`not-reached (voicemail): voicemail answered`, `connected (customer-ended-call): the customer spoke`:
    the outcome, Vapi's reason and the evidence verdict's detail, for `CallbackStatus.last_outcome`."""
    text = result.outcome.value + (f" ({result.ended_reason})" if result.ended_reason else "")
    return text + (f": {result.detail}" if result.detail else "")


@workflow.defn
class QueueCallbackWorkflow:
    """Waits for a free specialist at the head of the team's queue, in business hours, then dials."""

    @workflow.init
    def __init__(self, data: QueueCallbackInput) -> None:
        self._input = data
        self._state = CallbackPhase.UNSPECIFIED
        self._position = 0
        self._attempts = 0
        self._next_attempt_at: datetime | None = None
        self._not_before: datetime | None = data.not_before
        self._agent_id = ""
        self._agent_name = ""
        self._last_outcome = ""
        self._note = ""
        self._woken = False
        self._interrupted = False
        self._cancel_requested = False
        self._cancel_note = ""
        self._expires_at: datetime | None = None
        self._widening = ""
        self._promises = False
        self._widening_from_start = False
        self._promise_state = ""
        self._promised_by: datetime | None = None
        self._promise_at_risk_at: datetime | None = None

    # ------------------------------------------------------------------ handlers
    @workflow.query
    def status(self) -> CallbackStatus:
        """State, queue position, attempts made and when the next attempt may happen."""
        return CallbackStatus(
            call_id=self._input.call_id,
            state=self._state,
            team_id=self._input.team_id,
            masked_number=self._input.masked_number,
            position=self._position,
            attempts=self._attempts,
            max_attempts=self._input.max_attempts,
            next_attempt_at=self._next_attempt_at,
            agent_id=self._agent_id,
            agent_name=self._agent_name,
            last_outcome=self._last_outcome,
            note=self._note,
            widening=self._widening,
            promise_state=self._promise_state,
            promised_by=self._promised_by,
        )

    @workflow.signal
    def specialist_available(self) -> None:
        """Sent by the availability relay when a specialist of the team gets a free slot: claim again."""
        self._woken = True

    @workflow.update
    async def cancel(self, note: str = "") -> CallbackStatus:
        """Cancel the callback; returns once it has ended. A call already ringing finishes its attempt."""
        self._cancel_requested = True
        self._cancel_note = note or "cancelled"
        self._interrupted = True
        await workflow.wait_condition(lambda: self._state.is_final)
        return self.status()

    @cancel.validator
    def _validate_cancel(self, note: str = "") -> None:
        if self._state.is_final:
            raise ValueError(f"the callback has already ended ({self._state})")

    @workflow.update
    def reschedule(self, request: RescheduleRequest) -> CallbackStatus:
        """Do not dial before `request.at` (business hours still apply)."""
        self._not_before = request.at
        self._next_attempt_at = request.at
        ttl = timedelta(seconds=self._input.expires_after_seconds)
        if self._expires_at is not None:
            self._expires_at = max(self._expires_at, request.at + ttl)
        self._interrupted = True
        return self.status()

    @reschedule.validator
    def _validate_reschedule(self, request: RescheduleRequest) -> None:
        at = request.at
        if self._state not in RESCHEDULABLE_STATES:
            raise ValueError(f"a callback that is {self._state or 'starting'} cannot be rescheduled")
        if at.tzinfo is None:
            raise ValueError("the time needs a time zone (e.g. 2026-11-24T09:00:00+00:00)")
        if at <= workflow.now():
            raise ValueError("the time is in the past")
        if at > workflow.now() + MAX_RESCHEDULE:
            raise ValueError(f"the time is more than {MAX_RESCHEDULE.days} days ahead")

    # ------------------------------------------------------------------ run
    @workflow.run
    async def run(self, data: QueueCallbackInput) -> CallbackStatus:
        """Wait, claim, dial; returns the final status."""
        self._expires_at = workflow.now() + timedelta(seconds=data.expires_after_seconds)
        if workflow.patched(LEAN_CLAIMS):
            # The starter already set CallbackState (`initial_search_attributes`): upserting the same value
            # again would cost the server a visibility write per callback for nothing.
            self._state = _phase(workflow.info().typed_search_attributes.get(CALLBACK_STATE) or "")
        self._set_state(CallbackPhase.WAITING)
        self._promises = workflow.patched(PROMISES)
        self._widening_from_start = workflow.patched(WIDENING_FROM_START)
        workflow.logger.info(
            "callback for %s queued on team %s (%s)", data.masked_number, data.team_id, data.decision_id
        )
        problem = number_problem(data)
        if problem and workflow.patched(NUMBER_CHECK):
            self._note = f"never dialled: {problem}"
            self._last_outcome = "not dialled (the customer's number is not E.164)"
            workflow.logger.warning("callback %s: %s", data.call_id, self._note)
            final = CallbackPhase.UNREACHABLE
        else:
            final = await self._serve(data)
        await self._finish(final)
        await workflow.wait_condition(lambda: workflow.all_handlers_finished())
        return self.status()

    async def _serve(self, data: QueueCallbackInput) -> CallbackPhase:
        """The main loop; returns the final state to record."""
        recheck_pending = False
        while True:
            now = workflow.now()
            expires_at = self._expires_at or now
            if self._cancel_requested:
                self._note = self._cancel_note
                return CallbackPhase.CANCELLED
            if self._attempts == 0 and now >= expires_at:
                self._note = "no specialist became free before the callback expired"
                return CallbackPhase.EXPIRED
            if self._not_before is not None and now < self._not_before:
                self._set_state(CallbackPhase.RETRY_WAIT if self._attempts else CallbackPhase.WAITING)
                self._next_attempt_at = self._not_before
                await self._sleep_until(self._not_before, wake_on_signal=False)
                continue
            if data.business_hours is not None and not hours.is_open(data.business_hours, now):
                opening = hours.next_opening(data.business_hours, now)
                self._set_state(CallbackPhase.CLOSED)
                self._next_attempt_at = opening
                await self._sleep_until(opening, wake_on_signal=False)
                continue
            self._next_attempt_at = None
            woken, self._woken = self._woken, False
            claim = await self._claim(data)
            if claim.outcome == ClaimOutcome.ALREADY_FINISHED:
                self._note = "the routing service had already finished this callback"
                return claim.state if claim.state.is_final else CallbackPhase.EXPIRED
            next_widening = self._follow_widening(claim)
            if claim.outcome == ClaimOutcome.RESERVED:
                recheck_pending = False
                result = await self._attempt(data, claim)
                if result == DialOutcome.CONNECTED:
                    return CallbackPhase.CONNECTED
                if self._attempts >= data.max_attempts:
                    self._note = f"not reached after {self._attempts} attempts"
                    return CallbackPhase.UNREACHABLE
                # The specialist's hold lapses on its own (routing's sweeper frees expired holds, and the
                # next attempt's claim gets the reservation back); FinishCallback frees it at the end.
                self._not_before = workflow.now() + timedelta(seconds=data.retry_spacing_seconds)
                continue
            self._position = claim.position
            self._set_state(CallbackPhase.WAITING)
            if claim.outcome == ClaimOutcome.NOT_AT_HEAD and woken and not recheck_pending:
                # Several free slots woke several callbacks; the head reserves first, then it is our turn.
                recheck_pending = True
                await self._sleep_until(
                    workflow.now() + timedelta(seconds=data.head_recheck_seconds), wake_on_signal=True
                )
                continue
            recheck_pending = False
            wake_at = min(workflow.now() + timedelta(seconds=data.safety_recheck_seconds), expires_at)
            if next_widening is not None:
                wake_at = min(wake_at, max(next_widening, workflow.now() + MIN_WIDENING_WAIT))
            promise_moment = self._next_promise_moment(workflow.now())
            if promise_moment is not None:
                wake_at = min(wake_at, promise_moment)
            await self._sleep_until(wake_at, wake_on_signal=True)

    def _follow_widening(self, claim: ClaimResult) -> datetime | None:
        """Show the widening step a claim reported (search attribute `CallbackWidening`, the status query)
        and return when the next step starts; None without widening (see `WIDENING`)."""
        if not (claim.widening_step or claim.next_widening_at):
            return None
        if not (self._widening_from_start or workflow.patched(WIDENING)):
            return None
        label = claim.widening if claim.widening_step else ""
        if label != self._widening:
            self._widening = label
            workflow.upsert_search_attributes(
                [CALLBACK_WIDENING.value_set(label) if label else CALLBACK_WIDENING.value_unset()]
            )
            if label:
                workflow.logger.info("callback %s widened: %s", self._input.call_id, label)
        return claim.next_widening_at

    async def _claim(self, data: QueueCallbackInput) -> ClaimResult:
        claim = await self._claim_once(data)
        if self._promises:
            self._show_promise(claim)
        return claim

    def _show_promise(self, claim: ClaimResult) -> None:
        """Keep routing's promise and its state; the search attributes change only when they do."""
        if not claim.promise_state or claim.promised_by is None:
            return
        self._promise_at_risk_at = claim.promise_at_risk_at
        if claim.promise_state == self._promise_state and claim.promised_by == self._promised_by:
            return
        if claim.promise_state == "breached" and self._promise_state != "breached":
            workflow.logger.warning(
                "callback %s: promise to start by %s broken",
                self._input.call_id,
                claim.promised_by.isoformat(),
            )
        self._promise_state, self._promised_by = claim.promise_state, claim.promised_by
        workflow.upsert_search_attributes(
            [
                CALLBACK_PROMISE_STATE.value_set(claim.promise_state),
                CALLBACK_PROMISED_BY.value_set(claim.promised_by),
            ]
        )

    def _next_promise_moment(self, now: datetime) -> datetime | None:
        """When the waiting callback's promise next changes: it becomes at risk, or its deadline passes
        (plus `PROMISE_GRACE`); None when it has no promise or is already breached."""
        if not self._promises or self._promised_by is None or self._promise_state in ("breached", "kept"):
            return None
        at_risk = self._promise_at_risk_at
        if at_risk is not None and now < at_risk and self._promise_state != "at-risk":
            return at_risk
        deadline = self._promised_by + PROMISE_GRACE
        return deadline if now < deadline else None

    async def _claim_once(self, data: QueueCallbackInput) -> ClaimResult:
        params = ClaimParams(call_id=data.call_id, hold_seconds=data.reservation_hold_seconds)
        try:
            if workflow.patched(LEAN_CLAIMS):
                return await workflow.execute_local_activity_method(
                    RoutingActivities.claim_callback,
                    params,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=ROUTING_RETRY,
                )
            return await workflow.execute_activity_method(  # histories recorded before LEAN_CLAIMS
                RoutingActivities.claim_callback,
                params,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=ROUTING_RETRY,
            )
        except ActivityError as exc:
            # A permanent routing error (e.g. NOT_FOUND: routing never queued this call) ends the promise.
            workflow.logger.error("claim for callback %s failed permanently: %s", data.call_id, exc.cause)
            return ClaimResult(outcome=ClaimOutcome.ALREADY_FINISHED, state=CallbackPhase.EXPIRED)

    async def _attempt(self, data: QueueCallbackInput, claim: ClaimResult) -> DialOutcome:
        """One dial of the customer with the reserved specialist; returns a `DialOutcome`."""
        self._attempts += 1
        self._agent_id, self._agent_name = claim.agent_id, claim.agent_name
        if claim.reserved_until is not None and claim.reserved_until < workflow.now():
            workflow.logger.warning(
                "callback %s: routing returned a reservation that lapsed at %s; dialling with it anyway",
                data.call_id,
                claim.reserved_until.isoformat(),
            )
        self._position = 0
        self._set_state(CallbackPhase.DIALLING)
        key = attempt_key(data.call_id, self._attempts)
        try:
            result: DialResult = await workflow.execute_activity_method(
                VapiActivities.place_callback_call,
                DialParams(
                    call_id=data.call_id,
                    attempt=self._attempts,
                    attempt_key=key,
                    customer_number=data.customer_number,
                    masked_number=data.masked_number,
                    variable_values=callback_variables(data, key, claim),
                    first_message=data.first_message or default_first_message(data.category),
                ),
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=dial_heartbeat_timeout(data),
                retry_policy=DIAL_RETRY,
            )
        except ActivityError as exc:
            self._last_outcome = f"dial failed: {exc.cause}"
            workflow.logger.warning("callback %s: %s", key, self._last_outcome)
            return DialOutcome.NOT_REACHED
        self._last_outcome = _outcome_text(result)
        workflow.logger.info("callback %s for %s: %s", key, data.masked_number, self._last_outcome)
        return result.outcome

    async def _finish(self, state: CallbackPhase) -> None:
        """Record the final state in routing (frees any reservation), then in the search attributes."""
        data = self._input
        try:
            await workflow.execute_activity_method(
                RoutingActivities.finish_callback,
                FinishParams(call_id=data.call_id, state=state, note=self._note),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=ROUTING_RETRY,
            )
        except ActivityError as exc:
            workflow.logger.error("finishing callback %s as %s failed: %s", data.call_id, state, exc.cause)
        self._position = 0
        self._next_attempt_at = None
        self._set_state(state)
        workflow.logger.info("callback for %s ended: %s", data.masked_number, state)
        await self._tell_review()

    async def _tell_review(self) -> None:
        """Let the call's review (if one runs) judge the callback's outcome without waiting longer."""
        handle = workflow.get_external_workflow_handle(review_workflow_id(self._input.call_id))
        try:
            await handle.signal("callback_finished", self.status())
        except Exception:  # no review running for this call: nothing to tell
            workflow.logger.debug("no review workflow to notify for %s", self._input.call_id)

    async def _sleep_until(self, when: datetime, *, wake_on_signal: bool) -> None:
        """A durable timer cut short by a cancel or reschedule (and, if asked, `specialist_available`)."""
        seconds = (when - workflow.now()).total_seconds()
        if seconds > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._interrupted or (wake_on_signal and self._woken), timeout=seconds
                )
        self._interrupted = False

    def _set_state(self, state: CallbackPhase) -> None:
        if state == self._state:
            return
        self._state = state
        workflow.upsert_search_attributes(
            [
                ESCALATION_TIER.value_set(self._input.tier),
                ESCALATION_CATEGORY.value_set(self._input.category),
                ESCALATION_COMPLEXITY.value_set(self._input.complexity),
                CALLBACK_STATE.value_set(state.value),
            ]
        )
