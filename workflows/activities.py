"""Activities: the only workflow code that does I/O (routing over gRPC, Vapi over HTTP, the worker's DB).

Each class is built once by the worker with its clients and registers its bound methods:

- `RoutingActivities(stub)`: `claim_callback`, `finish_callback`, `get_decision`,
  `record_escalation_outcome`, `record_review_outcome`. gRPC errors become `ApplicationError`s whose
  `type` is the status code name; INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, PERMISSION_DENIED and
  UNAUTHENTICATED are non-retryable.
- `VapiActivities(http, ledger, ...)`: `place_callback_call` dials through `POST {api_url}/call` (guarded by
  the dial ledger, see `workflows.ledger`) and watches the call with `GET {api_url}/call/{id}`, heartbeating,
  until Vapi reports it ended; the customer counts as reached only on evidence (`workflows.evidence`). A 400
  for the org's concurrency limit is retried (`VapiConcurrencyLimit`); other 4xx are permanent
  (`VapiRejected`).
- `ReviewActivities(store)`: `record_review` keeps a review's findings in the worker's database.
- `NotifierActivities(http, contacts, ui_url=...)`: `notify_supervisor` POSTs a review notification to a
  contact's webhook (`workflows.review_notice` builds the body), the contact and its URL looked up in the
  policy's `review_notifications` when it sends. A transport error, a 5xx, 408 or 429 is retried (the
  workflow's retry policy); another 4xx is permanent (`NotifyRejected`). Every try of one notification
  carries the same `Idempotency-Key` header, so a receiver can drop a repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
import httpx
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio import activity
from temporalio.exceptions import ApplicationError

from escalade_platform.generated.escalade.routing.v1 import routing_pb2
from escalade_platform.masking import mask_number, mask_numbers_in_text
from workflows.evidence import CallEvidence, judge, judge_call
from workflows.inputs import CallbackPhase
from workflows.ledger import ENDED_STATES, DialLedger, DialState
from workflows.payloads import (
    CallbackView,
    ClaimOutcome,
    ClaimParams,
    ClaimResult,
    DecisionParams,
    DecisionView,
    DialOutcome,
    DialParams,
    DialResult,
    FinishParams,
    FinishResult,
    NotifyParams,
    NotifyResult,
    OutcomeParams,
    OutcomeResult,
    ReviewOutcomeParams,
    ReviewOutcomeReport,
    ReviewRecord,
)
from workflows.review_notice import idempotency_key, notice_body, temporal_ui_link
from workflows.review_store import ReviewStore

if TYPE_CHECKING:
    from escalade_platform.generated.escalade.routing.v1.routing_pb2_grpc import RoutingServiceAsyncStub
    from routing_service.domain.review_notifications import ReviewNotifications

__all__ = [
    "UNKNOWN_ENDED_REASONS",
    "NotifierActivities",
    "ReviewActivities",
    "RoutingActivities",
    "VapiActivities",
    "classify_ended_reason",
    "vapi_call_name",
]

_PERMANENT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}

_CLAIM_OUTCOMES = {
    routing_pb2.CLAIM_OUTCOME_RESERVED: ClaimOutcome.RESERVED,
    routing_pb2.CLAIM_OUTCOME_NOT_AT_HEAD: ClaimOutcome.NOT_AT_HEAD,
    routing_pb2.CLAIM_OUTCOME_NO_SPECIALIST_FREE: ClaimOutcome.NO_SPECIALIST_FREE,
    routing_pb2.CLAIM_OUTCOME_ALREADY_FINISHED: ClaimOutcome.ALREADY_FINISHED,
}

_STATE_TO_PB = {
    CallbackPhase.WAITING: routing_pb2.CALLBACK_STATE_WAITING,
    CallbackPhase.RESERVED: routing_pb2.CALLBACK_STATE_RESERVED,
    CallbackPhase.CONNECTED: routing_pb2.CALLBACK_STATE_CONNECTED,
    CallbackPhase.CANCELLED: routing_pb2.CALLBACK_STATE_CANCELLED,
    CallbackPhase.UNREACHABLE: routing_pb2.CALLBACK_STATE_UNREACHABLE,
    CallbackPhase.EXPIRED: routing_pb2.CALLBACK_STATE_EXPIRED,
}
"""Routing's ticket states, as `CallbackPhase`s (the phases routing does not know never reach it)."""
_STATE_FROM_PB = {value: phase for phase, value in _STATE_TO_PB.items()}


def _enum_label(name: str, prefix: str) -> str:
    """`COMPLEXITY_ADVANCED` -> `advanced`; `..._UNSPECIFIED` -> ``."""
    label = name.removeprefix(prefix).lower()
    return "" if label == "unspecified" else label


_PROMISE_STATES = {
    routing_pb2.PROMISE_STATE_ON_TRACK: "on-track",
    routing_pb2.PROMISE_STATE_AT_RISK: "at-risk",
    routing_pb2.PROMISE_STATE_BREACHED: "breached",
    routing_pb2.PROMISE_STATE_KEPT: "kept",
}
"""`routing_service.domain.promises.PromiseState`'s values, by the proto's numbers."""


def _phase(value: int) -> CallbackPhase:
    """A ticket's `routing_pb2.CallbackState` as a `CallbackPhase` (UNSPECIFIED when routing gave none)."""
    phase: CallbackPhase = _STATE_FROM_PB.get(value, CallbackPhase.UNSPECIFIED)  # type: ignore[call-overload]
    return phase


def _complexity_label(value: int) -> str:
    return _enum_label(routing_pb2.Complexity.Name(value), "COMPLEXITY_")  # type: ignore[arg-type]


def _kind_label(value: int) -> str:
    return _enum_label(routing_pb2.DecisionKind.Name(value), "DECISION_KIND_")  # type: ignore[arg-type]


def _trace_line(step: routing_pb2.TraceStep) -> str:
    """`rule technical-advanced: matched (tier enterprise)`, numbers masked."""
    outcome = _enum_label(routing_pb2.TraceOutcome.Name(step.outcome), "TRACE_OUTCOME_")
    line = f"{step.stage} {step.subject}".strip() + (f": {outcome}" if outcome else "")
    if step.detail:
        line += f" ({step.detail})"
    return mask_numbers_in_text(line)


def _when(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    stamp: Timestamp = getattr(message, name)
    return stamp.ToDatetime(tzinfo=UTC)


def _rpc_failure(action: str, error: grpc.RpcError) -> ApplicationError:
    code = error.code() if isinstance(error, grpc.aio.AioRpcError | grpc.Call) else grpc.StatusCode.UNKNOWN
    details = error.details() if isinstance(error, grpc.aio.AioRpcError | grpc.Call) else str(error)
    return ApplicationError(
        f"{action}: {code.name}: {details}",
        type=code.name,
        non_retryable=code in _PERMANENT_CODES,
    )


class RoutingActivities:
    """Activities that talk to the routing service over gRPC."""

    def __init__(self, stub: RoutingServiceAsyncStub, *, rpc_timeout: float = 10.0) -> None:
        self._stub = stub
        self._timeout = rpc_timeout

    @activity.defn(name="claim_callback")
    async def claim_callback(self, params: ClaimParams) -> ClaimResult:
        """Reserve a specialist for the callback if it is at the head of its team's queue."""
        request = routing_pb2.ClaimCallbackRequest(call_id=params.call_id)
        if params.hold_seconds > 0:
            request.hold_for.FromTimedelta(timedelta(seconds=params.hold_seconds))
        try:
            response = await self._stub.ClaimCallback(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _rpc_failure("claim callback", exc) from None
        ticket, agent = response.callback, response.agent
        for step in response.trace:  # e.g. an at-risk promise moving ahead, a promise broken
            activity.logger.info("claim of callback %s: %s", params.call_id, step.detail)
        contact = agent.WhichOneof("contact")
        return ClaimResult(
            outcome=_CLAIM_OUTCOMES.get(response.outcome, ClaimOutcome.NO_SPECIALIST_FREE),
            state=_phase(ticket.state),
            position=ticket.position,
            agent_id=agent.agent_id or ticket.agent_id,
            agent_name=agent.display_name,
            agent_number=agent.number if contact == "number" else "",
            agent_sip_uri=agent.sip_uri if contact == "sip_uri" else "",
            reserved_until=_when(ticket, "reserved_until"),
            widening_step=response.widening_step,
            widening=response.widening,
            next_widening_at=(
                response.next_widening_at.ToDatetime(tzinfo=UTC)
                if response.HasField("next_widening_at")
                else None
            ),
            served_team=response.served_team_id,
            promise_state=_PROMISE_STATES.get(ticket.promise_state, ""),
            promised_by=_when(ticket, "promised_by"),
            promise_at_risk_at=_when(ticket, "promise_at_risk_at"),
        )

    @activity.defn(name="finish_callback")
    async def finish_callback(self, params: FinishParams) -> FinishResult:
        """End the callback in the routing store (frees its reservation). Finishing twice is not an error."""
        request = routing_pb2.FinishCallbackRequest(
            call_id=params.call_id, state=_STATE_TO_PB[params.state], note=params.note
        )
        try:
            response = await self._stub.FinishCallback(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return FinishResult(state=params.state, already_finished=True)
            raise _rpc_failure("finish callback", exc) from None
        return FinishResult(state=_phase(response.callback.state) or params.state)

    @activity.defn(name="get_decision")
    async def get_decision(self, params: DecisionParams) -> DecisionView | None:
        """The stored decision of a call, or None when routing has none."""
        try:
            response = await self._stub.GetDecision(
                routing_pb2.GetDecisionRequest(call_id=params.call_id), timeout=self._timeout
            )
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _rpc_failure("get decision", exc) from None
        d = response.decision
        callback = None
        if d.HasField("callback"):
            ticket = await self._current_ticket(d.callback)
            callback = CallbackView(
                state=_phase(ticket.state),
                enqueued_at=_when(ticket, "enqueued_at"),
                finished_at=_when(ticket, "finished_at"),
                agent_id=ticket.agent_id,
                promise_state=_PROMISE_STATES.get(ticket.promise_state, ""),
                promised_by=_when(ticket, "promised_by"),
            )
        return DecisionView(
            decision_id=d.decision_id,
            kind=_kind_label(d.kind),
            team_id=d.team_id,
            agent_id=d.agent_id,
            agent_name=d.agent_display_name,
            tier=d.tier,
            issue_category=d.issue_category,
            complexity=_complexity_label(d.effective_complexity),
            estimated_wait_seconds=d.estimated_wait.ToTimedelta().total_seconds()
            if d.HasField("estimated_wait")
            else None,
            decided_at=_when(d, "decided_at"),
            callback=callback,
            rule_id=d.rule_id,
            reason=mask_numbers_in_text(d.reason),
            trace=[_trace_line(step) for step in d.trace],
            masked_caller=mask_number(d.caller_number) if d.caller_number else "",
        )

    async def _current_ticket(self, snapshot: routing_pb2.CallbackTicket) -> routing_pb2.CallbackTicket:
        """The decision carries its ticket as it was when decided: look the callback up in the team's queue
        now (open first; if it left the queue, in each final state)."""
        states = (
            routing_pb2.CALLBACK_STATE_UNSPECIFIED,
            routing_pb2.CALLBACK_STATE_CONNECTED,
            routing_pb2.CALLBACK_STATE_UNREACHABLE,
            routing_pb2.CALLBACK_STATE_CANCELLED,
            routing_pb2.CALLBACK_STATE_EXPIRED,
        )
        try:
            for state in states:
                listed = await self._stub.ListCallbacks(
                    routing_pb2.ListCallbacksRequest(team_id=snapshot.team_id, state=state),
                    timeout=self._timeout,
                )
                for ticket in listed.callbacks:
                    if ticket.call_id == snapshot.call_id:
                        return ticket
        except grpc.RpcError as exc:
            raise _rpc_failure("list callbacks", exc) from None
        return snapshot

    @activity.defn(name="record_escalation_outcome")
    async def record_escalation_outcome(self, params: OutcomeParams) -> OutcomeResult:
        """Count the escalation in the customer's history (once per call) and set their last specialist."""
        request = routing_pb2.RecordEscalationOutcomeRequest(call_id=params.call_id, agent_id=params.agent_id)
        try:
            response = await self._stub.RecordEscalationOutcome(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _rpc_failure("record escalation outcome", exc) from None
        return OutcomeResult(
            counted=response.counted, previous_escalations=response.customer.previous_escalations
        )

    @activity.defn(name="record_review_outcome")
    async def record_review_outcome(self, params: ReviewOutcomeParams) -> ReviewOutcomeReport:
        """Report a review's findings, or its verdict, to routing (idempotent per call there): counted per
        team and rule, and a verdict may teach routing about the customer (policy `review_learning`)."""
        request = routing_pb2.RecordReviewOutcomeRequest(
            call_id=params.call_id,
            finding_rules=params.finding_rules,
            verdict=params.verdict,
            actual_category=params.actual_category,
        )
        if params.decided_at is not None:
            request.decided_at.FromDatetime(params.decided_at)
        try:
            response = await self._stub.RecordReviewOutcome(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            failure = _rpc_failure("record review outcome", exc)
            if failure.type == grpc.StatusCode.UNIMPLEMENTED.name:
                # A routing service older than this worker: the review must not wait for its upgrade.
                raise ApplicationError(failure.message, type=failure.type, non_retryable=True) from None
            raise failure from None
        return ReviewOutcomeReport(
            outcome=response.outcome,
            verdict_recorded=response.verdict_recorded,
            category_wrong=response.category_wrong,
            uncertain=response.uncertain,
            learned=list(response.learned),
        )


UNKNOWN_ENDED_REASONS = "escalade_callback_unknown_ended_reasons"
"""Counter (label `ended_reason`) of callback calls that ended with a reason the pinned Vapi SDK lacks."""

_unknown_logged: set[str] = set()
"""Unknown endedReasons already logged by this worker process (each is logged once, counted every time)."""

_MAYBE_DIALLED = "an earlier try may have dialled: not dialled again"

_CONCURRENCY = "concurrenc"
"""Vapi answers `POST /call` 400 when the org is at its concurrency limit (its text names the limit:
"Over Concurrency Limit"); the same status also means a bad body, hence reading the text."""


def classify_ended_reason(ended_reason: str, *, customer_spoke: bool = False) -> DialOutcome:
    """CONNECTED only for an allow-listed reason with a customer turn; NOT_REACHED for anything else
    (see `workflows.evidence`)."""
    return DialOutcome.CONNECTED if judge(ended_reason, customer_spoke).reached else DialOutcome.NOT_REACHED


def _label(reason: str) -> str:
    """A bounded metric label: the reason's first 80 characters of [a-z0-9.-], others as `_`."""
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in reason.lower()[:80])


def _note_unknown(evidence: CallEvidence) -> None:
    """Count an unknown endedReason (by label) and log it the first time this process sees it."""
    if evidence.known:
        return
    label = _label(evidence.ended_reason)
    activity.metric_meter().create_counter(
        UNKNOWN_ENDED_REASONS, "Callback calls that ended with an endedReason unknown to Escalade's Vapi SDK"
    ).add(1, {"ended_reason": label})
    if label not in _unknown_logged:
        _unknown_logged.add(label)
        activity.logger.warning(
            "Vapi ended a callback call with endedReason %r, unknown to the pinned Vapi SDK: counted as not "
            "reached (logged once per worker process; counted in %s)",
            label,
            UNKNOWN_ENDED_REASONS,
        )


def _result(evidence: CallEvidence, vapi_call_id: str, *, dialled_now: bool = False) -> DialResult:
    return DialResult(
        outcome=DialOutcome.CONNECTED if evidence.reached else DialOutcome.NOT_REACHED,
        vapi_call_id=vapi_call_id,
        ended_reason=evidence.ended_reason,
        dialled_now=dialled_now,
        detail=evidence.detail,
    )


def _vapi_message(response: httpx.Response) -> str:
    """Vapi's error text (`message`, a string or a list of strings), else the body's start."""
    try:
        body = response.json()
    except ValueError:
        return mask_numbers_in_text(response.text[:300])
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, list):
        text = "; ".join(str(m) for m in message)
    else:
        text = str(message if message is not None else body)
    return mask_numbers_in_text(text[:300])


def vapi_call_name(attempt_key: str) -> str:
    """Vapi's `name` for the call: the attempt key itself when it fits Vapi's 40 characters, else a
    deterministic digest of it (the full key also travels in the call's variable values)."""
    if len(attempt_key) <= 40:
        return attempt_key
    return "escalade-cb-" + hashlib.sha256(attempt_key.encode()).hexdigest()[:28]


class VapiActivities:
    """Outbound callback calls through Vapi's REST API, at most one dial per attempt key."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        ledger: DialLedger,
        *,
        api_url: str,
        api_key: str,
        assistant_id: str,
        phone_number_id: str,
        poll_interval: float = 5.0,
    ) -> None:
        self._http = http
        self._ledger = ledger
        self._url = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._assistant_id = assistant_id
        self._phone_number_id = phone_number_id
        self._poll = poll_interval

    @activity.defn(name="place_callback_call")
    async def place_callback_call(self, params: DialParams) -> DialResult:
        """Dial the customer once for this attempt, then wait (heartbeating) until the call ends."""
        entry, inserted = await self._ledger.claim(params.attempt_key, params.call_id)
        dialled_now = False
        if inserted:
            vapi_call_id = await self._dial(params)
            dialled_now = True
        elif entry.state in ENDED_STATES:
            evidence = judge(entry.ended_reason or "", entry.state is DialState.CONNECTED)
            return _result(evidence, entry.vapi_call_id or "")
        elif entry.state is DialState.UNCERTAIN:
            return DialResult(DialOutcome.UNCERTAIN, detail=_MAYBE_DIALLED)
        elif entry.vapi_call_id:  # dialled, or `ended` by an older version: (re)read the call for evidence
            vapi_call_id = entry.vapi_call_id
        else:
            found = await self._find_by_name(params.attempt_key, entry.created_at)
            if found is None:
                activity.logger.warning(
                    "callback attempt %s may have dialled %s before a crash and Vapi does not list it: "
                    "not dialling again",
                    params.attempt_key,
                    params.masked_number,
                )
                await self._ledger.mark_uncertain(params.attempt_key)
                return DialResult(DialOutcome.UNCERTAIN, detail=_MAYBE_DIALLED)
            vapi_call_id = found
            await self._ledger.mark_dialled(params.attempt_key, vapi_call_id)
        call = await self._watch(vapi_call_id)
        evidence = judge_call(call)
        _note_unknown(evidence)
        await self._ledger.mark_ended(params.attempt_key, evidence.ended_reason, reached=evidence.reached)
        return _result(evidence, vapi_call_id, dialled_now=dialled_now)

    def call_body(self, params: DialParams) -> dict[str, Any]:
        """The `POST /call` body of one attempt (validated against the SDK's models in the tests).

        `assistantOverrides`: `firstMessage` (the callback's own greeting, naming the original issue),
        `voicemailDetection` with Vapi's own provider (off by default in Vapi: without it an answering
        machine "answers"; with it the call ends `voicemail`), and `variableValues` (see
        `workflows.callback.callback_variables` for who reads each)."""
        overrides: dict[str, Any] = {}
        if params.first_message:
            overrides["firstMessage"] = params.first_message
        overrides["voicemailDetection"] = {"provider": "vapi"}
        overrides["variableValues"] = params.variable_values
        return {
            "assistantId": self._assistant_id,
            "phoneNumberId": self._phone_number_id,
            "customer": {"number": params.customer_number},
            "name": vapi_call_name(params.attempt_key),
            "assistantOverrides": overrides,
        }

    async def _dial(self, params: DialParams) -> str:
        body = self.call_body(params)
        try:
            response = await self._http.post(f"{self._url}/call", json=body, headers=self._headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            await self._ledger.forget(params.attempt_key)
            raise ApplicationError(
                f"Vapi API not reachable: {type(exc).__name__}", type="VapiUnreachable"
            ) from None
        except httpx.TransportError as exc:
            # The request may have reached Vapi: keep the `dialling` row so a retry looks the call up.
            raise ApplicationError(
                f"Vapi API did not answer: {type(exc).__name__}", type="VapiNoAnswer"
            ) from None
        if response.is_success:
            vapi_call_id = str(response.json().get("id", ""))
            await self._ledger.mark_dialled(params.attempt_key, vapi_call_id)
            activity.logger.info(
                "dialled %s for %s (Vapi call %s)", params.masked_number, params.attempt_key, vapi_call_id
            )
            return vapi_call_id
        await self._ledger.forget(params.attempt_key)
        message = _vapi_message(response)
        if response.status_code == 400 and _CONCURRENCY in message.lower():
            # Vapi created nothing and will take the call once one of the org's calls ends: retry (the
            # activity's retry policy backs off), the reserved specialist still held.
            activity.logger.warning(
                "Vapi is at the org's concurrency limit (%s): attempt %s retried", message, params.attempt_key
            )
            raise ApplicationError(
                f"Vapi API answered 400 to POST /call: {message}", type="VapiConcurrencyLimit"
            )
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        raise ApplicationError(
            f"Vapi API answered {response.status_code} to POST /call: {message}",
            type="VapiError" if retryable else "VapiRejected",
            non_retryable=not retryable,
        )

    async def _watch(self, vapi_call_id: str) -> dict[str, Any]:
        """Poll `GET /call/{id}` until `status == "ended"`, heartbeating; returns the ended call."""
        while True:
            activity.heartbeat(vapi_call_id)
            try:
                response = await self._http.get(f"{self._url}/call/{vapi_call_id}", headers=self._headers)
            except httpx.TransportError as exc:
                activity.logger.warning(
                    "Vapi call %s status unavailable: %s", vapi_call_id, type(exc).__name__
                )
            else:
                if response.is_success:
                    call = response.json()
                    if isinstance(call, dict) and call.get("status") == "ended":
                        return call
                elif response.status_code == 404:
                    raise ApplicationError(f"Vapi has no call {vapi_call_id}", type="VapiCallMissing")
            await asyncio.sleep(self._poll)

    async def _find_by_name(self, attempt_key: str, since: datetime) -> str | None:
        """Vapi's id of a call named after `attempt_key` created around `since`, if Vapi lists one."""
        query = {
            "phoneNumberId": self._phone_number_id,
            "createdAtGe": (since - timedelta(minutes=5)).isoformat(),
            "limit": "1000",
        }
        try:
            response = await self._http.get(f"{self._url}/call", params=query, headers=self._headers)
        except httpx.TransportError as exc:
            raise ApplicationError(
                f"Vapi API list failed: {type(exc).__name__}", type="VapiUnreachable"
            ) from None
        if not response.is_success:
            raise ApplicationError(f"Vapi API answered {response.status_code} to GET /call", type="VapiError")
        name = vapi_call_name(attempt_key)
        for call in response.json():
            if isinstance(call, dict) and call.get("name") == name:
                return str(call.get("id", ""))
        return None


class ReviewActivities:
    """Keeps review findings in the worker's database."""

    def __init__(self, store: ReviewStore) -> None:
        self._store = store

    @activity.defn(name="record_review")
    async def record_review(self, record: ReviewRecord) -> None:
        """Upsert the review's state, findings, verdict and note."""
        await self._store.save(record)
        activity.logger.info(
            "review %s: %s (%d findings)", record.call_id, record.state, len(record.findings)
        )


_RETRIED_CLIENT_ERRORS = frozenset({408, 429})


class NotifierActivities:
    """Sends review notifications to the webhooks the policy's `review_notifications` names."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        contacts: Callable[[], ReviewNotifications],
        *,
        ui_url: str,
        timeout: float = 10.0,
    ) -> None:
        self._http = http
        self._contacts = contacts
        self._ui_url = ui_url
        self._timeout = timeout

    @activity.defn(name="notify_supervisor")
    async def notify_supervisor(self, params: NotifyParams) -> NotifyResult:
        """POST the notification to the contact's webhook; raises a retryable `ApplicationError` for a
        failure worth retrying, a non-retryable one for a permanent refusal."""
        try:
            notifications = self._contacts()
        except Exception as exc:  # an unreadable policy file may be fixed: retried
            raise ApplicationError(
                f"the policy's review_notifications cannot be read: {type(exc).__name__}",
                type="NotifyPolicyUnreadable",
            ) from None
        team = notifications.for_team(params.team_id)
        contact = team.contact(params.contact) if team is not None else None
        if contact is None:
            raise ApplicationError(
                f"contact {params.contact!r} of team {params.team_id!r} is not in the worker's policy file "
                "(review_notifications)",
                type="NotifyContactUnknown",
                non_retryable=True,
            )
        url = contact.url or os.environ.get(contact.url_env or "", "").strip()
        if not url:
            activity.logger.warning(
                "review %s: contact %s skipped: %s is not set on the worker",
                params.call_id,
                contact.name,
                contact.url_env,
            )
            return NotifyResult(
                delivered=False, detail=f"skipped: {contact.url_env} is not set on the worker"
            )
        info = activity.info()
        namespace, workflow_id = info.workflow_namespace or "default", info.workflow_id or ""
        link = temporal_ui_link(self._ui_url, namespace, workflow_id)
        body = notice_body(contact.format, params, link=link, workflow_id=workflow_id)
        headers = {"Idempotency-Key": idempotency_key(params.call_id, params.step)}
        try:
            response = await self._http.post(url, json=body, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:  # the URL may hold a secret: never in the message
            raise ApplicationError(
                f"the webhook of contact {contact.name} could not be reached: {type(exc).__name__}",
                type="NotifyUnreachable",
            ) from None
        status = response.status_code
        if response.is_success:
            activity.logger.info(
                "review %s: notified %s (step %d, HTTP %d)", params.call_id, contact.name, params.step, status
            )
            return NotifyResult(delivered=True, detail=f"HTTP {status}")
        permanent = 400 <= status < 500 and status not in _RETRIED_CLIENT_ERRORS
        if permanent:
            raise ApplicationError(
                f"the webhook of contact {contact.name} refused the notification with HTTP {status} "
                "(not retried: check the contact's URL and format in review_notifications)",
                type="NotifyRejected",
                non_retryable=True,
            )
        raise ApplicationError(
            f"the webhook of contact {contact.name} answered HTTP {status}", type="NotifyFailed"
        )
