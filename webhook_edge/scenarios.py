"""The seed tutorial's test scenarios as realistic Vapi server messages, for `escalade simulate`.

Each scenario becomes a `transfer-destination-request` envelope shaped like Vapi's (and like the fixtures in
PROTOCOL.md section 10): `{"message": {...}}` with a fresh call id per run, the caller's number at
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
    "ended_message",
    "scenario_names",
    "transfer_request",
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
    """Make this team's specialists busy for the duration of the scenario (then restore them)."""

    @property
    def expectation(self) -> str:
        return f"{self.expected_team} ({self.expected_kind})" if self.expected_kind else self.expected_team

    def arguments(self) -> dict[str, str]:
        return {
            "issue_category": self.issue_category,
            "complexity_level": self.complexity_level,
            "customer_context": self.customer_context,
            "escalation_reason": self.escalation_reason,
        }


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
            title="Premium technical issue while every technical specialist is busy (callback)",
            caller="+1111111111",
            issue_category="technical",
            complexity_level="advanced",
            customer_context="Premium Support account; API integration returns intermittent 502s under load.",
            escalation_reason="Needs a technical specialist; none may be free.",
            turns=(
                Turn("user", "Our API integration gets intermittent 502 errors whenever traffic peaks."),
                Turn("bot", "Let me find a technical specialist for you."),
            ),
            expected_team="technical",
            expected_kind="callback",
            busy_team="technical",
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
    )
}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


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


def ended_message(request: dict[str, Any], *, now_ms: int | None = None) -> dict[str, Any]:
    """The `status-update` (status `ended`, transferred) that closes the call of a transfer request, so the
    edge releases the specialist reserved for it."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    original = request["message"]
    call = {**original["call"], "status": "ended", "updatedAt": _iso(now), "endedAt": _iso(now)}
    message: dict[str, Any] = {
        "timestamp": now,
        "type": "status-update",
        "status": "ended",
        "endedReason": "assistant-forwarded-call",
        "call": call,
    }
    if "customer" in original:
        message["customer"] = original["customer"]
    return {"message": message}
