"""What-if replay: recorded inputs read back from a decision, re-decided under a candidate policy, and the
diff (moves, rules that gain and lose, team effects)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from routing_service.domain.models import (
    Complexity,
    Decision,
    DecisionKind,
    Destination,
    TraceOutcome,
    TraceStep,
    TransferMode,
)
from routing_service.domain.replay import compare, recorded_call, redecide, team_effects
from routing_service.policy.loader import parse_policy
from tests.support.routing_builders import NOW, TECHCORP_POLICY

TECHCORP_TEXT = TECHCORP_POLICY.read_text()
TECHCORP = parse_policy(TECHCORP_TEXT, source="techcorp.yaml")
ACCOUNT_TO_GENERAL = parse_policy(
    TECHCORP_TEXT.replace("categories: [billing, account]}", "categories: [billing]}"), source="candidate"
)


def _known(tier: str, history: int = 0) -> TraceStep:
    detail = f"known customer: tier {tier}, {history} previous escalations"
    return TraceStep("customer", "Acme", TraceOutcome.INFO, detail)


UNKNOWN = TraceStep("customer", "standard", TraceOutcome.INFO, "unknown caller: default tier standard")


def decision(
    n: int,
    *,
    team: str,
    rule: str,
    category: str,
    tier: str = "standard",
    claimed: Complexity | None = Complexity.BASIC,
    effective: Complexity = Complexity.BASIC,
    trace: tuple[TraceStep, ...] = (UNKNOWN,),
    kind: DecisionKind = DecisionKind.TRANSFER_TEAM,
    minutes: int = 0,
    wait: timedelta | None = None,
    reason: str = "",
    callback_of: str = "",
) -> Decision:
    return Decision(
        decision_id=f"d{n}",
        call_id=f"call-{n}",
        tool_call_id="t1",
        kind=kind,
        destination=Destination(number="+15550100200"),
        caller_message="",
        transfer_mode=TransferMode.WARM_TRANSFER_SAY_MESSAGE,
        effective_complexity=effective,
        claimed_complexity=claimed,
        tier=tier,
        issue_category=category,
        decided_at=NOW + timedelta(minutes=minutes),
        trace=trace,
        reason=reason or f"rule {rule}: team {team}",
        team_id=team,
        rule_id=rule,
        caller_number="+15551230000",
        estimated_wait=wait,
        callback_of_call_id=callback_of,
    )


def test_the_same_policy_moves_nothing() -> None:
    decisions = [
        decision(1, team="billing", rule="billing-and-account", category="account"),
        decision(
            2,
            team="technical",
            rule="technical-specialists",
            category="technical",
            effective=Complexity.ADVANCED,
            claimed=Complexity.ADVANCED,
        ),
        decision(3, team="general", rule="general", category="general"),
    ]
    diff = compare(TECHCORP, decisions)
    assert len(diff.replayed) == 3 and diff.moved == () and diff.moved_share == 0
    assert diff.rule_changes() == []


def test_a_narrowed_rule_moves_its_calls_to_the_next_matching_rule() -> None:
    decisions = [
        decision(1, team="billing", rule="billing-and-account", category="account"),
        decision(2, team="billing", rule="billing-and-account", category="account"),
        decision(3, team="billing", rule="billing-and-account", category="billing"),
        decision(4, team="product", rule="product", category="product"),
    ]
    diff = compare(ACCOUNT_TO_GENERAL, decisions)
    assert [r.decision.call_id for r in diff.moved] == ["call-1", "call-2"]
    assert {(r.team_id, r.rule_id) for r in diff.moved} == {("general", "general")}
    assert diff.moved_share == 0.5
    assert diff.moves() == [("billing", "general", 2)]
    assert diff.rule_changes() == [("billing-and-account", 3, 1), ("general", 0, 2)]
    summary = diff.summary()
    assert summary["rules_gaining"] == {"general": 2} and summary["rules_losing"] == {
        "billing-and-account": -2
    }


def test_history_and_keywords_are_read_from_the_trace_and_weighed_by_the_candidate() -> None:
    keyword = TraceStep(
        "complexity",
        "outage",
        TraceOutcome.MATCHED,
        "complexity raised basic -> critical: keyword 'outage' in transcript",
    )
    call = recorded_call(
        decision(
            1,
            team="enterprise",
            rule="critical-complexity",
            category="technical",
            tier="premium",
            effective=Complexity.CRITICAL,
            trace=(_known("premium", 1), keyword),
        )
    )
    assert not isinstance(call, str)
    assert call.keywords == ("outage",) and call.previous_escalations == 1 and not call.default_tier
    assert redecide(TECHCORP, call).team_id == "enterprise"
    # A candidate that no longer treats "outage" as critical: the call stays basic -> general.
    calmer = parse_policy(
        TECHCORP_TEXT.replace("critical: [down, outage, critical, urgent, emergency]", "critical: [down]"),
        source="candidate",
    )
    again = redecide(calmer, call)
    assert (again.team_id, again.rule_id, again.complexity) == ("general", "general", Complexity.BASIC)
    # The recorded history (1 previous escalation) raises it to critical when the threshold is 0.
    strict = parse_policy(
        TECHCORP_TEXT.replace(
            "critical: [down, outage, critical, urgent, emergency]", "critical: [down]"
        ).replace("more_than: 2", "more_than: 0"),
        source="candidate",
    )
    assert redecide(strict, call).team_id == "enterprise"


def test_an_unknown_caller_gets_the_candidates_default_tier() -> None:
    call = recorded_call(decision(1, team="general", rule="general", category="general"))
    assert not isinstance(call, str) and call.default_tier
    enterprise_default = parse_policy(
        TECHCORP_TEXT.replace("default_tier: standard", "default_tier: enterprise"), source="c"
    )
    assert redecide(enterprise_default, call).rule_id == "enterprise-tier"


def test_a_category_the_policy_did_not_know_is_used_when_the_candidate_knows_it() -> None:
    step = TraceStep(
        "category",
        "general",
        TraceOutcome.INFO,
        "category 'shipping' is not one of [account, billing, general, product, technical]: using general",
    )
    call = recorded_call(
        decision(1, team="general", rule="general", category="general", trace=(UNKNOWN, step))
    )
    assert not isinstance(call, str) and call.category == "shipping"
    assert redecide(TECHCORP, call).team_id == "general"
    knows = parse_policy(
        TECHCORP_TEXT.replace("categories: [product]}", "categories: [product, shipping]}").replace(
            "categories: [technical, billing, account, product]",
            "categories: [technical, billing, account, product, shipping]",
        ),
        source="c",
    )
    assert redecide(knows, call).team_id == "product"


def test_a_team_line_recorded_closed_stays_closed() -> None:
    closed = TraceStep(
        "team", "billing", TraceOutcome.REJECTED, "team line closed until Monday: trying the next rule"
    )
    call = recorded_call(
        decision(1, team="general", rule="general", category="billing", trace=(UNKNOWN, closed))
    )
    assert not isinstance(call, str) and call.closed_teams == {"billing"}
    assert redecide(TECHCORP, call).team_id == "general"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"kind": DecisionKind.TRANSFER_AGENT, "rule": "", "callback_of": "call-0"}, "held-callback"),
        (
            {"kind": DecisionKind.FALLBACK, "rule": "", "reason": "internal failure: KeyError"},
            "internal-failure",
        ),
    ],
)
def test_decisions_that_never_tried_the_rules_are_not_replayed(kwargs: dict[str, object], key: str) -> None:
    base = {"team": "billing", "rule": "billing-and-account", "category": "billing"} | kwargs
    diff = compare(ACCOUNT_TO_GENERAL, [decision(1, **base)])  # type: ignore[arg-type]
    assert diff.replayed == () and diff.not_replayed == {key: 1}


def test_team_filter_keeps_calls_recorded_for_or_moved_into_the_team() -> None:
    decisions = [
        decision(1, team="billing", rule="billing-and-account", category="account"),
        decision(2, team="product", rule="product", category="product"),
        decision(3, team="general", rule="general", category="general"),
    ]
    diff = compare(ACCOUNT_TO_GENERAL, decisions, team_id="general")
    assert [r.decision.call_id for r in diff.replayed] == ["call-1", "call-3"]


def test_team_effects_estimate_extra_handling_and_load_from_handle_times_and_head_count() -> None:
    decisions = [
        decision(1, team="billing", rule="billing-and-account", category="account", minutes=0),
        decision(2, team="billing", rule="billing-and-account", category="account", minutes=60),
        decision(
            3,
            team="general",
            rule="general",
            category="general",
            minutes=120,
            kind=DecisionKind.CALLBACK,
            wait=timedelta(minutes=12),
        ),
    ]
    diff = compare(ACCOUNT_TO_GENERAL, decisions)
    effects = {
        e.team_id: e
        for e in team_effects(
            diff,
            default_handle_time=timedelta(minutes=8),
            handle_times={"general": timedelta(minutes=15)},
            specialists={"general": 2},
        )
    }
    general, billing = effects["general"], effects["billing"]
    assert (general.recorded, general.candidate, general.moved_in, general.change) == (1, 3, 2, 2)
    assert general.extra_handling == timedelta(minutes=30)
    assert general.load_change == pytest.approx(30 / (120 * 2))  # two hours replayed, two specialists
    assert general.recorded_load == pytest.approx(15 / 240)
    assert general.candidate_load == pytest.approx(45 / 240)
    assert general.queued_share == 1.0 and general.recorded_wait == timedelta(minutes=12)
    assert (billing.moved_out, billing.extra_handling, billing.load_change) == (
        2,
        timedelta(minutes=-16),
        None,
    )


def test_with_a_baseline_only_the_change_from_the_baseline_counts() -> None:
    # Recorded under an older policy: account calls already went to general then.
    decisions = [
        decision(1, team="general", rule="general", category="account"),
        decision(2, team="billing", rule="billing-and-account", category="billing"),
    ]
    against_recorded = compare(TECHCORP, decisions)
    assert [r.decision.call_id for r in against_recorded.moved] == ["call-1"]
    against_baseline = compare(ACCOUNT_TO_GENERAL, decisions, baseline=ACCOUNT_TO_GENERAL)
    assert against_baseline.moved == () and against_baseline.rule_changes() == []
    reverted = compare(TECHCORP, decisions, baseline=ACCOUNT_TO_GENERAL)
    assert reverted.moves() == [("general", "billing", 1)]
    assert reverted.rule_changes() == [("billing-and-account", 1, 2), ("general", 1, 0)]
