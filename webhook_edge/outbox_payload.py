"""An outbox row's `payload`: the input of the workflow the row starts, as JSON keyed by the input's fields.

    record:  QueueCallbackInput / EscalationReviewInput  --encode-->  JSON (Temporal's own JSON encoding)
    relay:   JSON  --decode(kind, payload)-->  the same dataclass (decoded as Temporal decodes it)

So the row holds exactly what the workflow will receive, with one spelling: the dataclass's field names
(`workflows.inputs`).

Rows recorded by earlier versions hold the edge's older dicts, which named the fields differently (callback:
`caller_number`, `issue_category`, `effective_complexity`, `customer_context`, `escalation_reason`; review:
`transfers` with a status each, a `destination` object, ISO strings for the times, `decision_id`). Rows can
be pending while the edge is upgraded, so `decode` still reads them (`_legacy_callback`, `_legacy_review`):
a callback row naming `caller_number`, or a review row naming `transfers`, `decision_id` or
`decision_known`, is an old one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from temporalio.converter import AdvancedJSONEncoder, value_to_type

from escalade_platform.masking import mask_number
from routing_service.domain.errors import InvalidRequest
from workflows.inputs import EscalationReviewInput, QueueCallbackInput, WorkflowInput

__all__ = ["OutboxKind", "decode", "encode", "outbox_kind"]

OutboxKind = Literal["callback", "review"]

_LEGACY_REVIEW_KEYS = frozenset({"transfers", "decision_id", "decision_known"})


def outbox_kind(data: WorkflowInput) -> OutboxKind:
    """The row kind of an input: 'callback' or 'review'."""
    return "callback" if isinstance(data, QueueCallbackInput) else "review"


def encode(data: WorkflowInput) -> dict[str, Any]:
    """The input as the JSON object Temporal's converter sends (field names as keys, ISO-8601 instants)."""
    encoded: dict[str, Any] = json.loads(json.dumps(data, cls=AdvancedJSONEncoder))
    return encoded


def decode(kind: str, payload: Mapping[str, Any]) -> WorkflowInput:
    """The input a row of `kind` holds (older rows' spellings included); `InvalidRequest` when unreadable."""
    data: WorkflowInput
    try:
        if kind == "callback":
            if "caller_number" in payload:
                return _legacy_callback(payload)
            data = value_to_type(QueueCallbackInput, dict(payload))
            return data
        if kind == "review":
            if _LEGACY_REVIEW_KEYS & payload.keys():
                return _legacy_review(payload)
            data = value_to_type(EscalationReviewInput, dict(payload))
            return data
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"unreadable {kind} payload", [("payload", str(exc)[:300])]) from None
    raise InvalidRequest("unknown outbox kind", [("kind", f"{kind!r} is neither 'callback' nor 'review'")])


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key, "")
    return value if isinstance(value, str) else ""


def _legacy_callback(payload: Mapping[str, Any]) -> QueueCallbackInput:
    """A callback row recorded before the edge built `QueueCallbackInput` itself."""
    number = _text(payload, "caller_number") or _text(payload, "customer_number")
    priority = payload.get("priority", 0)
    return QueueCallbackInput(
        call_id=_text(payload, "call_id"),
        customer_number=number,
        masked_number=mask_number(number),
        team_id=_text(payload, "team_id"),
        tier=_text(payload, "tier"),
        category=_text(payload, "issue_category") or _text(payload, "category"),
        complexity=_text(payload, "effective_complexity") or _text(payload, "complexity"),
        priority=priority if isinstance(priority, int) else 0,
        context=_text(payload, "customer_context") or _text(payload, "context"),
        reason=_text(payload, "escalation_reason") or _text(payload, "reason"),
        decision_id=_text(payload, "decision_id"),
        first_message=_text(payload, "first_message"),
    )


def _instant(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _legacy_review(payload: Mapping[str, Any]) -> EscalationReviewInput:
    """A review row recorded before the edge built `EscalationReviewInput` itself."""
    transfers = payload.get("transfers")
    statuses = [
        t["status"]
        for t in (transfers if isinstance(transfers, list) else [])
        if isinstance(t, dict) and isinstance(t.get("status"), str) and t["status"]
    ]
    destination = payload.get("destination")
    where = ""
    if isinstance(destination, dict):
        where = str(destination.get("number") or destination.get("sipUri") or "")
    elif isinstance(destination, str):
        where = destination
    outputs = payload.get("structured_outputs")
    structured = {
        str(key): dict(value)
        for key, value in (outputs.items() if isinstance(outputs, Mapping) else ())
        if isinstance(value, Mapping)
    }
    duration = payload.get("duration_seconds")
    return EscalationReviewInput(
        call_id=_text(payload, "call_id"),
        ended_reason=_text(payload, "ended_reason"),
        started_at=_instant(_text(payload, "started_at")),
        ended_at=_instant(_text(payload, "ended_at")),
        duration_seconds=float(duration) if isinstance(duration, int | float) else None,
        summary=_text(payload, "summary"),
        transcript=_text(payload, "transcript"),
        transfer_statuses=statuses,
        destination=where,
        final_category=_text(payload, "final_category"),
        structured_outputs=structured,
    )
