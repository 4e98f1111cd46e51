"""Template rendering and the decision builders."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_service.domain.decision import (
    TEMPLATE_FIELDS,
    callback_decision,
    fallback_decision,
    placeholders,
    render,
    specialist_decision,
    team_line_decision,
    template_values,
)
from routing_service.domain.models import (
    Agent,
    CallbackState,
    CallbackTicket,
    Complexity,
    DecisionKind,
    Destination,
    EscalationRequest,
    Policy,
    TraceOutcome,
    TraceStep,
)
from routing_service.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
C = Complexity
TECHCORP = load_policy(ROOT / "examples" / "techcorp.yaml")


@pytest.fixture(scope="module")
def techcorp() -> Policy:
    return load_policy(ROOT / "examples" / "techcorp.yaml")


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("{a} and {b}", {"a": "1", "b": "2"}, "1 and 2"),
        ("keep {{transcript}}", {"transcript": "X"}, "keep {{transcript}}"),
        ("unknown {c} stays", {"a": "1"}, "unknown {c} stays"),
        ("{a}{a}", {"a": "x"}, "xx"),
        ("no re-render {a}", {"a": "{b}", "b": "!"}, "no re-render {b}"),
        ("odd { braces } {", {}, "odd { braces } {"),
        ("{0} positional", {"0": "x"}, "{0} positional"),
        ("", {"a": "1"}, ""),
    ],
)
def test_render_fills_known_names_only_when_rendering(
    template: str, values: dict[str, str], expected: str
) -> None:
    assert render(template, values) == expected


@settings(deadline=None, max_examples=200)
@given(
    st.text(alphabet=st.sampled_from(list("{}ab_ xyz0")), max_size=40),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
)
def test_render_never_raises_and_keeps_vapi_placeholders_when_given_any_template(
    template: str, values: dict[str, str]
) -> None:
    rendered = render(template + "{{transcript}}", values)
    assert rendered.endswith("{{transcript}}")


def test_placeholders_lists_single_brace_names_when_parsing() -> None:
    assert placeholders("{a} {{transcript}} {b_c} {0}") == ["a", "b_c"]


def test_template_values_cover_every_known_field_when_built() -> None:
    request = EscalationRequest(
        call_id="c", claimed_complexity=C.BASIC, customer_context="ctx", escalation_reason="why"
    )
    values = template_values(
        request,
        tier="premium",
        category="billing",
        complexity=C.ADVANCED,
        account_name="Acme",
        estimated_wait=timedelta(minutes=7, seconds=30),
    )
    assert set(values) == TEMPLATE_FIELDS
    assert values["complexity_level"] == "advanced"
    assert values["claimed_complexity_level"] == "basic"
    assert values["estimated_wait_minutes"] == "8"
    assert values["agent_name"] == "" and values["team_name"] == ""


def test_team_line_decision_carries_rule_trace_and_request_when_built(techcorp: Policy) -> None:
    request = EscalationRequest(
        call_id="call-1",
        tool_call_id="tool-1",
        issue_category="product",
        claimed_complexity=C.BASIC,
        customer_context="SSO?",
        dry_run=True,
    )
    trace = (TraceStep("rule", "product", TraceOutcome.MATCHED, "matched"),)
    decision = team_line_decision(
        techcorp,
        request,
        team=techcorp.teams["product"],
        tier="standard",
        category="product",
        complexity=C.BASIC,
        decision_id="d-1",
        now=NOW,
        caller_number="+15550100042",
        rule_id="product",
        trace=trace,
        account_name="",
    )
    assert decision.kind is DecisionKind.TRANSFER_TEAM
    assert (decision.call_id, decision.tool_call_id, decision.decision_id) == ("call-1", "tool-1", "d-1")
    assert decision.destination == Destination(number="+15550100400")
    assert decision.handoff_message == "Product basic inquiry. Context: SSO?"
    assert decision.trace == trace
    assert decision.rule_id == "product" and decision.team_id == "product"
    assert decision.team_display_name == "Product support"
    assert decision.caller_number == "+15550100042"
    assert decision.dry_run is True and decision.replayed is False
    assert decision.claimed_complexity is C.BASIC and decision.effective_complexity is C.BASIC
    assert decision.decided_at == NOW
    assert decision.agent_id is None and decision.estimated_wait is None


def test_team_line_decision_announces_a_long_wait_when_given_one(techcorp: Policy) -> None:
    decision = team_line_decision(
        techcorp,
        EscalationRequest(call_id="c"),
        team=techcorp.teams["general"],
        tier="standard",
        category="general",
        complexity=C.BASIC,
        decision_id="d",
        now=NOW,
        estimated_wait=timedelta(minutes=9),
    )
    assert decision.caller_message == (
        "Connecting you with our support team. Current wait time is approximately 9 minutes."
    )
    assert decision.estimated_wait == timedelta(minutes=9)


def test_specialist_decision_uses_the_team_transfer_when_no_specialist_template_exists(
    techcorp: Policy,
) -> None:
    team = replace(techcorp.teams["billing"], specialist_transfer=None)
    agent = Agent(
        agent_id="billing-1",
        display_name="Barbara",
        destination=Destination(sip_uri="sip:barbara@pbx.example"),
        team_ids=("billing",),
        skills=frozenset(),
        max_complexity=C.ADVANCED,
        capacity=1,
    )
    decision = specialist_decision(
        techcorp,
        EscalationRequest(call_id="c", customer_context="refund"),
        team=team,
        agent=agent,
        tier="standard",
        category="billing",
        complexity=C.BASIC,
        decision_id="d",
        now=NOW,
    )
    assert decision.caller_message == "Connecting you with our billing and account specialists."
    assert decision.handoff_message == "billing issue, complexity basic. Context: refund"
    assert decision.destination.sip_uri == "sip:barbara@pbx.example"
    assert (decision.agent_id, decision.agent_display_name) == ("billing-1", "Barbara")


def test_callback_decision_carries_the_ticket_when_queued(techcorp: Policy) -> None:
    ticket = CallbackTicket(
        call_id="c",
        team_id="technical",
        state=CallbackState.WAITING,
        caller_number="+15550100042",
        tier="standard",
        issue_category="technical",
        effective_complexity=C.ADVANCED,
        priority=10,
        service_key=0.0,
        enqueued_at=NOW,
        decision_id="d",
        position=3,
    )
    decision = callback_decision(
        techcorp,
        EscalationRequest(call_id="c"),
        team=techcorp.teams["technical"],
        tier="standard",
        category="technical",
        complexity=C.ADVANCED,
        decision_id="d",
        now=NOW,
        estimated_wait=timedelta(minutes=2),
        ticket=ticket,
        rule_id="technical-specialists",
    )
    assert decision.callback == ticket
    assert decision.caller_message == "All specialists are busy. You'll be added to our priority queue."
    assert decision.reason == "rule technical-specialists: team technical busy, callback queued at position 3"
    assert decision.estimated_wait == timedelta(minutes=2)


def test_fallback_decision_uses_defaults_when_nothing_was_worked_out(techcorp: Policy) -> None:
    request = EscalationRequest(call_id="c", caller_number="+1 (555) 010-0042", issue_category=" Billing ")
    decision = fallback_decision(techcorp, request, reason="deadline", decision_id="d", now=NOW)
    assert decision.tier == "standard"
    assert decision.effective_complexity is C.BASIC
    assert decision.issue_category == "billing"
    assert decision.caller_number == "+15550100042"
    assert decision.team_id == "" and decision.rule_id == ""
    assert decision.reason == "deadline"
    explicit = fallback_decision(
        techcorp,
        request,
        reason="x",
        decision_id="d",
        now=NOW,
        tier="enterprise",
        complexity=C.CRITICAL,
        category="technical",
        caller_number="",
    )
    assert (explicit.tier, explicit.effective_complexity, explicit.issue_category) == (
        "enterprise",
        C.CRITICAL,
        "technical",
    )
    assert explicit.caller_number == ""


@settings(deadline=None, max_examples=75)
@given(
    caller=st.text(max_size=20),
    category=st.text(max_size=20),
    claimed=st.none() | st.sampled_from(list(C)),
    context=st.text(max_size=60),
    tier=st.sampled_from(["enterprise", "premium", "standard", "gold", ""]),
)
def test_pipeline_always_reaches_a_team_when_given_any_request_text(
    caller: str, category: str, claimed: Complexity | None, context: str, tier: str
) -> None:
    from routing_service.domain.complexity import assess_complexity
    from routing_service.domain.matching import match_rule, normalize_category
    from routing_service.domain.phone import normalize_caller

    policy = load_policy(ROOT / "examples" / "techcorp.yaml")
    request = EscalationRequest(
        call_id="c",
        caller_number=caller,
        issue_category=category,
        claimed_complexity=claimed,
        customer_context=context,
        escalation_reason=context,
    )
    key = normalize_caller(request.caller_number)
    normalized, _ = normalize_category(policy, request.issue_category)
    assessment = assess_complexity(
        claimed=claimed, texts=[context], tier=tier, previous_escalations=0, policy=policy.complexity
    )
    match = match_rule(policy, tier=tier, category=normalized, complexity=assessment.effective)
    assert match.team is not None  # TechCorp ends with a catch-all rule
    decision = team_line_decision(
        policy,
        request,
        team=match.team,
        tier=tier,
        category=normalized,
        complexity=assessment.effective,
        decision_id="d",
        now=NOW,
        caller_number=key.key or "",
    )
    assert decision.destination.number is not None and decision.destination.number.startswith("+1555")
    assert decision.caller_message


def _render_by_regex(template: str, values: dict[str, str]) -> str:
    """`render` as a single regex substitution (how it was written before templates were cut once)."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return match.group(0) if name is None or name not in values else str(values[name])

    return re.sub(r"\{\{[^{}]*\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}", substitute, template)


@settings(deadline=None, max_examples=300)
@given(
    st.lists(st.sampled_from(["{", "}", "a", "b", "_", " ", "{a}", "{b}", "{{a}}", "{zz}", "{1}", "{a_1}"])),
    st.dictionaries(st.sampled_from(["a", "b", "a_1", "zz"]), st.text(alphabet="{}ab ", max_size=6)),
)
def test_render_matches_a_regex_substitution_when_given_any_template_and_values(
    pieces: list[str], values: dict[str, str]
) -> None:
    template = "".join(pieces)
    assert render(template, values) == _render_by_regex(template, values)


def test_render_fills_each_calls_values_when_the_same_template_is_rendered_again() -> None:
    template = "Context: {customer_context} ({tier})"
    assert render(template, {"customer_context": "one", "tier": "gold"}) == "Context: one (gold)"
    assert render(template, {"customer_context": "two"}) == "Context: two ({tier})"
    reloaded = "Reason: {customer_context}"  # a policy reload's edited template is its own text
    assert render(reloaded, {"customer_context": "three"}) == "Reason: three"
