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
    call ended        -> `connected` or `not-reached` (the evidence verdict, `workflows.evidence`, spelled
                         as the attempt's `DialOutcome`) + Vapi's endedReason; a later try returns the
                         stored outcome without asking Vapi again
    `ended`           -> written by versions before the evidence rule (reason only, no verdict): a later try
                         reads the call from Vapi again and judges it on the evidence

The verdict lives in `state` rather than a new column, so rows written by earlier versions read the same.
Rows written before the verdict took the `DialOutcome` spelling say `reached` for `connected`; `DialState`
reads them as `connected`.

The table lives in the worker's database (`ESCALADE_DATABASE_URL`, SQLite or PostgreSQL) and is created by
the database's migrations (`escalade_platform.migrations`, revision 0009), which the worker applies when it
opens its engine (`workflows.worker.open_engine`); this module only declares it, for its queries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["ENDED_STATES", "DialLedger", "DialState", "LedgerEntry", "dial_ledger_table", "ledger_metadata"]

ledger_metadata = sa.MetaData()


class DialState(enum.StrEnum):
    """A ledger row's `state`: how far its attempt got. The two verdicts are spelled as the attempt's
    `workflows.payloads.DialOutcome` (`connected`, `not-reached`), as is `uncertain`."""

    DIALLING = "dialling"
    """Claimed; the POST may or may not have reached Vapi."""
    DIALLED = "dialled"
    """Vapi created the call (its id is in `vapi_call_id`)."""
    CONNECTED = "connected"
    """The call ended with the customer on the line (evidence verdict)."""
    NOT_REACHED = "not-reached"
    """The call ended without reaching the customer."""
    ENDED = "ended"
    """Written by versions before the evidence rule: ended, no verdict (judged again from Vapi)."""
    UNCERTAIN = "uncertain"
    """The POST may have dialled and Vapi does not list the call: never dialled again."""

    @classmethod
    def _missing_(cls, value: object) -> DialState | None:
        """`reached`: the verdict as rows written before it took the `DialOutcome` spelling say it."""
        return cls.CONNECTED if value == "reached" else None


ENDED_STATES = frozenset({DialState.CONNECTED, DialState.NOT_REACHED})
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
    state: DialState
    vapi_call_id: str | None
    ended_reason: str | None
    created_at: datetime


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DialLedger:
    """Reads and writes the ledger; every method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

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
                        state=DialState.DIALLING.value,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            existing = await self.get(attempt_key)
            if existing is None:  # deleted between our insert and read: try once more
                return await self.claim(attempt_key, call_id)
            return existing, False
        return LedgerEntry(attempt_key, call_id, DialState.DIALLING, None, None, now), True

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
            state=DialState(row.state),
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
        await self._update(attempt_key, state=DialState.DIALLED.value, vapi_call_id=vapi_call_id)

    async def mark_ended(self, attempt_key: str, ended_reason: str, *, reached: bool) -> None:
        """The call ended: store its reason and the evidence verdict."""
        state = DialState.CONNECTED if reached else DialState.NOT_REACHED
        await self._update(attempt_key, state=state.value, ended_reason=ended_reason)

    async def mark_uncertain(self, attempt_key: str) -> None:
        await self._update(attempt_key, state=DialState.UNCERTAIN.value)

    async def forget(self, attempt_key: str) -> None:
        """Drop a `dialling` row whose POST certainly created no call, so a retry may dial."""
        async with self._engine.begin() as conn:
            await conn.execute(
                dial_ledger_table.delete().where(
                    (dial_ledger_table.c.attempt_key == attempt_key)
                    & (dial_ledger_table.c.state == DialState.DIALLING.value)
                )
            )
