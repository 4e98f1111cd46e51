"""The edge's outbox of workflow starts it owes (`webhook_edge.outbox`), until now created by the edge itself
with `create_all` when it started.

A database that already has the table (made by such an edge) keeps it as it is: the table is created only
when missing, with the DDL `create_all` emitted for it (a plain MetaData, without the routing tables' naming
convention), so old and new databases end up with the same table, constraint and index names.

Revision ID: 0008_edge_outbox
Revises: 0007_callback_first_message
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_edge_outbox"
down_revision: str | None = "0007_callback_first_message"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _edge_outbox() -> sa.Table:
    """The table as `webhook_edge.outbox` declared it at this revision."""
    return sa.Table(
        "edge_outbox",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False, unique=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.CheckConstraint("kind in ('callback', 'review')", name="ck_edge_outbox_kind"),
        sa.Index("ix_edge_outbox_pending", "delivered_at", "next_attempt_at"),
    )


def upgrade() -> None:
    _edge_outbox().create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    _edge_outbox().drop(op.get_bind(), checkfirst=True)
