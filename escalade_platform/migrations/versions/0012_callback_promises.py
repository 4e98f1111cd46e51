"""Callbacks keep the promise the caller heard (routing_service.domain.promises): when its clock started,
the latest time the callback should start, when it becomes at risk, when a specialist was first reserved for
it, and when routing first saw it broken. Callbacks queued before have none.

Revision ID: 0012_callback_promises
Revises: 0011_fair_load
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_callback_promises"
down_revision: str | None = "0011_fair_load"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("promise_from", "promised_by", "at_risk_at", "started_at", "breached_at")


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("callbacks", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_callbacks_team_id_promised_by", "callbacks", ["team_id", "promised_by"])
    op.create_index("ix_callbacks_team_id_state_at_risk_at", "callbacks", ["team_id", "state", "at_risk_at"])
    op.create_index("ix_callbacks_team_id_started_at", "callbacks", ["team_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_callbacks_team_id_started_at", table_name="callbacks")
    op.drop_index("ix_callbacks_team_id_state_at_risk_at", table_name="callbacks")
    op.drop_index("ix_callbacks_team_id_promised_by", table_name="callbacks")
    with op.batch_alter_table("callbacks") as batch:
        for name in _COLUMNS:
            batch.drop_column(name)
