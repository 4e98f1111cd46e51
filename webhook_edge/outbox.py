"""Durable outbox of workflow starts the edge owes (callbacks, reviews), in the edge's SQL store.

Table `edge_outbox`, created by the database's migrations (`escalade_platform.migrations`, revision 0008),
which `Outbox.open` applies; this module only declares it, for its queries:

    id               integer primary key
    kind             'callback' | 'review'
    workflow_id      unique: `callback-<call id>` / `review-<call id>`; recording twice is a no-op
    payload          JSON: the workflow input, keyed by its field names (`webhook_edge.outbox_payload`)
    created_at, attempts, next_attempt_at, delivered_at, last_error

The relay (`webhook_edge.relay`) reads `pending(limit)`, decodes each entry's `input()` and calls
`mark_delivered(id)` or `mark_failed(id, error, next_attempt_at)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from escalade_platform.migrations import upgrade_database
from webhook_edge.outbox_payload import OutboxKind, decode, encode, outbox_kind
from workflows.inputs import WorkflowInput, workflow_id_for

__all__ = ["Outbox", "OutboxEntry", "OutboxKind", "outbox_table"]

metadata = sa.MetaData()

outbox_table = sa.Table(
    "edge_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("workflow_id", sa.String(200), nullable=False, unique=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.CheckConstraint("kind in ('callback', 'review')", name="ck_edge_outbox_kind"),
    sa.Index("ix_edge_outbox_pending", "delivered_at", "next_attempt_at"),
)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One recorded workflow start."""

    id: int
    kind: OutboxKind
    workflow_id: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None

    def input(self) -> WorkflowInput:
        """The workflow input the entry holds (rows of earlier versions too); `InvalidRequest` when the
        payload cannot be read as one."""
        return decode(self.kind, self.payload)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _entry(row: sa.Row[Any]) -> OutboxEntry:
    created = _utc(row.created_at)
    due = _utc(row.next_attempt_at)
    assert created is not None and due is not None
    return OutboxEntry(
        id=row.id,
        kind=row.kind,
        workflow_id=row.workflow_id,
        payload=dict(row.payload),
        created_at=created,
        attempts=row.attempts,
        next_attempt_at=due,
        delivered_at=_utc(row.delivered_at),
        last_error=row.last_error,
    )


class Outbox:
    """Repository over `edge_outbox`."""

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool = False) -> None:
        self._engine = engine
        self._owns_engine = owns_engine

    @classmethod
    async def open(cls, database_url: str) -> Outbox:
        """Connect, bring the database to the newest revision (creating a SQLite file and its folder when
        missing), and return the outbox."""
        url = make_url(database_url)
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() == "sqlite":
            connect_args["timeout"] = 15
        engine = create_async_engine(database_url, connect_args=connect_args, pool_pre_ping=True)
        try:
            await upgrade_database(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, owns_engine=True)

    async def close(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()

    async def record(self, data: WorkflowInput) -> bool:
        """Record the start of the workflow `data` is for; False when its workflow id was already recorded
        (nothing changes)."""
        now = datetime.now(UTC)
        values = {
            "kind": outbox_kind(data),
            "workflow_id": workflow_id_for(data),
            "payload": encode(data),
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": now,
        }
        dialect = self._engine.dialect.name
        statement: sa.Executable
        if dialect == "postgresql":
            statement = (
                postgresql.insert(outbox_table)
                .values(values)
                .on_conflict_do_nothing(index_elements=["workflow_id"])
            )
        elif dialect == "sqlite":
            statement = (
                sqlite.insert(outbox_table)
                .values(values)
                .on_conflict_do_nothing(index_elements=["workflow_id"])
            )
        else:  # pragma: no cover - other dialects: plain insert; a duplicate raises IntegrityError
            statement = sa.insert(outbox_table).values(values)
        async with self._engine.begin() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount)

    async def get(self, workflow_id: str) -> OutboxEntry | None:
        """The entry recorded under `workflow_id`, if any."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(outbox_table).where(outbox_table.c.workflow_id == workflow_id))
            ).first()
        return _entry(row) if row is not None else None

    async def pending(self, limit: int = 100, *, now: datetime | None = None) -> list[OutboxEntry]:
        """Undelivered entries due now, oldest first."""
        moment = now or datetime.now(UTC)
        query = (
            sa.select(outbox_table)
            .where(outbox_table.c.delivered_at.is_(None), outbox_table.c.next_attempt_at <= moment)
            .order_by(outbox_table.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_entry(row) for row in rows]

    async def mark_delivered(self, entry_id: int) -> None:
        """The workflow was started (or already existed)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.update(outbox_table)
                .where(outbox_table.c.id == entry_id)
                .values(delivered_at=datetime.now(UTC), attempts=outbox_table.c.attempts + 1, last_error=None)
            )

    async def mark_failed(self, entry_id: int, error: str, next_attempt_at: datetime) -> None:
        """A delivery attempt failed; try again at `next_attempt_at`."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.update(outbox_table)
                .where(outbox_table.c.id == entry_id)
                .values(
                    attempts=outbox_table.c.attempts + 1,
                    last_error=error[:2000],
                    next_attempt_at=next_attempt_at,
                )
            )

    async def depth(self) -> dict[OutboxKind, int]:
        """Undelivered entries by kind (due or backing off), for the edge's outbox gauge."""
        query = (
            sa.select(outbox_table.c.kind, sa.func.count())
            .where(outbox_table.c.delivered_at.is_(None))
            .group_by(outbox_table.c.kind)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        counts: dict[OutboxKind, int] = {"callback": 0, "review": 0}
        for kind, count in rows:
            counts[kind] = int(count)
        return counts
