"""`resolve_escalation` on the in-memory store (tests/support/in_memory_store.py): the decision outcomes of
the TechCorp policy without a database. The same use case on SQLite and PostgreSQL, through gRPC, is in
tests/service/test_grpc_resolve.py and test_resolve_repeat.py."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import datetime, time, timedelta

import pytest

import routing_service.app.resolve as resolve_module
from escalade_platform.logs import configure_logging
from routing_service.app.lifecycle import CallEvent, record_call_event
from routing_service.app.resolve import resolve_escalation
from routing_service.domain.errors import Unavailable
from routing_service.domain.lifecycle import AssignmentStage, CallEventKind
from routing_service.domain.models import (
    Agent,
    BusinessHours,
    CallbackState,
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

PREMIUM = "+15551110001"
ENTERPRISE = "+15551110002"
STANDARD = "+15551110003"
TEAMS = ("enterprise", "technical", "billing", "product", "general")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return techcorp_policy()


@pytest.fixture
def db() -> InMemoryDatabase:
    return InMemoryDatabase()


def premium() -> Customer:
    return Customer(number=PREMIUM, tier="premium", account_name="Premium Co")


async def resolve(
    db: InMemoryDatabase,
    policy: Policy,
    call_id: str,
    *,
    caller: str = PREMIUM,
    tool_call_id: str = "tool-1",
    category: str = "technical",
    claimed: Complexity | None = Complexity.ADVANCED,
    reason: str = "the app crashes on login",
    now: datetime = NOW,
    dry_run: bool = False,
) -> Decision:
    request = EscalationRequest(
        call_id=call_id,
        tool_call_id=tool_call_id,
        caller_number=caller,
        issue_category=category,
        claimed_complexity=claimed,
        escalation_reason=reason,
        dry_run=dry_run,
    )
    return await resolve_escalation(request, uow=db, policy=policy, now=now, new_id=new_decision_id)


async def stored_agent(db: InMemoryDatabase, agent_id: str) -> Agent:
    async with db.uow() as u:
        found = await u.agents.get(agent_id)
    assert found is not None
    return found


# ------------------------------------------------------------------ transfer to a specialist ---------------
async def test_least_busy_qualified_specialist_is_reserved_when_several_are_free(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(
        db,
        make_agent("busy-bea", capacity=2),
        make_agent("junior-jo", max_complexity=Complexity.INTERMEDIATE),
        make_agent("idle-ida", idle_since=NOW - timedelta(minutes=40)),
        make_agent("fresh-fay", idle_since=NOW - timedelta(minutes=5)),
        make_agent("billing-bo", teams=("billing",)),
        customers=(premium(),),
        busy={"busy-bea": 1},
    )

    decision = await resolve(db, policy, "call-1")

    assert decision.kind is DecisionKind.TRANSFER_AGENT
    assert (decision.team_id, decision.agent_id) == ("technical", "idle-ida"), "least busy, then longest idle"
    assert decision.rule_id == "technical-specialists"
    assert decision.tier == "premium" and decision.effective_complexity is Complexity.ADVANCED
    assert (await stored_agent(db, "idle-ida")).active_assignments == 1
    async with db.uow() as u:
        held = await u.assignments.live_for_call("call-1")
        stored = await u.decisions.get("call-1", "tool-1")
    assert held is not None and (held.agent_id, held.stage, held.team_id) == (
        "idle-ida",
        AssignmentStage.RESERVED,
        "technical",
    )
    assert stored == decision, "the decision and its reservation commit together"
    assert ("decision", "idle-ida", TraceOutcome.CHOSEN) in [
        (s.stage, s.subject, s.outcome) for s in decision.trace
    ]


async def test_dry_run_decides_the_same_but_reserves_and_stores_nothing(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"), customers=(premium(),))

    decision = await resolve(db, policy, "call-1", dry_run=True)

    assert decision.dry_run and (decision.kind, decision.agent_id) == (DecisionKind.TRANSFER_AGENT, "ann")
    assert (await stored_agent(db, "ann")).active_assignments == 0
    async with db.uow() as u:
        assert await u.decisions.get("call-1", "tool-1") is None


# ------------------------------------------------------------------ tier and complexity rules --------------
@pytest.mark.parametrize(
    ("caller", "category", "claimed", "reason", "team", "rule", "complexity"),
    [
        # the enterprise tier goes to enterprise support whatever the issue, and implies advanced at least
        (
            ENTERPRISE,
            "billing",
            Complexity.BASIC,
            "invoice question",
            "enterprise",
            "enterprise-tier",
            "advanced",
        ),
        # an outage word makes any caller's issue critical: enterprise support
        (
            STANDARD,
            "billing",
            Complexity.BASIC,
            "our whole site is down",
            "enterprise",
            "critical-complexity",
            "critical",
        ),
        # technical issues go to the technical specialists only from intermediate up
        (
            STANDARD,
            "technical",
            Complexity.INTERMEDIATE,
            "slow page",
            "technical",
            "technical-specialists",
            "intermediate",
        ),
        (STANDARD, "technical", Complexity.BASIC, "password reset", "general", "general", "basic"),
        # an API question is advanced even when claimed basic
        (
            STANDARD,
            "technical",
            Complexity.BASIC,
            "the API returns 500",
            "technical",
            "technical-specialists",
            "advanced",
        ),
        (STANDARD, "account", None, "change my plan", "billing", "billing-and-account", "basic"),
        # an unknown category is the default one (general)
        (STANDARD, "weather", None, "is it raining", "general", "general", "basic"),
    ],
)
async def test_rules_pick_the_team_from_tier_category_and_effective_complexity(
    db: InMemoryDatabase,
    policy: Policy,
    caller: str,
    category: str,
    claimed: Complexity | None,
    reason: str,
    team: str,
    rule: str,
    complexity: str,
) -> None:
    await seed(
        db,
        *(
            make_agent(f"{t}-1", teams=(t,))
            for t in ("enterprise", "technical", "billing", "product", "general")
        ),
        customers=(
            Customer(number=ENTERPRISE, tier="enterprise", account_name="Big Co"),
            Customer(number=STANDARD, tier="standard"),
        ),
    )

    decision = await resolve(
        db, policy, "call-1", caller=caller, category=category, claimed=claimed, reason=reason
    )

    assert (decision.team_id, decision.rule_id, decision.effective_complexity.label) == (
        team,
        rule,
        complexity,
    )
    assert (decision.kind, decision.agent_id) == (DecisionKind.TRANSFER_AGENT, f"{team}-1")


async def test_history_of_escalations_makes_the_call_critical(db: InMemoryDatabase, policy: Policy) -> None:
    frequent = Customer(number=STANDARD, tier="standard", previous_escalations=3)
    await seed(db, make_agent("ent", teams=("enterprise",)), customers=(frequent,))

    decision = await resolve(
        db, policy, "call-1", caller=STANDARD, category="billing", claimed=None, reason=""
    )

    assert decision.effective_complexity is Complexity.CRITICAL
    assert (decision.team_id, decision.agent_id) == ("enterprise", "ent")


async def test_specialist_below_the_calls_complexity_is_never_chosen(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("junior", max_complexity=Complexity.INTERMEDIATE), customers=(premium(),))

    decision = await resolve(db, policy, "call-1", claimed=Complexity.ADVANCED)

    assert decision.kind is DecisionKind.CALLBACK
    assert (await stored_agent(db, "junior")).active_assignments == 0


async def test_team_without_specialists_gets_the_call_on_its_line(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, customers=(premium(),))

    decision = await resolve(db, policy, "call-1", category="product", claimed=None, reason="how do I export")

    assert (decision.kind, decision.team_id) == (DecisionKind.TRANSFER_TEAM, "product")
    assert decision.destination.number == "+15550100400"


async def test_closed_team_without_specialists_passes_the_call_to_the_next_rule(
    db: InMemoryDatabase, policy: Policy
) -> None:
    night_shift = BusinessHours(timezone="UTC", days=frozenset(range(7)), opens=time(22), closes=time(23))
    teams = dict(policy.teams)
    teams["product"] = replace(teams["product"], business_hours=night_shift)
    closed_product = replace(policy, teams=teams)
    await seed(db, customers=(premium(),))

    decision = await resolve(db, closed_product, "call-1", category="product", claimed=None, reason="export")

    assert (decision.kind, decision.team_id, decision.rule_id) == (
        DecisionKind.TRANSFER_TEAM,
        "general",
        "general",
    )
    assert any(
        s.stage == "team" and s.subject == "product" and s.outcome is TraceOutcome.REJECTED
        for s in decision.trace
    )


# ------------------------------------------------------------------ callbacks ------------------------------
async def test_callback_with_position_and_wait_when_no_qualified_specialist_is_free(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"), make_agent("bob"), customers=(premium(),), busy={"ann": 1, "bob": 1})

    first = await resolve(db, policy, "call-1")
    second = await resolve(db, policy, "call-2", caller=STANDARD)

    assert first.kind is DecisionKind.CALLBACK and second.kind is DecisionKind.CALLBACK
    assert first.destination.number == "+15550100600", "the caller is transferred to the queue line"
    assert first.callback is not None and second.callback is not None
    assert (first.callback.position, second.callback.position) == (1, 2)
    # 8 minutes of default handle time per call ahead, shared by the team's two specialists
    assert (first.estimated_wait, second.estimated_wait) == (timedelta(minutes=4), timedelta(minutes=8))
    async with db.uow() as u:
        queue = await u.callbacks.open_in_team("technical", 10)
    assert [(t.call_id, t.state, t.position) for t in queue] == [
        ("call-1", CallbackState.WAITING, 1),
        ("call-2", CallbackState.WAITING, 2),
    ]


async def test_waiting_callbacks_are_not_jumped_when_a_specialist_frees_up(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"), customers=(premium(),), busy={"ann": 1})
    queued = await resolve(db, policy, "call-1")
    async with db.uow() as u:  # ann's other call ends
        assert await u.assignments.release("other-ann-0", "live", NOW, "done") is not None
        await u.commit()

    later = await resolve(db, policy, "call-2", now=NOW + timedelta(minutes=1))

    assert queued.kind is DecisionKind.CALLBACK
    assert later.kind is DecisionKind.CALLBACK, "a callback of the same priority waits ahead of this caller"
    assert later.callback is not None and later.callback.position == 2
    assert (await stored_agent(db, "ann")).active_assignments == 0, "ann stays free for the waiting callback"


# ------------------------------------------------------------------ repeat escalations ---------------------
async def test_repeat_escalation_after_a_missed_offer_goes_to_someone_else(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(
        db, make_agent("ann", idle_since=NOW - timedelta(hours=1)), make_agent("bob"), customers=(premium(),)
    )
    first = await resolve(db, policy, "call-1")
    await record_call_event(
        CallEvent(call_id="call-1", kind=CallEventKind.FORWARDING), uow=db, policy=policy, now=NOW
    )

    second = await resolve(db, policy, "call-1", tool_call_id="tool-2", now=NOW + timedelta(seconds=40))

    assert first.agent_id == "bob", "never idle sorts first"
    assert (second.kind, second.agent_id) == (DecisionKind.TRANSFER_AGENT, "ann")
    assert second.missed_agent_ids == ("bob",)
    missed = await stored_agent(db, "bob")
    assert (missed.active_assignments, missed.missed_in_row) == (0, 1), "freed and counted as a miss"
    async with db.uow() as u:
        assert await u.assignments.missed_agents("call-1") == {"bob"}


async def test_repeat_escalation_queues_the_caller_when_only_the_one_who_missed_is_free(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"), customers=(premium(),))
    await resolve(db, policy, "call-1")

    second = await resolve(db, policy, "call-1", tool_call_id="tool-2")

    assert second.kind is DecisionKind.CALLBACK
    assert second.missed_agent_ids == ("ann",)
    assert "number 1 in line" in second.caller_message
    assert (await stored_agent(db, "ann")).active_assignments == 0


# ------------------------------------------------------------------ idempotency ----------------------------
async def test_replayed_request_gets_the_stored_decision_and_reserves_once(
    db: InMemoryDatabase, policy: Policy
) -> None:
    await seed(db, make_agent("ann"), make_agent("bob"), customers=(premium(),))
    first = await resolve(db, policy, "call-1")

    again = await resolve(db, policy, "call-1", now=NOW + timedelta(seconds=3))

    assert again.replayed and not first.replayed
    assert replace(again, replayed=False) == first
    busy = [
        a.agent_id
        for a in [await stored_agent(db, "ann"), await stored_agent(db, "bob")]
        if a.active_assignments
    ]
    assert busy == [first.agent_id], "the retry rolled back its own reservation"


async def test_replayed_repeat_escalation_counts_the_miss_once(db: InMemoryDatabase, policy: Policy) -> None:
    await seed(db, make_agent("ann"), make_agent("bob"), customers=(premium(),))
    first = await resolve(db, policy, "call-1")
    second = await resolve(db, policy, "call-1", tool_call_id="tool-2")

    retried = await resolve(db, policy, "call-1", tool_call_id="tool-2")

    assert retried.replayed and retried.decision_id == second.decision_id
    assert (await stored_agent(db, first.agent_id or "")).missed_in_row == 1
    assert (await stored_agent(db, second.agent_id or "")).active_assignments == 1


# ------------------------------------------------------------------ failures -------------------------------
async def test_unreachable_store_raises_unavailable_so_the_edge_falls_back(
    db: InMemoryDatabase, policy: Policy
) -> None:
    db.unavailable = True

    with pytest.raises(Unavailable):
        await resolve(db, policy, "call-1")


# ------------------------------------------------------------------ the decision's log line ----------------
@pytest.mark.usefixtures("restore_logging")
async def test_decision_is_logged_masked_when_info_is_enabled(db: InMemoryDatabase, policy: Policy) -> None:
    await seed(db, make_agent("ann"), customers=(premium(),))
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)

    decision = await resolve(db, policy, "call-1")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    logged = [line for line in lines if line["event"] == "decision"]
    assert len(logged) == 1
    assert logged[0]["decision_id"] == decision.decision_id and logged[0]["agent"] == "ann"
    assert logged[0]["caller"] == "+1******0001" and PREMIUM not in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
async def test_decision_line_is_not_built_when_info_is_disabled(
    db: InMemoryDatabase, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(db, make_agent("ann"), customers=(premium(),))
    stream = io.StringIO()
    configure_logging(json=True, level="warning", stream=stream)
    masked: list[str] = []

    def mask(number: str) -> str:
        masked.append(number)
        return "+1******0001"

    monkeypatch.setattr(resolve_module, "mask_number", mask)

    await resolve(db, policy, "call-1")

    assert "decision" not in stream.getvalue()
    assert masked == [PREMIUM], "only the trace's caller step masks the number; the dropped line does not"
