"""Each decision keeps its handoff packet (what the specialist is told: summary, entities, complexity
sources, history) as a JSON document beside the decision, so an agent desktop can ask for it by call id or
decision id (`GetHandoffPacket`). Decisions stored before have none (NULL).

Revision ID: 0013_decision_handoff_packet
Revises: 0012_callback_promises
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_decision_handoff_packet"
down_revision: str | None = "0012_callback_promises"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("handoff", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("handoff")
