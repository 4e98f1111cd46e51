"""The handoff packet (`routing_service.domain.handoff`): what it extracts, where complexity came from, how
it is bounded, rendered into the specialist's messages, masked for logs, and that it never raises."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_service.app.callbacks import claim_callback
from routing_service.app.resolve import resolve_escalation
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.handoff import (
    BUILTIN_ENTITY_KINDS,
    DEFAULT_SIP_SUMMARY,
    MAX_ENTITIES,
    MAX_PACKET_TEXT,
    MAX_PER_KIND,
    MAX_TEXT,
    Entity,
    HandoffPacket,
    build_packet,
    carry_over,
    extract_entities,
    packet_for_log,
    packet_from_dict,
    packet_text,
    packet_to_dict,
    packet_values,
    with_packet,
)
from routing_service.domain.handoff import _mentions as _mentions  # the fast path, against its definition
from routing_service.domain.models import (
    Complexity,
    ComplexityPolicy,
    Customer,
    Decision,
    DecisionKind,
    Destination,
    EscalationRequest,
    Policy,
    SummaryMessage,
    TransferMode,
)
from routing_service.policy.errors import PolicyError
from routing_service.policy.loader import parse_policy
from tests.support.in_memory_store import InMemoryDatabase
from tests.support.routing_builders import NOW, make_agent, new_decision_id, seed, techcorp_policy

CALLER = "+15551110001"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return techcorp_policy()


def _request(**fields: object) -> EscalationRequest:
    base: dict[str, object] = {"call_id": "call-1", "tool_call_id": "tool-1", "caller_number": CALLER}
    base.update(fields)
    return EscalationRequest(**base)  # type: ignore[arg-type]


def _packet(request: EscalationRequest, **overrides: object) -> HandoffPacket:
    fields: dict[str, object] = {
        "decision_id": "d1",
        "category": "technical",
        "category_stated": True,
        "complexity": Complexity.BASIC,
        "assessment": None,
        "complexity_policy": ComplexityPolicy(),
        "tier": "standard",
        "customer": None,
        "decision_confidence": None,
        "caller_number": CALLER,
    }
    fields.update(overrides)
    return build_packet(request, **fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Entities
# ---------------------------------------------------------------------------------------------------------
def test_entities_named_in_the_texts_are_found_with_where() -> None:
    found = extract_entities(
        [
            ("customer_context", "Account number is AC-88231, order #TC-000123."),
            ("transcript", "It says error code E4012 and then error ERR_502 again; status 0x1F2A."),
        ]
    )
    assert [(e.kind, e.value, e.source) for e in found] == [
        ("account", "AC-88231", "customer_context"),
        ("order", "TC-000123", "customer_context"),
        ("error_code", "E4012", "transcript"),
        ("error_code", "ERR_502", "transcript"),
        ("error_code", "0x1F2A", "transcript"),
    ]


def test_words_without_digits_are_not_entities() -> None:
    assert (
        extract_entities([("transcript", "my account is locked and the order was wrong, error again")]) == ()
    )


def test_the_assistants_entities_come_first_and_duplicates_are_kept_once() -> None:
    found = extract_entities(
        [("transcript", "account 55123 and account 55123 again, order 991")],
        stated=[("account", "55123"), ("order", "991"), ("", "ignored")],
    )
    assert [(e.kind, e.value, e.source) for e in found] == [
        ("account", "55123", "assistant"),
        ("order", "991", "assistant"),
    ]


def test_entities_are_bounded_per_kind_and_in_all() -> None:
    text = (
        " ".join(f"order {n:05d}" for n in range(50)) + " " + " ".join(f"error E{n:04d}" for n in range(50))
    )
    found = extract_entities([("transcript", text)])
    assert sum(e.kind == "order" for e in found) == MAX_PER_KIND
    assert sum(e.kind == "error_code" for e in found) == MAX_PER_KIND
    stated = [(f"kind{n}", str(n)) for n in range(100)]
    assert len(extract_entities([], stated=stated)) == MAX_ENTITIES


_FRAGMENTS = st.sampled_from(
    [
        "account",
        "Account",
        "acct",
        "order",
        "ORDER",
        "orders",
        "reorder",
        "error",
        "err",
        "code",
        "status",
        "number",
        "no.",
        "id",
        "is",
        "#",
        ":",
        "=",
        " ",
        " ",
        ", ",
        ".",
        "\n",
        "_",
        "-",
        "AC-88231",
        "55-20931",
        "E4012",
        "ERR_502",
        "0x1F2A",
        "502",
        "12.5",
        "so",
        "locked",
        "İ",
        "ß",
    ]
)


@settings(max_examples=300, deadline=None)
@given(fragments=st.lists(_FRAGMENTS, max_size=60), limit=st.integers(min_value=1, max_value=10))
def test_mentions_are_what_the_pattern_finds_at_word_starts(fragments: list[str], limit: int) -> None:
    """The fast path (tried only where a kind's word starts a word, stopping at the limit) finds exactly
    what the kind's pattern finds anywhere a word starts, in order, without overlaps."""
    text = "".join(fragments)
    for _kind, words, pattern in BUILTIN_ENTITY_KINDS:
        anywhere = [m.group(1) for m in re.compile(rf"\b{pattern.pattern}", pattern.flags).finditer(text)]
        assert _mentions(pattern, words, text, text.lower(), limit=limit) == anywhere[:limit]


def test_repeated_mentions_in_a_long_transcript_are_kept_once_with_the_assistants_first() -> None:
    turns = (
        "User: my account number is 7731-4410. AI: thanks. User: order 55-20931 fails with error E-4031.\n"
    )
    found = extract_entities(
        [("transcript", turns * 60)], stated=[("account", "7731-4410"), ("error_code", "E-4031")]
    )
    assert [(e.kind, e.value, e.source) for e in found] == [
        ("account", "7731-4410", "assistant"),
        ("error_code", "E-4031", "assistant"),
        ("order", "55-20931", "transcript"),
    ]


def test_the_policys_entity_patterns_add_kinds(policy: Policy) -> None:
    found = extract_entities([("transcript", "the ticket INC-123456 was closed")], policy=policy.handoff)
    assert ("ticket", "INC-123456") in [(e.kind, e.value) for e in found]


# ---------------------------------------------------------------------------------------------------------
# Built by the decision
# ---------------------------------------------------------------------------------------------------------
async def test_a_decision_carries_a_packet_with_every_part(policy: Policy) -> None:
    db = InMemoryDatabase()
    customer = Customer(
        number=CALLER, tier="premium", account_name="Premium Co", previous_escalations=3, last_agent_id="ana"
    )
    await seed(db.uow, customers=(customer,))
    request = _request(
        issue_category="technical",
        claimed_complexity=Complexity.BASIC,
        customer_context="Account AC-1234 on the pro plan",
        escalation_reason="the API integration fails",
        transcript="User: every call returns error code E503 since this morning",
        assistant_summary="Caller's API calls fail with E503 since this morning.",
        steps_tried=("checked the status page", "rotated the API key"),
        stated_entities=(("order", "TC-000777"),),
        stated_confidence=0.8,
    )
    decision = await resolve_escalation(request, uow=db.uow, policy=policy, now=NOW, new_id=new_decision_id)
    packet = decision.handoff
    assert packet is not None
    assert packet.decision_id == decision.decision_id and packet.call_id == "call-1"
    assert packet.summary == "Caller's API calls fail with E503 since this morning."
    assert packet.escalation_reason == "the API integration fails"
    assert (packet.issue_category, packet.category_source) == ("technical", "assistant")
    assert packet.complexity is decision.effective_complexity is Complexity.CRITICAL
    assert [(s.source, s.level) for s in packet.complexity_sources] == [
        ("claim", Complexity.BASIC),
        ("keyword", Complexity.ADVANCED),
        ("history", Complexity.CRITICAL),
    ]
    assert [(e.kind, e.value, e.source) for e in packet.entities] == [
        ("order", "TC-000777", "assistant"),
        ("account", "AC-1234", "customer_context"),
        ("error_code", "E503", "transcript"),
    ]
    assert packet.steps_tried == ("checked the status page", "rotated the API key")
    assert packet.stated_confidence == 0.8
    assert packet.decision_confidence is not None  # TechCorp weighs uncertainty
    assert (packet.tier, packet.account_name, packet.previous_escalations, packet.last_agent_id) == (
        "premium",
        "Premium Co",
        3,
        "ana",
    )
    async with db.uow() as u:
        stored = await u.decisions.by_id(decision.decision_id)
    assert stored is not None and stored.handoff == packet


async def test_a_call_with_nothing_said_still_gets_a_packet(policy: Policy) -> None:
    decision = await resolve_escalation(
        EscalationRequest(call_id="bare"),
        uow=InMemoryDatabase().uow,
        policy=policy,
        now=NOW,
        new_id=new_decision_id,
    )
    packet = decision.handoff
    assert packet is not None
    assert packet.category_source == "policy default"
    assert [s.source for s in packet.complexity_sources] == ["default"]
    assert packet.entities == () and packet.summary == "" and packet.caller_number == ""
    assert "no previous escalations" in packet_text(packet)


async def test_packet_fields_beyond_their_limits_are_refused(policy: Policy) -> None:
    request = _request(steps_tried=tuple("x" for _ in range(21)), stated_entities=(("", "1"),))
    with pytest.raises(InvalidRequest) as caught:
        await resolve_escalation(request, uow=InMemoryDatabase().uow, policy=policy, now=NOW)
    fields = {name for name, _ in caught.value.violations}
    assert {"steps_tried", "entities[0].kind"} <= fields


def test_long_texts_are_cut_and_named() -> None:
    packet = _packet(_request(assistant_summary="s" * (MAX_TEXT + 10), customer_context="ok"))
    assert len(packet.summary) == MAX_TEXT
    assert packet.truncated == ("summary",)
    assert len(packet_text(packet)) <= MAX_PACKET_TEXT


def test_a_callback_carries_over_the_earlier_calls_packet() -> None:
    earlier = _packet(
        _request(
            call_id="first",
            assistant_summary="Refund for a double charge",
            steps_tried=("re-sent invoice",),
            stated_entities=(("account", "AC-9"),),
        ),
        decision_id="d-first",
    )
    now = _packet(_request(call_id="second", stated_entities=(("order", "O-1"),)), decision_id="d-second")
    merged = carry_over(now, earlier)
    assert merged.decision_id == "d-second"
    assert (merged.earlier_call_id, merged.earlier_decision_id) == ("first", "d-first")
    assert merged.summary == "Refund for a double charge"
    assert merged.steps_tried == ("re-sent invoice",)
    assert [(e.kind, e.value) for e in merged.entities] == [("order", "O-1"), ("account", "AC-9")]
    assert "call back of call first" in packet_text(merged)


async def test_the_specialist_of_a_callback_gets_the_original_calls_packet(policy: Policy) -> None:
    db = InMemoryDatabase()
    await seed(db.uow, make_agent("ann"), busy={"ann": 1})
    first = _request(
        call_id="original",
        issue_category="technical",
        claimed_complexity=Complexity.ADVANCED,
        assistant_summary="Webhooks time out since Monday.",
        steps_tried=("checked the logs",),
        stated_entities=(("account", "AC-31"),),
    )
    queued = await resolve_escalation(first, uow=db.uow, policy=policy, now=NOW, new_id=new_decision_id)
    assert queued.kind is DecisionKind.CALLBACK
    await seed(db.uow, make_agent("bob"))
    claim = await claim_callback("original", None, uow=db.uow, policy=policy, now=NOW)
    assert claim.agent is not None
    # the callback call: the assistant escalates again, knowing little
    again = _request(call_id="callback-call", issue_category="technical", callback_of_call_id="original")
    handed = await resolve_escalation(again, uow=db.uow, policy=policy, now=NOW, new_id=new_decision_id)
    assert (handed.kind, handed.agent_id, handed.callback_of_call_id) == (
        DecisionKind.TRANSFER_AGENT,
        claim.agent.agent_id,
        "original",
    )
    packet = handed.handoff
    assert packet is not None
    assert (packet.earlier_call_id, packet.earlier_decision_id) == ("original", queued.decision_id)
    assert packet.summary == "Webhooks time out since Monday."
    assert packet.steps_tried == ("checked the logs",)
    assert ("account", "AC-31") in [(e.kind, e.value) for e in packet.entities]
    # and what the specialist hears names it (TechCorp's specialist summary prompt)
    assert "Webhooks time out since Monday." in handed.summary_messages[-1].content


# ---------------------------------------------------------------------------------------------------------
# Delivered: placeholders
# ---------------------------------------------------------------------------------------------------------
def _decision(**fields: object) -> Decision:
    base: dict[str, object] = {
        "decision_id": "d1",
        "call_id": "call-1",
        "tool_call_id": "t",
        "kind": DecisionKind.TRANSFER_TEAM,
        "destination": Destination(number="+15550100200"),
        "caller_message": "Connecting you. {handoff_summary}",
        "transfer_mode": TransferMode.WARM_TRANSFER_SAY_MESSAGE,
        "effective_complexity": Complexity.BASIC,
        "claimed_complexity": None,
        "tier": "standard",
        "issue_category": "technical",
        "decided_at": NOW,
        "trace": (),
        "reason": "r",
        "handoff_message": "Decision {decision_id}: {assistant_summary} Tried: {steps_tried}. {entities}.",
        "summary_messages": (SummaryMessage("user", "Known: {handoff_summary} {{transcript}}"),),
    }
    base.update(fields)
    return Decision(**base)  # type: ignore[arg-type]


def test_the_specialists_messages_get_the_packet_and_the_caller_message_does_not() -> None:
    packet = _packet(
        _request(
            assistant_summary="Login fails.", steps_tried=("reset password",), customer_context="acct 7788"
        )
    )
    decision = with_packet(_decision(), packet)
    assert decision.handoff is packet
    assert decision.handoff_message == "Decision d1: Login fails. Tried: reset password. Account 7788."
    assert decision.summary_messages[0].content.startswith("Known: Summary: Login fails.")
    assert decision.summary_messages[0].content.endswith("{{transcript}}")
    assert decision.caller_message == "Connecting you. {handoff_summary}"  # never the caller's


def test_a_sip_transfer_with_the_summary_header_mode_gets_a_summary_prompt_with_the_packet() -> None:
    packet = _packet(_request(assistant_summary="Router offline."))
    decision = _decision(
        destination=Destination(sip_uri="sip:desk@pbx.example.com"),
        transfer_mode=TransferMode.BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER,
        summary_messages=(),
        handoff_message="",
    )
    delivered = with_packet(decision, packet)
    assert len(delivered.summary_messages) == len(DEFAULT_SIP_SUMMARY)
    assert "Summary: Router offline." in delivered.summary_messages[0].content
    assert "{{transcript}}" in delivered.summary_messages[1].content
    # a number destination in another mode is left alone
    assert with_packet(_decision(summary_messages=()), packet).summary_messages == ()


def test_every_placeholder_has_a_value() -> None:
    values = packet_values(_packet(_request()))
    assert set(values) == {
        "handoff_summary",
        "assistant_summary",
        "steps_tried",
        "entities",
        "complexity_sources",
        "confidence",
        "escalation_history",
        "decision_id",
    }


# ---------------------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------------------
_POLICY = """
version: 1
name: t
default_tier: standard
default_category: general
categories: [technical]
teams:
  general:
    name: General
    destination: {{number: "+15550100500"}}
    transfer:
      mode: warm-transfer-say-message
      caller_message: "{caller}"
      handoff_message: "Known: {{handoff_summary}}"
rules:
  - {{id: all, team: general}}
queue:
  line: {{number: "+15550100600"}}
  transfer: {{mode: blind-transfer, caller_message: "queue"}}
fallback:
  destination: {{number: "+15550100900"}}
  transfer: {{mode: blind-transfer, caller_message: "fallback"}}
{handoff}
"""


def test_the_policy_lets_only_the_specialists_side_name_packet_fields() -> None:
    policy = parse_policy(_POLICY.format(caller="Connecting you.", handoff=""), source="t.yaml")
    assert policy.handoff is None
    with pytest.raises(PolicyError, match=r"caller_message.*handoff_summary"):
        parse_policy(_POLICY.format(caller="Hi {handoff_summary}", handoff=""), source="t.yaml")


def test_the_policys_handoff_section_is_checked() -> None:
    with pytest.raises(PolicyError, match="not a regular expression"):
        parse_policy(
            _POLICY.format(caller="x", handoff="handoff: {entity_patterns: {ticket: '('}}"), source="t.yaml"
        )
    with pytest.raises(PolicyError, match="unknown field 'card'"):
        parse_policy(
            _POLICY.format(caller="x", handoff="handoff: {sensitive_fields: [card]}"), source="t.yaml"
        )
    loaded = parse_policy(
        _POLICY.format(
            caller="x", handoff="handoff: {entity_patterns: {card: '\\d{16}'}, sensitive_fields: [card]}"
        ),
        source="t.yaml",
    )
    assert loaded.handoff is not None and loaded.handoff.sensitive_fields == {"card"}


# ---------------------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------------------
def test_logged_packets_mask_numbers_and_what_the_policy_marks_sensitive(policy: Policy) -> None:
    packet = _packet(
        _request(
            assistant_summary="Call me back on 555 010 9999 or +44 20 7946 0958; card 4111 1111 1111 1111.",
            customer_context="Account AC-77881234",
            steps_tried=("called +15550101234",),
        ),
        customer=Customer(number=CALLER, tier="premium", account_name="Acme Holdings"),
    )
    logged = packet_for_log(packet, policy.handoff)
    flat = repr(logged)
    for raw in (
        "5550109999",
        "555 010 9999",
        "20 7946 0958",
        "4111 1111 1111 1111",
        "5550101234",
        CALLER,
        "AC-77881234",
        "Acme Holdings",
    ):
        assert raw not in flat, raw
    assert logged["caller_number"].endswith("0001")
    assert [e["value"] for e in logged["entities"] if e["kind"] == "account"] == ["*******1234"]
    assert logged["account_name"].endswith("ings") and "*" in logged["account_name"]
    # the stored packet itself is untouched
    assert packet.customer_context == "Account AC-77881234"


def test_json_round_trip_keeps_the_packet() -> None:
    packet = _packet(
        _request(assistant_summary="s", steps_tried=("a",), stated_entities=(("order", "O-12"),)),
        decision_confidence=0.4,
    )
    assert packet_from_dict(packet_to_dict(packet)) == packet
    assert packet_from_dict({}) == HandoffPacket("", "", "", "", Complexity.BASIC)


# ---------------------------------------------------------------------------------------------------------
# Never raises
# ---------------------------------------------------------------------------------------------------------
_text = st.text(max_size=300)
_any_float = st.none() | st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    summary=_text,
    context=_text,
    reason=_text,
    transcript=st.text(max_size=3000),
    steps=st.lists(_text, max_size=30),
    entities=st.lists(st.tuples(_text, _text), max_size=30),
    stated=_any_float,
    weighed=_any_float,
    claimed=st.none() | st.sampled_from(list(Complexity)),
    previous=st.integers(min_value=-5, max_value=10_000),
)
def test_building_and_logging_a_packet_never_raises(
    summary: str,
    context: str,
    reason: str,
    transcript: str,
    steps: list[str],
    entities: list[tuple[str, str]],
    stated: float | None,
    weighed: float | None,
    claimed: Complexity | None,
    previous: int,
) -> None:
    policy = techcorp_policy()
    request = _request(
        assistant_summary=summary,
        customer_context=context,
        escalation_reason=reason,
        transcript=transcript,
        steps_tried=tuple(steps),
        stated_entities=tuple(entities),
        stated_confidence=stated,
        claimed_complexity=claimed,
    )
    packet = _packet(
        request,
        customer=Customer(number=CALLER, tier="enterprise", previous_escalations=previous),
        complexity_policy=policy.complexity,
        tier="enterprise",
        decision_confidence=weighed,
        policy=policy.handoff,
    )
    assert len(packet.entities) <= MAX_ENTITIES
    assert len(packet.summary) <= MAX_TEXT
    assert all(len(e.value) <= 64 for e in packet.entities)
    assert len(packet_text(packet)) <= MAX_PACKET_TEXT
    logged = packet_for_log(packet, policy.handoff)
    assert CALLER not in repr(logged)
    assert packet_from_dict(packet_to_dict(packet)) == packet
    delivered = with_packet(_decision(), packet)
    assert delivered.handoff == packet
    assert not re.search(r"\{handoff_summary\}", delivered.summary_messages[0].content)


def test_entity_values_are_printable(policy: Policy) -> None:
    packet = _packet(_request(stated_entities=(("account", "AC\x00\x0712"),)))
    assert packet.entities == (Entity("account", "AC12", "assistant"),)
    assert replace(packet, entities=()).entities == ()
