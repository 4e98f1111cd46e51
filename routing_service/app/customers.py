"""Use cases for customers: upsert (number normalised like callers), lookup, recording an outcome."""

from __future__ import annotations

from datetime import datetime

from routing_service.app.ports import UnitOfWorkFactory
from routing_service.domain.errors import Conflict, InvalidRequest, NotFound
from routing_service.domain.models import Customer, Policy
from routing_service.domain.phone import normalize_caller

__all__ = ["customer_key", "get_customer", "record_outcome", "upsert_customer"]

MAX_ESCALATIONS = 1_000_000


def customer_key(number: str, *, field: str = "number") -> str:
    """The key a customer is stored under (E.164, or the opaque +digits key); InvalidRequest otherwise."""
    key = normalize_caller(number)
    if key.key is None:
        raise InvalidRequest("invalid customer number", [(field, key.note)])
    return key.key


async def upsert_customer(
    customer: Customer, *, uow: UnitOfWorkFactory, now: datetime
) -> tuple[Customer, bool]:
    """Create or replace a customer (number normalised like callers, tier lower-cased); (stored, created)."""
    violations: list[tuple[str, str]] = []
    key = normalize_caller(customer.number)
    if key.key is None:
        violations.append(("customer.number", key.note))
    tier = customer.tier.strip().lower()
    if not tier:
        violations.append(("customer.tier", "required"))
    elif len(tier) > 64:
        violations.append(("customer.tier", "at most 64 characters"))
    if len(customer.account_name) > 200:
        violations.append(("customer.account_name", "at most 200 characters"))
    if not 0 <= customer.previous_escalations <= MAX_ESCALATIONS:
        violations.append(("customer.previous_escalations", "must be 0 or more"))
    if violations or key.key is None:
        raise InvalidRequest("invalid customer", violations)
    clean = Customer(
        number=key.key,
        tier=tier,
        account_name=customer.account_name.strip(),
        previous_escalations=customer.previous_escalations,
        last_agent_id=customer.last_agent_id,
    )
    async with uow() as u:
        stored, created = await u.customers.upsert(clean, now)
        await u.commit()
    return stored, created


async def get_customer(number: str, *, uow: UnitOfWorkFactory) -> Customer:
    """The customer stored under this number (normalised first); NotFound when unknown."""
    key = customer_key(number)
    async with uow() as u:
        customer = await u.customers.get(key)
    if customer is None:
        raise NotFound("no customer with that number")
    return customer


async def record_outcome(
    call_id: str, agent_id: str | None, *, uow: UnitOfWorkFactory, policy: Policy, now: datetime
) -> tuple[Customer, bool]:
    """Count the escalation in the caller's history (once per call) and remember the specialist."""
    if not call_id:
        raise InvalidRequest("invalid outcome", [("call_id", "required")])
    async with uow() as u:
        decision = await u.decisions.latest_for_call(call_id)
        if decision is None:
            raise NotFound(f"no decision for call {call_id!r}")
        if not decision.caller_number:
            raise Conflict("the call had no caller number, so there is no customer to update")
        if await u.customers.get(decision.caller_number) is None:
            await u.customers.upsert(
                Customer(number=decision.caller_number, tier=decision.tier or policy.default_tier), now
            )
        customer, counted = await u.customers.record_outcome(
            call_id, decision.caller_number, agent_id or None, now
        )
        await u.commit()
    return customer, counted
