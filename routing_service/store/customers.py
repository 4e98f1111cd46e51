"""Customers: tier, account and escalation history, keyed by the normalised caller key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from routing_service.domain.models import Complexity, Customer, CustomerLearnings
from routing_service.store.base import SqlRepository
from routing_service.store.statements import shared
from routing_service.store.tables import customer_outcomes, customers

__all__ = ["SqlCustomerRepository", "customer_from_row"]

DEFAULT_TIER = "standard"
_GET = shared(select(customers).where(customers.c.number == bindparam("number")))


def _learnings(row: Any) -> CustomerLearnings | None:
    """What the customer's row says reviews taught (None when nothing ever was: the common row, one check)."""
    if row.learned_team is None and row.learned_ceiling is None:
        return None
    return CustomerLearnings(
        preferred_team=row.learned_team,
        preferred_team_category=row.learned_team_category,
        preferred_team_until=row.learned_team_until,
        preferred_team_call_id=row.learned_team_call_id,
        complexity_ceiling=Complexity(row.learned_ceiling) if row.learned_ceiling is not None else None,
        complexity_ceiling_until=row.learned_ceiling_until,
        complexity_ceiling_call_id=row.learned_ceiling_call_id,
    )


def customer_from_row(row: Any) -> Customer:
    """The `Customer` of a `customers` row (its columns by name)."""
    return Customer(
        number=row.number,
        tier=row.tier,
        account_name=row.account_name,
        previous_escalations=row.previous_escalations,
        last_agent_id=row.last_agent_id,
        updated_at=row.updated_at,
        learned=_learnings(row),
    )


class SqlCustomerRepository(SqlRepository):
    """`ports.CustomerRepository` on SQL."""

    async def get(self, number: str) -> Customer | None:
        """The customer with this key, or None."""
        row = (await self._execute(_GET, {"number": number})).first()
        return None if row is None else customer_from_row(row)

    async def upsert(self, customer: Customer, now: datetime) -> tuple[Customer, bool]:
        """Create or replace tier, account, history and last agent; returns (stored, created)."""
        values: dict[str, Any] = {
            "tier": customer.tier,
            "account_name": customer.account_name,
            "previous_escalations": max(0, customer.previous_escalations),
            "last_agent_id": customer.last_agent_id,
            "updated_at": now,
        }
        created = await self._insert_ignore(customers, {"number": customer.number, **values})
        if not created:
            await self._execute(update(customers).where(customers.c.number == customer.number).values(values))
        stored = Customer(
            number=customer.number,
            tier=customer.tier,
            account_name=customer.account_name,
            previous_escalations=max(0, customer.previous_escalations),
            last_agent_id=customer.last_agent_id,
            updated_at=now,
        )
        return stored, created

    async def save_learnings(self, number: str, learned: CustomerLearnings, now: datetime) -> bool:
        """Store what reviews taught about the customer (both kinds, as given); False when unknown."""
        ceiling = learned.complexity_ceiling
        values: dict[str, Any] = {
            "learned_team": learned.preferred_team,
            "learned_team_category": learned.preferred_team_category,
            "learned_team_until": learned.preferred_team_until,
            "learned_team_call_id": learned.preferred_team_call_id,
            "learned_ceiling": int(ceiling) if ceiling is not None else None,
            "learned_ceiling_until": learned.complexity_ceiling_until,
            "learned_ceiling_call_id": learned.complexity_ceiling_call_id,
            "updated_at": now,
        }
        result = await self._execute(update(customers).where(customers.c.number == number).values(values))
        return result.rowcount == 1

    async def record_outcome(
        self,
        call_id: str,
        number: str,
        agent_id: str | None,
        now: datetime,
        *,
        default_tier: str = DEFAULT_TIER,
    ) -> tuple[Customer, bool]:
        """Count the call once in `previous_escalations` (idempotent per call_id) and remember the agent.

        An unknown customer is created with `default_tier`. Returns (customer, counted).
        """
        await self._insert_ignore(
            customers,
            {
                "number": number,
                "tier": default_tier,
                "account_name": "",
                "previous_escalations": 0,
                "last_agent_id": None,
                "updated_at": now,
            },
        )
        counted = await self._insert_ignore(
            customer_outcomes, {"call_id": call_id, "number": number, "agent_id": agent_id, "counted_at": now}
        )
        if counted:
            values: dict[str, Any] = {
                "previous_escalations": customers.c.previous_escalations + 1,
                "updated_at": now,
            }
            if agent_id is not None:
                values["last_agent_id"] = agent_id
            await self._execute(update(customers).where(customers.c.number == number).values(values))
        stored = await self.get(number)
        if stored is None:  # inserted above when absent, in this same transaction
            raise RuntimeError(f"customer {number!r} vanished inside its own transaction")
        return stored, counted
