"""`RoutingService` over gRPC: each method maps the request to domain types, runs the use case, maps back.

Errors are turned into statuses by `routing_service.grpc.errors.map_errors` (one place).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.app import (
    agents,
    assignments,
    callbacks,
    customers,
    decisions,
    fair_load,
    lifecycle,
    review_outcomes,
    widening,
)
from routing_service.app.availability import AvailabilityBroadcaster
from routing_service.app.callbacks import ClaimOutcome
from routing_service.app.policy_source import PolicySource
from routing_service.app.ports import UnitOfWorkFactory
from routing_service.app.resolve import new_decision_id, resolve_escalation
from routing_service.domain.errors import InvalidRequest
from routing_service.grpc import mapping
from routing_service.grpc.errors import map_errors

__all__ = ["RoutingServicer", "utc_now"]

Context = grpc.aio.ServicerContext[Any, Any]

_CLAIM_TO_PB = {
    ClaimOutcome.RESERVED: pb.CLAIM_OUTCOME_RESERVED,
    ClaimOutcome.NOT_AT_HEAD: pb.CLAIM_OUTCOME_NOT_AT_HEAD,
    ClaimOutcome.NO_SPECIALIST_FREE: pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE,
    ClaimOutcome.ALREADY_FINISHED: pb.CLAIM_OUTCOME_ALREADY_FINISHED,
}


EVENT_CLOCK_WINDOW = timedelta(hours=1)
"""How far back a call event's own `occurred_at` is believed (a late delivery); older is taken as that."""


REVIEW_OUTCOME_WINDOW = timedelta(days=7)
"""What GetReviewOutcomes counts when the request names no window."""
MAX_REVIEW_OUTCOME_WINDOW = timedelta(days=366)


def utc_now() -> datetime:
    return datetime.now(UTC)


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    """Thin adapter from gRPC to the use cases in `routing_service.app`."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        policies: PolicySource,
        events: AvailabilityBroadcaster,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_decision_id,
    ) -> None:
        self.uow = uow
        self.policies = policies
        self.events = events
        self.clock = clock
        self.new_id = new_id

    @map_errors(strict_text=False)  # conversation text is cleaned, not refused: the caller still gets routed
    async def ResolveEscalation(
        self, request: pb.ResolveEscalationRequest, context: Context
    ) -> pb.ResolveEscalationResponse:
        decision = await resolve_escalation(
            mapping.escalation_from_pb(request),
            uow=self.uow,
            policy=self.policies.current,
            now=self.clock(),
            new_id=self.new_id,
            events=self.events,
        )
        return pb.ResolveEscalationResponse(
            decision=mapping.decision_to_pb(decision, with_handoff=request.with_handoff_packet)
        )

    @map_errors
    async def ReleaseAssignment(
        self, request: pb.ReleaseAssignmentRequest, context: Context
    ) -> pb.ReleaseAssignmentResponse:
        released, agent_id = await assignments.release_assignment(
            request.call_id, request.reason, uow=self.uow, now=self.clock(), events=self.events
        )
        return pb.ReleaseAssignmentResponse(released=released, agent_id=agent_id)

    @map_errors
    async def RecordCallEvent(
        self, request: pb.RecordCallEventRequest, context: Context
    ) -> pb.RecordCallEventResponse:
        kind = mapping.call_event_kind_from_pb(request.kind)
        now = self.clock()
        if request.HasField("occurred_at"):  # trusted within the last hour, never in the future
            now = max(now - EVENT_CLOCK_WINDOW, min(now, mapping.timestamp_from_pb(request.occurred_at)))
        result = await lifecycle.record_call_event(
            lifecycle.CallEvent(
                call_id=request.call_id,
                kind=kind,
                ended_reason=request.ended_reason,
                transfer_status=request.transfer_status,
            ),
            uow=self.uow,
            policy=self.policies.current,
            now=now,
            events=self.events,
        )
        response = pb.RecordCallEventResponse(changed=result.changed, agent_set_away=result.agent_set_away)
        if result.assignment is not None:
            response.assignment.CopyFrom(mapping.assignment_to_pb(result.assignment))
        return response

    @map_errors
    async def CompleteAssignment(
        self, request: pb.CompleteAssignmentRequest, context: Context
    ) -> pb.CompleteAssignmentResponse:
        done = await lifecycle.complete_assignment(
            call_id=request.call_id,
            agent_id=request.agent_id,
            note=request.note,
            skip_wrap_up=request.skip_wrap_up,
            uow=self.uow,
            policy=self.policies.current,
            now=self.clock(),
            events=self.events,
        )
        return pb.CompleteAssignmentResponse(
            assignment=mapping.assignment_to_pb(done.assignment), completed=done.completed
        )

    @map_errors
    async def GetDecision(self, request: pb.GetDecisionRequest, context: Context) -> pb.GetDecisionResponse:
        decision = await decisions.get_decision(request.call_id, uow=self.uow)
        return pb.GetDecisionResponse(decision=mapping.decision_to_pb(decision))

    @map_errors
    async def GetHandoffPacket(
        self, request: pb.GetHandoffPacketRequest, context: Context
    ) -> pb.GetHandoffPacketResponse:
        decision = await decisions.get_handoff_packet(request.call_id, request.decision_id, uow=self.uow)
        return mapping.handoff_response_to_pb(decision)

    @map_errors
    async def ListDecisions(
        self, request: pb.ListDecisionsRequest, context: Context
    ) -> pb.ListDecisionsResponse:
        found, token = await decisions.list_decisions(
            team_id=request.team_id,
            kind=mapping.kind_from_pb(request.kind),
            page_size=request.page_size,
            page_token=request.page_token,
            uow=self.uow,
        )
        return pb.ListDecisionsResponse(
            decisions=[mapping.decision_to_pb(d, with_handoff=request.with_handoff_packets) for d in found],
            next_page_token=token,
        )

    @map_errors
    async def UpsertCustomer(
        self, request: pb.UpsertCustomerRequest, context: Context
    ) -> pb.UpsertCustomerResponse:
        stored, created = await customers.upsert_customer(
            mapping.customer_from_pb(request.customer), uow=self.uow, now=self.clock()
        )
        return pb.UpsertCustomerResponse(customer=mapping.customer_to_pb(stored), created=created)

    @map_errors
    async def GetCustomer(self, request: pb.GetCustomerRequest, context: Context) -> pb.GetCustomerResponse:
        customer = await customers.get_customer(request.number, uow=self.uow)
        return pb.GetCustomerResponse(customer=mapping.customer_to_pb(customer))

    @map_errors
    async def RecordEscalationOutcome(
        self, request: pb.RecordEscalationOutcomeRequest, context: Context
    ) -> pb.RecordEscalationOutcomeResponse:
        customer, counted = await customers.record_outcome(
            request.call_id, request.agent_id, uow=self.uow, policy=self.policies.current, now=self.clock()
        )
        return pb.RecordEscalationOutcomeResponse(customer=mapping.customer_to_pb(customer), counted=counted)

    @map_errors
    async def RecordReviewOutcome(
        self, request: pb.RecordReviewOutcomeRequest, context: Context
    ) -> pb.RecordReviewOutcomeResponse:
        result = await review_outcomes.record_review_outcome(
            request.call_id,
            verdict=request.verdict,
            finding_rules=list(request.finding_rules),
            actual_category=request.actual_category,
            decided_at=(
                mapping.timestamp_from_pb(request.decided_at) if request.HasField("decided_at") else None
            ),
            uow=self.uow,
            policy=self.policies.current,
            now=self.clock(),
        )
        response = pb.RecordReviewOutcomeResponse(
            outcome=result.outcome,
            verdict_recorded=result.verdict_recorded,
            category_wrong=result.category_wrong,
            uncertain=result.uncertain,
            learned=list(result.learned),
        )
        if result.customer is not None:
            response.customer.CopyFrom(mapping.customer_to_pb(result.customer))
        return response

    @map_errors
    async def GetReviewOutcomes(
        self, request: pb.GetReviewOutcomesRequest, context: Context
    ) -> pb.GetReviewOutcomesResponse:
        window = REVIEW_OUTCOME_WINDOW
        if request.HasField("window"):
            window = mapping.duration_from_pb(request.window)
            if not timedelta(0) < window <= MAX_REVIEW_OUTCOME_WINDOW:
                raise InvalidRequest(
                    "invalid window", [("window", "must be more than 0 and at most 366 days")]
                )
        counts = await review_outcomes.review_outcome_counts(uow=self.uow, since=self.clock() - window)
        return pb.GetReviewOutcomesResponse(
            outcomes=[
                pb.ReviewOutcomeCount(
                    team_id=c.team_id,
                    rule_id=c.rule_id,
                    confirmed=c.confirmed,
                    overturned=c.overturned,
                    uncertain_category_wrong=c.uncertain_category_wrong,
                )
                for c in counts
            ],
            window=mapping.duration_to_pb(window),
        )

    @map_errors
    async def UpsertAgent(self, request: pb.UpsertAgentRequest, context: Context) -> pb.UpsertAgentResponse:
        agent, status_given = mapping.agent_from_pb(request.agent)
        stored, created = await agents.upsert_agent(
            agent, status_given=status_given, uow=self.uow, now=self.clock(), events=self.events
        )
        return pb.UpsertAgentResponse(agent=mapping.agent_to_pb(stored), created=created)

    @map_errors
    async def SetAgentStatus(
        self, request: pb.SetAgentStatusRequest, context: Context
    ) -> pb.SetAgentStatusResponse:
        agent = await agents.set_agent_status(
            request.agent_id,
            mapping.agent_status_from_pb(request.status),
            uow=self.uow,
            now=self.clock(),
            events=self.events,
        )
        return pb.SetAgentStatusResponse(agent=mapping.agent_to_pb(agent))

    @map_errors
    async def ListAgents(self, request: pb.ListAgentsRequest, context: Context) -> pb.ListAgentsResponse:
        found, token = await agents.list_agents(
            team_id=request.team_id,
            status=mapping.agent_status_from_pb(request.status),
            page_size=request.page_size,
            page_token=request.page_token,
            uow=self.uow,
        )
        return pb.ListAgentsResponse(
            agents=[mapping.agent_to_pb(a, activity) for a, activity in found], next_page_token=token
        )

    @map_errors
    async def GetQueueStatus(
        self, request: pb.GetQueueStatusRequest, context: Context
    ) -> pb.GetQueueStatusResponse:
        policy, now = self.policies.current, self.clock()
        teams = await callbacks.queue_status(request.team_id, uow=self.uow, policy=policy, now=now)
        uncertain = (
            await decisions.uncertainty_report(uow=self.uow, now=now)
            if policy.uncertainty is not None
            else None
        )
        spread = await fair_load.team_load_spread([t.team_id for t in teams], uow=self.uow, now=now)
        by_step = await widening.waiting_by_step(self.uow, policy, [t.team_id for t in teams], now)
        out = []
        for t in teams:
            msg = pb.TeamQueueStatus(
                team_id=t.team_id,
                display_name=t.display_name,
                waiting_callbacks=t.stats.waiting_callbacks,
                available_agents=t.stats.available_agents,
                total_agents=t.stats.total_agents,
                active_assignments=t.stats.active_assignments,
                estimated_wait=mapping.duration_to_pb(t.estimated_wait),
            )
            if t.stats.oldest_waiting_since is not None:
                msg.oldest_waiting_since.CopyFrom(mapping.timestamp_to_pb(t.stats.oldest_waiting_since))
            if t.closed_until is not None:
                msg.closed_until.CopyFrom(mapping.timestamp_to_pb(t.closed_until))
            for count_at_step in by_step.get(t.team_id, ()):
                msg.widening_steps.add(
                    step=count_at_step.step,
                    label=count_at_step.label,
                    waiting_callbacks=count_at_step.waiting,
                )
            count = uncertain.by_team.get(t.team_id) if uncertain is not None else None
            if count is not None:
                msg.uncertain_decisions_last_hour = count.uncertain
                msg.uncertain_second_transfers_last_hour = count.second_transfers
            load = spread.get(t.team_id)
            if load is not None:
                msg.load_last_hour.CopyFrom(mapping.load_spread_to_pb(load))
            mapping.promise_stats_to_pb(t.promises, msg)
            out.append(msg)
        capped = uncertain is not None and uncertain.capped
        return pb.GetQueueStatusResponse(teams=out, uncertainty_counts_capped=capped)

    @map_errors
    async def ListCallbacks(
        self, request: pb.ListCallbacksRequest, context: Context
    ) -> pb.ListCallbacksResponse:
        tickets, next_token = await callbacks.list_callbacks(
            team_id=request.team_id,
            state=mapping.callback_state_from_pb(request.state),
            page_size=request.page_size,
            page_token=request.page_token,
            uow=self.uow,
        )
        now = self.clock()
        return pb.ListCallbacksResponse(
            callbacks=[mapping.callback_to_pb(t, with_texts=True, now=now) for t in tickets],
            next_page_token=next_token,
        )

    @map_errors
    async def WatchAvailability(
        self, request: pb.WatchAvailabilityRequest, context: Context
    ) -> AsyncIterator[pb.WatchAvailabilityResponse]:
        # An empty or oversized id names no team: the stream would wait forever for nothing.
        bad = [
            (f"team_ids[{i}]", "a team id (1-128 characters)")
            for i, team_id in enumerate(request.team_ids)
            if not team_id.strip() or len(team_id) > 128
        ]
        if bad:
            raise InvalidRequest("invalid team filter", bad)
        teams = frozenset(request.team_ids)
        # Every team's events: a freed slot in one team also wakes the queues that widened to it.
        with self.events.subscribe(()) as subscription:
            async for freed in subscription:
                woken = await widening.woken_by(
                    self.uow, self.policies.current, freed, self.clock(), teams=teams
                )
                for event in woken:
                    yield pb.WatchAvailabilityResponse(
                        team_id=event.team_id,
                        agent_id=event.agent_id,
                        free_slots=event.free_slots,
                        at=mapping.timestamp_to_pb(event.at),
                    )

    @map_errors
    async def ClaimCallback(
        self, request: pb.ClaimCallbackRequest, context: Context
    ) -> pb.ClaimCallbackResponse:
        hold = mapping.duration_from_pb(request.hold_for) if request.HasField("hold_for") else None
        now = self.clock()
        result = await callbacks.claim_callback(
            request.call_id, hold or None, uow=self.uow, policy=self.policies.current, now=now
        )
        response = pb.ClaimCallbackResponse(
            outcome=_CLAIM_TO_PB[result.outcome],
            callback=mapping.callback_to_pb(result.callback, now=now),
            trace=[mapping.trace_step_to_pb(step) for step in result.trace],
        )
        if result.agent is not None:
            response.agent.CopyFrom(mapping.agent_to_pb(result.agent))
        scope = result.widening
        if scope is not None:
            response.widening_step = scope.step
            response.widening = scope.label
            if scope.next_step_at is not None:
                response.next_widening_at.CopyFrom(mapping.timestamp_to_pb(scope.next_step_at))
        response.served_team_id = result.served_team
        return response

    @map_errors
    async def FinishCallback(
        self, request: pb.FinishCallbackRequest, context: Context
    ) -> pb.FinishCallbackResponse:
        now = self.clock()
        ticket = await callbacks.finish_callback(
            request.call_id,
            mapping.callback_state_from_pb(request.state),
            request.note,
            uow=self.uow,
            now=now,
            events=self.events,
        )
        return pb.FinishCallbackResponse(callback=mapping.callback_to_pb(ticket, now=now))
