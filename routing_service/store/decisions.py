"""The decision audit log: every decision with its full trace, unique per (call_id, tool_call_id).

Queryable fields are columns; the whole decision (destination, messages, trace, callback snapshot, ...) is
one JSON document in `body`, so the trace is stored and returned exactly as decided.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.dialects import postgresql

from routing_service.app.ports import DuplicateDecision
from routing_service.domain.handoff import HandoffPacket, packet_from_dict, packet_to_dict
from routing_service.domain.models import (
    CallbackState,
    CallbackTicket,
    Complexity,
    Decision,
    DecisionKind,
    Destination,
    SummaryMessage,
    TraceOutcome,
    TraceStep,
    TransferMode,
)
from routing_service.store.base import SqlRepository
from routing_service.store.statements import shared
from routing_service.store.tables import decisions

__all__ = [
    "SqlDecisionRepository",
    "decision_from_body",
    "decision_params",
    "decision_row",
    "decision_to_body",
    "duplicate",
    "insert_for_each",
]

_BY_ID = shared(select(decisions).where(decisions.c.decision_id == bindparam("decision_id")))
_GET = shared(
    select(decisions).where(
        decisions.c.call_id == bindparam("call_id"), decisions.c.tool_call_id == bindparam("tool_call_id")
    )
)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _ticket_to_json(ticket: CallbackTicket) -> dict[str, Any]:
    return {
        "call_id": ticket.call_id,
        "team_id": ticket.team_id,
        "state": str(ticket.state),
        "caller_number": ticket.caller_number,
        "tier": ticket.tier,
        "issue_category": ticket.issue_category,
        "effective_complexity": int(ticket.effective_complexity),
        "priority": ticket.priority,
        "service_key": ticket.service_key,
        "enqueued_at": _time(ticket.enqueued_at),
        "decision_id": ticket.decision_id,
        "customer_context": ticket.customer_context,
        "escalation_reason": ticket.escalation_reason,
        "agent_id": ticket.agent_id,
        "reserved_until": _time(ticket.reserved_until),
        "finished_at": _time(ticket.finished_at),
        "note": ticket.note,
        "position": ticket.position,
        "first_message": ticket.first_message,
        "promise_from": _time(ticket.promise_from),
        "promised_by": _time(ticket.promised_by),
        "at_risk_at": _time(ticket.at_risk_at),
    }


def _ticket_from_json(data: dict[str, Any]) -> CallbackTicket:
    return CallbackTicket(
        call_id=data["call_id"],
        team_id=data["team_id"],
        state=CallbackState(data["state"]),
        caller_number=data["caller_number"],
        tier=data["tier"],
        issue_category=data["issue_category"],
        effective_complexity=Complexity(data["effective_complexity"]),
        priority=data["priority"],
        service_key=data["service_key"],
        enqueued_at=datetime.fromisoformat(data["enqueued_at"]),
        decision_id=data["decision_id"],
        customer_context=data["customer_context"],
        escalation_reason=data["escalation_reason"],
        agent_id=data["agent_id"],
        reserved_until=_parse_time(data["reserved_until"]),
        finished_at=_parse_time(data["finished_at"]),
        note=data["note"],
        position=data["position"],
        first_message=data.get("first_message", ""),
        promise_from=_parse_time(data.get("promise_from")),
        promised_by=_parse_time(data.get("promised_by")),
        at_risk_at=_parse_time(data.get("at_risk_at")),
    )


def decision_to_body(decision: Decision) -> dict[str, Any]:
    """The JSON document stored in `decisions.body` (everything but `replayed`)."""
    return {
        "destination": {
            "number": decision.destination.number,
            "sip_uri": decision.destination.sip_uri,
            "extension": decision.destination.extension,
        },
        "caller_message": decision.caller_message,
        "transfer_mode": str(decision.transfer_mode),
        "effective_complexity": int(decision.effective_complexity),
        "claimed_complexity": (
            None if decision.claimed_complexity is None else int(decision.claimed_complexity)
        ),
        "tier": decision.tier,
        "issue_category": decision.issue_category,
        "trace": [
            {"stage": s.stage, "subject": s.subject, "outcome": str(s.outcome), "detail": s.detail}
            for s in decision.trace
        ],
        "reason": decision.reason,
        "team_display_name": decision.team_display_name,
        "agent_display_name": decision.agent_display_name,
        "handoff_message": decision.handoff_message,
        "summary_messages": [{"role": m.role, "content": m.content} for m in decision.summary_messages],
        "estimated_wait_s": (
            None if decision.estimated_wait is None else decision.estimated_wait.total_seconds()
        ),
        "rule_id": decision.rule_id,
        "caller_number": decision.caller_number,
        "callback": None if decision.callback is None else _ticket_to_json(decision.callback),
        "dry_run": decision.dry_run,
        "missed_agent_ids": list(decision.missed_agent_ids),
        "callback_of_call_id": decision.callback_of_call_id,
    }


def decision_from_body(row: Any) -> Decision:
    """Rebuild the `Decision` from a `decisions` row (columns + JSON body); `replayed` is False."""
    body: dict[str, Any] = row.body
    destination = body["destination"]
    claimed = body.get("claimed_complexity")
    wait = body.get("estimated_wait_s")
    callback = body.get("callback")
    return Decision(
        decision_id=row.decision_id,
        call_id=row.call_id,
        tool_call_id=row.tool_call_id,
        kind=DecisionKind(row.kind),
        destination=Destination(
            number=destination.get("number"),
            sip_uri=destination.get("sip_uri"),
            extension=destination.get("extension"),
        ),
        caller_message=body["caller_message"],
        transfer_mode=TransferMode(body["transfer_mode"]),
        effective_complexity=Complexity(body["effective_complexity"]),
        claimed_complexity=None if claimed is None else Complexity(claimed),
        tier=body["tier"],
        issue_category=body["issue_category"],
        decided_at=row.decided_at,
        trace=tuple(
            TraceStep(
                stage=s["stage"], subject=s["subject"], outcome=TraceOutcome(s["outcome"]), detail=s["detail"]
            )
            for s in body.get("trace", ())
        ),
        reason=body.get("reason", ""),
        team_id=row.team_id,
        team_display_name=body.get("team_display_name", ""),
        agent_id=row.agent_id,
        agent_display_name=body.get("agent_display_name", ""),
        handoff_message=body.get("handoff_message", ""),
        summary_messages=tuple(
            SummaryMessage(role=m["role"], content=m["content"]) for m in body.get("summary_messages", ())
        ),
        estimated_wait=None if wait is None else timedelta(seconds=wait),
        rule_id=body.get("rule_id", ""),
        caller_number=body.get("caller_number", ""),
        callback=None if callback is None else _ticket_from_json(callback),
        replayed=False,
        dry_run=bool(body.get("dry_run", False)),
        missed_agent_ids=tuple(body.get("missed_agent_ids", ())),
        callback_of_call_id=body.get("callback_of_call_id", ""),
        handoff=_packet(row),
    )


def decision_row(decision: Decision) -> dict[str, Any]:
    """The `decisions` row of a decision, by column name."""
    return {
        "decision_id": decision.decision_id,
        "call_id": decision.call_id,
        "tool_call_id": decision.tool_call_id,
        "kind": str(decision.kind),
        "team_id": decision.team_id,
        "agent_id": decision.agent_id,
        "decided_at": decision.decided_at,
        "body": decision_to_body(decision),
        "handoff": None if decision.handoff is None else packet_to_dict(decision.handoff),
    }


def duplicate(decision: Decision) -> DuplicateDecision:
    """The error for a decision whose (call_id, tool_call_id) or id is stored already."""
    return DuplicateDecision(
        f"decision for call {decision.call_id} tool call {decision.tool_call_id!r} already stored"
        f" (or decision id {decision.decision_id} reused)"
    )


DECISION_PARAM_PREFIX = "dec_"


def insert_for_each(source: Any) -> Any:
    """PostgreSQL: an `INSERT INTO decisions ... SELECT ... FROM source ON CONFLICT DO NOTHING` of one
    decision row per row of `source` (a CTE: the row is inserted only when `source` returned one), its
    values the bind parameters `dec_<column>` (`decision_params`), returning the decision id; for a
    data-modifying CTE of a larger statement."""
    columns = [column.name for column in decisions.c]
    row = select(
        *(
            bindparam(DECISION_PARAM_PREFIX + column.name, type_=column.type).label(column.name)
            for column in decisions.c
        )
    ).select_from(source)
    return (
        postgresql.insert(decisions)
        .from_select(columns, row)
        .on_conflict_do_nothing()
        .returning(decisions.c.decision_id)
    )


def decision_params(decision: Decision) -> dict[str, Any]:
    """The bind parameters of `insert_for_each` for `decision`."""
    return {DECISION_PARAM_PREFIX + name: value for name, value in decision_row(decision).items()}


def _packet(row: Any) -> HandoffPacket | None:
    """The row's handoff packet; None for rows stored before packets (or without the column selected)."""
    data = getattr(row, "handoff", None)
    return packet_from_dict(data) if isinstance(data, dict) else None


class SqlDecisionRepository(SqlRepository):
    """`ports.DecisionRepository` on SQL."""

    async def add(self, decision: Decision) -> None:
        """Store the decision; `DuplicateDecision` when (call_id, tool_call_id) is already stored.

        INSERT ... ON CONFLICT DO NOTHING: the duplicate is detected at once (PostgreSQL waits for a
        concurrent inserter to commit or roll back) and the transaction stays usable on both back ends.
        """
        if not await self._insert_ignore(decisions, decision_row(decision)):
            raise duplicate(decision)

    async def get(self, call_id: str, tool_call_id: str) -> Decision | None:
        """The decision for this (call_id, tool_call_id), or None."""
        row = (await self._execute(_GET, {"call_id": call_id, "tool_call_id": tool_call_id})).first()
        return None if row is None else decision_from_body(row)

    async def by_id(self, decision_id: str) -> Decision | None:
        """The decision with this id, or None."""
        row = (await self._execute(_BY_ID, {"decision_id": decision_id})).first()
        return None if row is None else decision_from_body(row)

    async def latest_for_call(self, call_id: str) -> Decision | None:
        """The newest decision of the call, or None."""
        query = (
            select(decisions)
            .where(decisions.c.call_id == call_id)
            .order_by(decisions.c.decided_at.desc(), decisions.c.decision_id.desc())
            .limit(1)
        )
        row = (await self._execute(query)).first()
        return None if row is None else decision_from_body(row)

    async def page(
        self, *, team_id: str | None, kind: DecisionKind | None, limit: int, before: str | None
    ) -> list[Decision]:
        """Newest first by (decided_at, decision_id); `before` is the previous page's last decision_id."""
        query = (
            select(decisions)
            .order_by(decisions.c.decided_at.desc(), decisions.c.decision_id.desc())
            .limit(max(0, limit))
        )
        if team_id is not None:
            query = query.where(decisions.c.team_id == team_id)
        if kind is not None:
            query = query.where(decisions.c.kind == str(kind))
        if before is not None:
            cursor = (
                await self._execute(select(decisions.c.decided_at).where(decisions.c.decision_id == before))
            ).first()
            if cursor is None:
                query = query.where(decisions.c.decision_id < before)
            else:
                query = query.where(
                    or_(
                        decisions.c.decided_at < cursor.decided_at,
                        (decisions.c.decided_at == cursor.decided_at) & (decisions.c.decision_id < before),
                    )
                )
        return [decision_from_body(row) for row in await self._execute(query)]
