"""SQLite's dispatch index leads with `max_complexity`: the candidates query walks it once per qualifying
complexity level instead of stepping over every idle agent not qualified for the call (those gather at the
front of the dispatch order because they are never picked). PostgreSQL keeps its index.

Revision ID: 0004_sqlite_dispatch_by_level
Revises: 0003_drop_agents_status_index
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_sqlite_dispatch_by_level"
down_revision: str | None = "0003_drop_agents_status_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DISPATCH_WHERE = "status = 'available' AND active_assignments < capacity"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_agents_dispatch", table_name="agents")
    op.create_index(
        "ix_agents_dispatch_by_level",
        "agents",
        ["max_complexity", "active_assignments", "idle_since", "agent_id"],
        sqlite_where=sa.text(DISPATCH_WHERE),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_agents_dispatch_by_level", table_name="agents")
    op.create_index(
        "ix_agents_dispatch",
        "agents",
        ["active_assignments", "idle_since", "agent_id"],
        sqlite_where=sa.text(DISPATCH_WHERE),
    )
