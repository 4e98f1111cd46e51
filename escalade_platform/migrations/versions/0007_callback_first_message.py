"""Callbacks keep the first sentence the customer hears when Escalade calls back (the policy's template,
rendered when the callback was queued), so a callback restarted from routing's ticket says what the
original one would have.

Revision ID: 0007_callback_first_message
Revises: 0006_assignment_lifecycle
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_callback_first_message"
down_revision: str | None = "0006_assignment_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "callbacks", sa.Column("first_message", sa.Text(), nullable=False, server_default=sa.text("''"))
    )


def downgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("first_message")
