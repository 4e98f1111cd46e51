"""The feature-cost benchmark's pieces (`benchmarks.features`): each variant's policy is the TechCorp file
without one section and still loads, the realistic request is what the edge makes of a Vapi tool call with
every optional argument and a long transcript (and routing accepts it), and the costs are medians of
paired rounds, with the control variant reported as noise rather than checked."""

from __future__ import annotations

import inspect
import random
from pathlib import Path

import pytest
import yaml

from benchmarks import features
from benchmarks import routing as routing_benchmark
from benchmarks.results import Result
from routing_service.app.resolve import validate_request
from routing_service.grpc.mapping import escalation_from_pb
from routing_service.policy.loader import load_policy


def test_each_switchable_feature_has_a_policy_without_its_section_that_loads(tmp_path: Path) -> None:
    files = features.write_policies(tmp_path)
    assert files[features.ALL] == routing_benchmark.POLICY
    for feature in features.FEATURES:
        doc = yaml.safe_load(files[feature.key].read_text())
        if feature.section:
            assert feature.section not in doc
            load_policy(files[feature.key])  # a clear PolicyError would fail the test
        else:
            assert files[feature.key] == routing_benchmark.POLICY
            assert feature.patch in features.PATCHES or feature.control


def test_the_realistic_request_is_a_full_tool_call_routing_accepts() -> None:
    make = features.realistic_request_factory(5000, customers=1000)
    request = make("call-1", random.Random(1))
    assert request.call_id == "call-1" and request.caller_number.startswith("+1")
    assert len(request.transcript) == 5000
    assert request.assistant_summary and len(request.steps_tried) == 3
    assert {(e.kind, e.value) for e in request.entities} >= {("account", "7731-4410"), ("order", "55-20931")}
    assert request.HasField("confidence") and request.can_confirm
    domain = escalation_from_pb(request)
    validate_request(domain)
    assert domain.claimed_complexity is not None and domain.issue_category == "technical"
    for word in ("outage", "down", "urgent", "invoice", "refund", "password"):
        assert word not in request.transcript.lower()  # the same route as the benchmark request


def test_costs_are_medians_of_paired_rounds() -> None:
    rounds = [
        {"all": 2.2, "packet": 2.0, "fair_load": 2.2},
        {"all": 1.1, "packet": 1.0},
        {"all": 3.3, "packet": 3.0, "fair_load": 3.0},
    ]
    assert features.paired_cost_pct(rounds, "packet") == pytest.approx(10.0)
    assert features.paired_cost_pct(rounds, "fair_load") == pytest.approx(5.0)
    assert features.paired_cost_pct(rounds, "widening") != features.paired_cost_pct(rounds, "widening")  # nan


def test_features_are_checked_against_the_target_and_the_control_is_not() -> None:
    found = Result("features", {}, features.COLUMNS)
    chosen = tuple(f for f in features.FEATURES if f.key in ("packet", "control"))
    samples = {w: features.Samples() for w in features.WORKLOADS}
    samples["benchmark"].per_round = [{"all": 2.2, "packet": 2.0, "control": 2.2}] * 3
    lines = list(features.rows_and_checks(found, "sqlite", samples, chosen))
    checks = {c.name: c for c in found.checks}
    packet = checks["sqlite: handoff packet, reserving, benchmark request"]
    assert packet.value == pytest.approx(10.0) and packet.target == "< 10 %" and packet.met is False
    control = checks["sqlite: control (nothing off), reserving, benchmark request"]
    assert control.target == "" and control.met is None
    assert any("ABOVE TARGET" in line for line in lines)


def test_unknown_feature_names_are_refused() -> None:
    assert features.selected("all") == features.FEATURES
    assert [f.key for f in features.selected("packet, promises")] == ["packet", "promises"]
    with pytest.raises(SystemExit, match="unknown feature"):
        features.selected("packet,speed")


@pytest.mark.parametrize(
    ("where", "attribute", "stand_in"),
    [entry for entries in features.REPLACEMENTS.values() for entry in entries],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_each_stand_in_takes_what_the_code_it_replaces_takes(
    where: str, attribute: str, stand_in: object
) -> None:
    """A variant whose stand-in no longer fits the use case's call fails every decision of the run (as the
    promises variant once did after `keep_promise` changed): same parameters, same kind (coroutine or not)."""
    original = getattr(features.replaced_target(where), attribute)
    assert callable(stand_in)
    assert inspect.iscoroutinefunction(original) == inspect.iscoroutinefunction(stand_in)
    wanted = [(p.name, p.kind) for p in inspect.signature(original).parameters.values()]
    given = [(p.name, p.kind) for p in inspect.signature(stand_in).parameters.values()]
    assert given == wanted
