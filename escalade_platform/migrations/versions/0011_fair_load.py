"""Fair load on scarce specialists: each specialist's figures for the policy's caps, kept by the reservation
itself (the latest reservation times, the latest critical one, critical calls in a row) and a version the
reservation bumps, so a cap is counted atomically with the reservation.

Revision ID: 0011_fair_load
Revises: 0010_wrap_up_spelling
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_fair_load"
down_revision: str | None = "0010_wrap_up_spelling"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RECENT_WIDTH = 704  # 64 entries of 11 characters (routing_service.store.tables.RECENT_ESCALATIONS_WIDTH)


def upgrade() -> None:
    op.add_column(
        "agents",
        sa.Column(
            "recent_escalations", sa.String(_RECENT_WIDTH), nullable=False, server_default=sa.text("''")
        ),
    )
    op.add_column("agents", sa.Column("last_critical_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "agents", sa.Column("critical_in_row", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.add_column(
        "agents", sa.Column("load_version", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        for column in ("load_version", "critical_in_row", "last_critical_at", "recent_escalations"):
            batch.drop_column(column)
