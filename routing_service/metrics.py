"""Prometheus metrics of the routing service, on their own registry and their own port.

    escalade_routing_decisions_total{team,kind}        decisions made (replays of a call's decision excluded)
    escalade_routing_decision_latency_seconds{method}   ResolveEscalation / ReleaseAssignment handling time
    escalade_routing_reservations_total{team}           specialists reserved by a TRANSFER_AGENT decision
    escalade_routing_releases_total{released}           ReleaseAssignment calls ("true": a slot was freed)
    escalade_routing_waiting_callbacks{team}            callbacks waiting (refreshed from the store at scrape)
    escalade_routing_oldest_waiting_seconds{team}       age of the team's oldest waiting callback (0: none)
    escalade_routing_free_specialists{team}             specialists available now
    escalade_routing_queue_refresh_errors_total         scrapes whose queue refresh failed (stale gauges)
    escalade_routing_missed_offers_total{team}          offers a specialist did not take (busy, no answer)
    escalade_routing_talk_limit_reached_total{team}     conversations ended by the team's max_talk_minutes
    escalade_routing_conversations_completed_total{team} conversations ended (completed or at the limit)
    escalade_routing_uncertain_decisions_total{team,action} decisions below the policy's confidence threshold
                                                        (action: widen, union, confirm, none)
    escalade_routing_uncertain_second_transfers_total{team} calls that needed another decision after an
                                                        uncertain one (team: the uncertain decision's)
    escalade_routing_load_escalations_max{team}         most escalations one specialist of the team took in
                                                        the last hour (refreshed at scrape)
    escalade_routing_load_escalations_min{team}         fewest (0 when a specialist took none)
    escalade_routing_load_gini{team}                    Gini coefficient of the team's escalations per
                                                        specialist in the last hour (0: even)
    escalade_routing_over_cap_reservations_total{team}  specialists reserved over a fair-load cap because
                                                        nobody under their caps qualified
    escalade_routing_callback_claims_total{team,step}   specialists reserved for a callback, by the callback's
                                                        team and the widening step in force (0: not widened)
    escalade_routing_callback_promises_kept_total{team}     callbacks started by the time they were promised
    escalade_routing_callback_promises_breached_total{team} callbacks not started by then (counted once)
    escalade_routing_callback_promise_error_seconds{team}   quoted minus actual wait of each kept promise
    escalade_routing_callback_promise_kept_ratio{team,window} kept share of promises resolved in the last
                                                        hour / 24 hours (window: 1h, 24h; refreshed at scrape)
    escalade_routing_callback_promise_accuracy_seconds{team,quantile} quoted minus actual wait of the last 24
                                                        hours' started callbacks (quantile: 0.5, 0.9)
    escalade_routing_uncertain_category_wrong_total{team} uncertain decisions whose review said the category
                                                        was wrong (a category_mismatch finding or verdict)
    escalade_routing_review_verdicts_total{team,rule,outcome} supervisors' verdicts on reviewed decisions,
                                                        by the decision's team and rule (outcome: confirmed,
                                                        overturned)

`observe_calls` (wrapping each RoutingService handler once, see `grpc.handlers`) counts at the gRPC edge of
the service (nothing in the use cases changes) and binds the request's `call_id` to the log context for the
whole RPC. `MetricsEndpoint` (an `escalade_platform.metrics.PrometheusEndpoint`) serves them: each scrape
refreshes the queue gauges from the store (on the event loop, never blocking it) and answers the registry in
the Prometheus text format. Label values are bounded: team ids come from the policy (through decisions),
kinds from the DecisionKind enum.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.metrics import LATENCY_BUCKETS, PrometheusEndpoint
from routing_service.app.callbacks import queue_status
from routing_service.app.fair_load import team_load_spread
from routing_service.app.lifecycle import observe_lifecycle
from routing_service.app.policy_source import PolicySource
from routing_service.app.ports import UnitOfWorkFactory
from routing_service.app.promises import observe_promises
from routing_service.app.review_outcomes import observe_review_outcomes
from routing_service.app.uncertainty import observe_uncertainty
from routing_service.app.widening import observe_widening
from routing_service.domain.fair_load import STAGE as FAIR_LOAD

__all__ = [
    "ROUTING_METRICS",
    "MetricsEndpoint",
    "RoutingMetrics",
    "kind_label",
    "observe_calls",
]

log = structlog.get_logger(__name__)

_SERVICE = "/escalade.routing.v1.RoutingService/"
_TIMED = frozenset({"ResolveEscalation", "ReleaseAssignment", "RecordCallEvent", "CompleteAssignment"})
_CALL_ID_METHODS = frozenset(
    {"ResolveEscalation", "ReleaseAssignment", "GetDecision", "RecordCallEvent", "CompleteAssignment"}
)


def kind_label(kind: int) -> str:
    """`DECISION_KIND_TRANSFER_TEAM` -> "transfer_team" (unknown numbers: "unspecified")."""
    try:
        name = pb.DecisionKind.Name(kind)  # type: ignore[arg-type]
    except ValueError:
        return "unspecified"
    return name.removeprefix("DECISION_KIND_").lower()


def _taken_over_cap(decision: pb.Decision) -> bool:
    """Whether the decision's trace says its specialist was taken over a fair-load cap."""
    chosen = pb.TRACE_OUTCOME_CHOSEN
    return any(step.stage == FAIR_LOAD and step.outcome == chosen for step in decision.trace)


class RoutingMetrics:
    """The routing service's metrics on one registry (one per process; tests read deltas)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Label children of the per-decision counters, by (team, kind) and team: `labels()` validates and
        # joins its arguments on every call, a noticeable part of counting a decision. Teams come from the
        # policy, so these hold no more entries than the counters' own children.
        self._decision_children: dict[tuple[str, int], Counter] = {}
        self._reservation_children: dict[str, Counter] = {}
        self.decisions = Counter(
            "escalade_routing_decisions",
            "Routing decisions made, by team and kind.",
            ["team", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "escalade_routing_decision_latency_seconds",
            "Time to handle a routing RPC (ResolveEscalation, ReleaseAssignment), errors included.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reservations = Counter(
            "escalade_routing_reservations", "Specialists reserved for a call, by team.", ["team"], registry=r
        )
        self.releases = Counter(
            "escalade_routing_releases",
            "ReleaseAssignment calls; released=true when a reserved slot was freed.",
            ["released"],
            registry=r,
        )
        self.waiting = Gauge(
            "escalade_routing_waiting_callbacks",
            "Callbacks waiting in the team's queue.",
            ["team"],
            registry=r,
        )
        self.oldest_wait = Gauge(
            "escalade_routing_oldest_waiting_seconds",
            "Age of the team's oldest waiting callback in seconds (0 when none waits).",
            ["team"],
            registry=r,
        )
        self.free = Gauge(
            "escalade_routing_free_specialists", "Specialists available now, by team.", ["team"], registry=r
        )
        self.refresh_errors = Counter(
            "escalade_routing_queue_refresh_errors",
            "Scrapes whose queue gauges could not be refreshed from the store (values are stale).",
            registry=r,
        )

        self.missed_offers = Counter(
            "escalade_routing_missed_offers",
            "Offers a specialist did not take (busy, no answer, failed transfer, repeat), by team.",
            ["team"],
            registry=r,
        )
        self.talk_limits = Counter(
            "escalade_routing_talk_limit_reached",
            "Conversations nobody completed, ended by the team's safety limit (max_talk_minutes), by team.",
            ["team"],
            registry=r,
        )
        self.completed = Counter(
            "escalade_routing_conversations_completed",
            "Conversations ended (CompleteAssignment or the safety limit), by team.",
            ["team"],
            registry=r,
        )

        self.uncertain = Counter(
            "escalade_routing_uncertain_decisions",
            "Decisions below the policy's confidence threshold, by team and what they did (widen, union,"
            " confirm, none).",
            ["team", "action"],
            registry=r,
        )
        self.callback_claims = Counter(
            "escalade_routing_callback_claims",
            "Specialists reserved for a waiting callback, by the callback's team and the widening step in"
            " force (0: not widened).",
            ["team", "step"],
            registry=r,
        )
        self.second_transfers = Counter(
            "escalade_routing_uncertain_second_transfers",
            "Calls that needed another decision after an uncertain one, by the uncertain decision's team.",
            ["team"],
            registry=r,
        )
        self.uncertain_wrong = Counter(
            "escalade_routing_uncertain_category_wrong",
            "Uncertain decisions whose review said the category was wrong, by the decision's team.",
            ["team"],
            registry=r,
        )
        self.review_verdicts = Counter(
            "escalade_routing_review_verdicts",
            "Supervisors' verdicts on reviewed decisions, by the decision's team and rule, and whether the"
            " verdict confirmed or overturned the decision.",
            ["team", "rule", "outcome"],
            registry=r,
        )

        self.load_max = Gauge(
            "escalade_routing_load_escalations_max",
            "Most escalations one specialist of the team took in the last hour.",
            ["team"],
            registry=r,
        )
        self.load_min = Gauge(
            "escalade_routing_load_escalations_min",
            "Fewest escalations one specialist of the team took in the last hour (0: someone took none).",
            ["team"],
            registry=r,
        )
        self.load_gini = Gauge(
            "escalade_routing_load_gini",
            "Gini coefficient of the team's escalations per specialist in the last hour (0: evenly spread).",
            ["team"],
            registry=r,
        )
        self.over_cap = Counter(
            "escalade_routing_over_cap_reservations",
            "Specialists reserved over a fair-load cap because nobody under their caps qualified, by team.",
            ["team"],
            registry=r,
        )
        self.promises_kept = Counter(
            "escalade_routing_callback_promises_kept",
            "Callbacks that started (a specialist reserved) by the time the caller was promised, by team.",
            ["team"],
            registry=r,
        )
        self.promises_breached = Counter(
            "escalade_routing_callback_promises_breached",
            "Callback promises broken (not started by the promised time), counted once each, by team.",
            ["team"],
            registry=r,
        )
        self.promise_error = Histogram(
            "escalade_routing_callback_promise_error_seconds",
            "Quoted minus actual wait of each kept callback promise (how early it started), by team.",
            ["team"],
            buckets=(0, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
            registry=r,
        )
        self.kept_ratio = Gauge(
            "escalade_routing_callback_promise_kept_ratio",
            "Share of the callback promises resolved in the window that were kept (1h, 24h), by team.",
            ["team", "window"],
            registry=r,
        )
        self.promise_accuracy = Gauge(
            "escalade_routing_callback_promise_accuracy_seconds",
            "Quoted minus actual wait of the last 24 hours' started callbacks (quantile 0.5, 0.9), by team.",
            ["team", "quantile"],
            registry=r,
        )

    # ReviewOutcomeObserver (routing_service.app.review_outcomes)
    def review_verdict(self, team_id: str, rule_id: str, outcome: str) -> None:
        self.review_verdicts.labels(team=team_id or "none", rule=rule_id or "none", outcome=outcome).inc()

    def uncertain_category_wrong(self, team_id: str) -> None:
        self.uncertain_wrong.labels(team=team_id or "none").inc()

    # WideningObserver (routing_service.app.widening)
    def widened_claim(self, team_id: str, step: int) -> None:
        self.callback_claims.labels(team=team_id or "none", step=str(step)).inc()

    # PromiseObserver (routing_service.app.promises)
    def promise_breached(self, team_id: str) -> None:
        self.promises_breached.labels(team=team_id or "none").inc()

    def promise_kept(self, team_id: str, quoted_minus_actual: timedelta) -> None:
        team = team_id or "none"
        self.promises_kept.labels(team=team).inc()
        self.promise_error.labels(team=team).observe(max(0.0, quoted_minus_actual.total_seconds()))

    # UncertaintyObserver (routing_service.app.uncertainty)
    def uncertain_decision(self, team_id: str, action: str) -> None:
        self.uncertain.labels(team=team_id or "none", action=action).inc()

    def second_transfer(self, team_id: str) -> None:
        self.second_transfers.labels(team=team_id or "none").inc()

    # LifecycleObserver (routing_service.app.lifecycle)
    def missed_offer(self, team_id: str) -> None:
        self.missed_offers.labels(team=team_id or "none").inc()

    def talk_limit_reached(self, team_id: str) -> None:
        self.talk_limits.labels(team=team_id or "none").inc()

    def conversation_completed(self, team_id: str) -> None:
        self.completed.labels(team=team_id or "none").inc()

    def observe_decision(self, decision: pb.Decision) -> None:
        """Count a decision (replays excluded: they were counted when made)."""
        if decision.replayed:
            return
        team = decision.team_id or "none"
        kind = decision.kind
        counted = self._decision_children.get((team, kind))
        if counted is None:
            counted = self._decision_children[(team, kind)] = self.decisions.labels(
                team=team, kind=kind_label(kind)
            )
        counted.inc()
        if kind == pb.DECISION_KIND_TRANSFER_AGENT and decision.agent_id and not decision.dry_run:
            reserved = self._reservation_children.get(team)
            if reserved is None:
                reserved = self._reservation_children[team] = self.reservations.labels(team=team)
            reserved.inc()
            if _taken_over_cap(decision):
                self.over_cap.labels(team=team).inc()

    async def refresh_queues(self, uow: UnitOfWorkFactory, policies: PolicySource) -> None:
        """Queue gauges of every team of the current policy, from the store."""
        now = datetime.now(UTC)
        teams = await queue_status(None, uow=uow, policy=policies.current, now=now)
        for team in teams:
            self.waiting.labels(team=team.team_id).set(team.stats.waiting_callbacks)
            self.free.labels(team=team.team_id).set(team.stats.available_agents)
            since = team.stats.oldest_waiting_since
            age = max((now - since).total_seconds(), 0.0) if since is not None else 0.0
            self.oldest_wait.labels(team=team.team_id).set(age)
            promises = team.promises
            if promises is None:
                continue
            for window, rate in (("1h", promises.kept_rate_1h), ("24h", promises.kept_rate_24h)):
                if rate is not None:
                    self.kept_ratio.labels(team=team.team_id, window=window).set(rate)
            if promises.accuracy is not None:
                self.promise_accuracy.labels(team=team.team_id, quantile="0.5").set(
                    promises.accuracy.median.total_seconds()
                )
                self.promise_accuracy.labels(team=team.team_id, quantile="0.9").set(
                    promises.accuracy.p90.total_seconds()
                )
        spread = await team_load_spread([team.team_id for team in teams], uow=uow, now=now)
        for team_id, load in spread.items():
            self.load_max.labels(team=team_id).set(load.most)
            self.load_min.labels(team=team_id).set(load.fewest)
            self.load_gini.labels(team=team_id).set(load.gini)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


ROUTING_METRICS = RoutingMetrics()
"""The routing process's metrics (its own registry, not prometheus_client's global one)."""
observe_lifecycle(ROUTING_METRICS)
observe_uncertainty(ROUTING_METRICS)
observe_widening(ROUTING_METRICS)
observe_promises(ROUTING_METRICS)
observe_review_outcomes(ROUTING_METRICS)


def observe_calls(
    method: str, handler: grpc.RpcMethodHandler[Any, Any], metrics: RoutingMetrics = ROUTING_METRICS
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` of RoutingService `method` timed and counted, with `call_id` bound to the log context while
    it runs. Applied once, when the service is registered (`grpc.handlers`); streaming handlers pass
    unchanged."""
    if not method.startswith(_SERVICE) or handler.unary_unary is None:
        return handler
    name = method.removeprefix(_SERVICE)
    unary: Any = handler.unary_unary
    latency = metrics.latency.labels(method=name) if name in _TIMED else None
    reads_call_id = name in _CALL_ID_METHODS

    async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call_id = getattr(request, "call_id", "") if reads_call_id else ""
        # bind/reset rather than `bound_contextvars`, whose context-manager machinery cost three times as much
        tokens = structlog.contextvars.bind_contextvars(call_id=call_id) if call_id else None
        started = time.perf_counter()
        try:
            response = await unary(request, context)
        finally:
            if latency is not None:
                latency.observe(time.perf_counter() - started)
            if tokens is not None:
                structlog.contextvars.reset_contextvars(**tokens)
        if isinstance(response, pb.ResolveEscalationResponse) and response.HasField("decision"):
            metrics.observe_decision(response.decision)
        elif isinstance(response, pb.ReleaseAssignmentResponse):
            metrics.releases.labels(released="true" if response.released else "false").inc()
        return response

    return grpc.unary_unary_rpc_method_handler(
        observed,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class MetricsEndpoint(PrometheusEndpoint):
    """`GET /metrics` on HOST:PORT (port 0: any free port), refreshing the queue gauges per scrape."""

    name = "routing_metrics"

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        policies: PolicySource,
        *,
        metrics: RoutingMetrics = ROUTING_METRICS,
        refresh_timeout_seconds: float = 2.0,
    ) -> None:
        super().__init__()
        self.uow = uow
        self.policies = policies
        self.metrics = metrics
        self.refresh_timeout_seconds = refresh_timeout_seconds

    async def scrape(self) -> bytes:
        """Refresh the queue gauges (bounded by a timeout; failures leave them stale) and render."""
        try:
            async with asyncio.timeout(self.refresh_timeout_seconds):
                await self.metrics.refresh_queues(self.uow, self.policies)
        except Exception as exc:  # a scrape must answer even when the store does not
            self.metrics.refresh_errors.inc()
            log.warning("queue_metrics_refresh_failed", cause=type(exc).__name__)
        return self.metrics.exposition()
