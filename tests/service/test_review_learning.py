"""RecordReviewOutcome and GetReviewOutcomes through the real stub, on SQLite and PostgreSQL: a verdict
teaches routing about the customer (policy `review_learning`), the next decision uses it and traces it,
expired learnings are ignored, outcomes are counted per team and rule, and uncertain decisions a review
found mis-categorised are counted once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from typer.testing import CliRunner

from escalade_cli.main import app
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from escalade_platform.masking import mask_number
from routing_service.grpc.server import RoutingServer
from routing_service.metrics import ROUTING_METRICS
from tests.service.grpc_helpers import (
    TECHCORP,
    Routing,
    add_customer,
    field_violations,
    resolve,
    routing_settings,
)

Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"

PREMIUM = "+1111111111"
STANDARD = "+0987654321"


async def report(
    stub: Stub,
    call_id: str,
    *,
    rules: tuple[str, ...] = (),
    verdict: str = "",
    actual: str = "",
    decided_at: datetime | None = None,
) -> pb.RecordReviewOutcomeResponse:
    request = pb.RecordReviewOutcomeRequest(
        call_id=call_id, finding_rules=list(rules), verdict=verdict, actual_category=actual
    )
    if decided_at is not None:
        stamp = Timestamp()
        stamp.FromDatetime(decided_at)
        request.decided_at.CopyFrom(stamp)
    return await stub.RecordReviewOutcome(request)


def learned_steps(decision: pb.Decision) -> list[pb.TraceStep]:
    return [step for step in decision.trace if step.stage == "learned"]


async def test_a_confirmed_category_mismatch_sends_the_customers_next_call_to_the_right_team(
    stub: Stub,
) -> None:
    await add_customer(stub, PREMIUM, "premium", "Premium Support")
    first = await resolve(stub, "call-a", caller=PREMIUM, category="technical")
    assert (first.team_id, first.rule_id) == ("technical", "technical-specialists")

    verdicts = ROUTING_METRICS.review_verdicts.labels(
        team="technical", rule="technical-specialists", outcome="overturned"
    )
    counted_before = verdicts._value.get()
    judged = await report(stub, "call-a", rules=("category_mismatch",))
    assert judged.category_wrong and not judged.verdict_recorded and judged.outcome == ""
    assert not judged.customer.learnings, "findings alone teach nothing: only a verdict does"

    verdict = await report(
        stub, "call-a", rules=("category_mismatch",), verdict="confirmed", actual="billing"
    )
    assert verdict.verdict_recorded and verdict.outcome == "overturned"
    assert any("preferred team billing for calls stated as technical" in line for line in verdict.learned)
    (learning,) = verdict.customer.learnings
    assert (learning.kind, learning.value, learning.category, learning.source_call_id) == (
        "preferred-team",
        "billing",
        "technical",
        "call-a",
    )
    expires = learning.expires_at.ToDatetime(UTC)
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)

    again = await report(stub, "call-a", rules=("category_mismatch",), verdict="confirmed", actual="billing")
    assert not again.verdict_recorded, "a repeat records and teaches nothing anew"
    assert [line.endswith("(recorded before)") for line in again.learned] == [True], "but says the same"

    assert verdicts._value.get() == counted_before + 1, "the metric counts the verdict once"

    shown = (await stub.GetCustomer(pb.GetCustomerRequest(number=PREMIUM))).customer
    assert [item.kind for item in shown.learnings] == ["preferred-team"]

    second = await resolve(stub, "call-b", caller=PREMIUM, category="technical")
    assert second.team_id == "billing"
    (step,) = learned_steps(second)
    assert step.subject == "billing" and "review of call call-a" in step.detail
    assert "instead of technical" in step.detail
    assert "learned from a review: instead of technical" in second.reason

    billing_call = await resolve(
        stub, "call-c", caller=PREMIUM, category="billing", complexity=pb.COMPLEXITY_BASIC
    )
    assert billing_call.team_id == "billing" and not learned_steps(billing_call), "other categories untouched"

    outcomes = (await stub.GetReviewOutcomes(pb.GetReviewOutcomesRequest())).outcomes
    assert [(o.team_id, o.rule_id, o.confirmed, o.overturned) for o in outcomes] == [
        ("technical", "technical-specialists", 0, 1)
    ]


async def test_should_not_have_escalated_caps_what_keywords_raise_for_that_customer(stub: Stub) -> None:
    await add_customer(stub, STANDARD, "standard", "Basic Plan")
    context = "the API integration is down"
    first = await resolve(
        stub, "call-1", caller=STANDARD, complexity=pb.COMPLEXITY_UNSPECIFIED, context=context
    )
    assert first.effective_complexity == pb.COMPLEXITY_CRITICAL and first.team_id == "enterprise"

    verdict = await report(stub, "call-1", rules=("transfer_failed",), verdict="should-not-have-escalated")
    assert verdict.outcome == "overturned"
    assert [(item.kind, item.value) for item in verdict.customer.learnings] == [
        ("complexity-ceiling", "intermediate")
    ]

    second = await resolve(
        stub, "call-2", caller=STANDARD, complexity=pb.COMPLEXITY_UNSPECIFIED, context=context
    )
    assert second.effective_complexity == pb.COMPLEXITY_INTERMEDIATE
    assert second.team_id == "technical"
    (step,) = learned_steps(second)
    assert step.subject == "complexity-ceiling" and "critical -> intermediate" in step.detail

    claimed = await resolve(
        stub, "call-3", caller=STANDARD, complexity=pb.COMPLEXITY_CRITICAL, context=context
    )
    assert claimed.effective_complexity == pb.COMPLEXITY_CRITICAL, "the assistant's own claim still stands"


async def test_an_expired_learning_is_shown_but_ignored(stub: Stub) -> None:
    await add_customer(stub, PREMIUM, "premium")
    await resolve(stub, "call-old", caller=PREMIUM, category="technical")
    long_ago = datetime.now(UTC) - timedelta(days=31)
    verdict = await report(stub, "call-old", verdict="wrong-category", actual="billing", decided_at=long_ago)
    (learning,) = verdict.customer.learnings
    assert learning.expires_at.ToDatetime(UTC) < datetime.now(UTC)

    decision = await resolve(stub, "call-new", caller=PREMIUM, category="technical")
    assert decision.team_id == "technical" and not learned_steps(decision)


async def test_dismissed_verdicts_confirm_the_rule_and_teach_nothing(stub: Stub) -> None:
    await add_customer(stub, PREMIUM, "premium")
    await resolve(stub, "call-d", caller=PREMIUM, category="technical")
    verdict = await report(
        stub, "call-d", rules=("category_mismatch",), verdict="dismissed", actual="billing"
    )
    assert verdict.outcome == "confirmed" and not verdict.learned and not verdict.customer.learnings
    assert not verdict.category_wrong, "a dismissed mismatch is not a wrong category"
    outcomes = (await stub.GetReviewOutcomes(pb.GetReviewOutcomesRequest())).outcomes
    assert [(o.rule_id, o.confirmed, o.overturned) for o in outcomes] == [("technical-specialists", 1, 0)]


async def test_an_uncertain_decision_found_miscategorised_is_counted_once(stub: Stub) -> None:
    await add_customer(stub, PREMIUM, "premium")
    reply = await stub.ResolveEscalation(
        pb.ResolveEscalationRequest(
            call_id="call-u",
            tool_call_id="tool-1",
            caller_number=PREMIUM,
            issue_category="technical",
            complexity=pb.COMPLEXITY_ADVANCED,
            confidence=0.2,
        )
    )
    assert any(s.subject == "low-confidence" for s in reply.decision.trace)
    counter = ROUTING_METRICS.uncertain_wrong.labels(team=reply.decision.team_id or "none")
    before = counter._value.get()

    first = await report(stub, "call-u", rules=("category_mismatch",))
    assert first.uncertain and first.category_wrong
    await report(stub, "call-u", rules=("category_mismatch",))
    await report(stub, "call-u", rules=("category_mismatch",), verdict="wrong-category", actual="billing")
    assert counter._value.get() == before + 1

    outcomes = (await stub.GetReviewOutcomes(pb.GetReviewOutcomesRequest())).outcomes
    assert sum(o.uncertain_category_wrong for o in outcomes) == 1


async def test_bad_reports_are_refused_naming_the_field(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await report(stub, "call-z", verdict="maybe")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(bad.value)] == ["verdict"]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await report(stub, "call-unknown", verdict="confirmed")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as window:
        request = pb.GetReviewOutcomesRequest()
        request.window.FromTimedelta(timedelta(days=-1))
        await stub.GetReviewOutcomes(request)
    assert [f for f, _ in field_violations(window.value)] == ["window"]


async def test_without_the_policy_section_nothing_is_learned(database_url: str, tmp_path: Path) -> None:
    text = TECHCORP.read_text()
    policy = tmp_path / "policy.yaml"
    policy.write_text(text[: text.index("review_learning:")])
    server = RoutingServer(
        routing_settings(database_url, policy=policy), watch_policy=False, run_sweeps=False
    )
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        await add_customer(stub, PREMIUM, "premium")
        await resolve(stub, "call-p", caller=PREMIUM, category="technical")
        verdict = await report(stub, "call-p", verdict="wrong-category", actual="billing")
        assert verdict.outcome == "overturned", "still counted"
        assert list(verdict.learned) == ["nothing learned: the policy has no review_learning section"]
        assert not verdict.customer.learnings
        assert (await resolve(stub, "call-q", caller=PREMIUM, category="technical")).team_id == "technical"
    finally:
        await channel.close()
        await server.stop(0.5)


async def test_customers_show_lists_what_was_learned_and_what_expired(routing: Routing) -> None:
    stub = routing.stub
    await add_customer(stub, PREMIUM, "premium", "Premium Support")
    await resolve(stub, "call-1", caller=PREMIUM, category="technical")
    await report(stub, "call-1", verdict="wrong-category", actual="billing")
    await add_customer(stub, STANDARD, "standard")
    await resolve(stub, "call-2", caller=STANDARD, category="technical")
    old = datetime.now(UTC) - timedelta(days=20)
    await report(stub, "call-2", verdict="should-not-have-escalated", decided_at=old)

    address = f"127.0.0.1:{routing.server.port}"
    shown = await asyncio.to_thread(
        CliRunner().invoke, app, ["customers", "show", PREMIUM, "--address", address]
    )
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert mask_number(PREMIUM) in text and PREMIUM not in text, "the number is shown masked"
    assert "preferred team billing for calls stated as technical (review of call call-1; until" in text

    as_json = await asyncio.to_thread(
        CliRunner().invoke, app, ["customers", "show", STANDARD, "--address", address, "--json"]
    )
    (learned,) = json.loads(as_json.output)["learned"]
    assert (learned["kind"], learned["value"], learned["active"]) == (
        "complexity-ceiling",
        "intermediate",
        False,
    )

    missing = await asyncio.to_thread(
        CliRunner().invoke, app, ["customers", "show", "+15550009999", "--address", address]
    )
    assert missing.exit_code == 1 and "no customer" in missing.output
