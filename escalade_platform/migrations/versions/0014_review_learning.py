"""Learning from review verdicts (routing_service.domain.learning): customers gain what a verdict taught
(a preferred team for a category, a complexity ceiling, each with its expiry and the call whose review taught
it), and `review_outcomes` keeps one row per reviewed call for the outcomes per team and rule.

Revision ID: 0014_review_learning
Revises: 0013_decision_handoff_packet
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_review_learning"
down_revision: str | None = "0013_decision_handoff_packet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEARNED = (
    "team",
    "team_category",
    "team_until",
    "team_call_id",
    "ceiling",
    "ceiling_until",
    "ceiling_call_id",
)


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("customers", sa.Column("learned_team", sa.String(128), nullable=True))
    op.add_column("customers", sa.Column("learned_team_category", sa.String(64), nullable=True))
    op.add_column("customers", sa.Column("learned_team_until", _utc(), nullable=True))
    op.add_column("customers", sa.Column("learned_team_call_id", sa.String(128), nullable=True))
    op.add_column("customers", sa.Column("learned_ceiling", sa.SmallInteger(), nullable=True))
    op.add_column("customers", sa.Column("learned_ceiling_until", _utc(), nullable=True))
    op.add_column("customers", sa.Column("learned_ceiling_call_id", sa.String(128), nullable=True))
    op.create_table(
        "review_outcomes",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("team_id", sa.String(128), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("uncertain", sa.SmallInteger(), nullable=False),
        sa.Column("category_wrong", sa.SmallInteger(), nullable=False),
        sa.Column("verdict", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("judged_at", _utc(), nullable=False),
        sa.Column("verdict_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("call_id", name="pk_review_outcomes"),
    )
    op.create_index("ix_review_outcomes_verdict_at", "review_outcomes", ["verdict_at"])
    op.create_index("ix_review_outcomes_judged_at", "review_outcomes", ["judged_at"])


def downgrade() -> None:
    op.drop_index("ix_review_outcomes_judged_at", table_name="review_outcomes")
    op.drop_index("ix_review_outcomes_verdict_at", table_name="review_outcomes")
    op.drop_table("review_outcomes")
    with op.batch_alter_table("customers") as batch:
        for name in reversed(_LEARNED):
            batch.drop_column(f"learned_{name}")
