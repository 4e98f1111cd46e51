"""Fewer index pages written per decision: drop `ix_decisions_call_id_decided_at` (the unique
(call_id, tool_call_id) index already finds a call's decisions, which are a handful) and make
`ix_assignments_released_at` partial (`released_at IS NOT NULL`), so reserving a slot no longer inserts a NULL
entry into it; the handle-time query's `released_at >= ?` implies the predicate on both databases. A
reserving decision's commit went from 17 to 15 WAL pages on SQLite.

Revision ID: 0005_leaner_decision_writes
Revises: 0004_sqlite_dispatch_by_level
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_leaner_decision_writes"
down_revision: str | None = "0004_sqlite_dispatch_by_level"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RELEASED = sa.text("released_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_decisions_call_id_decided_at", table_name="decisions")
    op.drop_index("ix_assignments_released_at", table_name="assignments")
    op.create_index(
        "ix_assignments_released_at",
        "assignments",
        ["released_at"],
        sqlite_where=_RELEASED,
        postgresql_where=_RELEASED,
    )


def downgrade() -> None:
    op.drop_index("ix_assignments_released_at", table_name="assignments")
    op.create_index("ix_assignments_released_at", "assignments", ["released_at"])
    op.create_index("ix_decisions_call_id_decided_at", "decisions", ["call_id", "decided_at"])
