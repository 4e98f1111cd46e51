"""Recording follow-ups from the webhook path: the callback and review workflow starts, in the outbox.

The webhook never talks to Temporal. A CALLBACK decision (`callback-<call id>`) and the end-of-call report
of an escalated call (`review-<call id>`) are recorded in the edge's outbox (`webhook_edge.outbox`), and
the relay (`webhook_edge.relay`), nudged after each new entry, starts the workflow. A failed record is
never raised to the handler (the caller's transfer matters more than its follow-up): it is retried in the
background, 0.5 s doubling to 30 s between attempts, for up to `LATE_RECORD_SECONDS`.
"""

from __future__ import annotations

import asyncio

import structlog

from webhook_edge.outbox import Outbox
from webhook_edge.outbox_payload import outbox_kind
from webhook_edge.relay import OutboxRelay
from workflows.inputs import WorkflowInput, workflow_id_for

__all__ = ["LATE_RECORD_SECONDS", "FollowUps"]

log = structlog.get_logger(__name__)

LATE_RECORD_SECONDS = 3600.0
"""How long a failed outbox record is retried in the background before it is given up (and logged)."""


class FollowUps:
    """Records workflow starts in the outbox; `close()` stops the background retries (at shutdown)."""

    def __init__(self, outbox: Outbox | None, relay: OutboxRelay | None = None) -> None:
        self.outbox = outbox
        self.relay = relay
        """Woken after each new outbox entry (None when this process does not relay)."""
        self._late_records: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop the background retries of failed outbox records."""
        for task in self._late_records:
            task.cancel()
        await asyncio.gather(*self._late_records, return_exceptions=True)

    async def record(self, data: WorkflowInput) -> None:
        """Record the start of the workflow `data` is for in the outbox; failures are logged, never raised."""
        kind, workflow_id = outbox_kind(data), workflow_id_for(data)
        outbox = self.outbox
        if outbox is None:
            log.warning("outbox_unavailable", kind=kind, workflow_id=workflow_id)
            return
        try:
            created = await outbox.record(data)
        except Exception as exc:  # the caller's transfer matters more than the follow-up record
            log.error("outbox_record_failed", kind=kind, workflow_id=workflow_id, cause=type(exc).__name__)
            # Vapi will not redeliver (it got its answer): keep trying in the background until the database
            # is back. Should this process die first, the worker's reconciler starts the callback from
            # routing's ticket (workflows/reconcile.py), but only on its next pass after a grace period.
            task = asyncio.create_task(self._record_late(outbox, data))
            self._late_records.add(task)
            task.add_done_callback(self._late_records.discard)
            return
        log.info("outbox_recorded", kind=kind, workflow_id=workflow_id, created=created)
        if created and self.relay is not None:
            self.relay.nudge()

    async def _record_late(self, outbox: Outbox, data: WorkflowInput) -> None:
        """Retry a failed record: 0.5 s doubling to 30 s between attempts, for up to an hour."""
        kind, workflow_id = outbox_kind(data), workflow_id_for(data)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + LATE_RECORD_SECONDS
        delay = 0.5
        while loop.time() < give_up:
            await asyncio.sleep(delay)
            try:
                created = await outbox.record(data)
            except Exception:
                delay = min(delay * 2, 30.0)
                continue
            log.info("outbox_recorded_late", kind=kind, workflow_id=workflow_id, created=created)
            if created and self.relay is not None:
                self.relay.nudge()
            return
        log.error("outbox_record_abandoned", kind=kind, workflow_id=workflow_id)
