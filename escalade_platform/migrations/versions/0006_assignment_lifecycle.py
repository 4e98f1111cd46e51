"""The assignment lifecycle (docs/lifecycle.md): assignments gain their stage (reserved, offered, connected,
wrap_up, completed, missed, released), the team the call was routed to and the time of each step; agents gain
their missed offers in a row. Existing active assignments become `reserved`, released ones `released` (their
history says nothing about a conversation). The handle-time sample reads a team's latest finished
conversations through a partial index on (team_id, completed_at), which replaces the one on released_at (the
old sample's); a call's finished assignments (who missed it) are found through a partial index on call_id of
released rows, so a reservation still writes no entry to either.

Revision ID: 0006_assignment_lifecycle
Revises: 0005_leaner_decision_writes
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_assignment_lifecycle"
down_revision: str | None = "0005_leaner_decision_writes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COMPLETED = sa.text("completed_at IS NOT NULL")
_RELEASED = sa.text("state = 'released'")
_RELEASED_AT = sa.text("released_at IS NOT NULL")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "assignments", sa.Column("stage", sa.String(16), nullable=False, server_default=sa.text("'reserved'"))
    )
    op.add_column("assignments", sa.Column("team_id", sa.String(128), nullable=True))
    op.add_column("assignments", sa.Column("offered_at", _utc(), nullable=True))
    op.add_column("assignments", sa.Column("connected_at", _utc(), nullable=True))
    op.add_column("assignments", sa.Column("completed_at", _utc(), nullable=True))
    op.execute("UPDATE assignments SET stage = 'released' WHERE state = 'released'")
    op.create_index(
        "ix_assignments_team_id_completed_at",
        "assignments",
        ["team_id", "completed_at"],
        sqlite_where=_COMPLETED,
        postgresql_where=_COMPLETED,
    )
    op.drop_index("ix_assignments_released_at", table_name="assignments")
    op.create_index(
        "ix_assignments_released_call_id",
        "assignments",
        ["call_id"],
        sqlite_where=_RELEASED,
        postgresql_where=_RELEASED,
    )
    op.add_column(
        "agents", sa.Column("missed_in_row", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )


def downgrade() -> None:
    op.drop_index("ix_assignments_released_call_id", table_name="assignments")
    op.create_index(
        "ix_assignments_released_at",
        "assignments",
        ["released_at"],
        sqlite_where=_RELEASED_AT,
        postgresql_where=_RELEASED_AT,
    )
    op.drop_index("ix_assignments_team_id_completed_at", table_name="assignments")
    with op.batch_alter_table("assignments") as batch:
        for column in ("completed_at", "connected_at", "offered_at", "team_id", "stage"):
            batch.drop_column(column)
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("missed_in_row")
