"""The routing store's schema (SQLAlchemy Core). The database's migrations (`escalade_platform.migrations`,
revisions 0001-0011) create exactly this; a test compares the migrated database with this metadata on SQLite
and PostgreSQL.

All datetimes are stored as UTC through `UtcDateTime`. Enums are stored by value: `AgentStatus`,
`CallbackState` and `DecisionKind` as their strings, `Complexity` as its integer (so `>=` compares levels).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

from escalade_platform.migrations import NAMING_CONVENTION, VERSION_TABLE
from routing_service.domain.models import ESCALATION_ENTRY, RECENT_ESCALATIONS_KEPT

__all__ = [
    "VERSION_TABLE",
    "UtcDateTime",
    "agent_teams",
    "agents",
    "assignments",
    "callbacks",
    "customer_outcomes",
    "customers",
    "decisions",
    "metadata",
    "review_outcomes",
]


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every back end.

    PostgreSQL keeps `timestamptz`. SQLite has no time zones: values are converted to UTC and stored naive,
    and read back as aware UTC, so string comparison in SQL orders them correctly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only accepts timezone-aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = 128  # length of external ids (call ids, tool call ids, agent and team ids)
RECENT_ESCALATIONS_WIDTH = ESCALATION_ENTRY * RECENT_ESCALATIONS_KEPT
"""`agents.recent_escalations`: the `EscalationTimes` text (ten digits of epoch seconds and a space each)."""

customers = Table(
    "customers",
    metadata,
    Column("number", String(64), primary_key=True),
    Column("tier", String(64), nullable=False),
    Column("account_name", String(256), nullable=False),
    Column("previous_escalations", Integer, nullable=False),
    Column("last_agent_id", String(ID), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    # What reviews' verdicts taught (routing_service.domain.learning); read with the customer, no extra
    # statement on the decision path.
    Column("learned_team", String(ID), nullable=True),
    Column("learned_team_category", String(64), nullable=True),
    Column("learned_team_until", UtcDateTime, nullable=True),
    Column("learned_team_call_id", String(ID), nullable=True),
    Column("learned_ceiling", SmallInteger, nullable=True),
    Column("learned_ceiling_until", UtcDateTime, nullable=True),
    Column("learned_ceiling_call_id", String(ID), nullable=True),
    CheckConstraint("previous_escalations >= 0", name="previous_escalations_nonnegative"),
)

customer_outcomes = Table(
    "customer_outcomes",
    metadata,
    Column("call_id", String(ID), primary_key=True),
    Column("number", String(64), ForeignKey("customers.number", ondelete="CASCADE"), nullable=False),
    Column("agent_id", String(ID), nullable=True),
    Column("counted_at", UtcDateTime, nullable=False),
)
"""One row per call already counted in `customers.previous_escalations`: makes `record_outcome` idempotent."""

review_outcomes = Table(
    "review_outcomes",
    metadata,
    Column("call_id", String(ID), primary_key=True),
    Column("team_id", String(ID), nullable=False),
    Column("rule_id", String(ID), nullable=False),
    Column("uncertain", SmallInteger, nullable=False),
    Column("category_wrong", SmallInteger, nullable=False),
    Column("verdict", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("judged_at", UtcDateTime, nullable=False),
    Column("verdict_at", UtcDateTime, nullable=True),
)
"""One row per reviewed call (routing_service.app.review_outcomes): the decision's team and rule, whether it
was uncertain (0/1), whether the review says its category was wrong (0/1), and the supervisor's verdict with
what it says of the decision (`confirmed` / `overturned`; empty until a verdict)."""
Index("ix_review_outcomes_verdict_at", review_outcomes.c.verdict_at)
Index("ix_review_outcomes_judged_at", review_outcomes.c.judged_at)

agents = Table(
    "agents",
    metadata,
    Column("agent_id", String(ID), primary_key=True),
    Column("display_name", String(256), nullable=False),
    Column("dest_number", String(32), nullable=True),
    Column("dest_sip_uri", String(512), nullable=True),
    Column("dest_extension", String(32), nullable=True),
    Column("skills", JSON, nullable=False),
    Column("team_ids", JSON, nullable=False, server_default=text("'[]'")),
    Column("max_complexity", SmallInteger, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("active_assignments", Integer, nullable=False),
    Column("idle_since", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("missed_in_row", Integer, nullable=False, server_default=text("0")),
    # Fair-load figures, kept by the reservation's own statement (store/assignments.py): the epoch seconds
    # of the latest reservations (fixed-width, space-terminated; the last RECENT_ESCALATIONS_KEPT), the
    # latest critical reservation, critical reservations in a row, and a version bumped by each reservation.
    Column("recent_escalations", String(RECENT_ESCALATIONS_WIDTH), nullable=False, server_default=text("''")),
    Column("last_critical_at", UtcDateTime, nullable=True),
    Column("critical_in_row", Integer, nullable=False, server_default=text("0")),
    Column("load_version", Integer, nullable=False, server_default=text("0")),
    CheckConstraint("active_assignments >= 0", name="active_assignments_nonnegative"),
    CheckConstraint("capacity >= 0", name="capacity_nonnegative"),
)

# Dispatch index. `candidates()` asks for "the first N free, available agents of team T able to take
# complexity C, least busy then longest idle". A partial index holding only the dispatchable agents
# (available AND a free slot), in exactly that order, lets the database walk it from the front, probe
# team membership by primary key for each row, and stop after LIMIT hits: no sort, and when every agent is
# busy the index is nearly empty, so the "nobody free" path (callbacks) is cheap too. Team and complexity
# are checked per row rather than indexed because teams are few and large. On SQLite the index leads with
# max_complexity and the query walks it once per qualifying level (see `agents.candidates_statement`), so
# idle agents not qualified for the call are never stepped over. PostgreSQL needs
# `NULLS FIRST` in the index to serve `ORDER BY idle_since NULLS FIRST`; SQLite sorts NULLs first already
# and rejects NULLS FIRST in CREATE INDEX, hence one index per dialect. The WHERE clause must appear
# verbatim (with the literal 'available', not a bound parameter) in the query for either planner to use it.
DISPATCH_WHERE = "status = 'available' AND active_assignments < capacity"
Index(
    "ix_agents_dispatch_by_level",
    agents.c.max_complexity,
    agents.c.active_assignments,
    agents.c.idle_since,
    agents.c.agent_id,
    sqlite_where=text(DISPATCH_WHERE),
).ddl_if(dialect="sqlite")
Index(
    "ix_agents_dispatch_pg",
    agents.c.active_assignments,
    agents.c.idle_since.nulls_first(),
    agents.c.agent_id,
    postgresql_where=text(DISPATCH_WHERE),
).ddl_if(dialect="postgresql")
# No other index on agents.status: without statistics SQLite would pick it over the dispatch index.

# Membership, for filtering by team (the agent's `team_ids` JSON column is the ordered copy that is read).
agent_teams = Table(
    "agent_teams",
    metadata,
    Column("agent_id", String(ID), ForeignKey("agents.agent_id", ondelete="CASCADE"), nullable=False),
    Column("team_id", String(ID), nullable=False),
    Column("position", SmallInteger, nullable=False),
    PrimaryKeyConstraint("agent_id", "team_id"),
)
Index("ix_agent_teams_team_id_agent_id", agent_teams.c.team_id, agent_teams.c.agent_id)

assignments = Table(
    "assignments",
    metadata,
    Column("assignment_id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(ID), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("agent_id", String(ID), ForeignKey("agents.agent_id", ondelete="CASCADE"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("reserved_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("released_at", UtcDateTime, nullable=True),
    Column("release_reason", String(256), nullable=False),
    # The lifecycle stage (domain.lifecycle.AssignmentStage); `state` stays 'active' exactly while the stage
    # holds a slot (reserved, offered, connected, wrap-up): the decision path and the partial indexes use it.
    Column("stage", String(16), nullable=False, server_default=text("'reserved'")),
    Column("team_id", String(ID), nullable=True),
    Column("offered_at", UtcDateTime, nullable=True),
    Column("connected_at", UtcDateTime, nullable=True),
    Column("completed_at", UtcDateTime, nullable=True),
)
# At most one ACTIVE assignment per (call, purpose), whatever the races.
Index(
    "uq_assignments_active_call",
    assignments.c.call_id,
    assignments.c.purpose,
    unique=True,
    sqlite_where=text("state = 'active'"),
    postgresql_where=text("state = 'active'"),
)
Index(
    "ix_assignments_active_expiry",
    assignments.c.expires_at,
    sqlite_where=text("state = 'active'"),
    postgresql_where=text("state = 'active'"),
)
# A call's finished assignments (who missed it, how it ended): only released rows, so reserving a slot
# writes no entry here; the active one is found through uq_assignments_active_call (migration 0006).
Index(
    "ix_assignments_released_call_id",
    assignments.c.call_id,
    sqlite_where=text("state = 'released'"),
    postgresql_where=text("state = 'released'"),
)
Index("ix_assignments_agent_id", assignments.c.agent_id)
# The handle-time sample: a team's latest finished conversations, newest first (migration 0006). Only rows
# whose conversation ended are entered; the query's `completed_at >= ?` implies the predicate.
Index(
    "ix_assignments_team_id_completed_at",
    assignments.c.team_id,
    assignments.c.completed_at,
    sqlite_where=text("completed_at IS NOT NULL"),
    postgresql_where=text("completed_at IS NOT NULL"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("call_id", String(ID), nullable=False),
    Column("tool_call_id", String(ID), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("team_id", String(ID), nullable=False),
    Column("agent_id", String(ID), nullable=True),
    Column("decided_at", UtcDateTime, nullable=False),
    Column("body", JSON, nullable=False),
    Column("handoff", JSON(none_as_null=True), nullable=True),
    UniqueConstraint("call_id", "tool_call_id"),
)
"""Queryable columns plus the whole decision (destination, messages, trace, ...) as JSON in `body`, and the
handoff packet (routing_service.domain.handoff) as JSON in `handoff` (NULL for decisions stored before
packets existed)."""
# A call's decisions are found through the unique (call_id, tool_call_id) index (migration 0005).
Index("ix_decisions_decided_at_decision_id", decisions.c.decided_at, decisions.c.decision_id)
Index(
    "ix_decisions_team_id_decided_at_decision_id",
    decisions.c.team_id,
    decisions.c.decided_at,
    decisions.c.decision_id,
)

callbacks = Table(
    "callbacks",
    metadata,
    Column("call_id", String(ID), primary_key=True),
    Column("team_id", String(ID), nullable=False),
    Column("state", String(16), nullable=False),
    Column("caller_number", String(64), nullable=False),
    Column("tier", String(64), nullable=False),
    Column("issue_category", String(64), nullable=False),
    Column("effective_complexity", SmallInteger, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("service_key", Double, nullable=False),
    Column("enqueued_at", UtcDateTime, nullable=False),
    Column("decision_id", String(64), nullable=False),
    Column("customer_context", Text, nullable=False),
    Column("escalation_reason", Text, nullable=False),
    Column("agent_id", String(ID), nullable=True),
    Column("reserved_until", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("note", Text, nullable=False),
    Column("first_message", Text, nullable=False, server_default=text("''")),
    Column("promise_from", UtcDateTime, nullable=True),
    Column("promised_by", UtcDateTime, nullable=True),
    Column("at_risk_at", UtcDateTime, nullable=True),
    Column("started_at", UtcDateTime, nullable=True),
    Column("breached_at", UtcDateTime, nullable=True),
)
Index(
    "ix_callbacks_team_id_state_service_key", callbacks.c.team_id, callbacks.c.state, callbacks.c.service_key
)
# Kept rates and accuracy read a team's promises by deadline; claims look up its at-risk waiting callbacks.
Index("ix_callbacks_team_id_promised_by", callbacks.c.team_id, callbacks.c.promised_by)
# The estimate learns from a team's latest started callbacks (on every callback decision).
Index("ix_callbacks_team_id_started_at", callbacks.c.team_id, callbacks.c.started_at)
Index("ix_callbacks_team_id_state_at_risk_at", callbacks.c.team_id, callbacks.c.state, callbacks.c.at_risk_at)
