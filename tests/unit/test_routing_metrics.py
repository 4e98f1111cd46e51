"""Routing's per-decision counters: every decision counted under its own team and kind."""

from __future__ import annotations

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.domain.fair_load import STAGE as FAIR_LOAD
from routing_service.metrics import RoutingMetrics


def _value(metrics: RoutingMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_decisions_are_counted_under_their_own_team_and_kind_when_teams_and_kinds_interleave() -> None:
    metrics = RoutingMetrics()
    over_cap = pb.TraceStep(stage=FAIR_LOAD, subject="a3", outcome=pb.TRACE_OUTCOME_CHOSEN)
    agent, callback = pb.DECISION_KIND_TRANSFER_AGENT, pb.DECISION_KIND_CALLBACK
    for decision in [
        pb.Decision(team_id="technical", kind=agent, agent_id="a1"),
        pb.Decision(team_id="billing", kind=callback),
        pb.Decision(team_id="technical", kind=callback),
        pb.Decision(team_id="", kind=pb.DECISION_KIND_FALLBACK),
        pb.Decision(team_id="technical", kind=agent, agent_id="a2"),
        pb.Decision(team_id="billing", kind=agent, agent_id="b1", dry_run=True),
        pb.Decision(team_id="technical", kind=agent, agent_id="a2", replayed=True),
        pb.Decision(team_id="enterprise", kind=agent, agent_id="a3", trace=[over_cap]),
    ]:
        metrics.observe_decision(decision)

    decided = "escalade_routing_decisions_total"
    assert _value(metrics, decided, team="technical", kind="transfer_agent") == 2
    assert _value(metrics, decided, team="technical", kind="callback") == 1
    assert _value(metrics, decided, team="billing", kind="callback") == 1
    assert _value(metrics, decided, team="billing", kind="transfer_agent") == 1
    assert _value(metrics, decided, team="none", kind="fallback") == 1
    assert _value(metrics, decided, team="enterprise", kind="transfer_agent") == 1
    reserved = "escalade_routing_reservations_total"
    assert _value(metrics, reserved, team="technical") == 2
    assert _value(metrics, reserved, team="billing") == 0  # a dry run reserves nobody
    assert _value(metrics, reserved, team="enterprise") == 1
    assert _value(metrics, "escalade_routing_over_cap_reservations_total", team="enterprise") == 1
    assert _value(metrics, "escalade_routing_over_cap_reservations_total", team="technical") == 0


def test_each_registry_counts_only_its_own_decisions_when_two_metrics_objects_exist() -> None:
    first, second = RoutingMetrics(), RoutingMetrics()
    decision = pb.Decision(team_id="technical", kind=pb.DECISION_KIND_CALLBACK)
    first.observe_decision(decision)
    first.observe_decision(decision)
    second.observe_decision(decision)
    name = "escalade_routing_decisions_total"
    assert _value(first, name, team="technical", kind="callback") == 2
    assert _value(second, name, team="technical", kind="callback") == 1
