"""The callback reconciler: every open callback ticket in routing gets its `callback-<call id>` workflow.

The edge records each callback start in its outbox and the outbox relay delivers it. If the outbox database
is down when the call is queued, the edge keeps the start in memory only, and an edge that dies then loses
it: routing's ticket stays WAITING, nobody calls the customer back, and the ticket blocks its team's queue
(only the head of a queue may claim a specialist). So, every `interval` seconds:

    ListCallbacks(open, page_size=1000, page_token=...), every team, page by page
    ──> for each ticket enqueued more than `grace` ago, not yet seen to have a workflow:
            describe `callback-<call id>`: it exists (running or closed) ──> nothing to do (the normal case)
            NOT_FOUND ──> start_follow_up(client, callback_input_from_ticket(ticket))   (the relay's path)

Call ids seen with a workflow are remembered while their tickets are open, so a pass over a long queue asks
Temporal only about new tickets. Routing or Temporal unreachable: one warning per pass, and the next pass
tries again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import structlog
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.masking import mask_number
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.models import Policy
from workflows.client import DEFAULT_TASK_QUEUE, start_follow_up
from workflows.inputs import QueueCallbackInput, callback_workflow_id

if TYPE_CHECKING:
    from escalade_platform.generated.escalade.routing.v1.routing_pb2_grpc import RoutingServiceAsyncStub

__all__ = ["CallbackReconciler", "callback_input_from_ticket"]

log = structlog.get_logger(__name__)

_PAGE = 1000
"""ListCallbacks' largest page_size."""
_MAX_PAGES = 100
"""Pages read per pass at most (100,000 open tickets): a bound, should a cursor ever fail to advance."""


def _complexity_name(value: pb.Complexity.ValueType) -> str:
    """As `webhook_edge.translate.complexity_name`: `advanced` for COMPLEXITY_ADVANCED, empty if unset."""
    if value == pb.COMPLEXITY_UNSPECIFIED:
        return ""
    return pb.Complexity.Name(value).removeprefix("COMPLEXITY_").lower()


def callback_input_from_ticket(ticket: pb.CallbackTicket) -> QueueCallbackInput:
    """The input `webhook_edge.translate.callback_input` would have recorded for this ticket: ListCallbacks
    tickets carry the caller's context and reason, and the first message routing rendered for the callback
    call. `start_follow_up` judges the number and adds the policy's knobs, as for the edge's inputs."""
    return QueueCallbackInput(
        call_id=ticket.call_id,
        customer_number=ticket.caller_number,
        masked_number=mask_number(ticket.caller_number),
        team_id=ticket.team_id,
        tier=ticket.tier,
        category=ticket.issue_category,
        complexity=_complexity_name(ticket.effective_complexity),
        priority=ticket.priority,
        context=ticket.customer_context,
        reason=ticket.escalation_reason,
        decision_id=ticket.decision_id,
        first_message=ticket.first_message,
    )


class CallbackReconciler:
    """`run()` until cancelled (what the worker does); `run_once()` is one pass (what tests call).

    `clock` returns an aware datetime ("now"), compared with the tickets' `enqueued_at`."""

    def __init__(
        self,
        stub: RoutingServiceAsyncStub,
        client: Client,
        *,
        interval: float = 60.0,
        grace: float = 30.0,
        policy: Policy | None = None,
        task_queue: str = DEFAULT_TASK_QUEUE,
        rpc_timeout: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = _PAGE,
        on_reconciled: Callable[[], None] | None = None,
    ) -> None:
        self._stub = stub
        self._on_reconciled = on_reconciled
        self._page_size = page_size
        self._client = client
        self._interval = interval
        self._grace = timedelta(seconds=grace)
        self._policy = policy
        self._task_queue = task_queue
        self._timeout = rpc_timeout
        self._clock = clock
        self._seen: set[str] = set()
        """Call ids of open tickets whose workflow is known to exist (not asked about again)."""
        self.reconciled = 0
        """Workflows this reconciler had to start (the outbox had not); for tests and status."""

    async def run(self) -> None:
        """A pass every `interval` seconds; returns only by cancellation."""
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug must not stop later passes (nor the worker, at shutdown)
                log.exception("callback_reconcile_failed", cause="unexpected")
            await asyncio.sleep(self._interval)

    async def run_once(self) -> int:
        """One pass; returns how many workflows it started. Never raises for an unreachable service."""
        try:
            tickets = await self._open_tickets()
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
            log.warning("callback_reconcile_failed", cause="routing", code=str(code))
            return 0
        except TimeoutError:
            log.warning("callback_reconcile_failed", cause="routing", code="timeout")
            return 0
        self._seen &= {t.call_id for t in tickets}
        cutoff = self._clock() - self._grace
        started = 0
        for ticket in tickets:
            if ticket.call_id in self._seen or ticket.enqueued_at.ToDatetime(UTC) > cutoff:
                continue
            try:
                started += await self._ensure_started(ticket)
            except (RPCError, TimeoutError) as exc:
                status = exc.status.name if isinstance(exc, RPCError) else "timeout"
                log.warning("callback_reconcile_failed", cause="temporal", code=status)
                break
        return started

    async def _open_tickets(self) -> list[pb.CallbackTicket]:
        """Every WAITING and RESERVED ticket of every team, page by page (ListCallbacks' keyset pages; a
        ticket that changes state between two pages may be listed twice, hence the dict)."""
        found: dict[str, pb.CallbackTicket] = {}
        token = ""
        for _ in range(_MAX_PAGES):
            request = pb.ListCallbacksRequest(page_size=self._page_size, page_token=token)
            response = await self._stub.ListCallbacks(request, timeout=self._timeout)
            for ticket in _open(response.callbacks):
                found.setdefault(ticket.call_id, ticket)
            token = response.next_page_token
            if not token:
                break
        return list(found.values())

    async def _ensure_started(self, ticket: pb.CallbackTicket) -> int:
        """1 when the workflow had to be started here, 0 when it existed (or the ticket cannot start one)."""
        workflow_id = callback_workflow_id(ticket.call_id)
        try:
            await self._client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=timedelta(seconds=self._timeout)
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        else:
            self._seen.add(ticket.call_id)
            return 0
        try:
            result = await start_follow_up(
                self._client,
                callback_input_from_ticket(ticket),
                policy=self._policy,
                task_queue=self._task_queue,
            )
        except InvalidRequest as exc:  # e.g. a ticket without a number: nothing a workflow could dial
            log.info(
                "callback_reconcile_skipped", workflow_id=workflow_id, fields=[f for f, _ in exc.violations]
            )
            self._seen.add(ticket.call_id)
            return 0
        self._seen.add(ticket.call_id)
        if result.already_done:  # closed meanwhile and no longer described (retention): start-once held
            return 0
        self.reconciled += 1
        if self._on_reconciled is not None:
            self._on_reconciled()
        log.warning("callback_reconciled", workflow_id=workflow_id)
        return 1


def _open(tickets: Iterable[pb.CallbackTicket]) -> Iterable[pb.CallbackTicket]:
    states = (pb.CALLBACK_STATE_WAITING, pb.CALLBACK_STATE_RESERVED)
    return (t for t in tickets if t.state in states)
