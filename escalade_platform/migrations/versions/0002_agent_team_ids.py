"""Agents carry their team ids (in declared order) as JSON, so reading agents needs no second query;
`agent_teams` stays the indexed membership table used for filtering.

Revision ID: 0002_agent_team_ids
Revises: 0001_initial
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_agent_team_ids"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("team_ids", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    bind = op.get_bind()
    agent_teams = sa.table("agent_teams", sa.column("agent_id"), sa.column("team_id"), sa.column("position"))
    agents = sa.table("agents", sa.column("agent_id"), sa.column("team_ids", sa.JSON()))
    teams: dict[str, list[str]] = defaultdict(list)
    for row in bind.execute(
        sa.select(agent_teams.c.agent_id, agent_teams.c.team_id).order_by(
            agent_teams.c.agent_id, agent_teams.c.position
        )
    ):
        teams[row.agent_id].append(row.team_id)
    if teams:
        bind.execute(
            sa.update(agents)
            .where(agents.c.agent_id == sa.bindparam("member"))
            .values(team_ids=sa.bindparam("ids", type_=sa.JSON())),
            [{"member": agent_id, "ids": ids} for agent_id, ids in teams.items()],
        )


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("team_ids")
