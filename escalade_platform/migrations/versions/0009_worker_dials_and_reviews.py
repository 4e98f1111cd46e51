"""The worker's tables: the dial ledger (`workflows.ledger`: at most one Vapi call per callback attempt)
and the review records (`workflows.review_store`), until now created by the worker itself with
`create_all` when it started.

A database that already has them (made by such a worker) keeps them as they are: each table is created only
when missing, with the DDL `create_all` emitted for it (a plain MetaData, without the routing tables' naming
convention), so old and new databases end up with the same table and index names.

Revision ID: 0009_worker_dials_and_reviews
Revises: 0008_edge_outbox
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_worker_dials_and_reviews"
down_revision: str | None = "0008_edge_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _worker_tables() -> list[sa.Table]:
    """The tables as `workflows.ledger` and `workflows.review_store` declared them at this revision."""
    metadata = sa.MetaData()
    dials = sa.Table(
        "workflow_callback_dials",
        metadata,
        sa.Column("attempt_key", sa.String(200), primary_key=True),
        sa.Column("call_id", sa.String(200), nullable=False, index=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("vapi_call_id", sa.String(100), nullable=True),
        sa.Column("ended_reason", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    reviews = sa.Table(
        "workflow_escalation_reviews",
        metadata,
        sa.Column("call_id", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("findings", sa.Text, nullable=False),
        sa.Column("team_id", sa.String(100), nullable=False),
        sa.Column("agent_id", sa.String(100), nullable=False),
        sa.Column("verdict", sa.String(50), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    return [dials, reviews]


def upgrade() -> None:
    for table in _worker_tables():
        table.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    for table in reversed(_worker_tables()):
        table.drop(op.get_bind(), checkfirst=True)
