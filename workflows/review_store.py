"""Where review findings are kept outside Temporal: one row per escalated call in the worker's database.

The workflow's own state (query `findings`) is the source of truth while it runs; this table keeps the
findings, verdict and note after the workflow history is gone, for reports and `escalade reviews list`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from workflows.inputs import Finding, ReviewState
from workflows.ledger import ledger_metadata
from workflows.payloads import ReviewRecord

__all__ = ["ReviewStore", "review_table"]

review_table = sa.Table(
    "workflow_escalation_reviews",
    ledger_metadata,
    sa.Column("call_id", sa.String(200), primary_key=True),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("findings", sa.Text, nullable=False),
    sa.Column("team_id", sa.String(100), nullable=False, default=""),
    sa.Column("agent_id", sa.String(100), nullable=False, default=""),
    sa.Column("verdict", sa.String(50), nullable=False, default=""),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class ReviewStore:
    """Upserts the latest state of each review (the table is created by the database's migrations, with the
    dial ledger's)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(self, record: ReviewRecord) -> None:
        values = {
            "state": ReviewState(record.state).value,
            "findings": json.dumps([asdict(f) for f in record.findings]),
            "team_id": record.team_id,
            "agent_id": record.agent_id,
            "verdict": record.verdict,
            "note": record.note,
            "updated_at": datetime.now(UTC),
        }
        async with self._engine.begin() as conn:
            updated = await conn.execute(
                review_table.update().where(review_table.c.call_id == record.call_id).values(**values)
            )
            if updated.rowcount == 0:
                await conn.execute(review_table.insert().values(call_id=record.call_id, **values))

    async def get(self, call_id: str) -> ReviewRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(review_table).where(review_table.c.call_id == call_id))
            ).first()
        if row is None:
            return None
        return ReviewRecord(
            call_id=row.call_id,
            state=ReviewState(row.state),
            findings=[Finding(**f) for f in json.loads(row.findings)],
            team_id=row.team_id,
            agent_id=row.agent_id,
            verdict=row.verdict,
            note=row.note,
        )
