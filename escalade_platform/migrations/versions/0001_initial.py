"""Initial routing store: customers, agents and teams, assignments, decisions, callbacks.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 128
DISPATCH_WHERE = "status = 'available' AND active_assignments < capacity"


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name

    op.create_table(
        "customers",
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("account_name", sa.String(256), nullable=False),
        sa.Column("previous_escalations", sa.Integer(), nullable=False),
        sa.Column("last_agent_id", sa.String(ID), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint("previous_escalations >= 0", name="ck_customers_previous_escalations_nonnegative"),
        sa.PrimaryKeyConstraint("number", name="pk_customers"),
    )
    op.create_table(
        "customer_outcomes",
        sa.Column("call_id", sa.String(ID), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(ID), nullable=True),
        sa.Column("counted_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["number"],
            ["customers.number"],
            name="fk_customer_outcomes_number_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("call_id", name="pk_customer_outcomes"),
    )

    op.create_table(
        "agents",
        sa.Column("agent_id", sa.String(ID), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("dest_number", sa.String(32), nullable=True),
        sa.Column("dest_sip_uri", sa.String(512), nullable=True),
        sa.Column("dest_extension", sa.String(32), nullable=True),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("max_complexity", sa.SmallInteger(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active_assignments", sa.Integer(), nullable=False),
        sa.Column("idle_since", _utc(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint("active_assignments >= 0", name="ck_agents_active_assignments_nonnegative"),
        sa.CheckConstraint("capacity >= 0", name="ck_agents_capacity_nonnegative"),
        sa.PrimaryKeyConstraint("agent_id", name="pk_agents"),
    )
    # See routing_service/store/tables.py for why the dispatch index is partial and per dialect.
    if dialect == "postgresql":
        op.create_index(
            "ix_agents_dispatch_pg",
            "agents",
            ["active_assignments", sa.text("idle_since NULLS FIRST"), "agent_id"],
            postgresql_where=sa.text(DISPATCH_WHERE),
        )
    else:
        op.create_index(
            "ix_agents_dispatch",
            "agents",
            ["active_assignments", "idle_since", "agent_id"],
            sqlite_where=sa.text(DISPATCH_WHERE),
        )
    op.create_index("ix_agents_status_agent_id", "agents", ["status", "agent_id"])

    op.create_table(
        "agent_teams",
        sa.Column("agent_id", sa.String(ID), nullable=False),
        sa.Column("team_id", sa.String(ID), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.agent_id"], name="fk_agent_teams_agent_id_agents", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("agent_id", "team_id", name="pk_agent_teams"),
    )
    op.create_index("ix_agent_teams_team_id_agent_id", "agent_teams", ["team_id", "agent_id"])

    op.create_table(
        "assignments",
        sa.Column("assignment_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(ID), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.String(ID), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reserved_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("released_at", _utc(), nullable=True),
        sa.Column("release_reason", sa.String(256), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.agent_id"], name="fk_assignments_agent_id_agents", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("assignment_id", name="pk_assignments"),
    )
    op.create_index(
        "uq_assignments_active_call",
        "assignments",
        ["call_id", "purpose"],
        unique=True,
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_index(
        "ix_assignments_active_expiry",
        "assignments",
        ["expires_at"],
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_index("ix_assignments_released_at", "assignments", ["released_at"])
    op.create_index("ix_assignments_agent_id", "assignments", ["agent_id"])

    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(ID), nullable=False),
        sa.Column("tool_call_id", sa.String(ID), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("team_id", sa.String(ID), nullable=False),
        sa.Column("agent_id", sa.String(ID), nullable=True),
        sa.Column("decided_at", _utc(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name="pk_decisions"),
        sa.UniqueConstraint("call_id", "tool_call_id", name="uq_decisions_call_id_tool_call_id"),
    )
    op.create_index("ix_decisions_call_id_decided_at", "decisions", ["call_id", "decided_at"])
    op.create_index("ix_decisions_decided_at_decision_id", "decisions", ["decided_at", "decision_id"])
    op.create_index(
        "ix_decisions_team_id_decided_at_decision_id", "decisions", ["team_id", "decided_at", "decision_id"]
    )

    op.create_table(
        "callbacks",
        sa.Column("call_id", sa.String(ID), nullable=False),
        sa.Column("team_id", sa.String(ID), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("caller_number", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("issue_category", sa.String(64), nullable=False),
        sa.Column("effective_complexity", sa.SmallInteger(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("service_key", sa.Double(), nullable=False),
        sa.Column("enqueued_at", _utc(), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("customer_context", sa.Text(), nullable=False),
        sa.Column("escalation_reason", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.String(ID), nullable=True),
        sa.Column("reserved_until", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_callbacks"),
    )
    op.create_index(
        "ix_callbacks_team_id_state_service_key", "callbacks", ["team_id", "state", "service_key"]
    )


def downgrade() -> None:
    for table in ("callbacks", "decisions", "assignments", "agent_teams", "agents", "customer_outcomes"):
        op.drop_table(table)
    op.drop_table("customers")
