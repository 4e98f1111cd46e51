"""Assignments in wrap-up are stored as "wrap-up", the spelling the agent status and activity already use,
so the word has one spelling everywhere (database, gRPC mapping, CLI, metrics).

Revision ID: 0010_wrap_up_spelling
Revises: 0009_worker_dials_and_reviews
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_wrap_up_spelling"
down_revision: str | None = "0009_worker_dials_and_reviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE assignments SET stage = 'wrap-up' WHERE stage = 'wrap_up'")


def downgrade() -> None:
    op.execute("UPDATE assignments SET stage = 'wrap_up' WHERE stage = 'wrap-up'")
