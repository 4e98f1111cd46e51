"""Was the customer on the line? A callback call counts as reached only on evidence.

Evidence is two things in `GET /call/{id}` once the call has ended:

- `endedReason` is on `REACHED_REASONS`, an allow-list of Vapi's reasons that can only happen with the
  customer on the line (they hung up, the assistant ended the conversation or handed it over, the call ran
  out of time); and
- `artifact.messages` holds a customer turn: a message with role `user` and non-empty text.

Everything else is "not reached" and retried by the policy's schedule: no answer, busy, voicemail,
`silence-timed-out` (an answering machine without voicemail detection "answers" and then says nothing
Vapi can transcribe as the customer), every SIP, provider and pipeline failure, and every reason Escalade has
never seen. `KNOWN_ENDED_REASONS` is the pinned SDK's `CallEndedReason` enum; a reason outside it is
*unknown* (Vapi added it later), which the dial activity logs once and counts.

Why not `call.forwarding.operator-busy` / `call.forwarding.no-answer` / `call.in-progress.error-transfer-
failed`, although the customer was there: the callback's promise is a specialist, and those endings mean the
transfer to the specialist failed and the call ended with nobody serving the customer. Calling again is the
kept promise; with `transferPlan.fallbackPlan.endCallEnabled: false` (what Escalade answers) a failed
transfer does not end the call anyway, so these reasons are rare.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KNOWN_ENDED_REASONS",
    "NOT_REACHED_DETAILS",
    "NOT_REACHED_REASONS",
    "REACHED_REASONS",
    "CallEvidence",
    "customer_spoke",
    "judge",
    "judge_call",
]

REACHED_REASONS = frozenset(
    {
        "assistant-forwarded-call",
        "assistant-ended-call",
        "assistant-ended-call-after-message-spoken",
        "assistant-ended-call-with-hangup-task",
        "assistant-said-end-call-phrase",
        "customer-ended-call",
        "customer-ended-call-before-warm-transfer",
        "customer-ended-call-after-warm-transfer-attempt",
        "customer-ended-call-during-transfer",
        "exceeded-max-duration",
    }
)
"""endedReasons that, with a customer turn, mean the customer was on the line."""

NOT_REACHED_DETAILS: Mapping[str, str] = {
    "customer-did-not-answer": "nobody picked up",
    "customer-busy": "the line was busy",
    "voicemail": "voicemail answered",
    "silence-timed-out": "nobody spoke (an answering machine, or silence)",
    "twilio-reported-customer-misdialed": "the number could not be dialled",
    "sip-outbound-unallocated-number": "the number could not be dialled",
}
"""The common "nobody there" reasons and how the outcome's detail reads for them."""

NOT_REACHED_REASONS = frozenset(NOT_REACHED_DETAILS)
"""Named "not reached" reasons (every other reason off the allow-list is not reached too)."""


def _sdk_ended_reasons() -> frozenset[str]:
    """The `CallEndedReason` literals of the pinned vapi-server-sdk (a cheap import: one small module)."""
    from vapi.types.call_ended_reason import CallEndedReason

    found: set[str] = set()
    for arg in typing.get_args(CallEndedReason):
        found.update(a for a in typing.get_args(arg) if isinstance(a, str))
    return frozenset(found)


KNOWN_ENDED_REASONS = _sdk_ended_reasons()


@dataclass(frozen=True, slots=True)
class CallEvidence:
    """The verdict on one ended callback call."""

    reached: bool
    ended_reason: str
    detail: str
    """Why, in a few words (for `CallbackStatus.last_outcome` and the logs)."""
    known: bool
    """False when the reason is not in the pinned SDK's enum."""


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def customer_spoke(call: Mapping[str, Any]) -> bool:
    """True when `artifact.messages` holds a `user` message with text."""
    artifact = call.get("artifact")
    messages = artifact.get("messages") if isinstance(artifact, Mapping) else None
    if not isinstance(messages, list):
        return False
    return any(
        isinstance(m, Mapping)
        and m.get("role") == "user"
        and bool(_text(m.get("message")) or _text(m.get("content")))
        for m in messages
    )


def judge(ended_reason: str, spoke: bool) -> CallEvidence:
    """The verdict from the reason and whether the customer spoke."""
    reason = ended_reason.strip()
    known = reason in KNOWN_ENDED_REASONS
    if not reason:
        return CallEvidence(False, "", "Vapi gave no endedReason", known=True)
    if not known:
        return CallEvidence(False, reason, "an endedReason this version of Escalade does not know", False)
    if reason in REACHED_REASONS:
        if spoke:
            return CallEvidence(True, reason, "the customer spoke", known)
        return CallEvidence(False, reason, "no customer turn in the call's messages", known)
    if reason in NOT_REACHED_DETAILS:
        return CallEvidence(False, reason, NOT_REACHED_DETAILS[reason], known)
    return CallEvidence(False, reason, "the call did not reach the customer", known)


def judge_call(call: Mapping[str, Any]) -> CallEvidence:
    """The verdict on an ended call as `GET /call/{id}` returns it."""
    return judge(_text(call.get("endedReason")), customer_spoke(call))
