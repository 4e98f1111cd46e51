"""The dial ledger: at most one outbound Vapi call per callback attempt, even across worker crashes.

Vapi's `POST /call` has no idempotency key, and a Temporal activity may run more than once (a worker dies
mid-call, a heartbeat times out). So `place_callback_call` writes the attempt key
(`callback-<call id>-attempt-<n>`) to this table *before* it sends the POST:

    no row            -> insert `dialling` (the primary key makes the insert a claim), then POST
    POST answered 2xx -> `dialled` + Vapi's call id; later tries only watch that call
    POST answered 5xx -> Vapi created nothing: the row is deleted, the activity's retry may dial
    POST never sent   -> (connection refused) same: deleted
    no answer at all  -> (timeout, reset) the row stays `dialling`: the next try asks Vapi's list API for a
                         call named after the key; found -> adopt it, not found -> `uncertain`, never redial
    call ended        -> `reached` or `not-reached` (the evidence verdict, `workflows.evidence`) + Vapi's
                         endedReason; a later try returns the stored outcome without asking Vapi again
    `ended`           -> written by versions before the evidence rule (reason only, no verdict): a later try
                         reads the call from Vapi again and judges it on the evidence

The verdict lives in `state` rather than a new column so that tables created by earlier versions need no
migration (`create_all` never alters an existing table).

The table lives in the worker's database (`ESCALADE_DATABASE_URL`, SQLite or PostgreSQL) and is created
with `create_all` at worker start-up; it is the worker's own table, not part of the routing store's schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["ENDED_STATES", "DialLedger", "LedgerEntry", "dial_ledger_table", "ledger_metadata"]

ledger_metadata = sa.MetaData()

ENDED_STATES = frozenset({"reached", "not-reached"})
"""States of an attempt whose call ended and was judged."""

dial_ledger_table = sa.Table(
    "workflow_callback_dials",
    ledger_metadata,
    sa.Column("attempt_key", sa.String(200), primary_key=True),
    sa.Column("call_id", sa.String(200), nullable=False, index=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("vapi_call_id", sa.String(100), nullable=True),
    sa.Column("ended_reason", sa.String(200), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    attempt_key: str
    call_id: str
    state: str
    """dialling, dialled, reached, not-reached, ended (older rows: no verdict), uncertain."""
    vapi_call_id: str | None
    ended_reason: str | None
    created_at: datetime


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DialLedger:
    """Reads and writes the ledger; every method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_tables(self) -> None:
        """Create the ledger table if it is missing (idempotent)."""
        async with self._engine.begin() as conn:
            await conn.run_sync(ledger_metadata.create_all)

    async def claim(self, attempt_key: str, call_id: str) -> tuple[LedgerEntry, bool]:
        """Insert a `dialling` row for the key; returns (row, True) if this caller inserted it, else the
        existing row and False."""
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    dial_ledger_table.insert().values(
                        attempt_key=attempt_key,
                        call_id=call_id,
                        state="dialling",
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            existing = await self.get(attempt_key)
            if existing is None:  # deleted between our insert and read: try once more
                return await self.claim(attempt_key, call_id)
            return existing, False
        return LedgerEntry(attempt_key, call_id, "dialling", None, None, now), True

    async def get(self, attempt_key: str) -> LedgerEntry | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(dial_ledger_table).where(dial_ledger_table.c.attempt_key == attempt_key)
                )
            ).first()
        if row is None:
            return None
        return LedgerEntry(
            attempt_key=row.attempt_key,
            call_id=row.call_id,
            state=row.state,
            vapi_call_id=row.vapi_call_id,
            ended_reason=row.ended_reason,
            created_at=_utc(row.created_at),
        )

    async def _update(self, attempt_key: str, **values: object) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                dial_ledger_table.update()
                .where(dial_ledger_table.c.attempt_key == attempt_key)
                .values(updated_at=datetime.now(UTC), **values)
            )

    async def mark_dialled(self, attempt_key: str, vapi_call_id: str) -> None:
        await self._update(attempt_key, state="dialled", vapi_call_id=vapi_call_id)

    async def mark_ended(self, attempt_key: str, ended_reason: str, *, reached: bool) -> None:
        """The call ended: store its reason and the evidence verdict."""
        state = "reached" if reached else "not-reached"
        await self._update(attempt_key, state=state, ended_reason=ended_reason)

    async def mark_uncertain(self, attempt_key: str) -> None:
        await self._update(attempt_key, state="uncertain")

    async def forget(self, attempt_key: str) -> None:
        """Drop a `dialling` row whose POST certainly created no call, so a retry may dial."""
        async with self._engine.begin() as conn:
            await conn.execute(
                dial_ledger_table.delete().where(
                    (dial_ledger_table.c.attempt_key == attempt_key)
                    & (dial_ledger_table.c.state == "dialling")
                )
            )
