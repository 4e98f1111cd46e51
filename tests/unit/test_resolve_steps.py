"""Each step of a decision (`routing_service.app.resolve`) alone, on the in-memory store: what it reads,
what it concludes, what it writes (or must not)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from routing_service.app.assignments import CALLBACK, LIVE
from routing_service.app.resolve import (
    DecisionContext,
    TeamChoice,
    assess_call,
    choose_team,
    identify_caller,
    record_decision,
    reserve_or_queue,
    settle_earlier_offer,
    take_held_callback,
)
from routing_service.domain.lifecycle import AssignmentStage
from routing_service.domain.models import (
    Agent,
    CallbackState,
    CallbackTicket,
    Complexity,
    Customer,
    Decision,
    DecisionKind,
    EscalationRequest,
    Policy,
    TraceOutcome,
)
from tests.support.in_memory_store import InMemoryDatabase
from tests.support.routing_builders import NOW, make_agent, new_decision_id, seed, techcorp_policy

CALLER = "+15551110001"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return techcorp_policy()


@pytest.fixture
def db() -> InMemoryDatabase:
    return InMemoryDatabase()


def context(policy: Policy, **request: Any) -> DecisionContext:
    """A fresh decision's context; `request` overrides fields of call-1 / tool-1 from CALLER."""
    fields: dict[str, Any] = {"call_id": "call-1", "tool_call_id": "tool-1", "caller_number": CALLER}
    fields.update(request)
    return DecisionContext(
        request=EscalationRequest(**fields),
        policy=policy,
        now=NOW,
        decision_id=new_decision_id(),
        trace=[],
    )


def technical_advanced(policy: Policy, **request: Any) -> DecisionContext:
    """A context past identify_caller and assess_call: a premium customer's advanced technical issue."""
    ctx = context(policy, **request)
    ctx.caller_key, ctx.tier, ctx.category, ctx.complexity = (
        CALLER,
        "premium",
        "technical",
        Complexity.ADVANCED,
    )
    return ctx


def choice_of(
    policy: Policy, *candidates: Agent, waiting_ahead: int = 0, members: int | None = None
) -> TeamChoice:
    return TeamChoice(
        team=policy.teams["technical"],
        rule_id="technical-specialists",
        priority=25,
        service_key=1_000.0,
        waiting_ahead=waiting_ahead,
        candidates=candidates,
        members=members,
    )


async def agents_of(db: InMemoryDatabase, *agent_ids: str) -> list[Agent]:
    async with db.uow() as u:
        found = [await u.agents.get(agent_id) for agent_id in agent_ids]
    assert all(found)
    return [a for a in found if a is not None]


# ------------------------------------------------------------------ identify_caller ------------------------
async def test_identify_caller_takes_the_tier_of_a_known_customer(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, customers=(Customer(number=CALLER, tier="enterprise", account_name="Big Co"),))
    ctx = context(policy, caller_number="(555) 111-0001")

    async with db.uow() as u:
        await identify_caller(u, ctx)

    assert (ctx.caller_key, ctx.tier) == (CALLER, "enterprise")
    assert ctx.customer is not None and ctx.customer.account_name == "Big Co"
    assert [(s.stage, s.subject) for s in ctx.trace] == [("caller", "+1******0001"), ("customer", "Big Co")]


async def test_identify_caller_gives_an_unknown_caller_the_default_tier(
    db: InMemoryDatabase, policy: Policy
) -> None:
    ctx = context(policy)

    async with db.uow() as u:
        await identify_caller(u, ctx)

    assert (ctx.tier, ctx.customer) == ("standard", None)
    assert ctx.trace[-1].detail == "unknown caller: default tier standard"


async def test_identify_caller_reads_nothing_for_an_anonymous_caller(
    db: InMemoryDatabase, policy: Policy
) -> None:
    ctx = context(policy, caller_number="")

    async with db.uow() as u:
        db.unavailable = True  # any read would fail
        await identify_caller(u, ctx)

    assert (ctx.caller_key, ctx.tier) == (None, "standard")
    assert ctx.trace[-1].detail == "no usable caller number: default tier standard"


# ------------------------------------------------------------------ assess_call ----------------------------
def test_assess_call_raises_the_claim_by_keywords_tier_and_history(policy: Policy) -> None:
    ctx = context(
        policy, issue_category="Technical", claimed_complexity=Complexity.BASIC, transcript="API error"
    )
    ctx.tier = "standard"

    assess_call(ctx)

    assert (ctx.category, ctx.complexity) == ("technical", Complexity.ADVANCED)
    floored = context(policy, issue_category="billing", claimed_complexity=Complexity.BASIC)
    floored.tier = "enterprise"
    assess_call(floored)
    assert floored.complexity is Complexity.ADVANCED
    frequent = context(policy, issue_category="billing")
    frequent.customer = Customer(number=CALLER, tier="standard", previous_escalations=3)
    assess_call(frequent)
    assert frequent.complexity is Complexity.CRITICAL


def test_assess_call_takes_the_default_category_for_an_unknown_one(policy: Policy) -> None:
    ctx = context(policy, issue_category="weather")

    assess_call(ctx)

    assert ctx.category == "general"
    assert ctx.trace[0].stage == "category"


# ------------------------------------------------------------------ choose_team ----------------------------
async def test_choose_team_returns_the_first_batch_of_free_qualified_specialists(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(
        db,
        *(make_agent(f"a{n}", idle_since=NOW - timedelta(minutes=n)) for n in range(1, 6)),
        make_agent("junior", max_complexity=Complexity.INTERMEDIATE),
    )
    ctx = technical_advanced(policy)

    async with db.uow() as u:
        choice = await choose_team(u, ctx)

    assert isinstance(choice, TeamChoice)
    assert (choice.team.team_id, choice.rule_id, choice.waiting_ahead, choice.members) == (
        "technical",
        "technical-specialists",
        0,
        None,
    )
    assert [a.agent_id for a in choice.candidates] == ["a5", "a4", "a3"], "longest idle first, 3 at a time"
    assert [a.active_assignments for a in await agents_of(db, "a5", "a4", "a3")] == [0, 0, 0], (
        "nothing reserved"
    )


async def test_choose_team_counts_waiting_callbacks_ahead_instead_of_looking_for_specialists(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"), make_agent("bob"))
    async with db.uow() as u:
        await u.callbacks.enqueue(waiting_ticket("queued", service_key=0.0))
        await u.commit()
    ctx = technical_advanced(policy)

    async with db.uow() as u:
        choice = await choose_team(u, ctx)

    assert isinstance(choice, TeamChoice)
    assert (choice.waiting_ahead, choice.candidates, choice.members) == (1, (), 2)


async def test_choose_team_sends_the_call_to_the_team_line_when_the_team_has_nobody(
    db: InMemoryDatabase, policy: Policy
) -> None:
    ctx = technical_advanced(policy)

    async with db.uow() as u:
        choice = await choose_team(u, ctx)

    assert isinstance(choice, Decision)
    assert (choice.kind, choice.team_id, choice.destination.number) == (
        DecisionKind.TRANSFER_TEAM,
        "technical",
        "+15550100200",
    )


# ------------------------------------------------------------------ reserve_or_queue -----------------------
async def test_reserve_or_queue_passes_over_a_candidate_whose_last_slot_was_taken(
    db: InMemoryDatabase, policy: Policy
) -> None:
    ann, bob = make_agent("ann"), make_agent("bob")
    await seed(db, ann, bob, busy={"ann": 1})  # ann was free when the batch was read
    ctx = technical_advanced(policy)

    async with db.uow() as u:
        decision = await reserve_or_queue(u, ctx, choice_of(policy, ann, bob))
        await u.commit()

    assert (decision.kind, decision.agent_id) == (DecisionKind.TRANSFER_AGENT, "bob")
    assert ("candidate", "ann", TraceOutcome.REJECTED) in [(s.stage, s.subject, s.outcome) for s in ctx.trace]
    assert [a.active_assignments for a in await agents_of(db, "ann", "bob")] == [1, 1]


async def test_reserve_or_queue_looks_further_when_a_whole_batch_was_taken(
    db: InMemoryDatabase, policy: Policy
) -> None:
    stale = [make_agent(f"s{n}") for n in range(3)]
    await seed(db, *stale, make_agent("late"), busy={a.agent_id: 1 for a in stale})
    ctx = technical_advanced(policy)

    async with db.uow() as u:
        decision = await reserve_or_queue(u, ctx, choice_of(policy, *stale))

    assert (decision.kind, decision.agent_id) == (DecisionKind.TRANSFER_AGENT, "late")
    assert any(s.stage == "candidate" and s.detail.startswith("round 2:") for s in ctx.trace)


async def test_reserve_or_queue_queues_the_caller_behind_waiting_callbacks(
    db: InMemoryDatabase, policy: Policy
) -> None:
    ann = make_agent("ann")
    await seed(db, ann)
    ctx = technical_advanced(policy)

    async with db.uow() as u:
        decision = await reserve_or_queue(u, ctx, choice_of(policy, ann, waiting_ahead=2, members=1))
        await u.commit()

    assert decision.kind is DecisionKind.CALLBACK
    assert decision.callback is not None and decision.callback.state is CallbackState.WAITING
    assert [a.active_assignments for a in await agents_of(db, "ann")] == [0]
    async with db.uow() as u:
        assert await u.callbacks.get("call-1") is not None


# ------------------------------------------------------------------ settle_earlier_offer -------------------
async def test_settle_earlier_offer_counts_the_miss_and_frees_the_slot(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"))
    async with db.uow() as u:
        await u.assignments.reserve(
            agent_id="ann", call_id="call-1", purpose=LIVE, now=NOW, expires_at=NOW + timedelta(hours=1)
        )
        await u.commit()
    ctx = context(policy, tool_call_id="tool-2")

    async with db.uow() as u:
        await settle_earlier_offer(u, ctx)
        await u.commit()

    assert ctx.missed == ("ann",)
    assert [f.agent_id for f in ctx.freed] == ["ann"]
    ann = (await agents_of(db, "ann"))[0]
    assert (ann.active_assignments, ann.missed_in_row) == (0, 1)
    async with db.uow() as u:
        latest = await u.assignments.latest_for_call("call-1")
    assert latest is not None and latest.stage is AssignmentStage.MISSED


async def test_settle_earlier_offer_changes_nothing_on_a_dry_run(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"))
    async with db.uow() as u:
        await u.assignments.reserve(
            agent_id="ann", call_id="call-1", purpose=LIVE, now=NOW, expires_at=NOW + timedelta(hours=1)
        )
        await u.commit()
    ctx = context(policy, dry_run=True, tool_call_id="tool-2")

    async with db.uow() as u:
        await settle_earlier_offer(u, ctx)
        await u.commit()

    assert (ctx.missed, ctx.freed) == (("ann",), [])
    assert (await agents_of(db, "ann"))[0].active_assignments == 1


# ------------------------------------------------------------------ take_held_callback ---------------------
async def test_take_held_callback_moves_the_held_specialist_onto_the_callback_call(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"))
    async with db.uow() as u:
        await u.callbacks.enqueue(waiting_ticket("original", service_key=0.0))
        await u.assignments.reserve(
            agent_id="ann",
            call_id="original",
            purpose=CALLBACK,
            now=NOW,
            expires_at=NOW + timedelta(minutes=5),
        )
        await u.callbacks.mark_reserved("original", "ann", NOW + timedelta(minutes=5))
        await u.commit()
    ctx = technical_advanced(policy, call_id="callback-call", callback_of_call_id="original")

    async with db.uow() as u:
        decision = await take_held_callback(u, ctx)
        await u.commit()

    assert decision is not None
    assert (decision.kind, decision.agent_id, decision.callback_of_call_id) == (
        DecisionKind.TRANSFER_AGENT,
        "ann",
        "original",
    )
    async with db.uow() as u:
        assert await u.assignments.active_for_call("callback-call", LIVE) == "ann"
        assert await u.assignments.active_for_call("original", CALLBACK) is None
    assert (await agents_of(db, "ann"))[0].active_assignments == 1, "the slot moved, it was not taken twice"


async def test_take_held_callback_decides_afresh_when_nobody_is_held(
    db: InMemoryDatabase, policy: Policy
) -> None:
    async with db.uow() as u:
        await u.callbacks.enqueue(waiting_ticket("original", service_key=0.0))
        await u.commit()
    ctx = technical_advanced(policy, call_id="callback-call", callback_of_call_id="original")

    async with db.uow() as u:
        assert await take_held_callback(u, ctx) is None

    assert (
        ctx.trace[-1].detail
        == "callback of original: its callback is waiting, with no specialist held; deciding afresh"
    )


# ------------------------------------------------------------------ record_decision ------------------------
async def test_record_decision_rolls_everything_back_when_the_request_was_decided_already(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"), make_agent("bob"))
    first_ctx, second_ctx = technical_advanced(policy), technical_advanced(policy)
    async with db.uow() as u:
        first = await reserve_or_queue(u, first_ctx, choice_of(policy, make_agent("ann")))
        assert first_ctx.recorded is first, "stored with ann's reservation: only the commit is left"
        assert await record_decision(u, first, stored=True)

    async with db.uow() as u:
        # The call holds ann already: she is kept, and the decision is stored on its own, at the commit.
        second = await reserve_or_queue(u, second_ctx, choice_of(policy, make_agent("bob")))
        assert second_ctx.recorded is None
        recorded = await record_decision(u, second)

    assert not recorded
    assert [a.active_assignments for a in await agents_of(db, "ann", "bob")] == [1, 0], (
        "bob's hold rolled back"
    )
    async with db.uow() as u:
        assert await u.decisions.get("call-1", "tool-1") == first


def waiting_ticket(call_id: str, *, service_key: float) -> CallbackTicket:
    return CallbackTicket(
        call_id=call_id,
        team_id="technical",
        state=CallbackState.WAITING,
        caller_number="+15551119999",
        tier="premium",
        issue_category="technical",
        effective_complexity=Complexity.ADVANCED,
        priority=25,
        service_key=service_key,
        enqueued_at=NOW - timedelta(minutes=10),
        decision_id=f"d-{call_id}",
    )
