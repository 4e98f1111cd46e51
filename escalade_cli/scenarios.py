"""The seed tutorial's test scenarios as realistic Vapi server messages, for `escalade simulate`.

Each scenario becomes a `transfer-destination-request` envelope shaped like Vapi's (and like the edge tests'
fixtures in `tests/edge/fixtures/`): `{"message": {...}}` with a fresh call id per run, the caller's number at
`message.customer.number` and `message.call.customer.number` (absent for the web call), and the conversation
in `message.artifact.messages`, ending with the assistant's `escalateToSupport` tool call, plus the plain-text
`artifact.transcript`. Each scenario states the team the TechCorp policy (examples/techcorp.yaml) sends it to.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCENARIOS",
    "Scenario",
    "Turn",
    "default_scenarios",
    "event",
    "request_call",
    "scenario_names",
    "status_update",
    "tool_calls_request",
    "transfer_request",
    "transfer_update",
]

ORG_ID = "6f1d2c4b-8a3e-4f7b-9d21-5c0e8b7a1f36"
ASSISTANT_ID = "b3c9e2a1-7d4f-4e8a-a6b5-2f1c0d9e8a71"
PHONE_NUMBER_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
SUPPORT_LINE = "+15550100050"
TWILIO_ACCOUNT = "ACa1b2c3d4e5f60718293a4b5c6d7e8f90"
TOOL_NAME = "escalateToSupport"
GREETING = "Thanks for calling TechCorp support, this is Riley. How can I help today?"
SYSTEM_PROMPT = (
    "You are the TechCorp support assistant. Solve simple problems yourself; when a caller needs a human "
    "specialist, call escalateToSupport with the issue category, complexity and context."
)


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    """`bot` or `user`."""
    text: str


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    caller: str | None
    """The caller's number as Vapi gives it; None for a web call."""
    issue_category: str
    complexity_level: str
    customer_context: str
    escalation_reason: str
    turns: tuple[Turn, ...]
    expected_team: str
    expected_kind: str | None = None
    """`callback` when the scenario must end in the queue; None when any transfer to the team will do."""
    busy_team: str | None = None
    """Make this team's available specialists busy for the scenario: the callback flow restores them once
    its callback is queued; the route flow leaves them busy (and the callback waiting) unless asked to
    clean up."""
    flow: str = "route"
    """What `escalade simulate` plays after the escalation request (see FLOWS)."""
    extended: bool = False
    """Run only when named (it waits on timers, needs the dev stack's Vapi stand-in, or leaves specialists
    busy), so that the default run can be repeated."""
    confidence: float | None = None
    """The tool's optional `confidence` argument (left out when None)."""
    confirmed_category: str = ""
    """The confirm flow: the category the caller confirms when the assistant asks."""
    handoff: tuple[tuple[str, Any], ...] = ()
    """The tool's optional handoff-packet arguments (summary, steps_tried, account_id, order_id,
    error_codes), left out when empty."""
    actual_category: str = ""
    """The feedback flow: the category the end-of-call report says the call was really about."""

    @property
    def expectation(self) -> str:
        return f"{self.expected_team} ({self.expected_kind})" if self.expected_kind else self.expected_team

    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "issue_category": self.issue_category,
            "complexity_level": self.complexity_level,
            "customer_context": self.customer_context,
            "escalation_reason": self.escalation_reason,
        }
        if self.confidence is not None:
            arguments["confidence"] = self.confidence
        arguments.update(self.handoff)
        return arguments


FLOWS = {
    "route": "forwarding, ended assistant-forwarded-call, then CompleteAssignment without wrap-up",
    "no-answer": "forwarding, transfer-update no-answer, the same call escalates again, next specialist",
    "wrap-up": "forwarding, ended assistant-forwarded-call (talking), CompleteAssignment (wrap-up)",
    "callback": "callback queued; the Vapi stand-in plays voicemail, then reached and handed over",
    "what-if": "routed as `route`, then its recorded decision replayed under the routing policy without a "
    "rule for the call's category (what `escalade policy check --replay` does over a period)",
    "widening": "the qualified specialists busy, one under the complexity ceiling free: a callback queued, "
    "and the widening steps it will take (who may take it after how long), read from routing",
    "confirm": "function tool: routing asks the assistant to confirm the category, the caller confirms, "
    "the tool is called again and that decision is handed over and completed",
    "fair-load": "three critical calls of the same kind: the first is handed over and completed, the second "
    "skips that senior (in cool-down after a critical call), the third finds nobody else free and takes a "
    "senior over the cap; the last two are then completed",
    "promise": "callback queued with the time it promises to start; a specialist comes back, the callback "
    "is claimed before that time (promise kept) and the team's kept rate and estimate accuracy are read",
    "handoff": "routed as `route`; then the handoff packet the specialist gets is read back "
    "(`GetHandoffPacket`, as an agent desktop asks) and printed",
    "notice": "routed; the transfer is not answered and the call ends; the review finds the failed transfer "
    "and the dev stack's worker notifies the team's supervisor: a local receiver simulate starts (on "
    "--notify-port) shows what the supervisor gets; then the review is closed with the verdict resolved",
    "feedback": "routed as `route`; its end-of-call report says the call was about `actual_category`; the "
    "review finds the mismatch, a supervisor gives the verdict wrong-category (a Temporal update, as "
    "`escalade reviews complete` does), and the customer's next call with the same stated category goes "
    "to the team routing learned",
}
"""The Vapi message sequences `escalade simulate` plays after a scenario's escalation request."""

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="enterprise-technical",
            title="Enterprise customer, advanced technical issue (API 401s)",
            caller="+1234567890",
            issue_category="technical",
            complexity_level="advanced",
            customer_context="Enterprise account; batch API returns 401 after OAuth client-secret rotation; "
            "tokens issue correctly with batch scope.",
            escalation_reason="API integration failure that needs an integration engineer to inspect the "
            "auth configuration.",
            turns=(
                Turn(
                    "user",
                    "Our API integration started returning 401 errors on the batch endpoint right after we "
                    "rotated our OAuth client secret this morning.",
                ),
                Turn(
                    "bot",
                    "Sorry about that. Did every service that requests tokens get the new secret, and do the "
                    "tokens carry the batch scope?",
                ),
                Turn(
                    "user",
                    "Yes, we checked both. Tokens come back fine but every batch call still fails. "
                    "We need an engineer who knows our integration.",
                ),
                Turn("bot", "Understood. I'll bring in a technical specialist for your integration."),
            ),
            expected_team="enterprise",
        ),
        Scenario(
            name="standard-billing",
            title="Standard customer, basic billing question (duplicate charge)",
            caller="+0987654321",
            issue_category="billing",
            complexity_level="basic",
            customer_context="Basic Plan customer; charged twice for the November invoice.",
            escalation_reason="Refund of a duplicate charge needs the billing team.",
            turns=(
                Turn(
                    "user", "I was charged twice for my November invoice and I'd like one of them refunded."
                ),
                Turn("bot", "I can see why that's frustrating. Refunds are handled by our billing team."),
                Turn("user", "Okay, please put me through."),
                Turn("bot", "Connecting you with billing now."),
            ),
            expected_team="billing",
        ),
        Scenario(
            name="premium-technical",
            title="Premium customer, advanced technical issue (custom integration)",
            caller="+1111111111",
            issue_category="technical",
            complexity_level="advanced",
            customer_context="Premium Support account; custom webhook integration drops events since the "
            "last release.",
            escalation_reason="Custom integration debugging is beyond self-service.",
            turns=(
                Turn(
                    "user",
                    "Our custom webhook integration has been dropping about a third of the events since "
                    "your last release.",
                ),
                Turn("bot", "Have you checked the delivery log in the dashboard for failed attempts?"),
                Turn("user", "There are no failures logged at all; the events just never arrive."),
                Turn("bot", "That needs a specialist. Let me transfer you."),
            ),
            expected_team="technical",
        ),
        Scenario(
            name="critical-outage",
            title="Unknown caller: 'our service is down, urgent' (claimed product/basic, raised to critical)",
            caller="+15550100001",
            issue_category="product",
            complexity_level="basic",
            customer_context="Caller not found in CRM; reports that nothing loads for any of their users.",
            escalation_reason="Our service is down, urgent.",
            turns=(
                Turn(
                    "user",
                    "Our service is down, urgent! Nothing has loaded for any of our users for about ten "
                    "minutes.",
                ),
                Turn("bot", "I'm sorry to hear that. I'm getting someone for you right now."),
            ),
            expected_team="enterprise",
        ),
        Scenario(
            name="busy-specialists",
            title="Technical issue while every technical specialist is busy (callback)",
            # its callback is dialled once a specialist is free: the number must be E.164 (the seed's
            # premium +1111111111 is not, so its callback would end `unreachable` without waiting)
            caller="+14155550124",
            issue_category="technical",
            complexity_level="advanced",
            customer_context="Standard account; API integration returns intermittent 502s under load.",
            escalation_reason="Needs a technical specialist; none may be free.",
            turns=(
                Turn("user", "Our API integration gets intermittent 502 errors whenever traffic peaks."),
                Turn("bot", "Let me find a technical specialist for you."),
            ),
            expected_team="technical",
            expected_kind="callback",
            busy_team="technical",
            extended=True,
        ),
        Scenario(
            name="web-call",
            title="Web call without a phone number, product question",
            caller=None,
            issue_category="product",
            complexity_level="intermediate",
            customer_context="Web caller, not identified; analytics dashboard totals differ from the CSV "
            "export for the same range.",
            escalation_reason="Product behaviour question needing a product specialist.",
            turns=(
                Turn(
                    "user",
                    "I'm on your website. The new analytics dashboard shows different totals than the export "
                    "for the same date range.",
                ),
                Turn("bot", "That sounds like a product question for our specialists. Let me get someone."),
            ),
            expected_team="product",
        ),
        Scenario(
            name="transfer-no-answer",
            title="Enterprise critical outage: the first specialist does not answer, the next one does",
            caller="+1234567890",
            issue_category="technical",
            complexity_level="critical",
            customer_context="Enterprise account; production API down for every user.",
            escalation_reason="Outage that needs an enterprise engineer now.",
            turns=(
                Turn("user", "Our whole production API is down for every customer, we need someone now."),
                Turn("bot", "I'm getting an enterprise engineer on the line for you right away."),
            ),
            expected_team="enterprise",
            flow="no-answer",
            extended=True,
        ),
        Scenario(
            name="handover-wrap-up",
            title="Billing hand-over: talking until the desktop completes it, then wrap-up",
            caller="+0987654321",
            issue_category="billing",
            complexity_level="basic",
            customer_context="Basic Plan customer; wants an invoice re-sent to a new address.",
            escalation_reason="Invoice changes are done by the billing team.",
            turns=(
                Turn("user", "Can you re-send my last invoice to our new accounts address?"),
                Turn("bot", "Billing can do that for you. Connecting you now."),
            ),
            expected_team="billing",
            flow="wrap-up",
            extended=True,
        ),
        Scenario(
            name="uncertain-category",
            title="The assistant says technical; the caller talks about a refund: asked to confirm, billing",
            caller="+0987654321",
            issue_category="technical",
            complexity_level="basic",
            customer_context="Basic Plan customer; the app shows a charge twice on the November invoice.",
            escalation_reason="Customer wants a person to look at it.",
            turns=(
                Turn("user", "Your app says I was charged twice for November and I want a refund."),
                Turn("bot", "Let me get a specialist to look at that for you."),
            ),
            expected_team="billing",
            flow="confirm",
            confidence=0.9,
            confirmed_category="billing",
        ),
        Scenario(
            name="fair-load",
            title="Three critical outages in a row: a senior in cool-down is skipped, then taken over a cap",
            caller="+1234567890",
            issue_category="technical",
            complexity_level="critical",
            customer_context="Enterprise account; the production API is down for every user.",
            escalation_reason="Outage that needs an enterprise engineer now.",
            turns=(
                Turn(
                    "user", "Our production API is down for every one of our customers, we need someone now."
                ),
                Turn("bot", "I'm getting an enterprise engineer on the line for you right away."),
            ),
            expected_team="enterprise",
            flow="fair-load",
            extended=True,  # leaves the seniors in cool-down: a run right after would route differently
        ),
        Scenario(
            name="handoff-packet",
            title="The specialist picks up knowing the account, the order, the error and what was tried",
            caller="+1111111111",
            issue_category="billing",
            complexity_level="intermediate",
            customer_context="Premium Support customer, account AC-20417; paid order TC-000555 by card.",
            escalation_reason="Charged twice; the self-service refund fails.",
            turns=(
                Turn("user", "I was charged twice for order TC-000555 and the refund page says error R-402."),
                Turn(
                    "bot",
                    "I tried resending the receipt and the refund form; a billing specialist will help.",
                ),
            ),
            expected_team="billing",
            flow="handoff",
            handoff=(
                ("summary", "Double charge on order TC-000555; the self-service refund fails with R-402."),
                ("steps_tried", ["resent the receipt", "tried the refund form"]),
                ("account_id", "AC-20417"),
                ("order_id", "TC-000555"),
                ("error_codes", ["R-402"]),
            ),
        ),
        Scenario(
            name="callback-voicemail",
            title="Callback: meets voicemail, retried, reached and handed to the specialist held for it",
            caller="+14155550123",  # dialled back: must be E.164 (the seed's +1111111111 is not)
            issue_category="technical",
            complexity_level="advanced",
            customer_context="Premium account; webhook deliveries time out since Monday.",
            escalation_reason="Needs a technical specialist; all are busy.",
            turns=(
                Turn("user", "Our webhook deliveries have been timing out since Monday."),
                Turn("bot", "Every technical specialist is busy; we'll call you back."),
            ),
            expected_team="technical",
            expected_kind="callback",
            busy_team="technical",
            flow="callback",
            extended=True,
            handoff=(
                (
                    "summary",
                    "Webhook deliveries time out since Monday; the customer's endpoint answers slowly.",
                ),
                ("steps_tried", ["checked the webhook logs"]),
            ),
        ),
        Scenario(
            name="widening",
            title="Callback widens over time: a specialist one level lower after 5 min, enterprise after 10",
            caller="+14155550188",  # dialled back when someone takes it: E.164
            issue_category="technical",
            complexity_level="advanced",
            customer_context="Standard account; the CSV export API times out for large date ranges.",
            escalation_reason="Needs an advanced technical specialist; the only free one is intermediate.",
            turns=(
                Turn("user", "The export API times out whenever I ask for more than a month of data."),
                Turn("bot", "Our advanced specialists are all busy; we'll call you back."),
            ),
            expected_team="technical",
            expected_kind="callback",
            flow="widening",
            extended=True,
        ),
        Scenario(
            name="kept-promise",
            title="Callback promise: queued with a start time, claimed before it, counted as kept",
            caller="+14155550125",  # dialled back by the dev stack's worker: must be E.164
            issue_category="technical",
            complexity_level="advanced",
            customer_context="Standard account; exported reports are missing yesterday's rows.",
            escalation_reason="Needs a technical specialist; all are busy.",
            turns=(
                Turn("user", "The report export has been missing yesterday's rows since this morning."),
                Turn("bot", "Every technical specialist is busy right now; we'll call you back."),
            ),
            expected_team="technical",
            expected_kind="callback",
            busy_team="technical",
            flow="promise",
            extended=True,
        ),
        Scenario(
            name="review-notice",
            title="A transfer nobody answers: the review notifies the technical team's supervisor",
            caller="+14155550143",
            issue_category="technical",
            complexity_level="advanced",
            customer_context="Premium account; the dashboard shows 500 errors since this morning.",
            escalation_reason="Needs a technical specialist.",
            turns=(
                Turn("user", "The dashboard shows 500 errors since this morning."),
                Turn("bot", "Let me get a technical specialist for you."),
            ),
            expected_team="technical",
            flow="notice",
            extended=True,
        ),
        Scenario(
            name="review-feedback",
            title="A refund routed as technical: the review's wrong-category verdict sends the next call to "
            "billing",
            caller="+14155550142",  # each run calls from a fresh number (see the feedback flow)
            issue_category="technical",
            complexity_level="advanced",
            customer_context="Premium account; says the integration 'charged us twice'.",
            escalation_reason="Customer insists on a specialist.",
            turns=(
                Turn("user", "Your integration charged us twice this month and I need it sorted."),
                Turn("bot", "Let me get a technical specialist for you."),
            ),
            expected_team="billing",
            flow="feedback",
            extended=True,
            actual_category="billing",
        ),
        Scenario(
            name="what-if-account",
            title="What-if: an account question, replayed under a policy with no rule for account calls",
            caller="+0987654321",
            issue_category="account",
            complexity_level="basic",
            customer_context="Basic Plan customer; wants the invoice e-mail address changed.",
            escalation_reason="Account changes are made by the billing and account team.",
            turns=(
                Turn("user", "Please send our invoices to accounts@example.com from now on."),
                Turn("bot", "The billing and account team changes that for you; connecting you now."),
            ),
            expected_team="billing",
            flow="what-if",
            extended=True,
        ),
    )
}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def default_scenarios() -> list[Scenario]:
    """The scenarios `escalade simulate` runs when none is named (the quick, repeatable ones)."""
    return [s for s in SCENARIOS.values() if not s.extended]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _call(call_id: str, scenario: Scenario, created_ms: int, updated_ms: int) -> dict[str, Any]:
    call: dict[str, Any] = {
        "id": call_id,
        "orgId": ORG_ID,
        "createdAt": _iso(created_ms),
        "updatedAt": _iso(updated_ms),
        "type": "inboundPhoneCall" if scenario.caller else "webCall",
        "status": "in-progress",
        "assistantId": ASSISTANT_ID,
        "startedAt": _iso(created_ms + 1200),
    }
    if scenario.caller:
        call.update(
            {
                "phoneCallProvider": "twilio",
                "phoneCallTransport": "pstn",
                "phoneCallProviderId": "CA" + uuid.uuid5(uuid.NAMESPACE_URL, call_id).hex,
                "phoneNumberId": PHONE_NUMBER_ID,
                "customer": {"number": scenario.caller},
            }
        )
    return call


def transfer_request(
    scenario: Scenario, *, call_id: str | None = None, now_ms: int | None = None
) -> dict[str, Any]:
    """A `transfer-destination-request` envelope for the scenario (fresh call id unless one is given)."""
    call_id = call_id or str(uuid.uuid4())
    now = int(time.time() * 1000) if now_ms is None else now_ms
    start = now - 4000 * (len(scenario.turns) + 2)
    messages: list[dict[str, Any]] = [
        {"role": "system", "message": SYSTEM_PROMPT, "time": start, "secondsFromStart": 0}
    ]
    transcript: list[str] = []
    moment = start + 600
    for turn in ((Turn("bot", GREETING)), *scenario.turns):
        duration = 3000 + 40 * len(turn.text)
        entry: dict[str, Any] = {
            "role": turn.role,
            "message": turn.text,
            "time": moment,
            "endTime": moment + duration,
            "secondsFromStart": round((moment - start) / 1000, 2),
            "duration": duration,
        }
        if turn.role == "bot":
            entry["source"] = ""
        messages.append(entry)
        transcript.append(f"{'AI' if turn.role == 'bot' else 'User'}: {turn.text}")
        moment += duration + 500
    messages.append(
        {
            "role": "tool_calls",
            "toolCalls": [
                {
                    "id": "call_" + uuid.uuid4().hex[:24],
                    "type": "function",
                    "function": {"name": TOOL_NAME, "arguments": json.dumps(scenario.arguments())},
                }
            ],
            "message": "",
            "time": moment,
            "secondsFromStart": round((moment - start) / 1000, 2),
        }
    )
    message: dict[str, Any] = {"timestamp": now, "type": "transfer-destination-request"}
    if scenario.caller:
        message["phoneNumber"] = {
            "provider": "twilio",
            "number": SUPPORT_LINE,
            "twilioAccountSid": TWILIO_ACCOUNT,
            "name": "TechCorp Support Line",
            "assistantId": ASSISTANT_ID,
        }
    message["artifact"] = {"messages": messages, "transcript": "\n".join(transcript)}
    if scenario.caller:
        message["customer"] = {"number": scenario.caller}
    message["call"] = _call(call_id, scenario, start - 1200, now)
    return {"message": message}


def event(call: dict[str, Any], kind: str, *, now_ms: int | None = None, **fields: Any) -> dict[str, Any]:
    """A server message of type `kind` about `call` (a Vapi `Call` object), as Vapi posts it:
    `{"message": {"timestamp", "type", ...fields, "call", "customer"}}`; `call.updatedAt` is the moment."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    current = {**call, "updatedAt": _iso(now)}
    message: dict[str, Any] = {"timestamp": now, "type": kind, **fields, "call": current}
    customer = call.get("customer")
    if isinstance(customer, dict):
        message["customer"] = customer
    return {"message": message}


def status_update(
    call: dict[str, Any],
    status: str,
    *,
    ended_reason: str | None = None,
    destination: dict[str, Any] | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """`status-update`: `forwarding` (with the destination Vapi is transferring to) or `ended` (with
    Vapi's endedReason, e.g. `assistant-forwarded-call` once the hand-over is done)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    fields: dict[str, Any] = {"status": status}
    if ended_reason is not None:
        fields["endedReason"] = ended_reason
    if destination is not None:
        fields["destination"] = destination
    updated = {**call, "status": status}
    if status == "ended":
        updated["endedAt"] = _iso(now)
        if ended_reason is not None:
            updated["endedReason"] = ended_reason
    return event(updated, "status-update", now_ms=now, **fields)


def transfer_update(
    call: dict[str, Any], destination: dict[str, Any], transfer_status: str, *, now_ms: int | None = None
) -> dict[str, Any]:
    """`transfer-update`: how the latest transfer attempt went, in `artifact.transfers[-1].status`
    (connected, no-answer, busy, voicemail, failed, completed, cancelled)."""
    plan = destination.get("transferPlan") if isinstance(destination.get("transferPlan"), dict) else {}
    attempt: dict[str, Any] = {"destination": destination, "status": transfer_status}
    if plan and plan.get("mode"):
        attempt["mode"] = plan["mode"]
    return event(
        {**call, "status": "in-progress"},
        "transfer-update",
        now_ms=now_ms,
        destination=destination,
        artifact={"transfers": [attempt]},
    )


def tool_calls_request(
    call: dict[str, Any], arguments: dict[str, Any], *, now_ms: int | None = None
) -> dict[str, Any]:
    """`tool-calls` for the `escalateToSupport` function tool (the default provisioned path): typed
    arguments in `toolCallList[0].function.arguments` (JSON text, as SDK 3.0.0's ToolCall types it)."""
    tool_call = {
        "id": "call_" + uuid.uuid4().hex[:24],
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": json.dumps(arguments)},
    }
    tool = {"type": "function", "function": {"name": TOOL_NAME}, "toolCall": tool_call}
    return event(call, "tool-calls", now_ms=now_ms, toolCallList=[tool_call], toolWithToolCallList=[tool])


def end_of_call_report(
    call: dict[str, Any],
    *,
    ended_reason: str,
    transfers: list[dict[str, Any]],
    structured_outputs: dict[str, Any] | None = None,
    summary: str = "",
    now_ms: int | None = None,
) -> dict[str, Any]:
    """`end-of-call-report`: how the call ended, its transfers (`artifact.transfers`), the summary, and the
    structured outputs the assistant's analysis produced (`artifact.structuredOutputs`)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    ended = {**call, "status": "ended", "endedReason": ended_reason, "endedAt": _iso(now)}
    artifact: dict[str, Any] = {"messages": [], "transcript": "", "transfers": transfers}
    if structured_outputs:
        artifact["structuredOutputs"] = structured_outputs
    return event(
        ended,
        "end-of-call-report",
        now_ms=now,
        endedReason=ended_reason,
        startedAt=call.get("startedAt"),
        endedAt=_iso(now),
        analysis={"summary": summary},
        artifact=artifact,
    )


def request_call(request: dict[str, Any]) -> dict[str, Any]:
    """The Vapi `Call` object of a request envelope built here."""
    call: dict[str, Any] = request["message"]["call"]
    return call
