"""Drop `ix_agents_status_agent_id`: SQLite, which has no statistics unless someone runs ANALYZE, preferred
that equality index plus a sort over every available agent to the partial dispatch index, turning the
dispatch query from a LIMITed index walk into a full sort, whose cost grows with the number of agents.
Listing agents by status is an admin query and scans the primary key instead.

Revision ID: 0003_drop_agents_status_index
Revises: 0002_agent_team_ids
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_drop_agents_status_index"
down_revision: str | None = "0002_agent_team_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_agents_status_agent_id", table_name="agents")


def downgrade() -> None:
    op.create_index("ix_agents_status_agent_id", "agents", ["status", "agent_id"])
